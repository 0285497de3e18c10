"""Nothing lost, nothing crashes: checkpoints verified and pruned safely, signals, non-finite losses, torn stats,
unwritable run folders, bounded images. Each test reproduces a finding with the same inputs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
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


def test_infinite_or_nan_settings_are_refused():
    for bad in ("train.lr=inf", "train.lr=nan", "train.batch_size=nan", "train.batch_size=1e400", "data.load_size=60000",
                "train.max_steps=-5", "train.max_minutes=-1", "loss.lambda_edge=inf"):  # fmt: skip
        with pytest.raises(UserError, match=bad.split("=")[0].split(".")[-1]):
            load_config("debug", [bad])


def test_on_off_values_reach_string_switches_from_flags_and_presets(tmp_path):
    cfg = load_config("debug", ["train.amp=off", "train.channels_last=off", "train.fused_adam=off"])
    assert (cfg.train.amp, cfg.train.channels_last, cfg.train.fused_adam) == ("off", "off", "off")
    preset = tmp_path / "p.yaml"
    preset.write_text("train:\n  amp: off\n  channels_last: on\n")
    cfg = load_config(str(preset))
    assert (cfg.train.amp, cfg.train.channels_last) == ("off", "on")


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


def _comparable(run: Path) -> list[dict]:
    recs = [json.loads(s) for s in (run / "stats.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("time", "images_per_s")} for r in recs]


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


def test_thin_and_huge_images_are_refused_before_any_resize(tmp_path):
    from PIL import Image

    from facesketch.data.images import UnreadableImageError, load_rgb

    thin = tmp_path / "thin.png"
    Image.new("RGB", (1000, 1)).save(thin)
    with pytest.raises(UnreadableImageError, match="aspect ratio"):
        load_rgb(thin)
    from facesketch.faces import FaceDetector

    pytest.importorskip("cv2")
    with pytest.raises(UserError, match="aspect ratio"):
        FaceDetector().detect(np.zeros((1, 3000, 3), np.uint8))


def test_translate_lists_a_thin_image_and_goes_on(tiny_model, tmp_path, capsys):
    from PIL import Image

    thin, ok = tmp_path / "thin.png", tmp_path / "ok.png"
    Image.new("RGB", (3000, 1)).save(thin)
    Image.new("RGB", (64, 64), (120, 80, 60)).save(ok)
    rc = _cli("translate", "--model", str(tiny_model), "--out", str(tmp_path / "out"), "--quiet", "--no-align", str(thin), str(ok))
    assert rc == 1
    err = capsys.readouterr().err
    assert "thin.png" in err and "aspect ratio" in err and "Traceback" not in err
    assert (tmp_path / "out" / "ok.png").is_file()


def test_overrides_may_come_before_and_between_the_flags(data, tmp_path):
    run = tmp_path / "run"
    rc = _cli("train", f"data.root={data}", "--config", "debug", "train.max_steps=2", "--out", str(run),
              *tiny_overrides(data, **{"train.max_steps": 2})[1:])  # fmt: skip
    assert rc == 0
    assert ck.latest_checkpoint(run)[1]["step"] == 2


def _bad_invocations(tmp: Path, data: Path, model: Path) -> list[tuple[list[str], str]]:
    """(argv, a word the error must name) for invocations that must fail cleanly."""
    a_file = tmp / "a_file.txt"
    a_file.write_text("x")
    photo = next((data / "testA").iterdir())
    return [
        (["train", "--config", "debug", *tiny_overrides(data), "train.batch_size=nan"], "batch_size"),
        (["train", "--config", "debug", *tiny_overrides(data), "train.batch_size=1e400"], "batch_size"),
        (["train", "--config", "debug", *tiny_overrides(data), "data.load_size=60000"], "load_size"),
        (["train", "--config", "debug", *tiny_overrides(data), "train.lr=inf"], "train.lr"),
        (["train", "--config", "debug", *tiny_overrides(data), "train.max_steps=-5"], "max_steps"),
        (["train", "--config", "debug", *tiny_overrides(data), "train.max_minutes=-1"], "max_minutes"),
        (["train", "--config", "debug", "--out", str(a_file), *tiny_overrides(data)], "a_file.txt"),
        (["train", "--config", "nonexistent-preset"], "nonexistent-preset"),
        (["train", "--out", str(model), "--resume", "model.ngf=16"], "model.ngf"),
        (["translate", "--model", str(model), "--out", str(a_file), str(photo)], "a_file.txt"),
        (["translate", "--model", str(model), "--out", str(tmp / "o"), "--batch-size", "0", str(photo)], "--batch-size"),
        (["translate", "--model", str(model), "--out", str(tmp / "o"), "--batch-size", "-3", str(photo)], "--batch-size"),
        (["translate", "--model", str(tmp), "--out", str(tmp / "o"), str(photo)], "--model"),
        (["translate", "--model", str(tmp / "missing.safetensors"), "--out", str(tmp / "o"), str(photo)], "missing.safetensors"),
        (["export", "--model", str(model), "--safetensors", str(tmp)], "--safetensors"),
        (["normals", str(data), "--out", str(tmp / "n"), "--size", "-4"], "--size"),
        (["evaluate", "--pred", str(tmp), "--gt", str(tmp), "--out", str(tmp / "e"), "--size", "100000"], "--size"),
        (["evaluate", "--pred", str(a_file), "--gt", str(tmp), "--out", str(tmp / "e")], "a_file.txt"),
        # every other verb: missing and wrong-kind paths, bad numbers, unknown names
        (["train", "--config", str(tmp)], str(tmp.name)),
        (["train", "--out", str(tmp / "no_run"), "--resume"], "no_run"),
        (["train", "--config", "debug", *tiny_overrides(data), "model.ngf=abc"], "model.ngf"),
        (["train", "--config", "debug", *tiny_overrides(data), "train.bogus=1"], "train.bogus"),
        (["translate", "--model", str(model), "--out", str(tmp / "o"), "--quiet", str(tmp / "missing.jpg")], "missing.jpg"),
        (["translate", "--model", str(model), "--out", str(tmp / "o"), "--direction", "XtoY", str(photo)], "--direction"),
        (["translate", "--model", str(a_file), "--out", str(tmp / "o"), str(photo)], "a_file.txt"),
        (["data", "check", str(tmp / "no_data")], "no_data"),
        (["data", "check", str(a_file)], "a_file.txt"),
        (["data", "download", "imagenet", "--out", str(tmp / "d")], "imagenet"),
        (["weights", "fetch", "no-such-weights"], "no-such-weights"),
        (["weights", "path", "no-such-weights"], "no-such-weights"),
        (["weights", "fetch", "dsine", "--source", str(tmp / "missing.pt")], "missing.pt"),
        (["weights", "fetch", "dsine", "--source", str(a_file)], "a_file.txt"),
        (["report", str(tmp / "no_run")], "no_run"),
        (["report", str(a_file)], "a_file.txt"),
        (["normals", str(tmp / "no_data"), "--out", str(tmp / "n")], "no_data"),
        (["normals", str(data), "--out", str(tmp / "n"), "--batch-size", "0"], "--batch-size"),
        (["normals", str(data), "--out", str(a_file), "--synthetic-seed", "0"], "a_file.txt"),
        (["evaluate", "--pred", str(tmp / "no_pred"), "--gt", str(tmp), "--out", str(tmp / "e")], "no_pred"),
        (["export", "--model", str(model), "--onnx", str(tmp)], "--onnx"),
        (["export", "--model", str(model), "--opset", "abc"], "--opset"),
        (["export", "--model", str(tmp / "no_model"), "--safetensors", str(tmp / "o.safetensors")], "no_model"),
        (["serve", "--model", str(model), "--port", "99999"], "--port"),
        (["serve", "--model", str(model), "--max-upload-mb", "-1"], "--max-upload-mb"),
        (["serve", "--model", str(model), "--max-megapixels", "nan"], "--max-megapixels"),
        (["serve", "--model", str(a_file)], "a_file.txt"),
    ]


def test_cli_fuzz_bad_invocations_fail_in_one_line_without_traceback(data, tiny_model, tmp_path, capsys):
    from facesketch.cli import main

    cases = _bad_invocations(tmp_path, data, tiny_model)
    for argv, word in cases:
        try:
            rc = main(argv)
        except SystemExit as e:  # argparse: usage line + one error line
            rc = e.code
        err = capsys.readouterr().err
        lines = [ln for ln in err.strip().splitlines() if ln.strip() and not ln.startswith(("usage:", "  ", "note:", "warning:", "model:"))]
        assert rc not in (0, None), (argv, err)
        assert "Traceback" not in err, (argv, err)
        # one line; a translate that lists unreadable inputs names each on an indented line below it
        assert len(lines) == 1 and (word in lines[0] or (argv[0] == "translate" and word in err)), (argv, err)


def test_annotation_with_a_null_or_integer_image_name_is_named(tmp_path):
    from facesketch.data import fs2k

    for bad in ("null", "7"):
        (tmp_path / "anno_train.json").write_text(f'[{{"image_name": {bad}, "style": 0}}]')
        with pytest.raises(UserError, match="unexpected image_name"):
            fs2k.load_split(tmp_path, "train")


def test_model_folder_of_the_demo_points_to_its_run(tiny_model, tmp_path):
    import shutil

    from facesketch.translate.load import load_translator

    demo = tmp_path / "demo"
    shutil.copytree(tiny_model, demo / "run")
    with pytest.raises(UserError, match=r"^model .*did you mean .*demo/run") as e:
        load_translator(demo)  # the library names its argument; the command line names the flag
    assert e.value.cli_message().startswith("--model ")


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` (1-bit grey) with a token IDAT: what a decompression bomb or
    a forged header looks like to a server that trusts the header (a few dozen bytes on the wire)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field} for {pid}")


RSS_LIMIT_MB = 300  # the peak may grow by at most this much over the idle server while it refuses hostile images


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the server's memory from /proc")
def test_server_refuses_thin_huge_and_bomb_images_with_bounded_memory_and_keeps_answering(tiny_model, tmp_path):
    import io
    import socket
    import urllib.error
    import urllib.request

    from PIL import Image

    pytest.importorskip("fastapi")
    pytest.importorskip("cv2")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = subprocess.Popen([sys.executable, "-m", "facesketch", "serve", "--model", str(tiny_model), "--port", str(port),
                          "--log-level", "warning"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    def post(data: bytes) -> tuple[int, str]:
        req = urllib.request.Request(f"{base}/api/translate", data=data, headers={"Content-Type": "image/png"})
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def png(w: int, h: int) -> bytes:
        buf = io.BytesIO()
        Image.new("L", (w, h), 128).save(buf, format="PNG")
        return buf.getvalue()

    try:
        deadline = time.monotonic() + 120
        while True:
            assert p.poll() is None, p.stderr.read()
            try:
                urllib.request.urlopen(f"{base}/api/info", timeout=5).read()
                break
            except OSError:
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.3)
        assert post(png(96, 96))[0] == 200  # warm: the first real translation allocates the model's buffers
        idle = _rss_mb(p.pid, "VmHWM")
        hostile = {
            "1000x1": png(1000, 1), "3000x1": png(3000, 1), "1x5000": png(1, 5000),  # thin strips (the findings)
            "49000000x1": _png_claiming(49_000_000, 1),  # the HTTP 500 finding, as a forged header
            "16000x16000 bomb": _png_claiming(16_000, 16_000),  # 256 megapixels claimed in 80 bytes
            "16384x16384 real": png(16_384, 16_384),  # a real all-grey 268-megapixel PNG (about 100 kB)
            "30000x20000 bomb": _png_claiming(30_000, 20_000),
        }  # fmt: skip
        for name, data in hostile.items():
            status, body = post(data)
            assert status == 413, (name, status, body)
            assert "detail" in json.loads(body), (name, body)
        peak = _rss_mb(p.pid, "VmHWM")
        print(f"server peak RSS: {idle:.0f} MB warmed up, {peak:.0f} MB after {len(hostile)} hostile uploads")
        assert peak - idle < RSS_LIMIT_MB, f"peak RSS grew {peak - idle:.0f} MB (idle {idle:.0f} MB)"
        status, body = post(png(120, 100))  # still answering, and still translating
        assert status == 200 and '"output"' in body, body[:200]
        assert p.poll() is None
    finally:
        p.terminate()
        p.wait(timeout=30)


class _Pickled:  # a whole object, not a state dict: loading it would need this class (code)
    def __init__(self):
        self.weight = torch.zeros(2)


@pytest.mark.parametrize("argv_of", [
    lambda f: ["weights", "fetch", "dsine", "--source", str(f)],
    lambda f: ["weights", "fetch", "hed-bsds500", "--source", str(f)],
])  # fmt: skip
def test_a_code_pickle_as_weight_source_is_refused_in_one_line(tmp_path, monkeypatch, capsys, argv_of):
    monkeypatch.setenv("FACESKETCH_HOME", str(tmp_path / "home"))
    bad = tmp_path / "model.pt"
    torch.save(_Pickled(), bad)
    rc = _cli(*argv_of(bad))
    err = capsys.readouterr().err.strip()
    assert rc != 0 and "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert "model.pt" in err and "weights_only=False" not in err


def test_foreign_pickles_give_one_error_text_everywhere(tmp_path):
    from facesketch.models.generators import build_generator
    from facesketch.models.importers import load_official
    from facesketch.priors.dsine import load_dsine_state_dict
    from facesketch.priors.hed import load_hed_weights
    from facesketch.tensorfile import CODE_PICKLE

    bad = tmp_path / "foreign.pth"
    torch.save(_Pickled(), bad)
    loaders = [lambda: load_official(bad, build_generator("resnet", ngf=8, n_blocks=1), "resnet", n_blocks=1),
               lambda: load_dsine_state_dict(bad), lambda: load_hed_weights(bad), lambda: ck.load_train_state(bad)]  # fmt: skip
    for load in loaders:
        with pytest.raises(UserError) as e:
            load()
        msg = str(e.value)
        assert msg.startswith(str(bad)) and CODE_PICKLE in msg and "\n" not in msg


def test_exports_are_the_same_bytes_for_the_same_tensors_and_load_with_safetensors(tmp_path):
    from safetensors.torch import load_file

    from facesketch.tensorfile import safetensors_bytes

    ts = {"b.w": torch.randn(3, 4), "a.w": torch.randn(5).half(), "n": torch.arange(7), "h": torch.randn(2).bfloat16()}
    data = safetensors_bytes(ts, {"format": "x", "config": "{}"})
    assert data == safetensors_bytes(dict(reversed(list(ts.items()))), {"config": "{}", "format": "x"})
    (tmp_path / "t.safetensors").write_bytes(data)
    back = load_file(str(tmp_path / "t.safetensors"))
    assert set(back) == set(ts) and all(torch.equal(back[k], ts[k]) for k in ts)


@pytest.mark.slow
def test_fault_injection_kill_9_at_random_moments_then_resume_equals_a_straight_run(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from fault_injection import inject

    report = inject(kills=3, seed=0, work=tmp_path, log=lambda *_: None)
    assert report["kills"] == 3 and report["rounds"] >= 1
    assert report["differences"] == [], report


def test_evaluate_with_a_fresh_weight_cache_fetches_lpips_weights_itself(tmp_path, monkeypatch, capsys):
    from PIL import Image

    from facesketch.priors import weights

    for d in ("pred", "gt"):
        (tmp_path / d).mkdir()
        Image.new("L", (32, 32), 200).save(tmp_path / d / "a.png")
    asked = []

    def offline_fetch(name, *a, **k):
        asked.append(name)
        raise UserError(f"{name}: no network here")

    monkeypatch.setattr(weights, "cached", lambda name, *a, **k: False)
    monkeypatch.setattr(weights, "fetch", offline_fetch)
    rc = _cli("evaluate", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--out", str(tmp_path / "e"))
    err = capsys.readouterr().err
    assert rc != 0 and asked == ["lpips-heads"]  # training fetches the same weights; so does evaluate
    last = err.strip().splitlines()[-1]
    assert "lpips-heads" in last and "--lpips-trunk" not in err and "without lpips" in last


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
