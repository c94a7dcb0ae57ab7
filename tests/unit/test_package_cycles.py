"""Every pair of packages in `backbone/` imports one way (docs/architecture.md, "Dependency
direction"): no package cycle, of two packages or more.

A node is a top-level subpackage (`data`, `tier`, ...) or a top-level module (`errors`,
`progress`, ...). Every import counts: absolute or relative, at module level or inside a
function, and `importlib.import_module("backbone....")` with a literal name."""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import backbone

ROOT = Path(backbone.__file__).parent


def nodes(root: Path) -> set[str]:
    return {p.name for p in root.iterdir() if p.is_dir() and (p / "__init__.py").exists()} | \
           {p.stem for p in root.glob("*.py") if p.stem != "__init__"}


def _targets(tree: ast.AST, package: list[str]) -> list[str]:
    """The dotted names a module imports (`package`: the dotted parts of its package)."""
    found = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            found += [a.name for a in n.names]
        elif isinstance(n, ast.ImportFrom):
            base = (package[:len(package) - n.level + 1] if n.level else []) + (n.module.split(".") if n.module else [])
            found += [".".join(base + [a.name]) for a in n.names]  # `from backbone import data` names a node
        elif isinstance(n, ast.Call) and isinstance(n.func, (ast.Attribute, ast.Name)) \
                and getattr(n.func, "attr", getattr(n.func, "id", None)) == "import_module" \
                and n.args and isinstance(n.args[0], ast.Constant) and isinstance(n.args[0].value, str):
            found.append(n.args[0].value)
    return found


def package_edges(root: Path) -> dict[tuple[str, str], set[str]]:
    """(importing node, imported node) -> the files (relative to `root`) that make the edge."""
    names, top = nodes(root), root.name
    edges: dict[tuple[str, str], set[str]] = defaultdict(set)
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if len(rel.parts) == 1 and rel.stem == "__init__":
            continue  # the root package itself is no node
        source = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        package = [top, *rel.parts[:-1]]
        for target in _targets(ast.parse(path.read_text(), str(path)), package):
            parts = target.split(".")
            if parts[0] == top and len(parts) > 1 and parts[1] in names and parts[1] != source:
                edges[(source, parts[1])].add(str(rel))
    return edges


def cycles(edges) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        graph[a].add(b)
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(set(graph) | {b for _, b in edges}):
        if v not in index:
            visit(v)
    return found


def describe(edges, component: list[str]) -> str:
    return "; ".join(f"{a} -> {b} ({', '.join(sorted(edges[(a, b)]))})"
                     for a in component for b in component if (a, b) in edges)


def test_no_two_packages_of_backbone_import_each_other():
    edges = package_edges(ROOT)
    assert ("cli", "data") in edges and ("data", "contract") in edges  # the walk sees real edges
    two_way = [f"{a} <-> {b}: {describe(edges, [a, b])}" for a, b in sorted(edges) if a < b and (b, a) in edges]
    found = cycles(edges)
    assert not found, "\n".join(["package cycles:", *two_way, *(describe(edges, c) for c in found)])


def test_the_walk_finds_every_kind_of_import_that_closes_a_cycle(tmp_path):
    def tree(files: dict[str, str]) -> Path:
        root = tmp_path / f"case{len(list(tmp_path.iterdir()))}" / "backbone"
        for name, text in {"__init__.py": "", **files}.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text)
        return root

    base = {"a/__init__.py": "", "b/__init__.py": "", "c.py": "", "a/x.py": "from ..b import y\n", "b/y.py": ""}
    assert cycles(package_edges(tree(base))) == []
    for back in ("from ..a import x\n",                                    # relative
                 "import backbone.a.x\n",                                  # absolute
                 "from backbone import a\n",                               # a package by name
                 "def later():\n    from ..a.x import thing\n",            # inside a function
                 "import importlib\nimportlib.import_module('backbone.a.x')\n"):  # by name
        edges = package_edges(tree({**base, "b/y.py": back}))
        assert cycles(edges) == [["a", "b"]], back
        assert describe(edges, ["a", "b"]) == "a -> b (a/x.py); b -> a (b/y.py)"
    longer = package_edges(tree({**base, "b/y.py": "from .. import c\n", "c.py": "from .a import x\n"}))
    assert cycles(longer) == [["a", "b", "c"]]  # a three-package cycle, through a top-level module


def test_the_map_in_docs_architecture_shows_the_real_edges():
    """docs/architecture.md's diagram lists, per package, what it imports (the shared base
    and the contract aside, which any package may use): exactly the edges the code has."""
    text = (ROOT.parent / "docs" / "architecture.md").read_text()
    block = text.split("## Dependency direction", 1)[1].split("```", 2)[1]
    base = {"errors", "checks", "progress", "serviceconfig", "contract"}
    drawn = {line.split("──►")[0].strip(): {n.strip() for n in line.split("──►")[1].split(",")} - base
             for line in block.splitlines() if "──►" in line and not line.startswith(("cli", "infra"))}
    real: dict[str, set[str]] = defaultdict(set)
    for a, b in package_edges(ROOT):
        if a not in ("cli", "__main__") and b not in base:
            real[a].add(b)
    assert {k: v for k, v in drawn.items() if v} == dict(real)
