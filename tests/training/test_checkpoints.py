"""Nothing lost: checkpoints verified and pruned safely, non-finite losses, torn stats, unwritable run folders, signals, kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import ROOT
from helpers import make_unpaired, tiny_overrides

from facesketch.config import load_config
from facesketch.errors import UserError
from facesketch.training import checkpoint as ck
from facesketch.training.loop import train


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_unpaired(tmp_path_factory.mktemp("rel_data"))


def _cfg(data, **extra):
    return load_config("debug", tiny_overrides(data, **extra))


def _cli(*args) -> int:
    from facesketch.cli import main

    return main(list(args))


def _flip_in_tensor_data(path: Path) -> None:
    """Overwrite bytes in the middle of the largest stored tensor of a torch zip checkpoint."""
    import zipfile

    with zipfile.ZipFile(path) as z:
        info = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    raw = bytearray(path.read_bytes())
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    for k in range(16):
        raw[start + info.file_size // 2 + k] ^= 0x5A
    path.write_bytes(bytes(raw))


def _comparable(run: Path) -> list[dict]:
    recs = [json.loads(s) for s in (run / "stats.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("time", "images_per_s")} for r in recs]


def test_pruning_never_counts_or_keeps_only_garbage(data, tmp_path):
    run = tmp_path / "run"
    train(_cfg(data, **{"train.max_steps": 2, "train.checkpoint_every": 1, "train.keep_checkpoints": 1}), run)
    for n in (30, 31):  # garbage named as newer checkpoints
        (run / "checkpoints" / f"step_{n:08d}.pt").write_bytes(os.urandom(256))
    assert _cli("train", "--out", str(run), "--resume", "train.max_steps=4") == 0
    path, state = ck.latest_checkpoint(run)
    assert state["step"] == 4 and path.name == "step_00000004.pt"
    names = sorted(p.name for p in ck.list_checkpoints(run))
    assert names == ["step_00000004.pt", "step_00000030.pt", "step_00000031.pt"]  # garbage left for a person, not counted


def test_garbage_inside_a_tensor_is_caught_by_the_checksum_and_resume_falls_back(data, tmp_path):
    run = tmp_path / "run"
    train(_cfg(data, **{"train.max_steps": 4, "train.checkpoint_every": 2}), run)
    newest = ck.list_checkpoints(run)[-1]
    _flip_in_tensor_data(newest)
    with pytest.raises(UserError, match=r"damaged checkpoint|cannot read checkpoint"):
        ck.load_train_state(newest)
    path, state = ck.latest_checkpoint(run)
    assert state["step"] == 2


def test_nan_weights_in_a_checkpoint_are_refused(data, tmp_path):
    run = tmp_path / "run"
    train(_cfg(data, **{"train.max_steps": 2}), run)
    path = ck.list_checkpoints(run)[-1]
    state = torch.load(path, weights_only=True)
    state.pop("checksum")
    next(iter(state["nets"]["G_A"].values())).fill_(float("nan"))
    torch.save(state, path)  # an old-style checkpoint (no checksum) with NaN weights
    with pytest.raises(UserError, match="non-finite"):
        ck.load_train_state(path)


def test_a_non_finite_loss_stops_naming_step_and_term_and_keeps_the_good_state(data, tmp_path, monkeypatch):
    run = tmp_path / "run"
    train(_cfg(data, **{"train.max_steps": 2}), run)
    good = ck.list_checkpoints(run)[-1].read_bytes()
    export = (run / "export" / "model.safetensors").read_bytes()
    from facesketch.training import step as step_mod

    real_call = step_mod.CycleGANStep.__call__
    calls = {"n": 0}

    def poisoned(self, *a, **k):
        out = real_call(self, *a, **k)
        calls["n"] += 1
        if calls["n"] == 2:
            out["cycle_A"] = torch.tensor(float("nan"))
        return out

    monkeypatch.setattr(step_mod.CycleGANStep, "__call__", poisoned)
    with pytest.raises(UserError, match=r"step 4: non-finite loss \(cycle_A=nan\)"):
        train(load_config(None, ["train.max_steps=6", "train.checkpoint_every=1"], base=_cfg(data).to_dict()), run, resume=True)
    # step 3 was fine and checkpointed; step 4 stopped everything before its checkpoint could be written
    assert [p.name for p in ck.list_checkpoints(run)] == ["step_00000002.pt", "step_00000003.pt"]
    assert ck.list_checkpoints(run)[0].read_bytes() == good and ck.latest_checkpoint(run)[1]["step"] == 3
    assert (run / "export" / "model.safetensors").read_bytes() == export


def test_leftover_temporary_files_are_removed_at_the_next_start(data, tmp_path, capsys):
    run = tmp_path / "run"
    train(_cfg(data, **{"train.max_steps": 2}), run)
    junk = [run / "checkpoints" / ".step_00000004.pt.k2j3.tmp", run / "export" / ".model.safetensors.x1.tmp"]
    for j in junk:
        j.write_bytes(b"\0" * 1000)
    assert _cli("train", "--out", str(run), "--resume", "train.max_steps=3") == 0
    assert not any(j.exists() for j in junk)
    assert "removed 2 temporary file(s)" in capsys.readouterr().out


def test_torn_stats_line_does_not_stop_a_resume(data, tmp_path):
    run = tmp_path / "run"
    train(_cfg(data, **{"train.max_steps": 2}), run)
    with open(run / "stats.jsonl", "a") as f:
        f.write('{"step": 3, "epoch": 0.')  # a crash mid-write
    assert _cli("train", "--out", str(run), "--resume", "train.max_steps=4") == 0
    lines = [json.loads(s) for s in (run / "stats.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [1, 2, 3, 4]


def test_resumed_stats_match_an_uninterrupted_run_line_for_line(data, tmp_path):
    # log every 4 steps, stop at step 6 (mid-interval), resume to 8: the line at step 8 must average steps 5..8
    extra = {"train.log_every": 4, "train.n_epochs": 2, "train.n_epochs_decay": 2}
    train(_cfg(data, **extra, **{"train.max_steps": 8}), tmp_path / "straight")
    train(_cfg(data, **extra, **{"train.max_steps": 6}), tmp_path / "split")
    assert _comparable(tmp_path / "split")[-1].get("partial") == 1.0
    assert _cli("train", "--out", str(tmp_path / "split"), "--resume", "train.max_steps=8") == 0
    assert _comparable(tmp_path / "split") == _comparable(tmp_path / "straight")


def test_a_new_run_never_appends_to_an_earlier_runs_stats(data, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "stats.jsonl").write_text('{"step": 99, "G_A": 1.0}\n')
    train(_cfg(data, **{"train.max_steps": 2}), run)
    assert [json.loads(s)["step"] for s in (run / "stats.jsonl").read_text().splitlines()] == [1, 2]
    assert (run / "stats.prev.jsonl").read_text().startswith('{"step": 99')


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_out_fails_at_start_in_one_line(data, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(UserError, match="cannot write there"):
            train(_cfg(data), ro / "run")
    finally:
        ro.chmod(0o755)


def test_out_that_cannot_be_written_fails_before_data_loading(data, tmp_path, monkeypatch):
    # as root nothing is read-only: make the probe write fail the way a read-only or full disk does
    import facesketch.training.loop as loop

    def no_space(self, *a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", no_space)
    monkeypatch.setattr(loop, "build_banks", lambda *a, **k: pytest.fail("data loaded before the --out check"))
    with pytest.raises(UserError, match=r"--out .*cannot write there \(No space left on device\)"):
        train(_cfg(data), tmp_path / "run")


def test_full_disk_at_a_checkpoint_is_one_line_and_keeps_the_last_good_one(data, tmp_path, monkeypatch):
    run = tmp_path / "run"
    train(_cfg(data, **{"train.max_steps": 2}), run)
    real_save = torch.save

    def full(obj, f, *a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(UserError, match=r"step 3: cannot write the checkpoint .*No space left on device.*step_00000002\.pt"):
        train(load_config(None, ["train.max_steps=5", "train.checkpoint_every=3"], base=_cfg(data).to_dict()), run, resume=True)
    monkeypatch.setattr(torch, "save", real_save)
    assert ck.latest_checkpoint(run)[1]["step"] == 2
    assert not list((run / "checkpoints").glob(".*.tmp"))


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_writes_a_checkpoint_after_the_step_and_exits_non_zero(data, tmp_path, sig):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "facesketch", "train", "--config", "debug", "--out", str(run),
           *tiny_overrides(data, **{"train.max_steps": 100000, "train.checkpoint_every": 100000})]  # fmt: skip
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    deadline = time.monotonic() + 120
    while not ((run / "stats.jsonl").exists() and (run / "stats.jsonl").read_text().count("\n") >= 3):
        assert time.monotonic() < deadline and p.poll() is None, p.stderr.read() if p.poll() is not None else "no progress"
        time.sleep(0.1)
    p.send_signal(sig)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 128 + sig, (p.returncode, err)
    assert "Traceback" not in err
    path, state = ck.latest_checkpoint(run)
    assert state["step"] >= 3
    assert "--resume" in err


@pytest.mark.slow
def test_fault_injection_kill_9_at_random_moments_then_resume_equals_a_straight_run(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from fault_injection import inject

    report = inject(kills=3, seed=0, work=tmp_path, log=lambda *_: None)
    assert report["kills"] == 3 and report["rounds"] >= 1
    assert report["differences"] == [], report
