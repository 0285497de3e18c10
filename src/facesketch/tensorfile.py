"""Reading tensor files without ever running code from them: one loader, one error text naming the file.

Every weight file, foreign checkpoint and training state facesketch reads goes through here:

* ``.safetensors`` files are read with safetensors (no code possible);
* anything else with ``torch.load(weights_only=True)``: tensors and plain Python data only. A pickle that would need
  a class or a function to load (a whole pickled model, an optimizer object, a malicious file) is refused, and the
  message says so in one line instead of torch's advice to turn the check off.
"""

from __future__ import annotations

from pathlib import Path

import torch

from facesketch.errors import UserError

CODE_PICKLE = ("it is a pickle that needs Python code to load (a pickled object, not a state dict), which facesketch "
               "never runs; save a plain state dict (torch.save(model.state_dict(), f)) or get the file from its "
               "listed source (`facesketch weights list`)")  # fmt: skip


NOT_WEIGHTS = "not a weights file: neither a PyTorch zip archive, a pickle of tensors nor safetensors"


def _looks_like_weights(path: Path) -> bool:
    """A PyTorch zip archive (PK), a pickle (protocol 2+ starts with 0x80) or a legacy torch file (its magic pickle)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return True  # let torch.load report it
    return head[:2] == b"PK" or head[:1] == b"\x80"


def _reason(e: BaseException) -> str:
    text = str(e).strip()
    if "weights_only" in text or "Unsupported global" in text or "GLOBAL" in text:
        return CODE_PICKLE
    first = text.splitlines()[0] if text else type(e).__name__
    return f"{type(e).__name__}: {first[:200]}"


def read_weights_only(path: str | Path, what: str = "a PyTorch file") -> object:
    """``torch.load(path, weights_only=True)`` on CPU; UserError ``PATH: cannot be read as WHAT (reason)``."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: " + (f"not a regular file ({what} expected)" if path.exists() else f"no such file ({what} expected)"))
    if not _looks_like_weights(path):
        raise UserError(f"{path}: cannot be read as {what} ({NOT_WEIGHTS})")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - pickle, zip and torch errors of a damaged or foreign file
        raise UserError(f"{path}: cannot be read as {what} ({_reason(e)})") from None


def load_tensors(path: str | Path, what: str = "a state dict", *, unwrap: tuple[str, ...] = ("state_dict",),
                 strip_prefix: str | None = None) -> dict[str, torch.Tensor]:  # fmt: skip
    """A dict of tensors from a ``.safetensors`` file or a weights-only pickle.

    ``unwrap``: keys of a wrapping dict to descend into when present (``{'state_dict': ...}``, ``{'model': ...}``);
    ``strip_prefix``: removed from every key that has it (``module.`` of DataParallel). UserError naming the file if it
    cannot be read or is not a dict of tensors.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        if not path.is_file():
            raise UserError(f"{path}: no such file ({what} expected)")
        from safetensors.torch import load_file

        try:
            obj: object = load_file(str(path))
        except Exception as e:  # noqa: BLE001 - safetensors raises its own error types for corrupt headers
            raise UserError(f"{path}: cannot be read as {what} (not a readable safetensors file: {_reason(e)})") from None
    else:
        obj = read_weights_only(path, what)
    for key in unwrap:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(f"{path}: not {what} (expected a dict of tensors)")
    if strip_prefix:
        obj = {(k[len(strip_prefix):] if k.startswith(strip_prefix) else k): v for k, v in obj.items()}
    return dict(obj)


_DTYPES = {torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64",
           torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL"}  # fmt: skip


def safetensors_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> bytes:
    """The safetensors serialisation of ``tensors``, byte for byte the same for the same input.

    (The safetensors library writes its metadata from a hash map, so two processes saving the same tensors can
    produce different bytes; facesketch's exports are compared bit for bit, so they are written here: names in
    sorted order, metadata keys sorted, the header padded with spaces to a multiple of 8, as the format allows.)
    """
    import json
    import struct

    header: dict[str, object] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(metadata[k]) for k in sorted(metadata)}
    blobs, offset = [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        if t.dtype not in _DTYPES:
            raise TypeError(f"{name}: dtype {t.dtype} cannot be stored in safetensors")
        raw = t.view(torch.int16).numpy().tobytes() if t.dtype == torch.bfloat16 else t.numpy().tobytes()
        header[name] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)
