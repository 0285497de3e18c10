"""`facesketch export` into a folder it cannot write: one line, nothing half-written."""

from __future__ import annotations

import os
from pathlib import Path


def _cli(*args) -> int:
    from facesketch.cli import main

    return main(list(args))


def test_export_into_a_read_only_folder_is_one_line(tiny_model, tmp_path, monkeypatch, capsys):
    # root writes anywhere: make the folder look read-only (the check) and the write fail (the OSError path)
    ro = tmp_path / "ro"
    ro.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, *a, **k: False if Path(p) == ro else real_access(p, mode, *a, **k))
    assert _cli("export", "--model", str(tiny_model), "--onnx", str(ro / "m.onnx")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--onnx" in err and "cannot write into" in err
    monkeypatch.setattr(os, "access", real_access)
    from facesketch.models import export_file as ckpt_mod

    def denied(path, *a, **k):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(ckpt_mod, "export_generators", denied)
    assert _cli("export", "--model", str(tiny_model), "--safetensors", str(ro / "m.safetensors")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Permission denied" in err and "Traceback" not in err
