"""The stages import only downstream-to-upstream (docs/architecture.md): cli -> report ->
optimize -> pipeline -> metrics, validation -> reconstruction -> readout -> generation ->
simulation -> detector -> basics. Every import counts, at module level or inside a function."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import calopt

SRC = Path(calopt.__file__).parent

# (rank, top-level names); a module may import its own package, the basics, and any lower rank
LAYERS: list[tuple[int, set[str]]] = [
    (0, {"__init__", "units", "constants", "errors", "materials", "files", "hdf5", "jobs", "cache", "stats", "arrays",
         "plotting"}),
    (1, {"detector"}),
    (2, {"simulation"}),
    (3, {"generation"}),
    (4, {"readout"}),
    (5, {"reconstruction"}),
    (6, {"metrics", "validation"}),
    (7, {"pipeline"}),
    (8, {"optimize"}),
    (9, {"report"}),
    (10, {"cli"}),
]
RANK = {name: rank for rank, names in LAYERS for name in names}


def _top(module: str) -> str:
    """The stage of a dotted calopt module name (``calopt`` itself is ``__init__``)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _module_of(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[str, int]]:
    """Every calopt module imported by the file at ``path``, with its line."""
    module = _module_of(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "calopt" or target.startswith("calopt."):
                # "from calopt import x" may name a submodule
                found += [(f"{target}.{a.name}" if target == "calopt" else target, node.lineno) for a in node.names]
        elif isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.startswith("calopt")]
    return found


def _violations() -> list[str]:
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        src = _top(_module_of(path))
        for target, line in _imports(path):
            dst = _top(target)
            if dst not in RANK and dst != "__version__":  # "from calopt import __version__"
                bad.append(f"{path.relative_to(SRC)}:{line} imports {target}, a package of no layer")
                continue
            dst = "__init__" if dst == "__version__" else dst
            same_package = src == dst or (RANK[src] == 0 and RANK[dst] == 0)
            if not same_package and RANK[dst] >= RANK[src]:
                bad.append(f"{path.relative_to(SRC)}:{line} ({src}) imports {target} ({dst}): against the order")
    return bad


def test_every_package_has_a_layer():
    tops = {p.stem for p in SRC.glob("*.py")} | {p.parent.name for p in SRC.glob("*/__init__.py")}
    assert tops <= set(RANK), f"packages without a layer: {sorted(tops - set(RANK))}"


def test_imports_run_downstream_to_upstream():
    assert _violations() == []


@pytest.mark.parametrize(
    ("source", "line", "expected"),
    [
        ("from calopt.pipeline import evaluate\n", "readout/x.py", True),
        ("def f():\n    from calopt.readout.readout import Readout\n", "simulation/x.py", True),
        ("from calopt.simulation.library import get_library\n", "readout/x.py", False),
        ("from ...reconstruction import clusters\n", "simulation/surrogates/x.py", True),
        ("from calopt.metrics import fits\n", "validation/x.py", True),
        ("from calopt.stats import robust_sigma\n", "simulation/x.py", False),
    ],
)
def test_the_check_sees_upstream_imports(tmp_path, monkeypatch, source, line, expected):
    """The test itself: a planted import against the order (also inside a function, or
    relative) is found; one along it is not."""
    root = tmp_path / "calopt"
    for name in {n for _, names in LAYERS for n in names} - {"__init__"}:
        (root / name).mkdir(parents=True, exist_ok=True)
        (root / name / "__init__.py").write_text("")
    (root / "__init__.py").write_text("")
    (root / "simulation" / "surrogates").mkdir()
    (root / "simulation" / "surrogates" / "__init__.py").write_text("")
    (root / line).write_text(source)
    monkeypatch.setattr(__import__(__name__, fromlist=["SRC"]), "SRC", root)
    assert bool(_violations()) == expected
