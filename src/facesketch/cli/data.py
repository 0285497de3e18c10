"""`facesketch data`: `check ROOT` (health report, non-zero exit when training would break) and `download fs2k`."""

from __future__ import annotations

import argparse
from pathlib import Path

from facesketch.cli import add_quiet, show_progress
from facesketch.errors import UserError


def run_check(args: argparse.Namespace) -> int:
    from facesketch.data import fs2k
    from facesketch.data.datasets import discover

    root = Path(args.root)
    if not root.exists():
        raise UserError(f"{root} does not exist. {fs2k.FS2K_HOWTO}")
    if not root.is_dir():
        raise UserError(f"{root}: is a file; pass the dataset's folder (FS2K, or trainA/ trainB/ folders)")
    if fs2k.is_fs2k_root(root):
        rep = fs2k.check(root, decode=not args.no_decode)
        print(rep.format(max_list=args.max_list))
        return 1 if rep.fatal else 0
    # generic unpaired layout: decode every image of every phase folder
    from facesketch.data.datasets import ImageBank

    bad = 0
    for phase in ("train", "test"):
        try:
            files = discover(root, phase, "folders")
        except UserError as e:
            print(f"{phase}: {e}")
            bad += phase == "train"
            continue
        for name, paths in (("A", files.A), ("B", files.B)):
            bank = ImageBank(paths, 8, cache=False)
            try:
                bank.validate(desc=f"{phase}{name}", progress=False)
                print(f"{phase}{name}: {len(paths)} images ok")
            except UserError as e:
                print(f"{phase}{name}: {e}")
                bad += 1
    print("result: " + ("FAILED" if bad else "ok"))
    return 1 if bad else 0


def run_download(args: argparse.Namespace) -> int:
    from facesketch.data.download_fs2k import download_fs2k

    if args.dataset != "fs2k":
        raise UserError(f"unknown dataset {args.dataset!r}: only 'fs2k' can be downloaded")
    out = Path(args.out)
    for p in (out, *out.parents):
        if p.exists():
            if not p.is_dir():
                raise UserError(f"--out {args.out}: {p} is a file, not a folder; choose a folder to create")
            break
    dest = download_fs2k(args.out, url=args.url, archive=args.archive, sha256=args.sha256, keep_archive=args.keep_archive,
                         progress=show_progress(args))  # fmt: skip
    print(f"FS2K ready at {dest}; use it with FS2K_ROOT={dest} or data.root={dest}")
    return 0


def register(sub, help_text: str) -> None:
    p = sub.add_parser("data", help=help_text, description=help_text + ".")
    s = p.add_subparsers(dest="data_cmd", metavar="COMMAND")
    s.required = True
    c = s.add_parser("check", help="report missing, unreadable, mismatched and odd files (exit 1 if training would break)")
    c.add_argument("root", help="FS2K root (with anno_train.json) or an unpaired folder (trainA/ trainB/ ...)")
    c.add_argument("--no-decode", action="store_true", help="only read headers (faster; misses truncated files)")
    c.add_argument("--max-list", type=int, default=10, help="files listed per problem kind (default 10)")
    c.set_defaults(func=run_check)
    d = s.add_parser("download", help="download a dataset (fs2k), verify it and unpack it atomically")
    d.add_argument("dataset", choices=["fs2k"], help="the dataset to download (fs2k: FS2K, 2,104 photo/sketch pairs)")
    d.add_argument("--out", required=True, help="folder to create, e.g. data/FS2K")
    d.add_argument("--url", help="a mirror URL of the FS2K zip (default: the authors' Google Drive file)")
    d.add_argument("--archive", help="use an already downloaded FS2K zip instead of downloading")
    d.add_argument("--sha256", help="expected sha256 of the archive (the authors publish none)")
    d.add_argument("--keep-archive", action="store_true", help="keep the downloaded zip next to --out")
    add_quiet(d)
    d.set_defaults(func=run_download)
