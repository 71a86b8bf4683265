"""eval/bench_compile.py's table: the speed-up and the break-even point of the compile time."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

EVAL = Path(__file__).resolve().parents[2] / "eval"


def bench_compile():
    """eval/bench_compile.py as a module (its `from code_versions import ...` finds eval/ on sys.path)."""
    sys.path.insert(0, str(EVAL))
    try:
        spec = importlib.util.spec_from_file_location("bench_compile", EVAL / "bench_compile.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(EVAL))
    return module


def result(rate: float, compile_seconds: float = 0.0, graphs: tuple[int, int] = (0, 0)) -> dict:
    """graphs: (compiled after the warm-up, compiled in all)."""
    return {"molecules_per_second": rate, "compile_seconds": compile_seconds, "compiled_after_warmup": graphs[0],
            "graphs": graphs[1], "cpu": "AVX-512 bf16", "precision": "bf16"}


def test_the_break_even_is_the_compile_time_over_the_time_saved_per_molecule():
    row = bench_compile().table_row(result(400.0), result(450.0, compile_seconds=16.0, graphs=(0, 2)))
    # 16 s / (1/400 - 1/450 s per molecule) = 57,600 molecules = 0.58 epochs of 100,000
    assert row == "| AVX-512 bf16 | bf16 | 16.0 (2 graphs) | 400 | 450 | 1.12x | 57,600 | 0.58 |"


def test_a_slower_compiled_step_never_pays_and_late_graphs_are_noted():
    row = bench_compile().table_row(result(400.0), result(380.0, compile_seconds=16.0, graphs=(1, 2)))
    assert row == "| AVX-512 bf16 | bf16 | 16.0 (2 graphs, 1 after the warm-up) | 400 | 380 | 0.95x | never | never |"
