"""The FS2K dataset: index from anno_{train,test}.json, photo <-> sketch pairing, attributes, and a health check."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from facesketch.data.images import IMAGE_EXTENSIONS, is_image_file, sniff_format
from facesketch.errors import UserError

SPLITS = ("train", "test")
_NAME = re.compile(r"^photo(\d+)/image(\d+)$")
# attribute -> readable names of its values, for subset means in evaluation reports
# (value meanings from the FS2K README: 0 = "with" for the binary attributes)
ATTRIBUTES = {
    "style": {0: "style1", 1: "style2", 2: "style3"},
    "gender": {0: "male", 1: "female"},
    "hair": {0: "hair", 1: "no-hair"},
    "hair_color": {0: "brown", 1: "black", 2: "red", 3: "no-hair", 4: "golden"},
    "earring": {0: "earring", 1: "no-earring"},
    "smile": {0: "smile", 1: "no-smile"},
    "frontal_face": {0: "frontal (<=30 deg)", 1: "rotated (>30 deg)"},
}
FS2K_HOWTO = (
    "FS2K not found: run `facesketch data download fs2k --out DIR` and set FS2K_ROOT=DIR "
    "(or pass the dataset root explicitly)"
)


@dataclass(frozen=True)
class FS2KRecord:
    """One annotated FS2K face: the photo, its sketch, and its attributes.

    ``image_name`` is the annotation key, e.g. ``photo1/image0110``; ``id`` is ``photo1_image0110``
    (unique across the three sources, used as a file stem for predictions).
    """

    image_name: str
    photo: Path | None
    sketch: Path | None
    split: str
    attrs: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def source(self) -> str:
        return self.image_name.split("/")[0]

    @property
    def number(self) -> str:
        return self.image_name.split("/image")[-1]

    @property
    def id(self) -> str:
        return self.image_name.replace("/", "_")


# FS2K's three sketch styles (the annotations' ``style``), named by looking at the training sketches: light contour
# lines with little shading (0), bold dark strokes and filled hair (1), soft shaded pencil, often on grey paper (2)
STYLE_NAMES = ("contour", "bold", "shaded")


def style_of(record) -> int | None:
    """The annotated style of a record's sketch (0, 1, 2), or None."""
    v = record.attrs.get("style")
    return int(v) if isinstance(v, int) and not isinstance(v, bool) else None


def parse_style(value: str, n_styles: int = 3) -> int | str:
    """A style as given on the command line or in Python: an index, a name of ``STYLE_NAMES``, or 'all'; a UserError
    naming the ``style`` argument otherwise."""
    v = str(value).strip().lower()
    if v == "all":
        return "all"
    if v in STYLE_NAMES and STYLE_NAMES.index(v) < n_styles:
        return STYLE_NAMES.index(v)
    if v.isdigit() and int(v) < n_styles:
        return int(v)
    names = ", ".join(f"{i} ({STYLE_NAMES[i]})" if i < len(STYLE_NAMES) else str(i) for i in range(n_styles))
    raise UserError(f"style {value!r}: use {names} or all", arg="style")


def spread_subset(records, n: int) -> list:
    """``n`` records evenly spread over ``records`` (every ``len // n``-th: both sources of the FS2K test split, photo1
    and photo3, and all three styles are in it); all if n <= 0."""
    recs = list(records)
    if n <= 0 or n >= len(recs):
        return recs
    step = len(recs) // n
    return recs[::step][:n]


def find_root(explicit: str | Path | None = None) -> Path | None:
    """The FS2K root: ``explicit``, else $FS2K_ROOT, else ../shared/data/FS2K next to the working directory."""
    import os

    cands = []
    if explicit:
        cands.append(Path(explicit))
    elif os.environ.get("FS2K_ROOT"):
        cands.append(Path(os.environ["FS2K_ROOT"]))
    else:
        cands += [Path("../shared/data/FS2K"), Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "FS2K"]
    for c in cands:
        if (c / "anno_train.json").is_file() or (c / "anno_test.json").is_file():
            return c.resolve()
    return None


def is_fs2k_root(root: Path) -> bool:
    return (Path(root) / "anno_train.json").is_file() or (Path(root) / "anno_test.json").is_file()


def _resolve_any_ext(folder: Path, stem: str, listing: dict[Path, dict[str, Path]]) -> Path | None:
    """``folder/stem.<any image extension>`` (case-insensitive), using a cached directory listing."""
    if folder not in listing:
        entries: dict[str, Path] = {}
        if folder.is_dir():
            for p in folder.iterdir():
                if p.suffix.lower() in IMAGE_EXTENSIONS:
                    entries.setdefault(p.stem, p)
        listing[folder] = entries
    return listing[folder].get(stem)


def read_annotations(root: Path, split: str) -> list[dict]:
    if split not in SPLITS:
        raise UserError(f"unknown FS2K split {split!r}: use one of {', '.join(SPLITS)}")
    path = Path(root) / f"anno_{split}.json"
    if not path.is_file():
        raise UserError(f"{path} not found: {FS2K_HOWTO}")
    try:
        entries = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not valid JSON ({e}); re-download FS2K") from None
    if not isinstance(entries, list) or not all(isinstance(e, dict) and "image_name" in e for e in entries):
        raise UserError(f"{path}: expected a list of objects with an 'image_name' key")
    return entries


def load_split(root: str | Path, split: str, *, _listing: dict | None = None) -> list[FS2KRecord]:
    """All records of one split, in annotation order. Missing files give ``photo``/``sketch`` None.

    ``photoN/imageXXXX`` pairs with ``sketch/sketchN/sketchXXXX`` (any extension, as the real files
    mix .jpg names with PNG content).
    """
    root = Path(root)
    listing = {} if _listing is None else _listing
    out = []
    for e in read_annotations(root, split):
        name = e["image_name"]
        m = _NAME.match(name) if isinstance(name, str) else None
        if not m:
            raise UserError(f"{root / f'anno_{split}.json'}: unexpected image_name {name!r} (want photoN/imageXXXX)")
        n, num = m.groups()
        photo = _resolve_any_ext(root / "photo" / f"photo{n}", f"image{num}", listing)
        sketch = _resolve_any_ext(root / "sketch" / f"sketch{n}", f"sketch{num}", listing)
        attrs = {k: v for k, v in e.items() if k != "image_name"}
        out.append(FS2KRecord(name, photo, sketch, split, attrs))
    return out


# ---------------------------------------------------------------------------------------------------------------
# health check


@dataclass
class CheckReport:
    """What `facesketch data check` found. ``fatal`` problems would break training or evaluation."""

    root: Path
    counts: Counter = field(default_factory=Counter)
    problems: dict[str, list[str]] = field(default_factory=dict)

    FATAL = ("missing_photo", "missing_sketch", "unreadable", "duplicate_annotation")

    def add(self, kind: str, detail: str) -> None:
        self.problems.setdefault(kind, []).append(detail)

    @property
    def fatal(self) -> bool:
        return any(self.problems.get(k) for k in self.FATAL)

    def format(self, max_list: int = 10) -> str:
        lines = [f"FS2K at {self.root}"]
        for k, v in sorted(self.counts.items()):
            lines.append(f"  {k}: {v}")
        if not self.problems:
            lines.append("  no problems found")
        for kind, items in self.problems.items():
            tag = "ERROR" if kind in self.FATAL else "note"
            lines.append(f"  [{tag}] {kind}: {len(items)}")
            for d in items[:max_list]:
                lines.append(f"      {d}")
            if len(items) > max_list:
                lines.append(f"      ... and {len(items) - max_list} more")
        lines.append("result: " + ("FAILED (fix the errors above before training)" if self.fatal else "ok"))
        return "\n".join(lines)


def check(root: str | Path, *, decode: bool = True) -> CheckReport:
    """Inspect every annotated and every present file of FS2K.

    Reports (with counts): missing photos/sketches, unreadable files (full decode when ``decode``),
    photo/sketch size mismatches, files whose content format disagrees with their extension (e.g. PNG
    named .jpg), non-RGB modes (RGBA, grey), files present on disk but in no annotation, duplicate
    annotations, and the size families per source.
    """
    from PIL import Image

    root = Path(root)
    if not is_fs2k_root(root):
        raise UserError(f"{root}: no anno_train.json / anno_test.json here. {FS2K_HOWTO}")
    rep = CheckReport(root)
    listing: dict = {}
    seen_files: set[Path] = set()
    names = Counter()
    sizes: Counter = Counter()
    for split in SPLITS:
        if not (root / f"anno_{split}.json").is_file():
            rep.add("missing_annotation_file", f"anno_{split}.json")
            continue
        recs = load_split(root, split, _listing=listing)
        rep.counts[f"{split}_records"] = len(recs)
        for r in recs:
            names[r.image_name] += 1
            dims = {}
            for kind, p in (("photo", r.photo), ("sketch", r.sketch)):
                if p is None:
                    rep.add(f"missing_{kind}", f"{r.image_name} ({split}): no {kind} file")
                    continue
                seen_files.add(p)
                try:
                    with Image.open(p) as im:
                        fmt, mode, size = im.format, im.mode, im.size
                        if decode:
                            im.load()
                except Exception as e:  # noqa: BLE001 - every failure is reported, not raised
                    rep.add("unreadable", f"{p.relative_to(root)}: {type(e).__name__}: {e}")
                    continue
                dims[kind] = size
                sizes[(r.source, kind, size)] += 1
                ext_fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG"}.get(p.suffix.lower())
                if ext_fmt and fmt != ext_fmt:
                    rep.add("extension_mismatch", f"{p.relative_to(root)}: {fmt} content named {p.suffix}")
                if mode != "RGB":
                    rep.add("non_rgb_mode", f"{p.relative_to(root)}: mode {mode} (converted to RGB on load)")
            if len(dims) == 2 and dims["photo"] != dims["sketch"]:
                rep.add("size_mismatch", f"{r.image_name}: photo {dims['photo']} vs sketch {dims['sketch']}")
    for n, c in names.items():
        if c > 1:
            rep.add("duplicate_annotation", f"{n} annotated {c} times")
    for top in ("photo", "sketch"):
        d = root / top
        if not d.is_dir():
            continue
        for p in sorted(d.rglob("*")):
            if p.is_file() and p not in seen_files:
                if is_image_file(p) or sniff_format(p):
                    rep.add("unannotated_file", str(p.relative_to(root)))
                else:
                    rep.add("stray_file", str(p.relative_to(root)))
    for (src, kind, size), c in sorted(sizes.items()):
        rep.counts[f"size {src} {kind} {size[0]}x{size[1]}"] = c
    return rep
