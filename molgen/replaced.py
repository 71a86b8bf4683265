"""Output folders replaced whole: `replaced_folder(DIR, own_names)`, behind `molgen sample --out DIR`.

The result is written into a hidden sibling of DIR (`.DIR.XXXXXXXX.partial`), made before the work starts (so a
parent that accepts no new folder fails at once, naming DIR), that replaces DIR only when every file is written.
An existing DIR is replaced only if it holds nothing but files with those names (molgen's outputs of an earlier
run); otherwise it is refused, naming the other files, so that `--out .` or a folder of the user's is never
deleted. An interrupted or failed run leaves DIR as it was; the swap is two renames with SIGINT and SIGTERM held
back, so DIR holds one run's files, never a mix of two, and the retired DIR (`.DIR.XXXXXXXX.old`) is deleted
even when a signal that arrived during the renames raises as they end.

A run killed before its cleanup (kill -9, a power cut) leaves its sibling behind. Every run holds a shared
`flock` on `.DIR.lock` beside DIR while it works; a run that can take that lock exclusively (so no other run
into DIR is alive) first removes the `.partial` and `.old` siblings that dead runs left, never a live run's.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import string
import tempfile
import threading
from collections.abc import Callable, Collection, Iterator
from pathlib import Path

from molgen.atomic import current_umask
from molgen.outputs import OutputError, check_output_folder, writing

_TEMPORARY_NAME = frozenset(string.ascii_lowercase + string.digits + "_")  # tempfile's 8 random characters
_SIBLING_KINDS = ("partial", "old")


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
    """Yield a new hidden sibling of `folder` to write into; it replaces `folder` when the block succeeds.

    `folder` must pass `check_replaceable` (at the start and again at the swap). The sibling exists before the
    block runs and is removed if the block fails or is interrupted. The block names files in the sibling to the
    user as files of `folder` (`writing(sibling, shown_as=folder)`).
    """
    folder = Path(folder)
    check_replaceable(folder, own)
    real = folder.resolve()
    with _in_parent(folder):
        real.parent.mkdir(parents=True, exist_ok=True)
    with _run_lock(real, folder, own):
        with _in_parent(folder):
            staging = Path(tempfile.mkdtemp(prefix=f".{real.name}.", suffix=".partial", dir=real.parent))
        try:
            yield staging
            with writing(real.parent, shown_as=folder.parent):
                staging.chmod(0o777 & ~current_umask())
                _swap_in(staging, real, lambda: check_replaceable(folder, own))
        finally:
            shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def _in_parent(folder: Path) -> Iterator[None]:
    """Turn an OSError of making something beside `folder` into an OutputError that names `folder` itself."""
    try:
        yield
    except OSError as err:
        reason = (err.strerror or str(err)).lower()
        raise OutputError(folder, f"{reason} in {folder.parent}, where molgen writes the new files before they "
                                  f"replace {folder.name}") from None


# ---------------------------------------------------------------------------------------------------- the swap


def _swap_in(staging: Path, real: Path, check: Callable[[], None]) -> None:
    """Rename `staging` to `real`, retiring and then deleting an existing `real` (signals held during the renames).

    The retired folder is deleted in a `finally`: a held SIGINT or SIGTERM whose handler raises as the signals are
    let through again still leaves no `.old` folder behind.
    """
    retired = None  # the previous `real`, once `staging` has taken its place
    try:
        with _signals_held():
            previous = _retire(real, check) if real.exists() else None
            try:
                os.rename(staging, real)
            except OSError:
                if previous is not None:
                    os.rename(previous, real)
                raise
            retired = previous
    finally:
        if retired is not None:
            shutil.rmtree(retired, ignore_errors=True)


def _retire(real: Path, check: Callable[[], None]) -> Path:
    """Move `real` (checked first) aside to a new `.NAME.XXXXXXXX.old` sibling; returns where it went."""
    check()
    retired = Path(tempfile.mkdtemp(prefix=f".{real.name}.", suffix=".old", dir=real.parent))
    try:
        os.rename(real, retired)
    except OSError:
        os.rmdir(retired)
        raise
    return retired


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold back SIGINT and SIGTERM until the block ends (then they arrive), so it is never cut in half.

    The signals are recorded by a handler and raised again at the end, not masked: a mask holds them back from the
    main thread only, and the kernel hands a process's signal to any thread that does not block it (torch's
    worker threads), after which Python runs the handler in the main thread at once.
    """
    if threading.current_thread() is not threading.main_thread():  # handlers belong to the main thread
        yield
        return
    arrived: list[int] = []
    previous = {held: signal.signal(held, lambda signum, frame: arrived.append(signum))
                for held in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for held, handler in previous.items():
            signal.signal(held, handler if handler is not None else signal.SIG_DFL)
        for signum in arrived:
            signal.raise_signal(signum)


# ----------------------------------------------------------------------------------- runs alive and runs dead


@contextlib.contextmanager
def _run_lock(real: Path, folder: Path, own: Collection[str]) -> Iterator[None]:
    """Hold a shared lock on `.NAME.lock` beside `real` for the block; with no other run alive, first remove the
    siblings that dead runs left. The lock file is removed at the end by the last run out."""
    lock = real.parent / f".{real.name}.lock"
    with _in_parent(folder):
        alone = _locked(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if alone is not None:
            _remove_dead_siblings(real, own)
            os.close(alone)
        shared = _locked(lock, fcntl.LOCK_SH)
    try:
        yield
    finally:
        if shared is not None:
            _release(lock, shared)


def _locked(path: Path, operation: int) -> int | None:
    """A descriptor of `path` holding the flock `operation`; None if LOCK_NB finds it taken or the file system has
    no locks. Retried when the file was removed or replaced while waiting (so the lock held is on `path`)."""
    while True:
        descriptor = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(descriptor, operation)
        except OSError:  # taken (LOCK_NB), or no locks on this file system
            os.close(descriptor)
            return None
        if _same_file(descriptor, path):
            return descriptor
        os.close(descriptor)


def _same_file(descriptor: int, path: Path) -> bool:
    """Whether `path` still names the file open as `descriptor`."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(descriptor)
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)


def _release(lock: Path, descriptor: int) -> None:
    """Give up the lock; the last run out (it gets the lock exclusively) removes the empty lock file."""
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if _same_file(descriptor, lock) and os.fstat(descriptor).st_size == 0:
            os.unlink(lock)
    except OSError:
        pass  # another run holds it, or the folder changed: the file stays for the next run
    finally:
        os.close(descriptor)


def _remove_dead_siblings(real: Path, own: Collection[str]) -> None:
    """Remove the `.NAME.XXXXXXXX.partial` and `.old` folders beside `real` that hold only molgen's files (called
    while no other run into `real` is alive, so every such folder is a dead run's)."""
    prefix = f".{real.name}."
    for entry in real.parent.iterdir():
        middle, _, kind = entry.name.removeprefix(prefix).rpartition(".")
        if not (entry.name.startswith(prefix) and kind in _SIBLING_KINDS and len(middle) == 8
                and set(middle) <= _TEMPORARY_NAME):
            continue
        with contextlib.suppress(OSError):
            if not entry.is_symlink() and entry.is_dir() and all(_is_own(f, own) for f in entry.iterdir()):
                shutil.rmtree(entry)
