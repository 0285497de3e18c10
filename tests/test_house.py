"""The house: each package on one floor (scripts/import_graph.py), no import circle, no two packages importing each
other, and at most 2 arrows back up a floor, each named with its reason in docs/overview.md."""

from __future__ import annotations

import sys

import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import import_graph  # noqa: E402


def _graph():
    es = import_graph.edges(import_graph.modules())
    graph: dict[str, set[str]] = {}
    for a, b, _ in es:
        graph.setdefault(a, set()).add(b)
    return es, graph


def test_no_circle_no_mutual_packages_and_at_most_two_arrows_back_up():
    es, graph = _graph()
    assert import_graph.circles(graph) == []
    assert import_graph.mutual_packages(es) == []
    up = sorted({(a, b) for a, b, _ in es if import_graph.floor_of(b) > import_graph.floor_of(a)})
    assert len(up) <= 2, up
    overview = (ROOT / "docs" / "overview.md").read_text()
    for a, b in up:  # each remaining arrow is explained where the floors are described
        assert f"`{a}`" in overview and f"`{b}`" in overview, (a, b)


def test_every_module_sits_on_its_packages_floor_and_every_package_is_declared():
    mods = import_graph.modules()
    declared = {p for floor in import_graph.FLOORS for p in floor}
    assert {import_graph.package_of(m) for m in mods} <= declared
    assert len(declared) == sum(len(f) for f in import_graph.FLOORS)  # each package declared once
    assert import_graph.floor_of("translate.image") == import_graph.floor_of("translate")  # no per-file exceptions
    assert import_graph.floor_of("cli.train") == import_graph.floor_of("cli") > import_graph.floor_of("training")
    with pytest.raises(KeyError, match="not on any floor"):
        import_graph.floor_of("brand_new_package.module")


def test_the_graph_sees_function_local_imports_and_finds_circles_and_mutual_pairs(tmp_path, monkeypatch):
    pkg = tmp_path / "facesketch"
    (pkg / "p").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from facesketch.b import g\n")
    (pkg / "b.py").write_text("from facesketch import a\n")
    (pkg / "p" / "__init__.py").write_text("")
    (pkg / "p" / "x.py").write_text("from facesketch.a import f\n")
    (pkg / "p" / "y.py").write_text("")
    (pkg / "c.py").write_text("from facesketch.p.y import z\n")
    (pkg / "d.py").write_text("")
    monkeypatch.setattr(import_graph, "PKG", pkg)
    es = import_graph.edges(import_graph.modules())
    assert ("a", "b", 2) in es and ("b", "a", 1) in es
    assert import_graph.circles({"a": {"b"}, "b": {"a"}}) == [["a", "b"]]
    assert ("c", "p") in import_graph.mutual_packages(es + [("p.y", "c", 1)])  # packages a->p via x, p->c: a pair
