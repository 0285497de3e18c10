"""The `facesketch` command: a table of verbs, each in its own module of this package (its parser and a plain function)."""

from __future__ import annotations

import argparse
import importlib
import re
import sys

from facesketch.errors import UserError

# verb -> "module" exposing `register(subparsers, help)`, or "module:function" naming another registering function;
# modules are imported lazily so `--help` stays fast
VERBS: dict[str, tuple[str, str]] = {
    "train": ("facesketch.cli.train", "train the attention-guided CycleGAN (or a baseline) from a YAML config"),
    "translate": ("facesketch.cli.translate", "translate photos into sketches (or back) with a trained model"),
    "data": ("facesketch.cli.data", "download and check datasets (FS2K, unpaired folders)"),
    "normals": ("facesketch.cli.priors:register_normals", "precompute pseudo-ground-truth normal maps (DSINE, or the face-mesh substitute)"),
    "weights": ("facesketch.cli.priors:register_weights", "list, fetch, verify and locate pretrained prior weights"),
    "evaluate": ("facesketch.cli.evaluate", "evaluate sketches with LPIPS, SSIM, MS-SSIM, FSIM and SCOOT (FS2K protocol)"),
    "export": ("facesketch.cli.export", "export a trained generator (safetensors or ONNX)"),
    "report": ("facesketch.cli.report", "write a self-contained HTML report of a training run"),
    "serve": ("facesketch.cli.serve", "start a local web demo for a trained model"),
}


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The full parser; with ``argv`` given, only the module of the verb it names is imported."""
    parser = argparse.ArgumentParser(
        prog="facesketch",
        description="Face photo <-> sketch translation (attention-guided CycleGAN with surface-normal and edge losses).",
        epilog="`facesketch VERB --help` explains each verb.\n\n" + EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from facesketch import __version__

    parser.add_argument("--version", action="version", version=f"facesketch {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True
    wanted = [a for a in (argv or []) if not a.startswith("-")][:1]
    for verb, (target, help_text) in VERBS.items():
        module, _, fn = target.partition(":")
        if wanted and wanted[0] in VERBS and wanted[0] != verb:
            sub.add_parser(verb, help=help_text)
            continue
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:  # a verb whose optional module is absent still lists itself
            if not e.name or not e.name.startswith("facesketch"):
                raise
            p = sub.add_parser(verb, help=help_text + " (unavailable)")
            p.set_defaults(func=lambda args, _e=e: _unavailable(_e))
            continue
        getattr(mod, fn or "register")(sub, help_text)
    return parser


DEVICE_HELP = "where the networks run: auto (the default: CUDA when present, else the CPU), cpu, cuda or cuda:N"
QUIET_HELP = "no progress bars (they are also off when standard error is not a terminal, e.g. in a pipe or a log file)"
EXIT_CODES = """exit status: 0 done; 1 done, but some inputs failed (each listed); 2 a usage or input error (one line names the
flag or file and what to do); 130 interrupted (Ctrl+C). Training stopped by SIGINT/SIGTERM exits 128 + the signal
after writing a checkpoint."""


def add_device(p: argparse.ArgumentParser, what: str = "") -> None:
    """``--device``, the same in every verb (default auto)."""
    p.add_argument("--device", default="auto", help=DEVICE_HELP + (f"; {what}" if what else ""))


def add_precision(p: argparse.ArgumentParser) -> None:
    """``--precision``, the same in every verb that translates."""
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                   help="auto (the default): bf16 where it is fast (CPUs with AMX tiles, GPUs with bf16; measured within "
                        "0.002 of fp32 on each FS2K metric), else fp32; fp32 or bf16 to choose")  # fmt: skip


def add_quiet(p: argparse.ArgumentParser) -> None:
    """``--quiet``, the same in every verb that draws progress."""
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)


def show_progress(args: argparse.Namespace) -> bool:
    """Progress bars for this invocation: not with --quiet, and only on a terminal."""
    return not getattr(args, "quiet", False) and sys.stderr.isatty()


def _unavailable(e: Exception) -> int:
    raise UserError(f"this command is not available in this installation ({e})")


_OVERRIDE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z0-9_.]+=")


def _overrides_last(argv: list[str]) -> list[str]:
    """``train``'s key=value overrides may come anywhere (before, between or after the flags): move them last,
    where argparse expects its trailing positionals, keeping their order."""
    if not argv or argv[0] != "train":
        return argv
    rest, kv = [argv[0]], []
    for i, a in enumerate(argv[1:], start=1):
        prev = argv[i - 1]
        (kv if _OVERRIDE.match(a) and prev not in _VALUE_FLAGS else rest).append(a)
    return rest + kv


_VALUE_FLAGS = {"--config", "--out", "--device", "--dsine-weights", "--hed-weights", "--lpips-trunk", "--lpips-heads"}


def main(argv: list[str] | None = None) -> int:
    """Run one verb; returns the exit status (``EXIT_CODES``)."""
    from facesketch.logs import cli_handlers, remove_cli_handlers

    argv = _overrides_last(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    cli_handlers()
    try:
        return _run(args)
    finally:
        remove_cli_handlers()


def _run(args: argparse.Namespace) -> int:
    try:
        rc = args.func(args)
    except UserError as e:
        print(f"facesketch {args.verb}: error: {e.cli_message()}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"facesketch {args.verb}: interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
