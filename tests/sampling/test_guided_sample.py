"""`molgen sample --target NAME=VALUE [--guidance S]` and `sample_molecules(targets=...)` on the tiny checkpoint, with
small random guide regressors written in the shipped regressor format: s = 0 is the unguided sampler bit for bit,
fragment atoms stay exact, counts come from p(N | c), and each bad request is one line, exit 2, nothing written."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from molgen import __version__
from molgen.cli import main
from molgen.errors import MolgenError
from molgen.property.checkpoint import REGRESSOR_FORMAT, REGRESSOR_FORMAT_VERSION, property_histograms
from molgen.property.guides import GuidedRequest
from molgen.property.regressor import PropertyRegressor, RegressorConfig
from molgen.sampling import load_for_sampling, sample_molecules
from molgen.settings import SampleSettings

FRAGMENT = (np.array([[4.0, 1.0, -2.0], [5.33, 1.0, -2.0], [6.05, 2.15, -2.0]]), np.array([1, 1, 3]))


def write_regressor(path, name: str, noise_conditional: bool = True, seed: int = 0) -> None:
    """A tiny random regressor of property `name` in the regressor file format, its D_b histograms made up over
    counts 5..12 with values 6000..8000."""
    torch.manual_seed(seed)
    config = RegressorConfig(property=name, noise_conditional=noise_conditional, hidden=8, layers=1, rbf=2)
    module = PropertyRegressor(config)
    module.set_normalisation(7000.0, 500.0)
    generator = np.random.default_rng(seed)
    num_atoms = generator.integers(5, 13, 4000)
    values = generator.uniform(6000, 8000, 4000)
    payload = {"format": REGRESSOR_FORMAT, "format_version": REGRESSOR_FORMAT_VERSION, "molgen_version": __version__,
               "model_config": config.to_dict(), "weights": module.state_dict(),
               "metadata": {"property": name, "unit": "meV", "normalisation": {"mean": 7000.0, "mad": 500.0},
                            "half": "second", "noise_conditional": noise_conditional},
               "histograms": property_histograms(num_atoms, values, bins=20)}
    torch.save(payload, path)


@pytest.fixture(scope="module")
def regressors(tmp_path_factory):
    folder = tmp_path_factory.mktemp("regressors")
    write_regressor(folder / "gap_guide.pt", "gap")
    write_regressor(folder / "homo_guide.pt", "homo", seed=1)
    write_regressor(folder / "alpha_guide.pt", "homo", seed=2)  # a file of the wrong property
    write_regressor(folder / "lumo_guide.pt", "lumo", noise_conditional=False)  # an evaluator, no guide
    return folder


def _api(checkpoint, **options):
    return sample_molecules(checkpoint, num_molecules=3, steps=3, seed=5, **options).molecules


def _same(first, second) -> bool:
    return all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(first, second))


def test_zero_scale_with_given_counts_is_the_unguided_sampler_bit_for_bit(checkpoint, regressors):
    plain = _api(checkpoint, num_atoms=9)
    unguided = _api(checkpoint, num_atoms=9, targets={"gap": 6500.0}, guidance=0.0, regressors=regressors)
    guided = _api(checkpoint, num_atoms=9, targets={"gap": 6500.0}, guidance=1.0, regressors=regressors)
    assert _same(plain, unguided)
    assert not _same(plain, guided)


def test_counts_are_drawn_from_p_n_given_c(checkpoint, regressors):
    loaded = load_for_sampling(checkpoint, SampleSettings())
    request = GuidedRequest.load([("gap", 7000.0), ("homo", 6100.0)], 1.0, regressors)
    conditional = request.node_distribution(loaded.node_distribution)
    assert set(conditional.supported) <= set(range(5, 13)) & set(loaded.node_distribution.supported)
    samples = sample_molecules(checkpoint, num_molecules=6, steps=2, targets=[("gap", 7000.0), ("homo", 6100.0)],
                               regressors=regressors)
    assert {len(types) for _, types in samples.molecules} <= set(conditional.supported)
    assert samples.settings.targets == (("gap", 7000.0), ("homo", 6100.0))


def test_fragment_atoms_stay_exact_under_guidance(checkpoint, regressors):
    samples = _api(checkpoint, fixed=FRAGMENT, targets={"gap": 6500.0}, guidance=1.0, regressors=regressors)
    for positions, types in samples:
        assert len(types) > 3
        np.testing.assert_array_equal(positions[:3], FRAGMENT[0].astype(np.float32))  # sampled in float32
        np.testing.assert_array_equal(types[:3], FRAGMENT[1])


def test_the_cli_writes_guided_molecules_and_their_targets(checkpoint, regressors, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["sample", "--checkpoint", str(checkpoint), "-n", "2", "--steps", "2", "--grid", "0", "--out",
                 str(out), "--no-progress", "--target", "gap=6500", "--guidance", "1", "--regressors",
                 str(regressors)]) == 0
    settings = json.loads((out / "summary.json").read_text())["settings"]
    assert settings["targets"] == [["gap", 6500.0]] and settings["guidance"] == 1.0



def test_the_bound_is_recorded_and_a_loose_one_is_the_unbounded_sampler_bit_for_bit(checkpoint, regressors, tmp_path):
    free = _api(checkpoint, num_atoms=9, targets={"gap": 6500.0}, guidance=1.0, regressors=regressors)
    loose = _api(checkpoint, num_atoms=9, targets={"gap": 6500.0}, guidance=1.0, regressors=regressors,
                 guidance_bound=1e6)
    tight = _api(checkpoint, num_atoms=9, targets={"gap": 6500.0}, guidance=1.0, regressors=regressors,
                 guidance_bound=1e-6)
    assert _same(free, loose) and not _same(free, tight)
    out = tmp_path / "out"
    assert main(["sample", "--checkpoint", str(checkpoint), "-n", "2", "--steps", "2", "--grid", "0", "--out",
                 str(out), "--no-progress", "--target", "gap=6500", "--guidance-bound", "0.5", "--regressors",
                 str(regressors)]) == 0
    assert json.loads((out / "summary.json").read_text())["settings"]["guidance_bound"] == 0.5


def test_the_default_scale_is_recorded(checkpoint, regressors):
    from molgen.property.targets import DEFAULT_GUIDANCE

    samples = sample_molecules(checkpoint, num_molecules=2, steps=2, targets={"gap": 6500}, regressors=regressors)
    assert samples.settings.guidance == DEFAULT_GUIDANCE
    assert sample_molecules(checkpoint, num_molecules=2, steps=2).settings.guidance is None


@pytest.mark.parametrize("options, message", [
    (["--target", "colour=5"], "unknown property 'colour'"),
    (["--target", "gap"], "a target is NAME=VALUE"),
    (["--target", "gap=high"], "the target of gap must be a number"),
    (["--target", "gap=nan"], "finite"),
    (["--target", "gap=6500", "--guidance", "-1"], "the guidance scale must be a finite number >= 0, got -1"),
    (["--target", "gap=6500", "--guidance", "lots"], "--guidance must be a number"),
    (["--guidance", "2"], "--guidance needs at least one --target"),
    (["--target", "gap=6500", "--guidance-bound", "0"], "the guidance bound must be a finite number > 0, got 0"),
    (["--target", "gap=6500", "--guidance-bound", "inf"], "the guidance bound must be a finite number > 0"),
    (["--target", "gap=6500", "--guidance-bound", "tight"], "--guidance-bound must be a number > 0"),
    (["--guidance-bound", "1"], "--guidance-bound needs at least one --target"),
    (["--target", "gap=6500", "--target", "gap=7000"], "gap given more than once"),
    (["--target", "mu=2"], "no guide regressor for mu"),
    (["--target", "gap=6500", "--sampler", "heun"], "property targets need the ancestral sampler"),
    (["--target", "alpha=80"], "holds a guide of homo, not a noise-conditional guide of alpha"),
    (["--target", "lumo=-500"], "holds an evaluator"),
    (["--target", "gap=20000"], "no atom count of the training data has molecules with gap=20000"),
])
def test_bad_requests_are_one_line_errors(checkpoint, regressors, tmp_path, capsys, options, message):
    out = tmp_path / "out"
    argv = ["sample", "--checkpoint", str(checkpoint), "-n", "2", "--steps", "2", "--out", str(out), "--no-progress",
            "--regressors", str(regressors), *options]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("molgen: error: ") and err.count("\n") == 1 and message in err, err
    assert not out.exists()


def test_the_api_refuses_bad_targets(checkpoint, regressors):
    with pytest.raises(MolgenError, match="the target of gap must be a finite number"):
        _api(checkpoint, targets={"gap": "high"}, regressors=regressors)
    with pytest.raises(MolgenError, match="the guidance scale"):
        _api(checkpoint, targets={"gap": 6500}, guidance=-0.5, regressors=regressors)
