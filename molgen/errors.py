"""Errors that molgen raises for bad input; the CLI prints their message alone, without a traceback."""


class MolgenError(Exception):
    """Base class of the errors whose message is meant for the user."""


class MoleculeFileError(MolgenError, ValueError):
    """A molecule file is malformed; the message names the file and line."""

    def __init__(self, path: object, line: int | None, problem: str) -> None:
        where = f"{path}" if line is None else f"{path}, line {line}"
        super().__init__(f"{where}: {problem}")
        self.path, self.line, self.problem = path, line, problem


class DataError(MolgenError):
    """The QM9 data package is missing or its files are malformed."""
