"""The house: facesketch's import graph has no circle and at most 3 arrows back up a floor (docs/overview.md)."""

from __future__ import annotations

import sys

from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import import_graph  # noqa: E402


def test_no_import_circle_and_at_most_three_arrows_back_up():
    mods = import_graph.modules()
    es = import_graph.edges(mods)
    graph: dict[str, set[str]] = {}
    for a, b, _ in es:
        graph.setdefault(a, set()).add(b)
    assert import_graph.circles(graph) == []
    up = {(a, b) for a, b, _ in es if import_graph.floor_of(b) > import_graph.floor_of(a)}
    assert len(up) <= 3, sorted(up)


def test_the_graph_sees_function_local_imports_and_finds_a_circle(tmp_path, monkeypatch):
    pkg = tmp_path / "facesketch"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from facesketch.b import g\n")
    (pkg / "b.py").write_text("from facesketch import a\n")
    monkeypatch.setattr(import_graph, "PKG", pkg)
    es = import_graph.edges(import_graph.modules())
    assert ("a", "b", 2) in es and ("b", "a", 1) in es
    assert import_graph.circles({"a": {"b"}, "b": {"a"}}) == [["a", "b"]]
