"""`facesketch evaluate` with a fresh weight cache fetches the LPIPS weights itself."""

from __future__ import annotations

from facesketch.errors import UserError


def _cli(*args) -> int:
    from facesketch.cli import main

    return main(list(args))


def test_evaluate_with_a_fresh_weight_cache_fetches_lpips_weights_itself(tmp_path, monkeypatch, capsys):
    from PIL import Image

    from facesketch.priors import weights

    for d in ("pred", "gt"):
        (tmp_path / d).mkdir()
        Image.new("L", (32, 32), 200).save(tmp_path / d / "a.png")
    asked = []

    def offline_fetch(name, *a, **k):
        asked.append(name)
        raise UserError(f"{name}: no network here")

    monkeypatch.setattr(weights, "cached", lambda name, *a, **k: False)
    monkeypatch.setattr(weights, "fetch", offline_fetch)
    rc = _cli("evaluate", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--out", str(tmp_path / "e"))
    err = capsys.readouterr().err
    assert rc != 0 and asked == ["lpips-heads"]  # training fetches the same weights; so does evaluate
    last = err.strip().splitlines()[-1]
    assert "lpips-heads" in last and "--lpips-trunk" not in err and "without lpips" in last
