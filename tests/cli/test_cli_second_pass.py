"""The second adversarial pass (issue: nothing lost, nothing hangs): each finding reproduced with the same inputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import make_unpaired, tiny_overrides
from PIL import Image

from facesketch.cli import main


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_unpaired(tmp_path_factory.mktemp("pass2_data"))


def _one_line_error(capsys, rc: int, *words: str) -> str:
    err = "\n".join(ln for ln in capsys.readouterr().err.strip().splitlines() if not ln.startswith("model: facesketch default"))
    assert rc == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, (w, err)
    return err


def _photo(path: Path) -> Path:
    Image.fromarray(np.full((250, 250, 3), 128, np.uint8)).save(path)
    return path


def test_an_output_never_replaces_its_input_by_path_symlink_or_hard_link(tmp_path, capsys):
    d = tmp_path / "d"
    d.mkdir()
    photo = _photo(d / "photo.png")
    before = photo.read_bytes()
    rc = main(["translate", "--no-align", "--quiet", "--out", str(d), str(d)])
    _one_line_error(capsys, rc, "would replace the input", "photo.png")
    assert photo.read_bytes() == before and sorted(p.name for p in d.iterdir()) == ["photo.png"]
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(photo, out / "photo.png")  # the output name is a symlink to the input
    _one_line_error(capsys, main(["translate", "--no-align", "--quiet", "--out", str(out), str(photo)]), "photo.png")
    (out / "photo.png").unlink()
    os.link(photo, out / "photo.png")  # ... or a hard link to it
    _one_line_error(capsys, main(["translate", "--no-align", "--quiet", "--out", str(out), str(photo)]), "photo.png")
    assert photo.read_bytes() == before
    (out / "photo.png").unlink()
    assert main(["translate", "--no-align", "--quiet", "--out", str(out), str(photo)]) == 0  # an ordinary run still works
    assert photo.read_bytes() == before and (out / "photo.png").read_bytes() != before


def test_a_fifo_input_is_refused_in_seconds_not_waited_on(tmp_path, capsys):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    t = time.time()
    rc = main(["translate", "--no-align", "--quiet", "--out", str(tmp_path / "o"), str(fifo)])
    assert time.time() - t < 30 and rc == 1
    err = capsys.readouterr().err
    assert "pipe.png" in err and "FIFO" in err


@pytest.mark.parametrize("make, words", [
    (lambda tmp: ["--config", str(tmp / "notes.txt")], ("notes.txt", "not a YAML file")),
    (lambda tmp: ["--config", "/dev/null"], ("/dev/null", "not a regular file")),
])  # fmt: skip
def test_config_that_is_not_yaml_says_so(tmp_path, capsys, make, words):
    (tmp_path / "notes.txt").write_text("hello")
    _one_line_error(capsys, main(["train", *make(tmp_path)]), *words)


def test_home_that_is_a_file_is_one_line(tmp_path, capsys, monkeypatch, data):
    home = tmp_path / "home_file"
    home.write_text("x")
    monkeypatch.setenv("FACESKETCH_HOME", str(home))
    rc = main(["train", "--config", "debug", "--out", str(tmp_path / "r"), *tiny_overrides(data), "loss.lambda_edge=1"])
    _one_line_error(capsys, rc, "FACESKETCH_HOME", "not a folder")
    _one_line_error(capsys, main(["weights", "list"]), "FACESKETCH_HOME")


def test_report_into_a_folder_and_over_undecodable_stats(tiny_model, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_model, run)
    out = tmp_path / "reports"
    out.mkdir()
    assert main(["report", str(run), "--out", str(out)]) == 0
    assert (out / "report.html").is_file()
    (run / "stats.jsonl").write_bytes(os.urandom(4096))
    assert main(["report", str(run)]) == 0  # random bytes are skipped like torn lines


def test_download_into_a_file_negative_limit_and_empty_metrics(tmp_path, capsys, data):
    f = tmp_path / "a_file"
    f.write_text("x")
    _one_line_error(capsys, main(["data", "download", "fs2k", "--out", str(f), "--archive", str(f)]), "--out", "not a folder")
    _one_line_error(capsys, main(["normals", str(data), "--out", str(tmp_path / "n"), "--synthetic-seed", "0", "--limit", "-1"]),
                    "--limit -1")  # fmt: skip
    _one_line_error(capsys, main(["evaluate", "--pred", str(tmp_path), "--gt", str(tmp_path), "--out", str(tmp_path / "e"),
                                  "--metrics", ","]), "--metrics", "names no metric")  # fmt: skip


def _identical_pair(tmp_path: Path) -> tuple[Path, Path]:
    """A prediction folder and a ground-truth folder holding the same small image (SSIM 1)."""
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir(), gt.mkdir()
    img = np.full((32, 32), 200, np.uint8)
    img[8:24, 8:24] = 40
    for d in (pred, gt):
        Image.fromarray(img).save(d / "a.png")
    return pred, gt


def test_a_label_cannot_break_the_table(tmp_path):
    pred, gt = _identical_pair(tmp_path)
    assert main(["evaluate", "--pred", str(pred), "--gt", str(gt), "--out", str(tmp_path / "e"), "--metrics", "ssim",
                 "--workers", "0", "--quiet", "--label", "a|b\nc"]) == 0  # fmt: skip
    rows = [ln for ln in (tmp_path / "e" / "table.md").read_text().splitlines() if "ours:" in ln]
    assert len(rows) == 1 and "a\\|b c" in rows[0] and rows[0].count(" | ") == rows[0].replace("\\|", "").count(" | ")


def test_batch_larger_than_the_data_is_refused(data, tmp_path, capsys):
    rc = main(["train", "--config", "debug", "--out", str(tmp_path / "r"), *tiny_overrides(data), "train.batch_size=4096"])
    _one_line_error(capsys, rc, "train.batch_size=4096", "training images")


def test_random_bytes_as_weights_are_called_not_weights(tmp_path):
    from facesketch.errors import UserError
    from facesketch.tensorfile import read_weights_only

    p = tmp_path / "x.pt"
    p.write_bytes(os.urandom(4096).replace(b"\x80", b"\x81").replace(b"PK", b"QK") or b"x")
    with pytest.raises(UserError, match="not a weights file") as e:
        read_weights_only(p)
    assert "pickle" not in str(e.value).split("(")[1][:20]


def test_weights_source_that_is_a_device_says_so(capsys):
    _one_line_error(capsys, main(["weights", "fetch", "dsine", "--source", "/dev/null"]), "/dev/null", "not a regular file")


def test_workers_are_capped_at_the_usable_cpus(tmp_path, capsys):
    pred, gt = _identical_pair(tmp_path)
    rc = main(["evaluate", "--pred", str(pred), "--gt", str(gt), "--out", str(tmp_path / "e"), "--metrics", "ssim",
               "--workers", "512", "--quiet"])  # fmt: skip
    assert rc == 0
    assert "capped at" in capsys.readouterr().err
    assert json.loads((tmp_path / "e" / "metrics.json").read_text())["ssim"] == pytest.approx(1.0)


def test_a_full_disk_at_the_write_probe_leaves_nothing_behind(data, tmp_path, monkeypatch):
    from facesketch.errors import UserError
    from facesketch.training.run import prepare_run_dir

    real = Path.write_bytes

    def half_then_full(self, b):
        real(self, b"")  # the file is created, then the disk is full
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", half_then_full)
    with pytest.raises(UserError, match="No space left"):
        prepare_run_dir(tmp_path / "run", False)
    assert list((tmp_path / "run").iterdir()) == []


def test_console_disk_full_mid_checkpoint_is_one_line(data, tmp_path, monkeypatch):
    """torch's writer turns an OSError partway through a file into a RuntimeError: still one line naming the last good one."""
    from facesketch.errors import UserError
    from facesketch.training import checkpoint as ck
    from facesketch.training.loop import train

    from facesketch.config import load_config

    real = ck.save_train_state
    calls = {"n": 0}

    def fails_second(state, path):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 1024 vs 512")
        return real(state, path)

    monkeypatch.setattr(ck, "save_train_state", fails_second)
    cfg = load_config("debug", tiny_overrides(data, **{"train.max_steps": 4, "train.checkpoint_every": 2}))
    with pytest.raises(UserError, match=r"cannot write the checkpoint .*unexpected pos.*newest earlier checkpoint is .*step_00000002"):
        train(cfg, tmp_path / "run")


def test_python_m_facesketch_on_a_fifo_finishes(tmp_path):
    fifo = tmp_path / "in.png"
    os.mkfifo(fifo)
    r = subprocess.run([sys.executable, "-m", "facesketch", "translate", "--no-align", "--quiet", "--out", str(tmp_path / "o"),
                        str(fifo)], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 1 and "FIFO" in r.stderr
