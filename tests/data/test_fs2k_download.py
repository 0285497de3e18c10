"""`facesketch data download fs2k` against a local HTTP server: checksum, verification after unpacking, atomic result."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest
from helpers import local_http_server, smooth_image

from facesketch.cli import main
from facesketch.data.download_fs2k import FS2KRelease, download_fs2k
from facesketch.errors import UserError


def _fake_fs2k(root: Path) -> FS2KRelease:
    """A miniature FS2K (2 photos, 2 sketches) and the release description matching it."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    entries = []
    for i in (1, 2):
        for kind, stem in (("photo", f"image{i:04d}"), ("sketch", f"sketch{i:04d}")):
            d = root / kind / f"{kind}1"
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(smooth_image(rng, 20, 20)).save(d / f"{stem}.jpg")
        entries.append({"image_name": f"photo1/image{i:04d}", "style": 0})
    (root / "anno_train.json").write_text(json.dumps(entries[:1]))
    (root / "anno_test.json").write_text(json.dumps(entries[1:]))
    sha = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    return FS2KRelease(url="", anno_sha256=(("anno_train.json", sha(root / "anno_train.json")),
                                             ("anno_test.json", sha(root / "anno_test.json"))), n_photos=2, n_sketches=2)  # fmt: skip


@pytest.fixture
def server():
    with local_http_server({}) as srv:
        yield srv


def _zip_of(src: Path, prefix: str = "FS2K/") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for p in sorted(src.rglob("*")):
            if p.is_file():
                zf.write(p, prefix + str(p.relative_to(src)))
        zf.writestr("__MACOSX/FS2K/._anno_train.json", b"junk")
    return buf.getvalue()


def test_download_verifies_and_unpacks_atomically(tmp_path, server):
    release = _fake_fs2k(tmp_path / "src")
    server.files["/fs2k.zip"] = archive = _zip_of(tmp_path / "src")
    dest = tmp_path / "data" / "FS2K"
    out = download_fs2k(dest, url=f"{server.url}/fs2k.zip", sha256=hashlib.sha256(archive).hexdigest(), release=release,
                        progress=False)  # fmt: skip
    assert out == dest and (dest / "anno_train.json").is_file() and (dest / "photo" / "photo1" / "image0001.jpg").is_file()
    assert not (tmp_path / "data" / "FS2K.zip").exists()  # archive removed after a verified unpack
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["FS2K"]  # no temp folders left
    # a second call finds it verified and does nothing
    assert download_fs2k(dest, url=f"{server.url}/missing.zip", release=release, progress=False) == dest


def test_wrong_checksum_leaves_nothing(tmp_path, server):
    release = _fake_fs2k(tmp_path / "src")
    server.files["/fs2k.zip"] = _zip_of(tmp_path / "src")
    dest = tmp_path / "data" / "FS2K"
    with pytest.raises(UserError, match="sha256"):
        download_fs2k(dest, url=f"{server.url}/fs2k.zip", sha256="0" * 64, release=release, progress=False)
    assert not dest.exists()


def test_archive_that_is_not_fs2k_is_rejected(tmp_path, server):
    release = _fake_fs2k(tmp_path / "src")
    (tmp_path / "src" / "anno_test.json").write_text("[]")  # tampered annotations
    server.files["/fs2k.zip"] = _zip_of(tmp_path / "src")
    dest = tmp_path / "data" / "FS2K"
    with pytest.raises(UserError, match="anno_test.json: sha256"):
        download_fs2k(dest, url=f"{server.url}/fs2k.zip", release=release, progress=False)
    assert not dest.exists()
    server.files["/page.html"] = b"<!DOCTYPE html><html>quota exceeded</html>"
    with pytest.raises(UserError, match="web page"):
        download_fs2k(dest, url=f"{server.url}/page.html", release=release, progress=False)


def test_cli_without_dataset_says_how_to_get_it(tmp_path, capsys):
    assert main(["data", "check", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "facesketch data download fs2k" in err and len(err.strip().splitlines()) == 1


def test_cli_check_exit_codes(tmp_path, capsys):
    from helpers import make_unpaired

    root = make_unpaired(tmp_path / "d")
    assert main(["data", "check", str(root)]) == 0
    (root / "trainB" / "b03.jpg").write_bytes(b"broken")
    assert main(["data", "check", str(root)]) == 1
    assert "b03.jpg" in capsys.readouterr().out
