"""Output destinations of the commands: checked before the long work, and one clear error when they cannot be written.

`check_output_file` and `check_output_folder` probe a destination without creating anything (the nearest existing
folder must be a folder and accept a new file), so a bad `--out`, `--json`, `--run-dir` or export path fails in
the first second, not after an hour of work. `writing(path)` turns an OSError raised while writing under `path`
(no space, a read-only mount, a file where a folder should be) into an `OutputError`, which the CLI prints as one
`molgen: error:` line.

Folders replaced whole (`molgen sample --out`) are in `molgen.replaced`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from molgen.errors import MolgenError


class OutputError(MolgenError):
    """An output file or folder cannot be written; the message names the path and the reason."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        super().__init__(f"cannot write {path}: {reason}")
        self.path, self.reason = Path(path), reason


def check_output_file(path: str | os.PathLike) -> None:
    """Raise OutputError unless `path` can be created or replaced as a file; creates nothing."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(path, "it is a folder")
    _check_can_hold_files(path.parent, path)


def check_output_folder(path: str | os.PathLike) -> None:
    """Raise OutputError unless `path` is, or can be created as, a folder that accepts new files; creates nothing."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(path, "it is a file, not a folder")
    _check_can_hold_files(path, path)


def _check_can_hold_files(folder: Path, target: Path) -> None:
    """Check that `folder` exists or can be made, by probing its nearest existing ancestor with a temporary file."""
    existing = _nearest_existing(folder)
    if not existing.is_dir():
        raise OutputError(target, f"{existing} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        if err.errno == errno.ENOENT:  # an existing folder that says "no such file": a virtual file system
            raise OutputError(target, f"the folder {existing} accepts no new files (a virtual file system such as "
                                      "/proc)") from None
        raise OutputError(target, _reason(err, target)) from None


def _nearest_existing(path: Path) -> Path:
    """`path` or its closest ancestor that exists (as a file or a folder)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


@contextlib.contextmanager
def writing(path: str | os.PathLike, shown_as: str | os.PathLike | None = None) -> Iterator[None]:
    """Turn an OSError about `path`, a file under it or a folder on the way to it into an OutputError naming it.

    With `shown_as`, files under `path` are named as if `path` were `shown_as` (a staging folder named by its
    destination). OSErrors about other files (an input that cannot be read) pass through unchanged.
    """
    try:
        yield
    except OSError as err:
        named = Path(err.filename) if err.filename else Path(path)
        root, failed = Path(os.path.abspath(path)), Path(os.path.abspath(named))
        inside = failed == root or root in failed.parents
        if not (inside or failed in root.parents):
            raise
        if not inside:  # a folder on the way to the output: name the output, the reason names the folder
            shown = Path(shown_as if shown_as is not None else path)
        else:
            shown = Path(shown_as) / failed.relative_to(root) if shown_as is not None else named
        raise OutputError(shown, _reason(err, named)) from None


def _reason(err: OSError, path: Path) -> str:
    """Why `path` could not be written, in words: the file in the way of a folder, or the system's reason."""
    blocking = _nearest_existing(path)
    if err.errno in (errno.ENOTDIR, errno.EEXIST) and not blocking.is_dir():
        return f"{blocking} is a file, not a folder"
    text = err.strerror or str(err)
    return text[:1].lower() + text[1:]
