"""The help and usage errors of every `molgen` command: each option's default shown once, and a bad option
reported in one line that points to --help (instead of argparse's usage block)."""

from __future__ import annotations

import argparse
from typing import NoReturn


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's defaults formatter, except where the default says nothing (None) or the help already names it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        help_text = action.help or ""
        if action.default is None or "default" in help_text:
            return help_text
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """An argument parser (and, through `add_subparsers`, its commands' parsers) whose errors are one line:
    `molgen sample: error: argument --seed: ... (see molgen sample --help)`, exit status 2."""

    def error(self, message: str) -> NoReturn:
        flat = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {flat} (see {self.prog} --help)\n")
