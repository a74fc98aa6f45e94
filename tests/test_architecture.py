"""The layering docs/architecture.md draws, checked on the code: which folder may import which, written as relative
imports (so the graph is in the tree itself), and no second copy of a folder importable from the repository root.

Each packaged folder may import only the project folders listed for it (its own always). ``model`` knowing nothing
of Beam and ``transforms/arrow`` being pure Arrow logic are checked on third-party imports too. An import inside a
function counts like one at the top: a layer violation is one either way.
"""

from __future__ import annotations

import ast
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

# folder -> the project folders it may import (besides itself); mirrors docs/architecture.md, "Folders and layers".
ALLOWED = {
    "common": set(),
    "schemas": {"common"},
    "simulator": {"common", "schemas"},
    "model": {"common", "schemas"},
    "transforms/arrow": {"common", "schemas"},
    "transforms/runtime": {"common", "schemas", "transforms/arrow"},
    "transforms/beam": {"common", "schemas", "transforms/arrow", "transforms/runtime", "simulator", "model"},
    "pipelines": {
        "common",
        "schemas",
        "transforms/arrow",
        "transforms/runtime",
        "transforms/beam",
        "simulator",
        "model",
    },
    "evaluation": {
        "common",
        "schemas",
        "transforms/arrow",
        "transforms/runtime",
        "simulator",
        "model",
        "pipelines",
    },
}
# Third-party packages a folder must not import (the reason is the folder's contract).
FORBIDDEN = {
    "common": {"apache_beam", "torch", "pyarrow"},
    "schemas": {"apache_beam", "torch"},
    "model": {"apache_beam"},
    "transforms/arrow": {"apache_beam", "torch"},
}
# The folders installed as podtarget.<folder> (pyproject's package-dir); bare imports of them are mistakes.
TOP_LEVEL = {"common", "schemas", "transforms", "pipelines", "model", "simulator", "evaluation"}


def _unit(path: pathlib.Path, root: pathlib.Path = ROOT) -> str:
    parts = path.relative_to(root).parts
    return "/".join(parts[:2]) if parts[0] == "transforms" and len(parts) > 2 else parts[0]


def _package(path: pathlib.Path, root: pathlib.Path) -> list[str]:
    """The package a module file belongs to, as installed: ``model/data/encoding.py`` -> podtarget.model.data."""
    return ["podtarget", *path.relative_to(root).parent.parts]


def _imports(path: pathlib.Path, root: pathlib.Path = ROOT) -> list[tuple[int, str, int]]:
    """Every import of a module file as (line, absolute module name, level): relative imports resolved against the
    file's place in the package (level > 0), absolute ones as written (level 0)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, 0) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _package(path, root)[: len(_package(path, root)) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.append((node.lineno, module, node.level))
            if node.module is None or module == "podtarget.transforms":  # from .. import arrow: submodules
                found += [(node.lineno, f"{module}.{alias.name}", node.level) for alias in node.names]
    return found


def _target(module: str) -> str | None:
    """The project folder a ``podtarget.*`` module lives in (``transforms/<kind>`` for transforms)."""
    parts = module.split(".")
    if parts[0] != "podtarget" or len(parts) < 2:
        return None
    if parts[1] == "transforms" and len(parts) > 2:
        return f"transforms/{parts[2]}"
    return parts[1]


def _sources() -> list[pathlib.Path]:
    files = []
    for folder in TOP_LEVEL:
        files += [p for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts]
    return sorted(files)


def _violations(path: pathlib.Path, root: pathlib.Path = ROOT) -> list[str]:
    unit = _unit(path, root)
    allowed = ALLOWED.get(unit, set()) | {unit}
    out = []
    for line, module, level in _imports(path, root):
        where = f"{path.relative_to(root)}:{line}"
        top = module.split(".")[0]
        if top in TOP_LEVEL:
            out.append(f"{where}: bare import {module!r}; import it relatively (from ..{module} import ...)")
        if top == "podtarget" and level == 0:
            # Relative imports keep the graph between the folders readable from the tree (tools, grep, editors).
            out.append(f"{where}: absolute import {module!r} inside the package; import it relatively")
        target = _target(module)
        if target is not None and target != "transforms" and target not in allowed:
            out.append(f"{where}: {unit} may not import {module} ({target}); allowed: {sorted(allowed)}")
        if top in FORBIDDEN.get(unit, set()):
            out.append(f"{where}: {unit} may not import {top}")
    return out


def test_every_folder_imports_only_the_layers_below_it():
    violations = [v for path in _sources() for v in _violations(path)]
    assert not violations, "\n".join(violations)


def test_every_packaged_folder_has_a_layer():
    units = {_unit(p) for p in _sources()} - {"transforms"}  # transforms/__init__.py only
    assert units == set(ALLOWED)


def test_the_architecture_page_lists_the_same_layers():
    page = (ROOT / "docs" / "architecture.md").read_text()
    table = page[page.index("## Folders and layers") :]
    for unit, allowed in ALLOWED.items():
        row = re.search(rf"^\| `{re.escape(unit)}/` \|[^|]*\| ([^|]*) \|", table, re.MULTILINE)
        assert row, f"docs/architecture.md has no row for {unit}/"
        listed = set(re.findall(r"`([\w/]+)/`", row.group(1)))
        assert listed == allowed, f"{unit}: page says {sorted(listed)}, the code's rule is {sorted(allowed)}"


@pytest.mark.parametrize(
    "source, expected",
    [
        ("from ..pipelines import daily_options\n", "may not import podtarget.pipelines (pipelines)"),
        ("from ..pipelines.options import run_main\n", "may not import podtarget.pipelines.options"),
        ("import apache_beam as beam\n", "may not import apache_beam"),
        ("from model.data import Batch\n", "bare import 'model.data'"),
        ("from podtarget.model.data import Batch\n", "absolute import 'podtarget.model.data' inside the package"),
    ],
)
def test_a_violation_is_reported_with_its_place(tmp_path, source, expected):
    (tmp_path / "model").mkdir()
    module = tmp_path / "model" / "bad.py"
    module.write_text(source)
    found = _violations(module, root=tmp_path)
    assert any(expected in v and "model/bad.py:1" in v for v in found), found


@pytest.mark.parametrize("folder", sorted(TOP_LEVEL))
def test_a_folder_is_not_importable_as_a_second_copy(folder):
    """From the repository root, ``import schemas`` would load the folder again beside podtarget.schemas."""
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", f"import {folder}"], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode != 0 and "ImportError" in run.stderr, run.stderr


def test_the_architecture_page_names_every_module_and_only_modules_that_exist():
    """docs/architecture.md stays exact: each module of the packaged folders has its row (a `folder/module.py` in a
    table or the text), and every module path it names is one that exists."""
    page = (ROOT / "docs" / "architecture.md").read_text()
    named = set(re.findall(r"`((?:[\w]+/)+[\w]+\.py)`", page))
    modules = {str(p.relative_to(ROOT)) for p in _sources() if p.name != "__init__.py"}
    missing = sorted(modules - named)
    assert not missing, f"docs/architecture.md names no row for: {missing}"
    gone = sorted(n for n in named if not (ROOT / n).exists())
    assert not gone, f"docs/architecture.md names modules that do not exist: {gone}"


def _typing_only_lines(path: pathlib.Path) -> set[int]:
    """Lines of the imports under ``if TYPE_CHECKING:``, which annotations read and the running code does not."""
    lines = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            lines |= {n.lineno for n in ast.walk(node) if isinstance(n, ast.Import | ast.ImportFrom)}
    return lines


def test_no_two_modules_import_each_other_even_through_others():
    """The module import graph has no cycle (imports inside functions count too, annotations' imports under
    TYPE_CHECKING do not): each module can be read, tested and moved after the ones it imports."""
    graph: dict[str, set[str]] = {}
    names = {}
    for path in _sources():
        parts = ["podtarget", *path.relative_to(ROOT).with_suffix("").parts]
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        names[name] = path
    for name, path in names.items():
        graph[name] = set()
        typing_only = _typing_only_lines(path)
        for line, module, _ in _imports(path):
            if line in typing_only:
                continue
            while module and module not in names:  # from .x import name: the module x; podtarget.y.z: y.z
                module = module.rpartition(".")[0]
            if module and module != name and not name.startswith(module + "."):  # a package's own __init__
                graph[name].add(module)
    seen: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        seen[node] = 1
        for nxt in sorted(graph[node]):
            if seen.get(nxt) == 1:
                cycles.append(" -> ".join([*path[path.index(nxt) :], nxt]))
            elif nxt not in seen:
                visit(nxt, [*path, nxt])
        seen[node] = 2

    for node in sorted(graph):
        if node not in seen:
            visit(node, [node])
    assert not cycles, "\n".join(cycles)
