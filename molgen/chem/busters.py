"""PoseBusters' `mol` configuration on generated molecules (Buttenschoen et al. 2024; package `posebusters`).

Each molecule goes to PoseBusters as the sanitised RDKit molecule of its bonds with the pose as its conformer. A
molecule that does not sanitise cannot be built and fails every check. Pass rates are over all molecules; `pass`
is the fraction passing every check, `pass_without_energy` every check but the 50-conformer energy ratio
(`internal_energy`, the slow part, about 1 s per molecule), which runs in parallel worker processes with one
thread each. A check PoseBusters computed no verdict for (chiefly the energy ratio when ETKDG cannot embed 50
conformers of a strained cage) is not counted as failed, but counted in `not_computed`.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from importlib import resources
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from molgen.chem.strain import posed_molecule
from molgen.errors import MolgenError

POSEBUSTERS_VERSION = "0.6.5"
ENERGY_CHECK = "internal_energy"
CHUNK = 4  # molecules per task sent to a worker
EMBED_SECONDS = 10  # RDKit's time limit for embedding the energy ratio's 50 conformers of one molecule

_busters: Any = None  # the PoseBusters object of this worker process


def posebusters_config() -> dict[str, Any]:
    """PoseBusters' `mol` configuration, its energy ratio on one thread; MolgenError (one line) on a broken install."""
    try:
        import posebusters
        import yaml

        config = yaml.safe_load((resources.files("posebusters") / "config" / "mol.yml").read_text())
    except Exception as error:  # an import or file error of a broken install
        raise MolgenError(f"--posebusters needs posebusters {POSEBUSTERS_VERSION} (pip install "
                          f"posebusters=={POSEBUSTERS_VERSION}): {type(error).__name__}: {error}") from None
    if posebusters.__version__ != POSEBUSTERS_VERSION:
        raise MolgenError(f"--posebusters needs posebusters {POSEBUSTERS_VERSION}, found {posebusters.__version__} "
                          f"(pip install posebusters=={POSEBUSTERS_VERSION})")
    for module in config["modules"]:
        if module["function"] == "energy_ratio":
            module.setdefault("parameters", {})["num_threads"] = 1
    return config


def check_names(config: dict[str, Any]) -> list[str]:
    """The column names of the checks the configuration reports, in its order (PoseBusters' snake case)."""
    return [module.get("rename_outputs", {}).get(output, output).lower().replace(" ", "_")
            for module in config["modules"] for output in module.get("chosen_binary_test_output", [])]


def _bust_chunk(config: dict[str, Any], mols: list) -> list[dict[str, bool | None]]:
    """In a worker: PoseBusters' verdicts of each molecule (True, False, or None where it computed none; no verdicts
    for a molecule that could not be built)."""
    global _busters
    if _busters is None:
        from posebusters import PoseBusters

        logging.getLogger("posebusters").setLevel(logging.CRITICAL)
        _limit_embedding_time()
        _busters = PoseBusters(config=config, max_workers=0)
    verdicts = []
    for mol in mols:
        row = {} if mol is None else _busters.bust(mol, None, None).iloc[0].to_dict()
        verdicts.append({name: None if value is None or value != value else bool(value) for name, value in row.items()})
    return verdicts


def _limit_embedding_time() -> None:
    """In a worker: give the energy ratio's ETKDG a time limit of EMBED_SECONDS. PoseBusters builds its ETKDGv3
    parameters itself, without one, and some strained cages then embed for many minutes; a molecule whose 50
    conformers are not embedded in time gets no verdict (`not_computed`), as when ETKDG fails outright."""
    from posebusters.modules import energy_ratio
    from rdkit.Chem.rdDistGeom import ETKDGv3

    def timed_etkdg() -> ETKDGv3:
        params = ETKDGv3()
        params.timeout = EMBED_SECONDS
        return params

    energy_ratio.ETKDGv3 = timed_etkdg


def default_workers() -> int:
    """The cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def failed_checks(molecules: Sequence, orders: Sequence[np.ndarray], workers: int | None = None,
                  progress: bool = False) -> tuple[list[str], list[list[str]]]:
    """(every check's name, the checks each molecule failed), PoseBusters run in `workers` processes. A check that
    PoseBusters computed no verdict for is marked `name?` (not failed); one of a molecule not built failed."""
    config = posebusters_config()
    names = check_names(config)
    mols = [posed_molecule(positions, types, order) for (positions, types), order in zip(molecules, orders,
                                                                                          strict=True)]
    chunks = [mols[start:start + CHUNK] for start in range(0, len(mols), CHUNK)]
    context = multiprocessing.get_context("spawn")  # no fork of a process that may hold torch's threads
    verdicts: list[dict[str, bool | None]] = [{} for _ in mols]
    with ProcessPoolExecutor(max_workers=workers or default_workers(), mp_context=context) as pool:
        futures = {pool.submit(_bust_chunk, config, chunk): start * CHUNK for start, chunk in enumerate(chunks)}
        with tqdm(total=len(mols), desc="PoseBusters", unit="molecule", disable=not progress) as bar:
            for future in as_completed(futures):  # in the order they finish, so a slow molecule holds up no bar
                first = futures[future]
                verdicts[first:first + CHUNK] = future.result()
                bar.update(min(CHUNK, len(mols) - first))
    return names, [[name if verdict.get(name) is False or name not in verdict else f"{name}?"
                     for name in names if verdict.get(name) is not True] for verdict in verdicts]


def posebusters_summary(names: Sequence[str], failed: Sequence[Sequence[str]]) -> dict[str, Any]:
    """Pass rates over all molecules (`pass`, `pass_without_energy`, one per check), a check without a verdict
    (`name?`) not counted as failed, and `not_computed`: how many molecules each such check left without one."""
    count = len(failed)
    failures = [{name for name in f if not name.endswith("?")} for f in failed]
    rate = (lambda passed: passed / count if count else 0.0)
    summary: dict[str, Any] = {
        "pass": rate(sum(not f for f in failures)),
        "pass_without_energy": rate(sum(not (f - {ENERGY_CHECK}) for f in failures)),
        "molecules": count,
        "version": POSEBUSTERS_VERSION,
    }
    summary.update({name: rate(sum(name not in f for f in failures)) for name in names})
    summary["not_computed"] = {name: n for name in names if (n := sum(f"{name}?" in f for f in failed))}
    return summary
