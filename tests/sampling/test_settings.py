"""The check of a sampling request reads the sampler table, and the command line makes it before loading torch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from molgen.errors import MolgenError
from molgen.settings import SampleSettings

FRAGMENT = (np.array([[0.0, 0.0, 0.0], [1.2, 0.0, 0.0], [1.9, 1.1, 0.0]]), np.array([1, 1, 3]))
COUNTS = list(range(3, 28)) + [29]


@pytest.mark.parametrize(("settings", "timesteps", "message"), [
    (SampleSettings(), 50, "the ancestral sampler takes at most T = 50 steps, got 100"),  # the default steps
    (SampleSettings(steps=60), 50, "the ancestral sampler takes at most T = 50 steps, got 60"),
    (SampleSettings(sampler="dpmpp2m", churn=1.0), None, "churn applies to the heun sampler only, not dpmpp2m"),
    (SampleSettings(sampler="ddim"), None, "unknown sampler 'ddim'; choose one of ancestral, heun, dpmpp2m"),
    (SampleSettings(steps=0), None, "the number of steps must be at least 1, got 0"),
    (SampleSettings(precision="fp16"), None, "unknown precision 'fp16'; choose one of auto, fp32, bf16"),
])
def test_impossible_settings_are_one_error(settings, timesteps, message):
    with pytest.raises(MolgenError, match=f"^{message}$".replace("(", r"\(").replace(")", r"\)")):
        settings.check(timesteps)


def test_samplers_without_a_step_limit_take_more_than_T_steps():
    SampleSettings(sampler="dpmpp2m", steps=2000).check(1000)
    SampleSettings(sampler="heun", steps=2000, churn=3.0).check(1000)


@pytest.mark.parametrize(("settings", "message"), [
    (SampleSettings(sampler="dpmpp2m"), "a fixed fragment needs the ancestral sampler; the dpmpp2m sampler is not "
                                        "supported with --fix"),
    (SampleSettings(num_atoms=3), "--num-atoms 3 must exceed the fragment's 3 atoms"),
    (SampleSettings(num_atoms=28), "cannot sample molecules of 28 atoms: the model saw none in training"),
])
def test_impossible_fragment_requests_are_one_error(settings, message):
    with pytest.raises(MolgenError, match=f"^{message}$"):
        settings.check_fragment(FRAGMENT, COUNTS)
    SampleSettings(num_atoms=9).check_fragment(FRAGMENT, COUNTS)
    with pytest.raises(MolgenError, match="--resample applies only to sampling around a fragment"):
        SampleSettings(resample=1).check_fragment(None, COUNTS)


def test_the_command_line_refuses_bad_options_before_importing_torch(tmp_path):
    code = ("import sys; from molgen.cli import main; "
            f"code = main(['sample', '--sampler', 'dpmpp2m', '--churn', '1', '--out', r'{tmp_path / 'out'}']); "
            "assert 'torch' not in sys.modules, 'torch was imported'; sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr == "molgen: error: churn applies to the heun sampler only, not dpmpp2m\n"
    assert not (tmp_path / "out").exists()
