"""Inference: load a trained model (export file or run directory) and translate images, files and folders.

`facesketch translate --model RUN_OR_EXPORT --out DIR INPUT...` writes one image per input with the same file
stem (A->B: photo -> sketch by default; ``--direction BtoA`` for sketch -> photo).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from facesketch.data.images import UnreadableImageError, is_image_file, load_rgb, save_image_atomic
from facesketch.data.transforms import from_model_range, to_model_range
from facesketch.errors import UserError
from facesketch.models.generators import GeneratorOutput, build_generator

DIRECTIONS = ("AtoB", "BtoA")


def model_meta(cfg) -> dict:
    """What an export must carry so that inference needs no flags (from a training Config)."""
    return {
        "generator": cfg.model.generator, "ngf": cfg.model.ngf, "n_blocks": cfg.model.n_blocks,
        "n_masks": cfg.model.n_masks, "crop_size": cfg.data.crop_size, "load_size": cfg.data.load_size,
        "preprocess": cfg.data.preprocess, "name": cfg.name,
    }  # fmt: skip


def _build(meta: dict) -> torch.nn.Module:
    return build_generator(meta["generator"], ngf=meta["ngf"], n_blocks=meta["n_blocks"], n_masks=meta.get("n_masks", 9))


class Translator:
    """A generator ready for inference. Images in and out are (H, W, 3) uint8 RGB.

    Inputs are resized to ``size`` x ``size`` with bicubic (CycleGAN's test-time preprocessing, aspect not
    kept); outputs come at the model size, or at each input's size with ``output_size='input'``.
    """

    def __init__(self, generator: torch.nn.Module, meta: dict, *, direction: str = "AtoB", device: str | torch.device = "cpu"):
        if direction not in DIRECTIONS:
            raise UserError(f"--direction {direction}: use AtoB (photo -> sketch) or BtoA (sketch -> photo)")
        self.device = torch.device(device)
        self.G = generator.to(self.device).eval()
        self.meta, self.direction = meta, direction
        self.size = int(meta["crop_size"])

    @classmethod
    def from_path(cls, path: str | Path, direction: str = "AtoB", device: str | torch.device = "cpu") -> "Translator":
        """From an export (``.safetensors``) or a run directory (its export, else its latest checkpoint)."""
        from facesketch.training.checkpoint import latest_checkpoint, read_export

        if direction not in DIRECTIONS:
            raise UserError(f"--direction {direction}: use AtoB (photo -> sketch) or BtoA (sketch -> photo)")
        path = Path(path)
        name = "G_A" if direction == "AtoB" else "G_B"
        if path.is_dir():
            export = path / "export" / "model.safetensors"
            if export.is_file():
                path = export
            else:
                found = latest_checkpoint(path)
                if found is None:
                    raise UserError(f"--model {path}: a directory without export/model.safetensors or checkpoints/")
                ckpt_path, state = found
                from facesketch.config import load_config

                cfg = load_config(base=state["config"])
                meta = model_meta(cfg)
                g = _build(meta)
                g.load_state_dict(state["nets"][name])
                return cls(g, meta, direction=direction, device=device)
        if not path.is_file():
            raise UserError(f"--model {path}: no such file or run directory")
        meta, sds = read_export(path)
        if name not in sds:
            raise UserError(f"--model {path}: the export has no {name} ({direction}); it holds {', '.join(sds)}")
        g = _build(meta)
        try:
            g.load_state_dict(sds[name])
        except RuntimeError as e:
            raise UserError(f"--model {path}: weights do not match the stored config ({str(e).splitlines()[0]})") from None
        return cls(g, meta, direction=direction, device=device)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> GeneratorOutput:
        """x: RGB in [-1, 1] (B, 3, S, S) -> the generator's output structure (on the translator's device)."""
        return self.G(x.to(self.device))

    def _prepare(self, img: np.ndarray) -> torch.Tensor:
        im = Image.fromarray(img)
        if im.size != (self.size, self.size):
            im = im.resize((self.size, self.size), Image.BICUBIC)
        return torch.from_numpy(np.asarray(im).transpose(2, 0, 1).copy())

    def translate_arrays(self, images: list[np.ndarray], *, batch_size: int = 8, output_size: str = "model",
                         return_attention: bool = False):  # fmt: skip
        """uint8 RGB images (any size) -> translated uint8 RGB images; with ``return_attention`` also (K+1, S, S) masks."""
        outs, masks = [], []
        for i in range(0, len(images), batch_size):
            chunk = images[i : i + batch_size]
            x = to_model_range(torch.stack([self._prepare(im) for im in chunk]))
            o = self.forward(x)
            ys = from_model_range(o.image).cpu().numpy()
            for j, y in enumerate(ys):
                if output_size == "input" and chunk[j].shape[:2] != y.shape[:2]:
                    h, w = chunk[j].shape[:2]
                    y = np.asarray(Image.fromarray(y).resize((w, h), Image.BICUBIC))
                outs.append(y)
                if return_attention:
                    masks.append(None if o.attention is None else o.attention[j].float().cpu().numpy())
        return (outs, masks) if return_attention else outs


# ---------------------------------------------------------------------------------------------------------------
# files and folders


@dataclass
class TranslateReport:
    written: list[Path] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def collect_inputs(inputs: list[str], *, recursive: bool = False) -> list[Path]:
    """Expand files and folders (images directly inside, or below with ``recursive``) into a sorted, de-duplicated list."""
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            it = p.rglob("*") if recursive else p.iterdir()
            found = sorted(q for q in it if q.is_file() and is_image_file(q))
            if not found:
                print(f"warning: {p}: no image files found", file=sys.stderr)
            files += found
        elif p.exists():
            files.append(p)
        else:
            files.append(p)  # reported as unreadable at the end, like any other bad input
    seen, out = set(), []
    for f in files:
        key = f.resolve() if f.exists() else f
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out


def translate_files(tr: Translator, files: list[Path], out_dir: Path, *, save_masks: bool = False, ext: str = ".png",
                    batch_size: int = 8, output_size: str = "model", progress: bool = True) -> TranslateReport:  # fmt: skip
    """Translate each file to ``out_dir/<stem><ext>`` (written atomically, one at a time, so nothing done is lost).

    Unreadable inputs are collected in the report, not raised. With ``save_masks``, ``<stem>_attention.png``
    holds the attention masks as a labelled grid.
    """
    from tqdm import tqdm

    from facesketch.report.grids import attention_panel

    stems: dict[str, Path] = {}
    for f in files:
        if f.stem in stems:
            raise UserError(f"two inputs share the output name {f.stem}{ext}: {stems[f.stem]} and {f} (translate them separately)")
        stems[f.stem] = f
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rep = TranslateReport()
    bar = tqdm(total=len(files), desc="translating", unit="img", disable=not progress)
    for i in range(0, len(files), batch_size):
        chunk, imgs = [], []
        for f in files[i : i + batch_size]:
            try:
                imgs.append(np.asarray(load_rgb(f)))
                chunk.append(f)
            except UnreadableImageError as e:
                rep.failed.append(str(e))
        if chunk:
            outs, masks = tr.translate_arrays(imgs, batch_size=batch_size, output_size=output_size, return_attention=True)
            for f, img, y, m in zip(chunk, imgs, outs, masks):
                dest = out_dir / f"{f.stem}{ext}"
                save_image_atomic(y, dest, **({"quality": 95} if ext in (".jpg", ".jpeg") else {}))
                rep.written.append(dest)
                if save_masks and m is not None:
                    small = np.asarray(Image.fromarray(img).resize((tr.size, tr.size), Image.BICUBIC))
                    yy = y if y.shape[:2] == small.shape[:2] else np.asarray(Image.fromarray(y).resize((tr.size, tr.size)))
                    save_image_atomic(attention_panel(small, m, yy), out_dir / f"{f.stem}_attention.png")
        bar.update(len(files[i : i + batch_size]))
    bar.close()
    return rep


def run_translate(args: argparse.Namespace) -> int:
    from facesketch.training.distributed import pick_device

    device = pick_device(args.device)
    tr = Translator.from_path(args.model, direction=args.direction, device=device)
    files = collect_inputs(args.inputs, recursive=args.recursive)
    if not files:
        raise UserError("no input images found (pass image files or folders)")
    if args.save_masks and tr.meta["generator"] == "resnet":
        print("note: --save-masks ignored: this generator has no attention masks", file=sys.stderr)
    ext = "." + args.format.lower().lstrip(".")
    rep = translate_files(tr, files, Path(args.out), save_masks=args.save_masks, ext=ext, batch_size=args.batch_size,
                          output_size=args.output_size, progress=not args.quiet)  # fmt: skip
    print(f"wrote {len(rep.written)} image(s) to {args.out}")
    if rep.failed:
        print(f"{len(rep.failed)} input(s) could not be read:", file=sys.stderr)
        for f in rep.failed:
            print(f"  {f}", file=sys.stderr)
        return 1
    return 0


def register(sub, help_text: str) -> None:
    p = sub.add_parser("translate", help=help_text, description=help_text + ". Inputs are resized to the model size "
                       "(bicubic); outputs keep each input's file stem.")  # fmt: skip
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files and/or folders of images")
    p.add_argument("--model", required=True, help="a run directory or an exported model.safetensors")
    p.add_argument("--out", required=True, help="output folder (created if needed)")
    p.add_argument("--direction", default="AtoB", choices=DIRECTIONS, help="AtoB: photo -> sketch (default); BtoA: sketch -> photo")
    p.add_argument("--save-masks", action="store_true", help="also write <stem>_attention.png with the attention masks")
    p.add_argument("--format", default="png", choices=["png", "jpg"], help="output image format (default png)")
    p.add_argument("--output-size", default="model", choices=["model", "input"], help="model size (default) or each input's size")
    p.add_argument("--recursive", action="store_true", help="descend into sub-folders of folder inputs")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_translate)
