"""Thread count from the cores a process may use and the cores other processes keep busy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import molgen
from molgen import threads
from molgen.errors import MolgenError


def test_cgroup_quota_v2_and_v1(tmp_path):
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("150000 100000\n")
    assert threads.cgroup_cpu_quota(cpu_max, tmp_path / "none", tmp_path / "none") == 1.5
    cpu_max.write_text("max 100000\n")
    assert threads.cgroup_cpu_quota(cpu_max, tmp_path / "none", tmp_path / "none") is None
    quota, period = tmp_path / "quota", tmp_path / "period"
    quota.write_text("200000\n")
    period.write_text("100000\n")
    assert threads.cgroup_cpu_quota(tmp_path / "absent", quota, period) == 2.0
    quota.write_text("-1\n")
    assert threads.cgroup_cpu_quota(tmp_path / "absent", quota, period) is None
    assert threads.cgroup_cpu_quota(tmp_path / "absent", tmp_path / "absent", period) is None


def test_available_cores_is_the_smaller_of_affinity_and_quota(monkeypatch):
    monkeypatch.setattr(threads, "affinity_cores", lambda: 8)
    monkeypatch.setattr(threads, "cgroup_cpu_quota", lambda: 1.5)
    assert threads.available_cores() == 2
    monkeypatch.setattr(threads, "cgroup_cpu_quota", lambda: None)
    assert threads.available_cores() == 8
    monkeypatch.setattr(threads, "affinity_cores", lambda: 1)
    monkeypatch.setattr(threads, "cgroup_cpu_quota", lambda: 4.0)
    assert threads.available_cores() == 1


def test_configure_threads(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MOLGEN_THREADS", raising=False)
    monkeypatch.setattr(threads, "free_cores", lambda: 1)
    try:
        assert threads.configure_threads(None) == 1 and torch.get_num_threads() == 1
        assert threads.configure_threads(2) == 2 and torch.get_num_threads() == 2
        monkeypatch.setenv("MOLGEN_THREADS", "1")
        monkeypatch.setattr(threads, "free_cores", lambda: 2)
        assert threads.configure_threads(None) == 1
        monkeypatch.setenv("MOLGEN_THREADS", "two")
        with pytest.raises(MolgenError, match="MOLGEN_THREADS must be a positive integer, got 'two'"):
            threads.configure_threads(None)
        monkeypatch.delenv("MOLGEN_THREADS")
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        assert threads.configure_threads(None) == torch.get_num_threads()  # torchrun's choice is left in force
    finally:
        torch.set_num_threads(before)


def _stat_line(user, nice, system, idle, iowait=0):
    return f"cpu  {user} {nice} {system} {idle} {iowait} 0 0 0 0 0\ncpu0 1 2 3 4\n"


def test_busy_cores_count_normal_priority_work_only(tmp_path, monkeypatch):
    stat = tmp_path / "stat"
    stat.write_text(_stat_line(1000, 0, 0, 1000))
    later = _stat_line(1000 + 90, 60, 10, 1000 + 40)  # over 200 ticks: 100 normal, 60 niced, 40 idle
    monkeypatch.setattr(threads.time, "sleep", lambda seconds: stat.write_text(later))
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    assert threads.busy_cores(stat=stat) == pytest.approx(1.0)
    assert threads.busy_cores(stat=tmp_path / "absent") is None


def test_free_cores_leave_out_a_busy_process(monkeypatch):
    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    for busy, expected in ((0.05, 2), (1.0, 1), (1.4, 1), (2.0, 1), (None, 2)):
        monkeypatch.setattr(threads, "busy_cores", lambda busy=busy: busy)
        assert threads.free_cores() == expected
    monkeypatch.setattr(threads, "available_cores", lambda: 1)
    assert threads.free_cores() == 1


# The child: torch has read OMP_NUM_THREADS at import; molgen's thread setup for sampling must leave it, though it
# would pick 2 threads on its own (free_cores stands in for an idle 2-core machine).
_OMP_CHILD = """
import sys, torch
from molgen import threads
from molgen.sampling import SampleSettings, load_for_sampling
threads.free_cores = lambda: 2
at_import = torch.get_num_threads()
load_for_sampling(sys.argv[1], SampleSettings(device="cpu", precision="fp32"))
print(at_import, torch.get_num_threads())
"""


def test_omp_num_threads_is_respected_in_a_fresh_process():
    fixture = Path(__file__).parent / "fixtures" / "qm9_ponita_860b5b7.pt"
    source_root = str(Path(molgen.__file__).resolve().parents[1])  # the child imports the molgen under test
    env = {key: value for key, value in os.environ.items() if key != "MOLGEN_THREADS"}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(filter(None, [source_root, env.get("PYTHONPATH")])))
    result = subprocess.run([sys.executable, "-c", _OMP_CHILD, str(fixture)], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "1"]  # torch read the variable, and molgen left it in force


def test_a_count_beyond_the_usable_cores_is_capped_with_one_warning(monkeypatch, caplog):
    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MOLGEN_THREADS", raising=False)
    monkeypatch.setattr(threads, "affinity_cores", lambda: 8)
    monkeypatch.setattr(threads, "cgroup_cpu_quota", lambda: 1.5)  # docker --cpus 1.5: 2 cores
    try:
        with caplog.at_level("WARNING", logger="molgen.threads"):
            assert threads.configure_threads(2) == 2 and not caplog.records
            assert threads.configure_threads(999) == 2 and torch.get_num_threads() == 2
            monkeypatch.setenv("MOLGEN_THREADS", "64")
            assert threads.configure_threads(None) == 2
    finally:
        torch.set_num_threads(before)
    assert [record.getMessage() for record in caplog.records] == [
        "999 threads asked for, but this process may use 2 cores; using 2",
        "64 threads asked for, but this process may use 2 cores; using 2"]
