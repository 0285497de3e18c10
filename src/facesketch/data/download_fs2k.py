"""Download and unpack FS2K: resumable, checksum-verified, verified after unpacking, moved into place atomically."""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from facesketch.errors import UserError
from facesketch.logs import stdout

GDRIVE_ID = "1saIMhQ3dc5_ftkfGmBPbCluRn_zy7QQp"
PAGE = f"https://drive.google.com/file/d/{GDRIVE_ID}/view (or Baidu: https://pan.baidu.com/s/1eJVNPlGRbCc2zSp4iO8bVw, pw FS2K)"


@dataclass(frozen=True)
class FS2KRelease:
    """What a correct FS2K looks like, checked after unpacking whatever archive it came in."""

    url: str = f"https://drive.usercontent.google.com/download?id={GDRIVE_ID}&export=download&confirm=t"
    archive_sha256: str | None = None  # the authors publish none; pass --sha256 to pin a copy you trust
    anno_sha256: tuple[tuple[str, str], ...] = (
        ("anno_train.json", "f1f82ca696fbcc23ec014f5cc9a63985ee1415330a78c2f07f9f61f0a7633ab5"),
        ("anno_test.json", "c7311a791dc6f3829063ab069abe3e23a5e49df2bb8cdbff13428147cca68749"),
    )
    n_photos: int = 2104
    n_sketches: int = 2104


def _find_root(tree: Path) -> Path | None:
    """The folder holding anno_train.json inside an unpacked archive (at most 3 levels down)."""
    for depth in range(4):
        for cand in tree.glob("/".join(["*"] * depth + ["anno_train.json"])):
            if "__MACOSX" not in cand.parts:
                return cand.parent
    return None


def verify_release(root: Path, rel: FS2KRelease) -> None:
    """UserError unless ``root`` has the expected annotation files (by sha256) and image counts."""
    from facesketch.download import sha256_file

    for name, digest in rel.anno_sha256:
        p = root / name
        if not p.is_file():
            raise UserError(f"{root}: {name} missing: not an FS2K release")
        got = sha256_file(p)
        if got != digest:
            raise UserError(f"{p}: sha256 {got} differs from the FS2K release ({digest}); the archive is not FS2K or is damaged")
    for kind, want in (("photo", rel.n_photos), ("sketch", rel.n_sketches)):
        n = sum(1 for q in (root / kind).rglob("*") if q.is_file()) if (root / kind).is_dir() else 0
        if n != want:
            raise UserError(f"{root / kind}: {n} files, the FS2K release has {want}; the archive is incomplete")


def download_fs2k(dest: str | Path, *, url: str | None = None, archive: str | Path | None = None, sha256: str | None = None,
                  keep_archive: bool = False, release: FS2KRelease = FS2KRelease(), progress: bool = True) -> Path:  # fmt: skip
    """Fetch FS2K into ``dest`` (which must not exist or be empty). Returns ``dest``.

    The archive is downloaded next to ``dest`` as ``<dest>.zip`` (resumed if a part file is there), or
    taken from ``archive``; it is unpacked into a temporary folder beside ``dest``, checked with
    ``verify_release``, and only then renamed onto ``dest``. A failure leaves ``dest`` untouched.
    """
    from facesketch.download import download, extract_archive

    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        try:
            verify_release(dest, release)
        except UserError:
            raise UserError(f"--out {dest} exists and is not empty (and not a complete FS2K): choose an empty folder") from None
        stdout().info(f"FS2K already present and verified at {dest}")
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    sha256 = sha256 or release.archive_sha256
    if archive is None:
        archive_path = dest.with_name(dest.name + ".zip")
        download(url or release.url, archive_path, sha256=sha256, progress=progress)
    else:
        archive_path = Path(archive)
        if not archive_path.is_file():
            raise UserError(f"--archive {archive_path}: file not found")
        if sha256:
            from facesketch.download import sha256_file

            got = sha256_file(archive_path)
            if got != sha256.lower():
                raise UserError(f"--archive {archive_path}: sha256 {got} != expected {sha256}")
    if not zipfile.is_zipfile(archive_path) and not _is_tar(archive_path):
        head = archive_path.read_bytes()[:200].lower()
        if archive is None:
            archive_path.unlink()
        hint = " (the server sent a web page, e.g. Google Drive's quota or sign-in page)" if b"<html" in head or b"<!doctype" in head else ""
        raise UserError(f"the FS2K download is not a zip archive{hint}: download it by hand from {PAGE} "
                        f"and run `facesketch data download fs2k --archive FILE --out {dest}`")  # fmt: skip
    work = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.unpack-"))
    try:
        extract_archive(archive_path, work / "x")
        root = _find_root(work / "x")
        if root is None:
            raise UserError(f"{archive_path}: no anno_train.json inside: not an FS2K archive")
        verify_release(root, release)
        if dest.exists():
            dest.rmdir()  # empty, checked above
        os.replace(root, dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if archive is None and not keep_archive:
        archive_path.unlink(missing_ok=True)
    return dest


def _is_tar(path: Path) -> bool:
    import tarfile

    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False
