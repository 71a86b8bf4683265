"""Output destinations of the commands: checked before the long work, and one clear error when they cannot be written.

`check_output_file` and `check_output_folder` probe a destination without creating anything (the nearest existing
folder must be a folder and accept a new file), so a bad `--out`, `--json`, `--run-dir` or export path fails in
the first second, not after an hour of work. `writing(path)` turns an OSError raised while writing under `path`
(no space, a read-only mount, a file where a folder should be) into an `OutputError`, which the CLI prints as one
`molgen: error:` line.

`replaced_folder(DIR, own_names)` (behind `molgen sample --out DIR`) writes a whole result into a temporary sibling
of DIR that replaces DIR only when every file is written. An existing DIR is replaced only if it holds nothing but
files with those names (molgen's outputs of an earlier run); otherwise it is refused, naming the other files, so
that `--out .` or a folder of the user's is never deleted. An interrupted or failed run leaves DIR as it was; the
swap is two renames with SIGINT and SIGTERM held back, so DIR holds one run's files, never a mix of two.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Collection, Iterator
from pathlib import Path

from molgen.atomic import current_umask
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


# ------------------------------------------------------------------------------------- folders replaced whole


def check_replaceable(folder: str | os.PathLike, own: Collection[str]) -> None:
    """Raise OutputError unless `folder` can be written and replaced: absent, or holding only files named in `own`."""
    folder = Path(folder)
    check_output_folder(folder)
    if not folder.exists():
        return
    foreign = sorted(entry.name for entry in folder.iterdir() if not _is_own(entry, own))
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise OutputError(folder, f"it holds files that molgen did not write ({shown}); molgen replaces only a "
                                  "folder of its own outputs: choose another folder or move them away")
    real, working = folder.resolve(), Path.cwd().resolve()
    if real == working or real in working.parents:
        raise OutputError(folder, "it is the current folder or contains it; name a subfolder, e.g. samples")


def _is_own(entry: Path, own: Collection[str]) -> bool:
    """A file named in `own`, or a leftover temporary file of an atomic write of one (`.NAME.xxxx.tmp`)."""
    if entry.is_symlink() or not entry.is_file():
        return False
    name = entry.name
    return name in own or (name.endswith(".tmp") and any(name.startswith(f".{mine}.") for mine in own))


@contextlib.contextmanager
def replaced_folder(folder: str | os.PathLike, own: Collection[str]) -> Iterator[Path]:
    """Yield a new temporary sibling of `folder` to write into; it replaces `folder` when the block succeeds.

    `folder` must pass `check_replaceable` (at the start and again at the swap); the sibling is removed if the
    block fails or is interrupted. OSErrors name the destination's files, not the sibling's.
    """
    folder = Path(folder)
    check_replaceable(folder, own)
    real = folder.resolve()
    with writing(real.parent, shown_as=folder.parent):
        real.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{real.name}.", suffix=".partial", dir=real.parent))
    try:
        with writing(staging, shown_as=folder):
            yield staging
        with writing(real.parent, shown_as=folder.parent):
            staging.chmod(0o777 & ~current_umask())
            _swap_in(staging, real, lambda: check_replaceable(folder, own))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _swap_in(staging: Path, real: Path, check: Callable[[], None]) -> None:
    """Rename `staging` to `real`, retiring and then deleting an existing `real` (signals held during the renames)."""
    retired = None
    with _signals_held():
        if real.exists():
            check()
            retired = Path(tempfile.mkdtemp(prefix=f".{real.name}.", suffix=".old", dir=real.parent))
            os.rename(real, retired)
        try:
            os.rename(staging, real)
        except OSError:
            if retired is not None:
                os.rename(retired, real)
            raise
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold back SIGINT and SIGTERM until the block ends (then they arrive), so it is never cut in half."""
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
