"""Unpaired training data: file discovery (FS2K or trainA/trainB folders), a validated uint8 cache, seeded sampling.

Randomness is a pure function of (seed, epoch, index): the sketch drawn for a photo, each image's crop and
flip. Together with ``EpochSampler`` (a permutation per epoch, sharded across ranks, resumable at any
sample) this makes a run reproducible and a resumed run identical to an uninterrupted one.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from facesketch.config import SOURCES
from facesketch.data import fs2k
from facesketch.data.images import UnreadableImageError, is_image_file, load_rgb_array
from facesketch.data.transforms import apply_image, apply_target, context_view, crop_intrinsics, load_size_for, sample_params
from facesketch.errors import UserError


@dataclass
class DomainFiles:
    """The files of one phase: photos (domain A) and sketches (domain B), both sorted or in annotation order."""

    root: Path
    source: str  # 'fs2k' or 'folders'
    A: list[Path]
    B: list[Path]
    ids_A: list[str]  # unique stems for outputs (FS2K: photo1_image0110)
    styles_B: list[int] | None = None  # each sketch's style label (FS2K annotations, or ROOT/styles.json), if known


def resolve_source(root: Path, source: str) -> str:
    if source not in SOURCES:
        raise UserError(f"data.source={source!r}: use one of {', '.join(SOURCES)}")
    if source != "auto":
        return source
    if fs2k.is_fs2k_root(root):
        return "fs2k"
    if (root / "trainA").is_dir() or (root / "testA").is_dir():
        return "folders"
    raise UserError(
        f"data.root={root}: neither FS2K (anno_train.json) nor an unpaired layout (trainA/ trainB/ testA/ testB/). "
        f"{fs2k.FS2K_HOWTO}"
    )


def _list_images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise UserError(f"{folder} not found: the unpaired layout needs {folder.name}/ with images")
    files = sorted(p for p in folder.iterdir() if p.is_file() and is_image_file(p))
    if not files:
        raise UserError(f"{folder}: no images (.jpg, .png, ...) found")
    return files


def discover(root: str | Path, phase: str = "train", source: str = "auto") -> DomainFiles:
    """Find the A (photo) and B (sketch) files of ``phase`` ('train' or 'test').

    FS2K: the annotated photos and sketches of the split (missing files are a UserError listing them).
    Folders: ``<root>/<phase>A`` and ``<root>/<phase>B``.
    """
    root = Path(root)
    if not root.exists():
        raise UserError(f"data.root={root} does not exist. {fs2k.FS2K_HOWTO}")
    src = resolve_source(root, source)
    if src == "fs2k":
        recs = fs2k.load_split(root, phase)
        missing = [f"{r.image_name}: {k}" for r in recs for k, p in (("photo", r.photo), ("sketch", r.sketch)) if p is None]
        if missing:
            raise UserError(
                f"{root}: {len(missing)} annotated files are missing (first: {missing[0]}); run `facesketch data check {root}`"
            )
        styles = [r.attrs.get("style") for r in recs]
        styles_B = [int(x) for x in styles] if all(isinstance(x, int) and not isinstance(x, bool) for x in styles) else None
        return DomainFiles(root, src, [r.photo for r in recs], [r.sketch for r in recs], [r.id for r in recs], styles_B)
    A, B = _list_images(root / f"{phase}A"), _list_images(root / f"{phase}B")
    return DomainFiles(root, src, A, B, [p.stem for p in A], read_style_labels(root, B))


STYLE_FILES = ("styles.json", "styles.csv")


def read_style_labels(root: Path, sketches: list[Path]) -> list[int] | None:
    """The style label of each sketch of a trainA/trainB layout, from ``ROOT/styles.json`` ({"stem": style, ...}) or
    ``ROOT/styles.csv`` (lines ``stem,style``); None when there is neither. A sketch missing from the file, or a label
    that is not a non-negative integer, is a UserError naming the file and the stem."""
    path = next((root / n for n in STYLE_FILES if (root / n).is_file()), None)
    if path is None:
        return None
    try:
        if path.suffix == ".json":
            import json

            table = json.loads(path.read_text())
            if not isinstance(table, dict):
                raise UserError(f"{path}: expected an object mapping each sketch's file stem to its style, e.g. {{\"b00\": 1}}")
        else:
            table = {}
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                stem, sep, value = line.partition(",")
                if not sep:
                    raise UserError(f"{path}:{n}: expected 'stem,style', got {line[:60]!r}")
                table[stem.strip()] = value.strip()
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise UserError(f"{path}: unreadable style labels ({e})") from None
    out = []
    for p in sketches:
        if p.stem not in table:
            raise UserError(f"{path}: no style for sketch {p.stem} ({p}); add it, or remove the file to train without styles")
        v = table[p.stem]
        try:
            label = int(v)
        except (TypeError, ValueError):
            label = -1
        if label < 0 or isinstance(v, bool) or (isinstance(v, float) and v != label):
            raise UserError(f"{path}: style of {p.stem} is {v!r}; use a non-negative integer (0, 1, 2, ...)")
        out.append(label)
    return out


def hold_out(files: DomainFiles, n: int) -> tuple[DomainFiles, list]:
    """(training files, held-out FS2K records): ``n`` photos of the training split with their own sketches, evenly
    spread over it (``spread_subset``: every source and style), removed from both domains. ``n`` = 0: (files, [])."""
    if not n:
        return files, []
    if files.source != "fs2k":
        raise UserError(f"data.holdout={n}: holding out photos with their own sketches needs FS2K (paired annotations); "
                        "set data.holdout=0 for an unpaired folder layout")  # fmt: skip
    records = fs2k.load_split(files.root, "train")
    if n >= len(records):
        raise UserError(f"data.holdout={n}: the training split has only {len(records)} photos; hold out fewer")
    held = fs2k.spread_subset(records, n)
    out = {r.id for r in held}
    keep = [i for i, r in enumerate(records) if r.id not in out]
    return replace(files, A=[files.A[i] for i in keep], B=[files.B[i] for i in keep],
                   styles_B=[files.styles_B[i] for i in keep] if files.styles_B is not None else None,
                       ids_A=[files.ids_A[i] for i in keep]), held  # fmt: skip


def target_path(target_root: Path, data_root: Path, image: Path) -> Path:
    """Where a precomputed target of ``image`` lives (e.g. its pseudo-GT normals): the image's path relative to the data
    root, under ``target_root``, as .npy."""
    return Path(target_root) / Path(image).relative_to(data_root).with_suffix(".npy")


class ImageBank:
    """Images of one domain at a fixed square size as uint8 (H, W, 3), decoded once and optionally kept in memory.

    ``validate()`` decodes every file once (in threads: PIL releases the GIL) and raises a UserError that names
    each unreadable file, so a bad file stops training at the start instead of mid-epoch.
    """

    def __init__(self, paths: list[Path], size: int, *, cache: bool = True):
        self.paths, self.size, self.cache = list(paths), int(size), cache
        self._data: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.paths)

    def _load(self, i: int) -> np.ndarray:
        return load_rgb_array(self.paths[i], (self.size, self.size))

    def validate(self, *, desc: str = "images", workers: int = 4, progress: bool = True) -> None:
        from tqdm import tqdm

        data = np.empty((len(self.paths), self.size, self.size, 3), np.uint8) if self.cache else None
        bad: list[str] = []

        def work(i):
            try:
                arr = self._load(i)
            except UnreadableImageError as e:
                return i, None, str(e)
            return i, arr, None

        with ThreadPoolExecutor(max_workers=workers) as pool:
            for i, arr, err in tqdm(pool.map(work, range(len(self.paths))), total=len(self.paths),
                                    desc=f"checking {desc}", disable=not progress, leave=False):  # fmt: skip
                if err:
                    bad.append(err)
                elif data is not None:
                    data[i] = arr
        if bad:
            more = f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""
            raise UserError(f"{len(bad)} unreadable {desc}: " + "; ".join(bad[:3]) + more + ". Fix or remove them.")
        self._data = data

    def __getitem__(self, i: int) -> np.ndarray:
        if self._data is not None:
            return self._data[i]
        return self._load(i)


class TargetBank:
    """A precomputed per-photo target, (C, L, L) float16, one .npy per photo, checked at start (e.g. normal maps).

    ``negate_x_on_flip``: a mirror flip of the photo also negates channel 0 (the x of a normal map).
    """

    def __init__(self, paths: list[Path], size: int, *, cache: bool = True, negate_x_on_flip: bool = False):
        self.paths, self.size, self.cache, self.negate_x_on_flip = list(paths), int(size), cache, negate_x_on_flip
        self._data: np.ndarray | None = None

    def validate(self, howto: str) -> None:
        missing = [p for p in self.paths if not p.is_file()]
        if missing:
            raise UserError(f"{len(missing)} of {len(self.paths)} normal maps are missing (first: {missing[0]}); {howto}")
        first = np.load(self.paths[0], mmap_mode="r", allow_pickle=False)
        if first.ndim != 3 or first.shape[1:] != (self.size, self.size):
            raise UserError(
                f"{self.paths[0]}: map has shape {first.shape}, expected (C, {self.size}, {self.size}) "
                f"(maps are computed at data.load_size); {howto}"
            )
        self.channels = first.shape[0]
        if self.cache:
            self._data = np.stack([self._read(i) for i in range(len(self.paths))])

    def _read(self, i: int) -> np.ndarray:
        arr = np.load(self.paths[i], allow_pickle=False)
        want = (getattr(self, "channels", 3), self.size, self.size)
        if arr.shape != want:
            raise UserError(f"{self.paths[i]}: map has shape {arr.shape}, expected {want}")
        return arr.astype(np.float16, copy=False)

    def __getitem__(self, i: int) -> np.ndarray:
        return self._data[i] if self._data is not None else self._read(i)


class UnpairedDataset(Dataset):
    """CycleGAN's unaligned dataset: item i is photo ``i % |A|`` and an independently drawn sketch.

    Items are addressed as ``(epoch, i)`` (what ``EpochSampler`` yields; a bare ``i`` means epoch 0) so the
    draws depend on the epoch even inside persistent DataLoader workers. Returns a dict: ``A``, ``B`` uint8 (3, S, S)
    RGB; ``A_index``, ``B_index``; for each precomputed target ``targets[key]``, ``A_<key>`` float16 (C, S, S), the
    same crop as the photo (a flip mirrors it, and negates channel 0 for normal maps); and the ``context`` entries
    asked for; for a style-conditioned model ``A_style`` (the style this photo is drawn in, uniform) and ``B_style``
    (the sketch's own label); ``A_intrins`` float32 (3, 3), the intrinsics of the crop in the camera the targets were computed with
    (``crop_intrinsics``); ``A_full`` uint8 (3, L, L), the whole load-size photo mirrored like the crop, and
    ``A_window`` int64 [x0, y0, h, w], where the crop sits in it (``A_full[:, y0:y0+h, x0:x0+w]`` is ``A``).
    Convert images on the device with ``transforms.to_model_range`` (-> [-1, 1]).
    """

    def __init__(self, A: ImageBank, B: ImageBank, *, load_size: int, crop_size: int, preprocess: str = "resize_and_crop",
                 flip: bool = True, seed: int = 0, serial: bool = False, targets: dict[str, TargetBank] | None = None,
                 context: tuple[str, ...] = (), styles_B: list[int] | None = None, n_styles: int = 0):  # fmt: skip
        unknown = set(context) - {"A_intrins", "A_full", "A_window"}
        if unknown:
            raise ValueError(f"unknown context entries {sorted(unknown)} (A_intrins, A_full, A_window)")
        self.A, self.B, self.targets, self.context = A, B, dict(targets or {}), tuple(context)
        self.n_styles, self.styles_B = n_styles, styles_B
        if n_styles and (styles_B is None or len(styles_B) != len(B)):
            raise ValueError("a style-conditioned dataset needs one style label per sketch")
        self.load_size, self.crop_size, self.preprocess, self.flip = load_size, crop_size, preprocess, flip
        self.seed, self.serial = int(seed), serial

    def __len__(self) -> int:
        return max(len(self.A), len(self.B))

    def load_size_of_A(self) -> int:
        """The square size the photos (and their targets) are resized to before the crop."""
        return self.A.size

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        rng = np.random.default_rng([self.seed, epoch, index])
        ia = index % len(self.A)
        ib = index % len(self.B) if self.serial else int(rng.integers(len(self.B)))
        kw = dict(load_size=self.load_size, crop_size=self.crop_size, preprocess=self.preprocess, flip=self.flip)
        pa, pb = sample_params(rng, **kw), sample_params(rng, **kw)
        item = {"A": apply_image(self.A[ia], pa), "B": apply_image(self.B[ib], pb), "A_index": ia, "B_index": ib}
        for key, bank in self.targets.items():
            item[f"A_{key}"] = apply_target(bank[ia], pa, negate_x=bank.negate_x_on_flip)
        if "A_intrins" in self.context:
            item["A_intrins"] = crop_intrinsics(pa, self.load_size_of_A())  # the camera the targets saw, for this crop
        if "A_full" in self.context or "A_window" in self.context:
            item["A_full"], item["A_window"] = context_view(self.A[ia], pa)
        if self.n_styles:  # drawn last, so the crops and flips are those of an unconditional run
            item["A_style"] = int(rng.integers(self.n_styles))  # each photo in a style sampled uniformly
            item["B_style"] = int(self.styles_B[ib])  # each sketch carries its own
        return item


class EpochSampler(Sampler[tuple[int, int]]):
    """``(epoch, index)`` keys of one epoch for one rank: a seeded permutation (or 0..n-1), padded to a multiple of ``world``.

    ``start`` skips the samples this rank already consumed in the epoch (exact mid-epoch resume).
    """

    def __init__(self, n: int, *, shuffle: bool = True, seed: int = 0, rank: int = 0, world: int = 1):
        self.n, self.shuffle, self.seed, self.rank, self.world = n, shuffle, seed, rank, world
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = int(epoch), int(start)

    def per_rank(self) -> int:
        return math.ceil(self.n / self.world)

    def __iter__(self):
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        total = self.per_rank() * self.world
        order += order[: total - len(order)]  # pad like DistributedSampler so every rank steps equally
        mine = order[self.rank : total : self.world]
        return iter([(self.epoch, i) for i in mine[self.start :]])

    def __len__(self) -> int:
        return self.per_rank() - self.start


def build_banks(files: DomainFiles, *, load_size: int, crop_size: int, preprocess: str, cache: bool, progress: bool = True):
    """ImageBanks for A and B at the load size, validated (every file decoded once)."""
    size = load_size_for(preprocess, load_size, crop_size)
    A, B = ImageBank(files.A, size, cache=cache), ImageBank(files.B, size, cache=cache)
    A.validate(desc="photos (A)", progress=progress)
    B.validate(desc="sketches (B)", progress=progress)
    return A, B
