"""The package's layering and size rules, read from the source with `ast`.

Every `import` and `from ... import` counts wherever it is written: at module level, inside a function (a lazy
import) or under `if TYPE_CHECKING:`. Relative imports are resolved, and `from package import name` counts as an
import of the module `package.name` when that module exists.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "molgen"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
INFERENCE = ("molgen.sampling", "molgen.settings", "molgen.evaluation", "molgen.cli_sampling")
GROUND_FLOOR_MOLGEN = ("molgen.geometry", "molgen.elements", "molgen.errors")
GROUND_FLOOR_PACKAGES = frozenset({"torch", "numpy", "torch_geometric"})  # torch_geometric: Batch.to_pyg/from_pyg


@dataclass(frozen=True)
class Import:
    """One imported module: the importing file (relative to the repository), its line and module, and the name
    of the module imported."""

    path: str
    line: int
    importer: str
    module: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line} -> {self.module}"


def module_name(file: Path, package: Path) -> str:
    """The dotted name of a source file of `package` (a package's `__init__.py` is the package itself)."""
    parts = file.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str, package: Path) -> bool:
    """Whether the dotted `name` is a module or package inside `package`'s folder tree."""
    path = package.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _base(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module a `from ... import` names; relative levels count from the importing module's package."""
    if not node.level:
        return node.module or ""
    parts = module.split(".") if is_package else module.split(".")[:-1]
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


def imports_of(source: str, file: Path, package: Path) -> list[Import]:
    """Every import written anywhere in one source file of `package`, with absolute module names."""
    module, relative = module_name(file, package), str(file.relative_to(package.parent))
    found = []
    for node in ast.walk(ast.parse(source, filename=str(file))):
        if isinstance(node, ast.Import):
            found += [Import(relative, node.lineno, module, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _base(node, module, file.name == "__init__.py")
            for alias in node.names:
                name = f"{base}.{alias.name}"
                found.append(Import(relative, node.lineno, module, name if is_module(name, package) else base))
    return sorted(set(found), key=lambda found: (found.line, found.module))


def source_files(package: Path = PACKAGE) -> list[Path]:
    """The package's Python files."""
    return sorted(package.rglob("*.py"))


def package_imports(package: Path = PACKAGE) -> list[Import]:
    """Every import of every file of the package."""
    return [found for file in source_files(package) for found in imports_of(file.read_text(), file, package)]


def within(module: str, packages: Iterable[str]) -> bool:
    """Whether `module` is one of `packages` or inside one of them."""
    return any(module == p or module.startswith(f"{p}.") for p in packages)


def forbidden(imports: Iterable[Import], importers: tuple[str, ...], imported: tuple[str, ...]) -> list[str]:
    """The imports by files of the `importers` packages/modules of anything inside the `imported` ones."""
    return [str(found) for found in imports if within(found.importer, importers) and within(found.module, imported)]


def _report(problems: list[str], rule: str) -> str:
    return f"{rule}:\n  " + "\n  ".join(problems)


# ------------------------------------------------------------------------------------------------ the rules


def test_batch_is_the_ground_floor():
    """molgen.batch imports only the standard library, torch, numpy, and molgen's geometry, elements and errors."""
    problems = [str(found) for found in package_imports() if found.importer == "molgen.batch"
                and not within(found.module, GROUND_FLOOR_MOLGEN)
                and found.module.split(".")[0] not in sys.stdlib_module_names | GROUND_FLOOR_PACKAGES]
    assert not problems, _report(problems, "molgen/batch.py imports above the ground floor")


def test_networks_models_and_diffusion_do_not_import_data():
    problems = forbidden(package_imports(), ("molgen.nn", "molgen.models", "molgen.diffusion"), ("molgen.data",))
    assert not problems, _report(problems, "molgen.nn, molgen.models and molgen.diffusion import molgen.data")


def test_data_does_not_import_chem_models_or_train():
    problems = forbidden(package_imports(), ("molgen.data",), ("molgen.chem", "molgen.models", "molgen.train"))
    assert not problems, _report(problems, "molgen.data imports molgen.chem, molgen.models or molgen.train")


def test_inference_does_not_import_train():
    problems = forbidden(package_imports(), INFERENCE, ("molgen.train",))
    assert not problems, _report(problems, f"the inference modules ({', '.join(INFERENCE)}) import molgen.train")


def test_no_module_over_the_line_limit():
    lengths = {file: len(file.read_text().splitlines()) for file in source_files()}
    problems = [f"{file.relative_to(PACKAGE.parent)}: {n} lines" for file, n in lengths.items()
                if n > MAX_MODULE_LINES]
    assert not problems, _report(problems, f"modules over {MAX_MODULE_LINES} lines")


def function_lengths(source: str) -> Iterator[tuple[str, int, int]]:
    """(qualified name, line of the `def`, lines from the `def` to the end) of every function and method."""

    def visit(node: ast.AST, prefix: str) -> Iterator[tuple[str, int, int]]:
        for child in ast.iter_child_nodes(node):
            name = f"{prefix}{getattr(child, 'name', '')}"
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield name, child.lineno, child.end_lineno - child.lineno + 1
                yield from visit(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                yield from visit(child, f"{name}.")
            else:
                yield from visit(child, prefix)

    yield from visit(ast.parse(source), "")


def test_no_function_over_the_line_limit():
    problems = [f"{file.relative_to(PACKAGE.parent)}:{line} {name}: {n} lines" for file in source_files()
                for name, line, n in function_lengths(file.read_text()) if n > MAX_FUNCTION_LINES]
    assert not problems, _report(problems, f"functions over {MAX_FUNCTION_LINES} lines (def to end)")


# ------------------------------------------------------------------------------------------------ the checker


def test_the_checker_finds_lazy_relative_and_type_checking_imports(tmp_path):
    package = tmp_path / "molgen"
    for folder in ("data", "chem"):
        (package / folder).mkdir(parents=True)
        (package / folder / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "chem" / "metrics.py").write_text("")
    (package / "data" / "stats.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from . import qm9\n"
        "if TYPE_CHECKING:\n"
        "    from molgen.train import loop\n"
        "def training_smiles():\n"
        "    from ..chem.metrics import training_smiles as compute\n"
        "    import molgen.models.ponita\n"
    )
    imports = package_imports(package)
    assert [str(found) for found in imports] == [
        "molgen/data/stats.py:1 -> typing",
        "molgen/data/stats.py:2 -> molgen.data",  # qm9 is no module of the synthetic package
        "molgen/data/stats.py:4 -> molgen.train",
        "molgen/data/stats.py:6 -> molgen.chem.metrics",
        "molgen/data/stats.py:7 -> molgen.models.ponita",
    ]
    assert forbidden(imports, ("molgen.data",), ("molgen.chem", "molgen.models", "molgen.train")) == [
        "molgen/data/stats.py:4 -> molgen.train",
        "molgen/data/stats.py:6 -> molgen.chem.metrics",
        "molgen/data/stats.py:7 -> molgen.models.ponita",
    ]
    assert forbidden(imports, ("molgen.chem",), ("molgen.data",)) == []


def test_the_checker_measures_functions_from_def_to_end():
    source = "@decorator\nclass A:\n    def f(self):\n        def g():\n            pass\n\n        return g\n"
    assert list(function_lengths(source)) == [("A.f", 3, 5), ("A.f.g", 4, 2)]
