"""Thread count from the cores a process may use, and the OpenMP wait policy."""

from __future__ import annotations

import os
import subprocess
import sys

import torch

from molgen import threads


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
    monkeypatch.setattr(threads, "available_cores", lambda: 1)
    try:
        assert threads.configure_threads(None) == 1 and torch.get_num_threads() == 1
        assert threads.configure_threads(2) == 2 and torch.get_num_threads() == 2
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        assert threads.configure_threads(None) == 2  # torchrun's choice is left in force
    finally:
        torch.set_num_threads(before)


def test_importing_molgen_sets_a_passive_wait_policy_unless_the_user_chose_one():
    code = "import molgen, os; print(os.environ.get('OMP_WAIT_POLICY'))"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "PASSIVE"
    out = subprocess.run([sys.executable, "-c", code], env={**env, "OMP_WAIT_POLICY": "ACTIVE"},
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ACTIVE"
