"""`molgen sample --out DIR` and the hidden siblings it writes into: SIGTERM cleans up as Ctrl-C does, a dead run's
`.DIR.*.partial` and `.DIR.*.old` are removed by the next run (a live run's never), and a parent that accepts no
new folder fails before sampling, naming DIR."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
from pathlib import Path

import pytest
from unprivileged import assert_cannot_write, read_only_folder, run_as_nobody, shared_folder, writable_folder

import molgen.replaced
import molgen.sampling
from molgen.cli import main
from molgen.interrupts import Interrupted
from molgen.replaced import replaced_folder

OWN = ("molecules.xyz", "summary.json")


def _sample(checkpoint, out, *extra: str) -> int:
    return main(["sample", "--checkpoint", str(checkpoint), "-n", "2", "--steps", "2", "--out", str(out),
                 "--grid", "0", "--no-progress", *extra])


@pytest.fixture()
def sigterm_guard():
    """SIGTERM raises AssertionError unless molgen handles it (its default would end the test run)."""
    def unhandled(signum, frame):
        raise AssertionError("SIGTERM reached the test's handler: molgen did not handle it")

    previous = signal.signal(signal.SIGTERM, unhandled)
    yield
    signal.signal(signal.SIGTERM, previous)


def _contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_sigterm_during_sampling_cleans_up_and_exits_143(checkpoint, tmp_path, monkeypatch, capsys, sigterm_guard):
    out = tmp_path / "samples"
    assert _sample(checkpoint, out) == 0
    before = _contents(out)
    sample, sent = molgen.sampling.sample, []

    def terminated(*args, callback=None, **kwargs):
        def hook(info):
            if not sent:  # SIGTERM after the first step, as `kill` or a scheduler sends it
                sent.append(info.t)
                os.kill(os.getpid(), signal.SIGTERM)
            return callback(info)

        return sample(*args, callback=hook, **kwargs)

    monkeypatch.setattr(molgen.sampling, "sample", terminated)
    capsys.readouterr()
    assert _sample(checkpoint, out, "--seed", "1") == 143
    assert sent and capsys.readouterr().err == "molgen: interrupted\n"
    assert _contents(out) == before  # --out untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["samples"]  # no .partial, no lock file


def test_a_signal_raising_as_the_swap_ends_leaves_no_old_folder(tmp_path, sigterm_guard):
    out = tmp_path / "samples"
    out.mkdir()
    (out / "summary.json").write_text("old\n")
    check, calls = molgen.replaced.check_replaceable, []

    def check_then_terminate(folder, own):  # the check at the swap runs while the signals are held
        calls.append(folder)
        check(folder, own)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    def interrupt(signum, frame):
        raise Interrupted(signum)

    signal.signal(signal.SIGTERM, interrupt)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(molgen.replaced, "check_replaceable", check_then_terminate)
        with pytest.raises(Interrupted):
            with replaced_folder(out, OWN) as staging:
                (staging / "summary.json").write_text("new\n")
    assert len(calls) == 2
    assert (out / "summary.json").read_text() == "new\n"  # the swap was whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["samples"]  # the retired folder is gone


def _die_inside(out: Path) -> None:
    """A run that dies (like kill -9: no cleanup) while it writes its files; in a forked child."""
    pid = os.fork()
    if pid == 0:
        with replaced_folder(out, OWN) as staging:
            (staging / "molecules.xyz").write_text("half\n")
            os._exit(9)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 9


def test_the_next_run_removes_what_dead_runs_left(checkpoint, tmp_path):
    out = tmp_path / "samples"
    _die_inside(out)
    left = {p.name for p in tmp_path.iterdir()}
    partial = [name for name in left if name.startswith(".samples.") and name.endswith(".partial")]
    assert len(partial) == 1 and left == {partial[0], ".samples.lock"}, left
    retired = tmp_path / ".samples.a1b2c3d4.old"  # killed between the swap's two renames
    retired.mkdir()
    (retired / "summary.json").write_text("{}\n")
    foreign = tmp_path / ".samples.z9y8x7w6.partial"  # looks like ours, holds a file that molgen did not write
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine\n")
    assert _sample(checkpoint, out) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [".samples.z9y8x7w6.partial", "samples"]
    assert json.loads((out / "summary.json").read_text())["settings"]["seed"] == 0


def test_a_live_runs_folder_is_never_touched(checkpoint, tmp_path):
    out = tmp_path / "samples"
    live = tmp_path / ".samples.l1v3r7n0.partial"
    live.mkdir()
    (live / "molecules.xyz").write_text("being written\n")
    with open(tmp_path / ".samples.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_SH)  # as a run into the same --out holds it while it works
        assert _sample(checkpoint, out) == 0
        assert (live / "molecules.xyz").read_text() == "being written\n"
        assert (tmp_path / ".samples.lock").exists()  # not removed under a live run
    assert sorted(p.name for p in tmp_path.iterdir()) == [".samples.l1v3r7n0.partial", ".samples.lock", "samples"]
    assert _sample(checkpoint, out) == 0  # alone now: the folder is a dead run's
    assert sorted(p.name for p in tmp_path.iterdir()) == ["samples"]


def test_an_unwritable_parent_fails_before_sampling_naming_out(checkpoint, monkeypatch):
    folder = shared_folder()
    parent = folder / "parent"
    out = writable_folder(parent / "samples")  # an earlier run's folder, which the user may write
    read_only_folder(parent)
    try:
        def no_sampling(*args, **kwargs):
            raise AssertionError("sampling started")

        monkeypatch.setattr(molgen.sampling, "sample", no_sampling)

        def child() -> int:
            assert_cannot_write(parent)
            return _sample(checkpoint, out)

        output = folder / "output.txt"
        assert run_as_nobody(child, output) == 2, output.read_text()
        assert output.read_text() == (f"molgen: error: cannot write {out}: permission denied in {parent}, where "
                                      "molgen writes the new files before they replace samples\n")
        assert sorted(p.name for p in parent.iterdir()) == ["samples"]
    finally:
        parent.chmod(0o755)
        shutil.rmtree(folder)
