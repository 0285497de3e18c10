"""facesketch's own import graph: every `import facesketch...` of every module (top-level and function-local), the
circles in it, and the arrows that run back up a floor.

Usage: python scripts/import_graph.py [--edges]
Floors, lowest first: FLOORS below, one per package. Prints the circles (strongly connected components of more than
one module), the package pairs that import each other and the arrows that run back up a floor with the line that makes
each; exit status 1 if there is a circle or such a pair.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "src" / "facesketch"

# The floors, lowest first: each package (or top-level module) is declared once, on one floor, and a module sits on its
# package's floor. A module may import its own floor and the floors below (docs/overview.md, "The house").
FLOORS: list[tuple[str, ...]] = [
    ("errors", "atomic", "download", "safe_pickle", "tensorfile", "run_layout", "device", "default_model", "logs"),
    ("models",),
    ("config",),
    ("data",),
    ("priors",),
    ("faces",),
    ("losses",),
    ("inference",),
    ("evaluation",),
    ("report",),
    ("training",),
    ("translate",),
    ("export",),
    ("serve",),
    ("demo",),
    ("api",),
    ("cli", "__main__", "__init__"),  # __init__: `facesketch.load` is the Python API's front door
]
_FLOOR = {name: i for i, names in enumerate(FLOORS) for name in names}


def package_of(mod: str) -> str:
    """The package (or top-level module) a module belongs to: its first dotted component."""
    return mod.split(".")[0]


def floor_of(mod: str) -> int:
    """The floor of ``mod``'s package; a package missing from FLOORS is an error (declare it)."""
    pkg = package_of(mod)
    if pkg not in _FLOOR:
        raise KeyError(f"{pkg}: not on any floor; add it to FLOORS in scripts/import_graph.py and to docs/overview.md")
    return _FLOOR[pkg]


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def edges(mods: dict[str, Path]) -> list[tuple[str, str, int]]:
    """(importer, imported, line) for every facesketch import, resolved to a module of the package."""
    found = []
    for name, path in mods.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for t in targets:
                if not t.startswith("facesketch."):
                    continue
                t = t[len("facesketch."):]
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if t and t != name:
                    found.append((name, t, node.lineno))
    return sorted(set(found))


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v), on.add(v)
        for w in graph.get(v, ()):
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
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def mutual_packages(es: list[tuple[str, str, int]]) -> list[tuple[str, str]]:
    """Pairs of packages that import each other (in either direction, by any of their modules)."""
    pk = {(package_of(a), package_of(b)) for a, b, _ in es if package_of(a) != package_of(b)}
    return sorted((a, b) for a, b in pk if a < b and (b, a) in pk)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--edges", action="store_true", help="also list every arrow")
    args = ap.parse_args()
    mods = modules()
    es = edges(mods)
    graph: dict[str, set[str]] = {}
    for a, b, _ in es:
        graph.setdefault(a, set()).add(b)
    cyc = circles(graph)
    up = [(a, b, ln) for a, b, ln in es if floor_of(b) > floor_of(a)]
    if args.edges:
        for a, b, ln in es:
            print(f"{a} -> {b}  (line {ln})")
    print(f"{len(mods)} modules, {len({(a, b) for a, b, _ in es})} arrows")
    print(f"circles: {len(cyc)}")
    for c in cyc:
        print("  " + " <-> ".join(c))
    pairs = sorted({(a, b) for a, b, _ in up})
    both = mutual_packages(es)
    print(f"package pairs importing each other: {len(both)}")
    for a, b in both:
        print(f"  {a} <-> {b}")
    print(f"arrows back up a floor: {len(pairs)}")
    for a, b in pairs:
        lines = ", ".join(str(ln) for x, y, ln in up if (x, y) == (a, b))
        print(f"  {a} (floor {floor_of(a)}) -> {b} (floor {floor_of(b)})  line {lines}")
    return 1 if cyc or both else 0


if __name__ == "__main__":
    sys.exit(main())
