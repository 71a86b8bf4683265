"""eval/learning_curve.py: the power law recovers a known curve (c fitted or fixed), the pace is per doubling of the
epochs also over a span shorter than a doubling, and the logs' step ranges select their rows."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "eval" / "learning_curve.py"


@pytest.fixture(scope="module")
def learning_curve():
    spec = importlib.util.spec_from_file_location("learning_curve", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_power_law_recovers_a_known_curve(learning_curve):
    epochs = np.linspace(5.0, 90.0, 40)
    nll = -62.5 + 143.1 * epochs ** -0.5
    a, b, c, rms = learning_curve.fit_power_law(epochs, nll)
    assert (a, b, c) == pytest.approx((-62.5, 143.1, 0.5), abs=1e-6)
    assert rms < 1e-9


def test_fixed_exponent_fits_only_the_level_and_scale(learning_curve):
    epochs = np.linspace(70.0, 90.0, 12)
    nll = -80.0 + 300.0 * epochs ** -0.5
    a, b, c, rms = learning_curve.fit_power_law(epochs, nll, exponent=0.5)
    assert (a, b, c) == pytest.approx((-80.0, 300.0, 0.5), abs=1e-6)
    a_wrong, _, c_wrong, rms_wrong = learning_curve.fit_power_law(epochs, nll, exponent=1.0)
    assert c_wrong == 1.0 and rms_wrong > rms and a_wrong != pytest.approx(-80.0, abs=1.0)


def test_pace_is_per_doubling_over_the_last_doubling_or_the_whole_shorter_span(learning_curve):
    epochs = np.array([10.0, 20.0, 40.0, 80.0])
    nll = -3.0 * np.log2(epochs)  # exactly -3 nats per doubling
    assert learning_curve.pace_per_doubling(epochs, nll) == pytest.approx((40.0, -3.0))
    short = np.array([70.0, 80.0, 90.0])  # less than a doubling: the whole span, scaled to a doubling
    start, pace = learning_curve.pace_per_doubling(short, -3.0 * np.log2(short))
    assert (start, pace) == pytest.approx((70.0, -3.0))


def test_step_ranges_select_rows_and_later_files_win(learning_curve, tmp_path):
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    header = "step,kind,val_nll\n"
    first.write_text(header + "1000,eval,-1\n2000,eval,-2\n3000,eval,-3\n3000,train,\n")
    second.write_text(header + "3000,eval,-30\n4000,eval,-40\n")
    epochs, nll = learning_curve.read_curve([f"{first}:0:2000", f"{second}:3000:"], batch=100, train_size=1000)
    assert epochs.tolist() == [100.0, 200.0, 300.0, 400.0]
    assert nll.tolist() == [-1.0, -2.0, -30.0, -40.0]


@pytest.mark.parametrize("extra, message", [(["--exponent", "0"], "--exponent must lie in (0, 3]"),
                                            (["--from-epoch", "350"], "the fit needs 3")])
def test_cli_refuses_with_one_line(tmp_path, extra, message):
    log = tmp_path / "log.csv"
    log.write_text("step,kind,val_nll\n" + "".join(f"{s},eval,{-s / 1000}\n" for s in range(1000, 5000, 1000)))
    result = subprocess.run([sys.executable, str(SCRIPT), f"{log}:", "--batch", "100", "--train-size", "1000",
                             *extra], capture_output=True, text=True)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
