"""Pytest fixtures shared by the suite: project paths, the FS2K location, small deterministic images."""

from __future__ import annotations

import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def fs2k_root() -> pathlib.Path | None:
    """The FS2K dataset used by tests: $FS2K_ROOT, else ../shared/data/FS2K; None when absent."""
    env = os.environ.get("FS2K_ROOT")
    for cand in ([pathlib.Path(env)] if env else []) + [ROOT / ".." / "shared" / "data" / "FS2K"]:
        if (cand / "anno_train.json").exists():
            return cand.resolve()
    return None


@pytest.fixture(scope="session")
def fs2k_dir() -> pathlib.Path:
    root = fs2k_root()
    if root is None:
        pytest.skip("FS2K not found: set FS2K_ROOT or place it at ../shared/data/FS2K")
    return root


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Keep every test's weight cache and TORCH_HOME out of the user's home, unless the suite was given one."""
    if "FACESKETCH_TEST_HOME" in os.environ:
        monkeypatch.setenv("FACESKETCH_HOME", os.environ["FACESKETCH_TEST_HOME"])
    else:
        monkeypatch.setenv("FACESKETCH_HOME", str(tmp_path_factory.getbasetemp() / "facesketch_home"))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> pathlib.Path:
    """A tiny trained run (2 steps of the debug config on synthetic data), trained once per session."""
    import shutil

    from helpers import make_unpaired, tiny_overrides

    from facesketch.cli import main

    run = tmp_path_factory.getbasetemp() / "tiny_model_run"
    if not (run / "export" / "model.safetensors").is_file():
        shutil.rmtree(run, ignore_errors=True)
        data = make_unpaired(tmp_path_factory.mktemp("tiny_data"))
        assert main(["train", "--config", "debug", "--out", str(run), *tiny_overrides(data, **{"train.max_steps": 2})]) == 0
    return run
