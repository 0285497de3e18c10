"""`facesketch train`: build the config from a preset and key=value overrides, pick the run directory, train."""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from pathlib import Path

import yaml

from facesketch import run_layout as layout
from facesketch.config import Config, field_docs, load_config
from facesketch.cli import DEVICE_HELP, add_quiet
from facesketch.errors import UserError

EPILOG = """\
examples:
  facesketch train --config paper                      # the full method on FS2K (needs dsine.pt and normal maps)
  facesketch train --config attention-cyclegan train.batch_size=2 --out runs/acg
  facesketch train --out runs/acg --resume             # continue from the newest checkpoint
  torchrun --nproc_per_node 2 -m facesketch train --config paper
  facesketch train --list-keys                         # every key=value setting with its meaning
"""


def next_run_dir(base: Path, name: str) -> Path:
    """runs/<name>-000, runs/<name>-001, ... (the first free number)."""
    base.mkdir(parents=True, exist_ok=True)
    used = [int(m[1]) for p in base.iterdir() if (m := re.fullmatch(rf"{re.escape(name)}-(\d{{3,}})", p.name))]
    return base / f"{name}-{(max(used) + 1) if used else 0:03d}"


def list_keys() -> str:
    lines = []
    for f in dataclasses.fields(Config):
        sub = getattr(Config(), f.name)
        if not dataclasses.is_dataclass(sub):
            lines.append(f"{f.name} = {sub!r}")
            continue
        docs = field_docs(type(sub))
        for g in dataclasses.fields(sub):
            lines.append(f"{f.name}.{g.name} = {getattr(sub, g.name)!r}")
            if g.name in docs:
                lines.append(f"    {docs[g.name]}")
    return "\n".join(lines)


def run_train(args: argparse.Namespace) -> int:
    if args.list_keys:
        print(list_keys())
        return 0
    overrides = list(args.overrides)
    if args.device:  # a flag and an override that disagree: say so instead of letting one win silently
        said = [o.partition("=")[2] for o in overrides if o.partition("=")[0].strip() == "train.device"]
        if said and said[-1] != args.device:
            raise UserError(f"--device {args.device} and train.device={said[-1]} disagree; give one of them")
    if args.quiet or not sys.stderr.isatty():
        overrides.append("train.progress=false")
    for flag, key in (("device", "train.device"), ("dsine_weights", "priors.dsine_weights"), ("hed_weights", "priors.hed"),
                      ("lpips_trunk", "priors.lpips_trunk"), ("lpips_heads", "priors.lpips_heads")):  # fmt: skip
        if getattr(args, flag):
            overrides.append(f"{key}={getattr(args, flag)}")
    if args.resume:
        if not args.out:
            raise UserError("--resume needs --out RUN_DIR (the run to continue)")
        run_dir = Path(args.out)
        saved = run_dir / layout.CONFIG
        if not saved.is_file():
            raise UserError(f"--resume: {saved} not found (is {run_dir} a facesketch run directory?)")
        if args.config:
            raise UserError("--resume continues a run with its own config.yaml: drop --config and pass changes as key=value")
        cfg = load_config(None, overrides, base=yaml.safe_load(saved.read_text()))
    else:
        if not args.config:
            raise UserError("--config is required (a YAML file or a preset: paper, attention-cyclegan, cyclegan, debug, ...)")
        cfg = load_config(args.config, overrides)
        if cfg.name == Config.name:
            cfg.name = Path(args.config).stem
        run_dir = Path(args.out) if args.out else next_run_dir(Path("runs"), cfg.name)
    if args.show_config:
        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        return 0
    from facesketch.training.loop import train

    summary = train(cfg, run_dir, resume=args.resume)
    if summary.get("stop") == "signal":
        print(f"interrupted: checkpoint written at step {summary['step']}; continue with "
              f"`facesketch train --out {run_dir} --resume`", file=sys.stderr)  # fmt: skip
    return int(summary.get("exit_code", 0))


def register(sub, help_text: str) -> None:
    p = sub.add_parser("train", help=help_text, description=help_text + ".", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    from facesketch.config import PRESET_DIRS

    presets = sorted({q.stem for d in PRESET_DIRS if d.is_dir() for q in d.glob("*.yaml")})
    p.add_argument("--config", help="YAML file or preset name (configs/<name>.yaml): " + ", ".join(presets))
    p.add_argument("--out", help="run directory (default: runs/<config name>-NNN)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its newest checkpoint")
    p.add_argument("--device", help=DEVICE_HELP + " (same as train.device=...; default: the config's, auto)")
    add_quiet(p)
    p.add_argument("--dsine-weights", metavar="PATH", help="dsine.pt for the normal loss (same as priors.dsine_weights=PATH)")
    p.add_argument("--hed-weights", metavar="PATH", help="HED weights file for the edge loss (same as priors.hed=PATH)")
    p.add_argument("--lpips-trunk", metavar="PATH", help="LPIPS trunk weights (same as priors.lpips_trunk=PATH)")
    p.add_argument("--lpips-heads", metavar="PATH", help="LPIPS v0.1 heads (same as priors.lpips_heads=PATH)")
    p.add_argument("--show-config", action="store_true", help="print the resolved configuration and exit")
    p.add_argument("--list-keys", action="store_true", help="list every configuration key with its default and meaning")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. train.batch_size=2 data.root=DIR")
    p.set_defaults(func=run_train)
