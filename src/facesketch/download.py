"""Resumable, checksum-verified, atomic file downloads and safe archive extraction (weights and datasets)."""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath, PureWindowsPath

from facesketch.atomic import atomic_write_bytes  # noqa: F401 - re-exported for callers
from facesketch.errors import UserError

_CHUNK = 1 << 20
_USER_AGENT = "facesketch-downloader/0.1"


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _part_path(dest: Path) -> Path:
    return dest.with_suffix(dest.suffix + ".part")


def _progress_bar(enabled: bool, total: int | None, initial: int, name: str):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=name, leave=False)


def _content_range_start(header: str | None) -> int | None:
    """Start offset of a ``Content-Range: bytes START-END/TOTAL`` header, None when absent or unparsable."""
    if not header or not header.strip().startswith("bytes "):
        return None
    try:
        return int(header.strip()[6:].split("-", 1)[0])
    except ValueError:
        return None


def download(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str | None,
    size: int | None = None,
    progress: bool = True,
    timeout: float = 60,
) -> Path:
    """Download ``url`` to ``dest`` atomically, resuming an earlier partial download; returns ``dest``.

    Bytes are streamed into ``dest + '.part'``. If that file exists from an interrupted run, an HTTP
    ``Range`` request asks for the rest; a server that ignores it (answers 200) or refuses it makes
    the download restart from zero. When the stream ends, the size (if given) and sha256 (if given,
    lower-case hex) are checked and the part file is renamed onto ``dest`` with ``os.replace``, so
    ``dest`` never holds a truncated or unverified file. If ``dest`` already exists with the expected
    sha256 nothing is downloaded.

    Errors (all ``UserError``): a wrong checksum or size deletes the part file and names the URL with
    the expected and actual values; an HTTP error (404, ...) or unreachable host names the URL; a
    connection that drops midway keeps the part file so that the same call resumes it later.
    """
    dest = Path(dest)
    sha256 = sha256.lower() if sha256 else None
    if sha256 and dest.is_file() and sha256_file(dest) == sha256:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = _part_path(dest)
    have = part.stat().st_size if part.exists() else 0
    if size is not None and have > size:  # stale leftover of some other file: start over
        part.unlink()
        have = 0
    if not (size is not None and have == size):  # a complete part file only needs verifying
        _fetch_into(url, part, have, progress=progress, timeout=timeout)
    _verify_part(url, part, sha256=sha256, size=size)
    os.replace(part, dest)
    return dest


def _fetch_into(url: str, part: Path, have: int, *, progress: bool, timeout: float) -> None:
    """Stream ``url`` into ``part``, appending from byte ``have`` when the server honours a Range request."""
    headers = {"User-Agent": _USER_AGENT}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # range past the end: the part file is probably complete already
            return
        raise UserError(f"download failed: {url} answered HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise UserError(f"download failed: cannot reach {url} ({reason}); check the connection or use another source") from None

    with response:
        status = getattr(response, "status", 200)
        resume = bool(have) and status == 206
        if resume and _content_range_start(response.headers.get("Content-Range")) != have:
            response.close()  # a range we did not ask for: drop the part file and fetch the whole file
            part.unlink(missing_ok=True)
            return _fetch_into(url, part, 0, progress=progress, timeout=timeout)
        if not resume:
            have = 0  # 200 (or a range we did not ask for): the body is the whole file, restart cleanly
        length = response.headers.get("Content-Length")
        expected_body = int(length) if length is not None and length.isdigit() else None
        total = have + expected_body if expected_body is not None else None
        received = 0
        bar = _progress_bar(progress, total, have, Path(part.name[: -len(".part")]).name)
        try:
            with open(part, "ab" if resume else "wb") as f:
                while True:
                    try:
                        block = response.read(_CHUNK)
                    except (OSError, http.client.HTTPException) as e:  # reset, timeout, IncompleteRead, ...
                        raise _interrupted(url, part, have + received, total, e) from None
                    if not block:
                        break
                    f.write(block)
                    received += len(block)
                    if bar is not None:
                        bar.update(len(block))
        finally:
            if bar is not None:
                bar.close()
        # http.client returns b'' (no exception) when the peer closes early: compare with Content-Length
        if expected_body is not None and received < expected_body:
            raise _interrupted(url, part, have + received, total, "connection closed early")


def _interrupted(url: str, part: Path, got: int, total: int | None, why) -> UserError:
    of = f" of {total}" if total is not None else ""
    return UserError(
        f"download of {url} interrupted after {got}{of} bytes ({why}); the partial file {part} is kept: "
        "run the same command again to resume"
    )


def _verify_part(url: str, part: Path, *, sha256: str | None, size: int | None) -> None:
    actual_size = part.stat().st_size if part.exists() else 0
    if size is not None and actual_size != size:
        part.unlink(missing_ok=True)
        raise UserError(f"download of {url} has the wrong size: expected {size} bytes, got {actual_size}; deleted it, try again")
    if sha256 is not None:
        actual = sha256_file(part)
        if actual != sha256:
            part.unlink(missing_ok=True)
            raise UserError(f"checksum mismatch for {url}: expected sha256 {sha256}, got {actual}; the file was deleted")


# --------------------------------------------------------------------------------------------- archives


def _check_member_name(archive: Path, name: str) -> None:
    """Refuse member names that would land outside the extraction directory."""
    if not name or name.startswith(("/", "\\")) or PurePosixPath(name).is_absolute() or PureWindowsPath(name).is_absolute():
        raise UserError(f"{archive}: refusing archive member with an absolute path: {name!r}")
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if ".." in parts or (parts and ":" in parts[0]):
        raise UserError(f"{archive}: refusing archive member that escapes the target directory: {name!r}")


def extract_archive(
    archive: str | os.PathLike,
    dest_dir: str | os.PathLike,
    *,
    member_filter: Callable[[str], bool] | None = None,
) -> Path:
    """Unpack a zip (also .whl) or tar / tar.gz / tar.bz2 / tar.xz archive into ``dest_dir``; returns ``dest_dir``.

    Members are checked first: absolute paths, ``..`` components, links and device files refuse the
    whole archive (``UserError``). ``member_filter(name) -> bool`` (names as stored, '/'-separated)
    selects which regular files to unpack. Everything is unpacked into a temporary directory beside
    ``dest_dir`` and then renamed onto it, so ``dest_dir`` appears complete or not at all; an existing
    ``dest_dir`` is replaced.
    """
    archive, dest_dir = Path(archive), Path(dest_dir)
    if not archive.is_file():
        raise UserError(f"archive not found: {archive}")
    keep = member_filter or (lambda name: True)
    dest_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest_dir.parent, prefix=f".{dest_dir.name}.extract-"))
    try:
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, tmp, keep)
        elif tarfile.is_tarfile(archive):
            _extract_tar(archive, tmp, keep)
        else:
            raise UserError(f"{archive}: not a zip or tar archive")
        _replace_dir(tmp, dest_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest_dir


def _extract_zip(archive: Path, tmp: Path, keep: Callable[[str], bool]) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:
            _check_member_name(archive, info.filename)
            mode = info.external_attr >> 16
            if mode and (mode & 0o170000) == 0o120000:  # a symlink stored the Unix way
                raise UserError(f"{archive}: refusing symbolic link member {info.filename!r}")
        for info in infos:
            if info.is_dir() or not keep(info.filename):
                continue
            target = tmp / info.filename
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, _CHUNK)


def _extract_tar(archive: Path, tmp: Path, keep: Callable[[str], bool]) -> None:
    with tarfile.open(archive) as tf:
        members = tf.getmembers()
        for m in members:
            _check_member_name(archive, m.name)
            if not (m.isfile() or m.isdir()):
                raise UserError(f"{archive}: refusing link or special-file member {m.name!r}")
        for m in members:
            if not m.isfile() or not keep(m.name):
                continue
            target = tmp / m.name
            target.parent.mkdir(parents=True, exist_ok=True)
            src = tf.extractfile(m)
            with src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, _CHUNK)


def _replace_dir(new: Path, dest_dir: Path) -> None:
    """Rename ``new`` onto ``dest_dir``; an existing ``dest_dir`` is moved aside first and removed after."""
    if not dest_dir.exists():
        os.replace(new, dest_dir)
        return
    old = Path(tempfile.mkdtemp(dir=dest_dir.parent, prefix=f".{dest_dir.name}.old-"))
    os.replace(dest_dir, old / "x")
    try:
        os.replace(new, dest_dir)
    except BaseException:
        os.replace(old / "x", dest_dir)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)
