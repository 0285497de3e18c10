"""Helpers shared by the conformance tests: locate the vectors, rebuild synthetic weights, compare with tolerances."""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONF = pathlib.Path(os.environ.get("FACESKETCH_CONFORMANCE_DIR", ROOT / ".." / "shared" / "conformance")).resolve()

_synth = None


def synth_module():
    """The conformance set's own `synth_weights.py`, imported by path (it rebuilds the synthetic weights)."""
    global _synth
    if _synth is None:
        path = CONF / "synth_weights.py"
        if not path.exists():
            pytest.skip(f"conformance vectors not found at {CONF} (set FACESKETCH_CONFORMANCE_DIR)")
        spec = importlib.util.spec_from_file_location("facesketch_conf_synth_weights", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        _synth = mod
    return _synth


def case_files(prefix: str) -> list[pathlib.Path]:
    """All `<prefix>_case*.npz` files of the conformance set, sorted; skips the test when there are none."""
    files = sorted(CONF.glob(f"{prefix}_case*.npz"))
    if not files:
        pytest.skip(f"no {prefix}_case*.npz in {CONF} (set FACESKETCH_CONFORMANCE_DIR)")
    return files


def case_params(prefix: str) -> list:
    """For ``parametrize`` at collection time: the case files, or one skipped parameter naming the directory
    (``case_files`` would skip the whole module from there, which pytest reports as a collection error)."""
    files = sorted(CONF.glob(f"{prefix}_case*.npz"))
    reason = f"no {prefix}_case*.npz in {CONF} (set FACESKETCH_CONFORMANCE_DIR)"
    return files or [pytest.param(None, id="none", marks=pytest.mark.skip(reason=reason))]


def load_case(name: str):
    """np.load of one conformance file by name (no pickle); skips the test when it is missing."""
    path = CONF / name
    if not path.exists():
        pytest.skip(f"{name} not found in {CONF} (set FACESKETCH_CONFORMANCE_DIR)")
    return np.load(path, allow_pickle=False)


def synth_state_dict(case) -> dict:
    """The synthetic state dict a case was computed with, after checking its fingerprint."""
    sw = synth_module()
    sd = sw.synth_state_dict(CONF / str(case["keys_file"]), int(case["seed"]))
    assert sw.fingerprint(sd) == str(case["weights_sha256"]), "synthetic weights do not match the case fingerprint"
    return sd


def tolerance(net: str, name: str) -> dict:
    tol = json.loads((CONF / "tolerances.json").read_text())[net]
    return tol.get(name, tol.get("default"))


def assert_close(net: str, name: str, got, ref) -> float:
    """Check `got` against the stored `ref` with the set's tolerance for (net, array name); returns max |err|."""
    t = tolerance(net, name)
    ref = np.asarray(ref, np.float64)
    got = np.asarray(got, np.float64)
    assert got.shape == ref.shape, (net, name, got.shape, ref.shape)
    atol = t["atol_frac_of_max"] * np.abs(ref).max() if "atol_frac_of_max" in t else t["atol"]
    err = np.abs(got - ref)
    worst = (err - t.get("rtol", 0.0) * np.abs(ref)).max()
    assert worst <= atol, (net, name, float(err.max()), atol)
    if "mean_abs" in t:
        assert err.mean() <= t["mean_abs"], (net, name, float(err.mean()), t["mean_abs"])
    return float(err.max())
