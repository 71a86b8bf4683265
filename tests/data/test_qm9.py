"""QM9 loading, caching and EDM's split."""

from __future__ import annotations

import ast
import threading

import numpy as np
import pytest
import torch

from molgen.data import qm9
from molgen.data.qm9 import QM9Dataset, edm_split, load_qm9_arrays, parse_elements, parse_xyz
from molgen.data.stats import atom_type_counts, node_count_histogram
from molgen.errors import DataError

# EDM's configs/datasets_config.py, qm9_with_h: histogram of atom counts and atom-type counts of its train split.
EDM_N_NODES = {22: 3393, 17: 13025, 23: 4848, 21: 9970, 19: 13832, 20: 9482, 16: 10644, 13: 3060, 15: 7796,
               25: 1506, 18: 13364, 12: 1689, 11: 807, 24: 539, 14: 5136, 26: 48, 7: 16, 10: 362, 8: 49, 9: 124,
               27: 266, 4: 4, 29: 25, 6: 9, 5: 5, 3: 1}
EDM_ATOM_TYPES = {1: 635559, 2: 101476, 0: 923537, 3: 140202, 4: 2323}


def test_all_molecules_in_index_order(qm9_arrays):
    assert len(qm9_arrays.index) == 130_831
    assert (np.diff(qm9_arrays.index) > 0).all()
    assert qm9_arrays.index[0] == 1 and qm9_arrays.index[-1] == 133_885
    assert qm9_arrays.num_atoms.min() == 3 and qm9_arrays.num_atoms.max() == 29
    assert 28 not in set(qm9_arrays.num_atoms.tolist())
    assert qm9_arrays.properties.shape == (130_831, len(qm9.PROPERTY_COLUMNS))
    # methane (GDB 1): C then four H, its C-H bonds 1.09 A
    pos, types = qm9_arrays.positions[:5], qm9_arrays.atom_type[:5]
    assert types.tolist() == [1, 0, 0, 0, 0]
    np.testing.assert_allclose(np.linalg.norm(pos[1:] - pos[0], axis=1), 1.0919, atol=2e-4)


def test_positions_are_centred(qm9_arrays):
    ptr = qm9_arrays.ptr
    sums = np.add.reduceat(qm9_arrays.positions, ptr[:-1], axis=0)  # [B, 3]
    assert np.abs(sums).max() < 1e-12


def test_split_sizes_disjoint_and_deterministic():
    split = edm_split()
    assert {k: len(v) for k, v in split.items()} == {"train": 100_000, "valid": 17_748, "test": 13_083}
    union = np.concatenate(list(split.values()))
    assert len(np.unique(union)) == 130_831
    again = edm_split()
    assert all(np.array_equal(split[k], again[k]) for k in split)
    # np.random.seed(0); np.random.permutation(130831), as EDM's Cormorant preprocessing does
    np.random.seed(0)
    perm = np.random.permutation(130_831)
    assert np.array_equal(split["train"], perm[:100_000]) and np.array_equal(split["test"], perm[117_748:])


def test_train_statistics_equal_edm(qm9_splits):
    train = qm9_splits["train"]
    histogram = node_count_histogram(train)
    expected = torch.zeros(30, dtype=torch.int64)
    for n, count in EDM_N_NODES.items():
        expected[n] = count
    assert torch.equal(histogram, expected)
    counts = atom_type_counts(train)
    assert counts.tolist() == [EDM_ATOM_TYPES[i] for i in range(5)]


def test_dataset_items_and_batches(qm9_splits):
    test = qm9_splits["test"]
    first = test[0]
    assert first.num_molecules == 1 and int(first.index[0]) == int(test.index[0])
    batch = test.batch([0, 5, 2])
    assert batch.num_atoms.tolist() == [int(test.num_atoms[i]) for i in (0, 5, 2)]
    assert torch.equal(batch.x[: int(batch.num_atoms[0])], first.x)
    assert batch.x.dtype == torch.float32 and batch.charge.dtype == torch.int64
    assert torch.equal(batch.charge, torch.tensor([1, 6, 7, 8, 9])[batch.atom_type])
    with pytest.raises(IndexError):
        test.batch([len(test)])
    with pytest.raises(ValueError, match="split must be one of"):
        QM9Dataset("validation", arrays=object())


def test_parse_matches_literal_eval():
    rows = ["[[-0.0126981359,1.0858041578,0.0080009958],[0.,-0.0060313176,1e-05]]", "[[1.5,-0.,2.]]"]
    for text in rows:
        np.testing.assert_array_equal(parse_xyz(text), np.array(ast.literal_eval(text), dtype=np.float64))
    assert parse_elements("['C','H','H']") == ast.literal_eval("['C','H','H']")
    with pytest.raises(ValueError):
        parse_xyz("[[1.0,2.0],[3.0,4.0,5.0,6.0]]")
    with pytest.raises(ValueError):
        parse_xyz("[[1.0,2.0,x]]")


def test_parse_matches_literal_eval_on_real_rows():
    path = qm9.qm9pack_csv_paths()[1]
    for line, row in qm9._read_csv_rows(path):
        np.testing.assert_array_equal(parse_xyz(row["XYZ_Ang"]), np.array(ast.literal_eval(row["XYZ_Ang"])))
        if line > 500:
            break


def test_malformed_csv_names_file_and_line(tmp_path):
    header = ",".join(["Index", "N_atoms", "Elements", "XYZ_Ang", *qm9.PROPERTY_COLUMNS])
    props = ",".join(["1.0"] * len(qm9.PROPERTY_COLUMNS))
    good = f'1,2,"[\'C\',\'O\']","[[0.,0.,0.],[0.,0.,1.13]]",{props}'
    bad = f'2,2,"[\'C\',\'Xe\']","[[0.,0.,0.],[0.,0.,1.13]]",{props}'
    path = tmp_path / "qm9_part1.csv"
    path.write_text("\n".join([header, good, bad]) + "\n")
    with pytest.raises(DataError, match=r"qm9_part1.csv, line 3: unknown elements \['Xe'\]"):
        qm9.read_qm9_csvs([path], progress=False)
    path.write_text("\n".join([header, good.replace("1,2,", "1,3,", 1)]) + "\n")
    with pytest.raises(DataError, match="line 2: N_atoms=3 but 2 elements"):
        qm9.read_qm9_csvs([path], progress=False)


class _CountingReader:
    """Stands in for the CSV parser: returns known arrays and counts how often the cache is rebuilt."""

    def __init__(self, arrays):
        self.arrays, self.calls = arrays, 0

    def __call__(self, paths, progress=True):
        self.calls += 1
        return self.arrays


@pytest.fixture
def counting_reader(qm9_arrays, monkeypatch):
    reader = _CountingReader(qm9_arrays)
    monkeypatch.setattr(qm9, "read_qm9_csvs", reader)
    return reader


def _assert_same(a, b):
    for name in qm9._ARRAYS:
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


def test_cache_is_reused(qm9_cache_dir, counting_reader, qm9_arrays):
    _assert_same(load_qm9_arrays(qm9_cache_dir, progress=False), qm9_arrays)
    assert counting_reader.calls == 0


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "version", "source"])
def test_corrupt_or_stale_cache_is_rebuilt(tmp_path, qm9_cache_dir, counting_reader, qm9_arrays, damage):
    source = qm9.cache_path(qm9_cache_dir).read_bytes()
    path = qm9.cache_path(tmp_path)
    if damage == "truncate":
        path.write_bytes(source[: len(source) // 2])
    elif damage == "flip":  # a flipped byte inside the positions array
        data = bytearray(source)
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    elif damage == "garbage":
        path.write_bytes(b"not a cache")
    else:
        fingerprint = qm9.source_fingerprint(qm9.qm9pack_csv_paths())
        qm9._write_cache(path, qm9_arrays, fingerprint if damage == "version" else "other-source")
        if damage == "version":
            meta = np.array(["0", fingerprint, qm9._checksum(qm9_arrays)])
            with open(path, "wb") as handle:
                np.savez(handle, meta=meta, **{n: getattr(qm9_arrays, n) for n in qm9._ARRAYS})
    _assert_same(load_qm9_arrays(tmp_path, progress=False), qm9_arrays)
    assert counting_reader.calls == 1
    _assert_same(load_qm9_arrays(tmp_path, progress=False), qm9_arrays)  # the rebuilt cache is intact
    assert counting_reader.calls == 1


@pytest.mark.slow
def test_concurrent_first_runs_build_once(tmp_path, counting_reader, qm9_arrays):
    results = [None] * 4

    def load(i):
        results[i] = load_qm9_arrays(tmp_path, progress=False)

    threads = [threading.Thread(target=load, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counting_reader.calls == 1
    for result in results:
        _assert_same(result, qm9_arrays)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["qm9_v1.lock", "qm9_v1.npz"]  # no temporary files left


def test_cache_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MOLGEN_CACHE_DIR", str(tmp_path / "here"))
    assert qm9.cache_dir() == tmp_path / "here"
    monkeypatch.delenv("MOLGEN_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert qm9.cache_dir() == tmp_path / "xdg" / "molgen"
