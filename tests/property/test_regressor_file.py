"""Regressor files: the round trip, EDM's per-N property histograms, and one-line errors for bad files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from molgen.config import RunConfig
from molgen.property.checkpoint import RegressorFileError, load_regressor, property_histograms, save_regressor
from molgen.property.regressor import PropertyRegressor, RegressorConfig


def _edm_histogram(values: np.ndarray, bins: int) -> np.ndarray:
    """EDM's DistributionProperty._create_prob_given_nodes, written as EDM writes it (a loop over the values)."""
    low, high = values.min(), values.max()
    histogram = np.zeros(bins, dtype=np.int64)
    for value in values:
        i = int((value - low) / (high - low + 1e-12) * bins)
        histogram[min(i, bins - 1)] += 1
    return histogram


def test_histograms_per_atom_count_are_edms():
    rng = np.random.default_rng(0)
    num_atoms = rng.integers(3, 8, size=400)
    values = rng.normal(size=400) * num_atoms
    found = property_histograms(num_atoms, values, bins=7)
    assert found["node_counts"].tolist() == np.bincount(num_atoms, minlength=30).tolist()
    for n in range(3, 8):
        chosen = values[num_atoms == n]
        assert found["counts"][n].tolist() == _edm_histogram(chosen, 7).tolist()
        assert float(found["low"][n]) == chosen.min() and float(found["high"][n]) == chosen.max()
    assert found["counts"][9].sum() == 0 and np.isnan(float(found["low"][9]))


def _saved(path, noise_conditional=True):
    torch.manual_seed(0)
    module = PropertyRegressor(RegressorConfig(property="alpha", half="first" if not noise_conditional else "second",
                                               noise_conditional=noise_conditional, hidden=8, layers=1, rbf=2))
    module.set_normalisation(75.3, 6.29)
    config = RunConfig.from_dict({"model": {"name": "property_regressor", "config": module.config.to_dict()}})
    histograms = property_histograms(np.array([3, 3, 4]), np.array([1.0, 2.0, 3.0]), bins=4)
    save_regressor(path, module, config, histograms, steps=7, molecules=448, cpu_seconds=1.5,
                   validation={"val_mae": 0.25, "num_molecules": 10, "unit": "Bohr^3", "seconds": 1.0})
    return module


def test_round_trip(tmp_path):
    path = tmp_path / "alpha_evaluator.pt"
    module = _saved(path, noise_conditional=False)
    loaded = load_regressor(path)
    assert loaded.property.name == "alpha" and loaded.metadata["unit"] == "Bohr^3"
    assert not loaded.noise_conditional and loaded.metadata["half"] == "first"
    assert loaded.normalisation.mean == pytest.approx(75.3) and loaded.normalisation.mad == pytest.approx(6.29)
    assert loaded.metadata["schedule"] == {"name": "polynomial_2", "timesteps": 1000, "precision": 1e-5}
    assert loaded.metadata["steps"] == 7 and loaded.metadata["validation"]["val_mae"] == 0.25
    assert loaded.histograms["counts"][3].tolist() == [1, 0, 0, 1]
    for name, value in module.state_dict().items():
        torch.testing.assert_close(loaded.module.state_dict()[name], value, rtol=0, atol=0)
    assert not loaded.module.training and loaded.module.autocast_dtype is None


@pytest.mark.parametrize("content, problem", [
    (b"not a torch file at all", "not a readable torch file"),
    (b"", "not a readable torch file"),
])
def test_corrupt_files_are_one_line(tmp_path, content, problem):
    path = tmp_path / "broken.pt"
    path.write_bytes(content)
    with pytest.raises(RegressorFileError, match=rf"^regressor {path}: {problem}") as caught:
        load_regressor(path)
    assert "\n" not in str(caught.value)


def test_a_truncated_file_is_one_line(tmp_path):
    path = tmp_path / "gap_guide.pt"
    _saved(path)
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(RegressorFileError, match=r"not a readable torch file") as caught:
        load_regressor(path)
    assert "\n" not in str(caught.value)


def test_wrong_kinds_of_file_are_named(tmp_path):
    training = tmp_path / "last.pt"
    torch.save({"format_version": 3, "optimizer": {}, "model": {}}, training)
    with pytest.raises(RegressorFileError, match="a molgen training checkpoint, not a molgen property regressor"):
        load_regressor(training)
    other = tmp_path / "other.pt"
    torch.save({"weights": {}}, other)
    with pytest.raises(RegressorFileError, match="a file, not a molgen property regressor"):
        load_regressor(other)
    with pytest.raises(RegressorFileError, match="no such file"):
        load_regressor(tmp_path / "missing.pt")


def test_weights_that_do_not_fit_are_named(tmp_path):
    path = tmp_path / "gap_guide.pt"
    _saved(path)
    payload = torch.load(path, weights_only=True)
    payload["model_config"]["hidden"] = 16
    torch.save(payload, path)
    with pytest.raises(RegressorFileError, match="its contents do not make a regressor"):
        load_regressor(path)
