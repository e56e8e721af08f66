"""Import graph of the package (read from the source with :mod:`ast`, nothing is imported).

Layers, from the top: the command line (``cli`` -> ``_runner``), ``pl`` -> ``tl`` -> ``models`` ->
``datasets`` / ``metrics`` / ``pp`` -> the single-module helpers (``_utils``, ``_genomics``,
``_access``). An import may only go down (or stay inside its own package); sibling packages of one
layer do not import each other; and no chain of imports (at module level or inside functions) comes
back to where it started.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = "attune_lib"
ROOT = Path(__file__).resolve().parents[1] / PKG

#: layer of each top-level part of the package (higher = closer to the user)
LAYERS = {
    "_utils": 0, "_genomics": 0, "_access": 0, "recipes": 0, "cache": 0,
    "datasets": 1, "metrics": 1, "pp": 1,
    "models": 2,
    "tl": 3,
    "pl": 4, "teach": 4.5,  # teach: exercises checked against the truth (reads datasets)
    "_runner": 5, "_book": 5.5, "cli": 6, "": 7,  # "" is attune_lib/__init__.py; _book: the course edition
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _imports(modules: dict[str, Path]) -> list[tuple[str, str, int, list[str]]]:
    """``(importer, imported module, line, imported names)`` for every import of the package's modules."""
    out = []
    for mod, path in modules.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                elif node.module and node.module.split(".")[0] == PKG:
                    target = node.module
                else:
                    continue
                names = [a.name for a in node.names]
                subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in modules]
                for t in subs or [target]:
                    out.append((mod, t, node.lineno, [] if subs else names))
            elif isinstance(node, ast.Import):
                out.extend((mod, a.name, node.lineno, []) for a in node.names if a.name.split(".")[0] == PKG)
    return out


def _part(mod: str) -> str:
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else ""


@pytest.fixture(scope="module")
def graph():
    modules = _modules()
    return modules, _imports(modules)


def test_every_part_has_a_layer(graph):
    modules, _ = graph
    unknown = sorted({_part(m) for m in modules} - set(LAYERS))
    assert not unknown, f"add these parts of the package to LAYERS: {unknown}"


def test_no_import_runs_back_up_the_layers(graph):
    _, edges = graph
    bad = []
    for src, dst, line, _names in edges:
        a, b = _part(src), _part(dst)
        if a == b:
            continue
        if LAYERS[b] > LAYERS[a] or (LAYERS[b] == LAYERS[a] and LAYERS[a] > 0):
            bad.append(f"{src}:{line} imports {dst} ({a or PKG} is layer {LAYERS[a]}, {b or PKG} layer {LAYERS[b]})")
    assert not bad, "imports running up (or sideways across) the layers:\n" + "\n".join(bad)


def test_no_import_circle(graph):
    modules, edges = graph
    adj: dict[str, set[str]] = {m: set() for m in modules}
    for src, dst, _line, _names in edges:
        if dst in modules and dst != src:
            # a package's __init__ importing its own submodules is how packages are built, not a circle
            adj[src].add(dst)
    # Tarjan's strongly connected components
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    circles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in adj[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    for v in modules:
        if v not in index:
            visit(v)
    assert not circles, f"import circles: {circles}"


def test_no_private_name_imported_from_another_module(graph):
    """Helpers shared between files have a public name in their module (e.g. ``tl._obs.group_labels``);
    no file imports another file's ``_private`` names (the package's own submodules are ``_``-named and fine)."""
    _, edges = graph
    bad = [f"{src}:{line} imports {n} from {dst}" for src, dst, line, names in sorted(edges)
           if src != dst for n in names if n.startswith("_") and not n.startswith("__")]
    assert not bad, "\n".join(bad)


def test_pl_files_mirror_tl_files():
    """Each plot module draws the results of the tool module of the same name (``pl/_x.py`` <-> ``tl/_x.py``)."""
    root = Path(__file__).resolve().parents[1] / PKG
    tl = {p.name for p in (root / "tl").glob("_*.py")}
    orphans = sorted(p.name for p in (root / "pl").glob("_*.py")
                     if p.name not in tl and p.name not in {"__init__.py", "_style.py"})
    assert not orphans, f"pl files without a tl counterpart: {orphans}"


def test_the_checks_see_a_violation(tmp_path):
    """The graph reader resolves relative imports, so an upward import would be caught."""
    pkg = tmp_path / PKG
    (pkg / "models").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "models" / "__init__.py").write_text("")
    (pkg / "models" / "_x.py").write_text("def f():\n    from ..tl._regulatory import gene_peak_pairs\n")
    paths = {_module_name_for(pkg, p): p for p in pkg.rglob("*.py")}
    edges = _imports(paths)
    assert (f"{PKG}.models._x", f"{PKG}.tl._regulatory", 2, ["gene_peak_pairs"]) in edges


def _module_name_for(pkg: Path, path: Path) -> str:
    parts = list(path.relative_to(pkg.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
