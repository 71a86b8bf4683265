"""Run a function without root's privileges, for the tests of folders that cannot be written.

CI runs as root, and root writes anywhere whatever the permission bits say. `run_as_nobody` forks (no new
interpreter: the one that runs the tests may sit where an unprivileged user cannot read it) and, when root, drops
to uid and gid 65534 in the child before calling the function; everything the child imports must already be
imported. `shared_folder` makes a folder that such a child can enter.
"""

from __future__ import annotations

import os
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path

NOBODY = 65534


def shared_folder() -> Path:
    """A new folder that every user can enter and read (pytest's tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="molgen-unprivileged-"))
    path.chmod(0o755)
    return path


def read_only_folder(path: Path) -> Path:
    """Make `path` a folder that the child cannot write in (owned by root when root, mode 0o555)."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o555)
    return path


def writable_folder(path: Path) -> Path:
    """Make `path` a folder that the child may write in."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        os.chown(path, NOBODY, NOBODY)
    return path


def assert_cannot_write(folder: Path) -> None:
    """Fail unless creating a file in `folder` really fails (so that a test cannot pass vacuously)."""
    try:
        (folder / ".probe").write_text("")
    except PermissionError:
        return
    raise AssertionError(f"{folder} can be written: the test would prove nothing")


def run_as_nobody(function: Callable[[], int], output: Path) -> int:
    """Call `function` in a forked child (as uid 65534 when root) with stdout and stderr going to `output`;
    returns its result as the child's exit status (70 and a traceback in `output` if it raised)."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 70
        try:
            log = open(output, "w", buffering=1)  # noqa: SIM115 - open until the child exits
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            sys.stdout = sys.stderr = log  # pytest's capture replaced the Python-level streams
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(NOBODY)
                os.setuid(NOBODY)
            code = function()
        except BaseException:  # noqa: BLE001 - reported in the output, the status says it failed
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)
