"""Tests of facesketch.download against a real HTTP server on 127.0.0.1: resume, restart, checksums, errors, archives."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import zipfile

import pytest
from helpers import local_http_server

from facesketch.download import (
    atomic_write_bytes,
    download,
    extract_archive,
    sha256_file,
)
from facesketch.errors import UserError

PAYLOAD = os.urandom(300_000) + b"end"
SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def server():
    with local_http_server({"/file.bin": PAYLOAD}) as srv:
        yield srv


def test_download_verifies_and_leaves_no_part_file(server, tmp_path):
    dest = tmp_path / "sub" / "file.bin"
    assert download(server.url + "/file.bin", dest, sha256=SHA, size=len(PAYLOAD), progress=False) == dest
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "sub" / "file.bin.part").exists()
    # a second call with the right checksum does not touch the network
    n = len(server.requests)
    download(server.url + "/file.bin", dest, sha256=SHA, progress=False)
    assert len(server.requests) == n


def test_wrong_checksum_deletes_part_and_names_url_and_hashes(server, tmp_path):
    dest = tmp_path / "file.bin"
    wrong = "0" * 64
    with pytest.raises(UserError) as e:
        download(server.url + "/file.bin", dest, sha256=wrong, progress=False)
    msg = str(e.value)
    assert server.url + "/file.bin" in msg and wrong in msg and SHA in msg
    assert not dest.exists() and not (tmp_path / "file.bin.part").exists()


def test_wrong_size_is_refused(server, tmp_path):
    with pytest.raises(UserError, match="wrong size"):
        download(server.url + "/file.bin", tmp_path / "f", sha256=None, size=len(PAYLOAD) + 1, progress=False)
    assert not (tmp_path / "f").exists()


def test_dropped_connection_keeps_part_and_resumes_with_range(server, tmp_path):
    server.mode = "drop"
    dest = tmp_path / "file.bin"
    part = tmp_path / "file.bin.part"
    with pytest.raises(UserError, match="interrupted.*resume"):
        download(server.url + "/file.bin", dest, sha256=SHA, progress=False)
    assert not dest.exists()
    half = part.stat().st_size
    assert 0 < half < len(PAYLOAD)
    download(server.url + "/file.bin", dest, sha256=SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD and not part.exists()
    assert server.requests[-1]["range"] == f"bytes={half}-"


def test_server_without_range_support_restarts_cleanly(server, tmp_path):
    server.mode = "norange"
    dest = tmp_path / "file.bin"
    (tmp_path / "file.bin.part").write_bytes(b"garbage that is not a prefix of the file")
    download(server.url + "/file.bin", dest, sha256=SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests[-1]["range"] is not None  # it asked, got 200, and started over


def test_complete_part_file_only_needs_verifying(server, tmp_path):
    (tmp_path / "file.bin.part").write_bytes(PAYLOAD)
    download(server.url + "/file.bin", tmp_path / "file.bin", sha256=SHA, progress=False)
    assert (tmp_path / "file.bin").read_bytes() == PAYLOAD
    assert server.requests[-1]["range"] == f"bytes={len(PAYLOAD)}-"  # answered 416, the part was complete


def test_http_404_names_the_url(server, tmp_path):
    with pytest.raises(UserError, match=r"missing\.bin answered HTTP 404"):
        download(server.url + "/missing.bin", tmp_path / "m", sha256=None, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_unreachable_host_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="cannot reach"):
        download("http://127.0.0.1:9/nothing", tmp_path / "x", sha256=None, progress=False, timeout=5)


def test_progress_bar_shows_the_download_and_quiet_shows_nothing(server, tmp_path, capsys):
    download(server.url + "/file.bin", tmp_path / "p.bin", sha256=SHA, progress=True)
    assert (tmp_path / "p.bin").read_bytes() == PAYLOAD
    err = capsys.readouterr().err
    assert "p.bin" in err and "293k" in err  # the bar names the file and its size
    download(server.url + "/file.bin", tmp_path / "q.bin", sha256=SHA, progress=False)
    assert (tmp_path / "q.bin").read_bytes() == PAYLOAD and capsys.readouterr().err == ""


def test_sha256_file_and_atomic_write(tmp_path):
    path = atomic_write_bytes(tmp_path / "a" / "b.bin", b"hello")
    assert path.read_bytes() == b"hello"
    assert sha256_file(path) == hashlib.sha256(b"hello").hexdigest()
    atomic_write_bytes(path, b"world")
    assert path.read_bytes() == b"world"
    assert sorted(p.name for p in path.parent.iterdir()) == ["b.bin"]  # no temp files left


def _zip(path, members: dict[str, bytes]):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def _tar(path, members: dict[str, bytes]):
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize("maker,suffix", [(_zip, ".zip"), (_tar, ".tar.gz")])
def test_extract_archive_with_filter_replaces_atomically(tmp_path, maker, suffix):
    archive = tmp_path / f"a{suffix}"
    maker(archive, {"pkg/keep.txt": b"k", "pkg/sub/also.txt": b"a", "pkg/drop.txt": b"d"})
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "old.txt").write_text("old")
    extract_archive(archive, dest, member_filter=lambda n: not n.endswith("drop.txt"))
    files = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert files == ["pkg/keep.txt", "pkg/sub/also.txt"]  # the old content is gone: the directory was replaced
    assert (dest / "pkg" / "keep.txt").read_bytes() == b"k"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([archive.name, "out"])  # no temp dirs left


@pytest.mark.parametrize("maker,suffix", [(_zip, ".zip"), (_tar, ".tar.gz")])
@pytest.mark.parametrize("bad", ["../evil.txt", "/abs/evil.txt", "ok/../../evil.txt"])
def test_extract_archive_refuses_escaping_members(tmp_path, maker, suffix, bad):
    archive = tmp_path / f"bad{suffix}"
    maker(archive, {"fine.txt": b"f", bad: b"x"})
    with pytest.raises(UserError, match="refusing"):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [archive.name]


def test_extract_archive_refuses_tar_symlinks(tmp_path):
    archive = tmp_path / "link.tar"
    with tarfile.open(archive, "w") as tf:
        info = tarfile.TarInfo("link")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tf.addfile(info)
    with pytest.raises(UserError, match="refusing link"):
        extract_archive(archive, tmp_path / "out")


def test_extract_archive_rejects_non_archives(tmp_path):
    (tmp_path / "x.bin").write_bytes(b"not an archive")
    with pytest.raises(UserError, match="not a zip or tar"):
        extract_archive(tmp_path / "x.bin", tmp_path / "out")
