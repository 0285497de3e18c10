"""The default model: facesketch's own FS2K model, shipped inside the package (float16 safetensors, G_A and G_B).

``--model`` may be omitted (or given as ``default``) wherever a model is read: translate, serve, evaluate and
export. The file is package data (present after ``pip install .`` and in a wheel); its sha256 is checked
before it is used, so a damaged installation says so instead of translating with damaged weights.
How it was trained, and its scores on the FS2K test split: docs/results.md.
"""

from __future__ import annotations

import logging
from pathlib import Path

from facesketch.download import sha256_file  # noqa: F401 - also used by scripts/bundle_model.py
from facesketch.errors import UserError

NAME = "default"
FILENAME = "fs2k-default.safetensors"
# sha256 of the shipped file; a new model changes both (scripts/bundle_model.py writes them)
SHA256 = "d739234a01f9019dce38d019e9fa177adbf7e65523e4d747e362f7d3c1756ecf"
ASSETS = Path(__file__).resolve().parent / "assets"


def default_model_path(*, verify: bool = True) -> Path:
    """The bundled export, checked against ``SHA256`` (UserError when missing or damaged)."""
    path = ASSETS / FILENAME
    if not path.is_file():
        raise UserError(f"the default model {path} is missing from this installation; reinstall facesketch or pass --model RUN_OR_EXPORT")
    if verify:
        got = sha256_file(path)
        if got != SHA256:
            raise UserError(f"the default model {path} is damaged (sha256 {got[:12]}..., expected {SHA256[:12]}...); "
                            "reinstall facesketch or pass --model RUN_OR_EXPORT")  # fmt: skip
    return path


def resolve_model(spec: str | Path | None, *, announce: bool = True) -> Path:
    """``--model`` as given, or the bundled model for None / '' / 'default' (then one line on stderr says which)."""
    if spec is None or str(spec) in ("", NAME):
        path = default_model_path()
        if announce:
            logging.getLogger(__name__).info(f"model: facesketch default FS2K model ({path.name}, sha256 {SHA256[:12]}; "
                                             "pass --model to use another)")  # fmt: skip
        return path
    return Path(spec)  # named by the user: nothing to announce
