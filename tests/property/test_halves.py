"""EDM's halves of the training split (D_a, D_b), re-derived here the way EDM's code derives them."""

from __future__ import annotations

import numpy as np

from molgen.data.qm9 import NUM_MOLECULES, edm_split
from molgen.property.halves import edm_halves, edm_training_array, load_half


def _edm_halves_by_edms_steps() -> dict[str, np.ndarray]:
    """EDM's own steps with the global NumPy generator: Cormorant's split, the membership filter of
    `process_xyz_files` over the files in index order, then `initialize_datasets`' permutation of that array."""
    state = np.random.get_state()
    try:
        np.random.seed(0)
        data_perm = np.random.permutation(NUM_MOLECULES)
        train = set(data_perm[:100000].tolist())
        files = range(NUM_MOLECULES)  # the included molecules' files, in GDB-9 index order
        train_array = np.array([file for idx, file in enumerate(files) if idx in train])
        np.random.seed(42)
        fixed_perm = np.random.permutation(len(train_array))
    finally:
        np.random.set_state(state)
    half = len(train_array) // 2
    return {"first": train_array[fixed_perm[:half]], "second": train_array[fixed_perm[half:]]}


def test_the_halves_are_edms():
    expected, halves = _edm_halves_by_edms_steps(), edm_halves()
    for name in ("first", "second"):
        np.testing.assert_array_equal(halves[name], expected[name])


def test_the_halves_split_the_training_split_in_two():
    first, second = edm_halves()["first"], edm_halves()["second"]
    assert len(first) == len(second) == 50_000
    assert not set(first.tolist()) & set(second.tolist())
    assert set(first.tolist()) | set(second.tolist()) == set(edm_split()["train"].tolist())


def test_edms_training_array_is_in_index_order_not_the_split_permutations():
    train = edm_split()["train"]
    array = edm_training_array()
    assert np.all(np.diff(array) > 0) and set(array.tolist()) == set(train.tolist())
    assert not np.array_equal(array, train)  # molgen's split is in permutation order: the halves must sort it


def test_known_molecules_of_each_half(qm9_arrays):
    d_a, d_b = load_half("first", arrays=qm9_arrays), load_half("second", arrays=qm9_arrays)
    assert d_a.index[:3].tolist() == [101107, 106967, 26753]  # GDB-9 indices (1-based)
    assert d_b.index[:3].tolist() == [114342, 63637, 8525]
    assert d_b.properties.shape == (50_000, qm9_arrays.properties.shape[1])
    first = int(edm_halves()["first"][0])
    assert int(qm9_arrays.index[first]) == 101107 and d_a.num_atoms[0] == qm9_arrays.num_atoms[first]
