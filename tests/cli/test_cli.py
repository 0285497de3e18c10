"""The command line: every verb's --help, bad arguments give one-line errors, train/translate end to end on tiny data."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from helpers import make_unpaired, tiny_overrides
from PIL import Image

from facesketch.cli import VERBS, main


def test_top_level_help_lists_every_verb(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    import re

    listed = re.findall(r"^ {4}(\w+)", out, flags=re.M)  # the verb column of argparse's listing, not words in the prose
    assert listed == list(VERBS)
    assert "unavailable" not in out


@pytest.mark.parametrize("verb", list(VERBS))
def test_each_verb_has_help(verb, capsys):
    with pytest.raises(SystemExit) as e:
        main([verb, "--help"])
    assert e.value.code == 0
    assert "usage: facesketch " + verb in capsys.readouterr().out


def test_console_script_runs_a_verb_and_reports_its_exit_code(tmp_path):
    """The installed command (python -m facesketch, what the console script calls) runs a real verb end to end and
    turns a user error into one line and exit status 2."""
    out = subprocess.run([sys.executable, "-m", "facesketch", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("facesketch ")
    from PIL import Image

    Image.new("RGB", (40, 40), (200, 180, 160)).save(tmp_path / "in.png")
    ok = subprocess.run([sys.executable, "-m", "facesketch", "translate", "--no-align", "--quiet", "--out", str(tmp_path / "o"),
                         str(tmp_path / "in.png")], capture_output=True, text=True)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert Image.open(tmp_path / "o" / "in.png").size == (288, 288)  # the default model's own size
    bad = subprocess.run([sys.executable, "-m", "facesketch", "translate", "--out", str(tmp_path / "o"), str(tmp_path / "missing.png")],
                         capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 1 and "missing.png" in bad.stderr
    err = subprocess.run([sys.executable, "-m", "facesketch", "train", "--config", "nope"], capture_output=True, text=True)
    assert err.returncode == 2 and err.stderr.count("\n") == 1 and "no such file or preset" in err.stderr


@pytest.mark.parametrize("argv, msg", [
    (["train"], "--config is required"),
    (["train", "--config", "nope"], "no such file or preset"),
    (["train", "--config", "debug", "train.bogus=1"], "unknown config key 'train.bogus'"),
    (["train", "--resume"], "--resume needs --out"),
    (["translate", "x.png", "--model", "missing.safetensors", "--out", "o"], "no such file or run directory"),
])  # fmt: skip
def test_bad_arguments_give_one_line_errors(argv, msg, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert msg in err and len(err.splitlines()) == 1


def test_unknown_verb_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["frobnicate"])
    assert e.value.code == 2


def test_show_config_and_list_keys(capsys):
    assert main(["train", "--config", "paper", "--show-config"]) == 0
    out = capsys.readouterr().out
    assert "lambda_normal: 10.0" in out
    assert main(["train", "--list-keys"]) == 0
    out = capsys.readouterr().out
    assert "train.amp = 'auto'" in out and "Mixed precision" in out


def test_train_then_translate_from_the_command_line(tmp_path, capsys):
    data = make_unpaired(tmp_path / "d")
    run = tmp_path / "run"
    assert main(["train", "--config", "debug", "--out", str(run), *tiny_overrides(data, **{"train.max_steps": 2})]) == 0
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.fromarray(np.full((50, 30, 3), 120, np.uint8)).save(inputs / "face.jpg")
    Image.fromarray(np.full((20, 20), 90, np.uint8)).save(inputs / "grey.png")
    (inputs / "broken.png").write_bytes(b"not an image")
    out = tmp_path / "out"
    rc = main(["translate", str(inputs), "--model", str(run), "--out", str(out), "--save-masks", "--no-align", "--quiet"])
    captured = capsys.readouterr()
    assert rc == 1  # one unreadable input: listed, non-zero exit, the others written
    assert "broken.png" in captured.err and "1 input(s) could not be read" in captured.err
    assert sorted(p.name for p in out.iterdir()) == ["face.png", "face_attention.png", "grey.png", "grey_attention.png"]
    assert Image.open(out / "face.png").size == (32, 32)
    # B -> A from the exported file, output at the input size
    rc = main(["translate", str(inputs / "face.jpg"), "--model", str(run / "export" / "model.safetensors"), "--out",
               str(tmp_path / "out2"), "--direction", "BtoA", "--output-size", "input", "--quiet"])  # fmt: skip
    assert rc == 0
    assert Image.open(tmp_path / "out2" / "face.png").size == (30, 50)


def test_demo_without_dataset_says_in_one_line_how_to_get_it(tmp_path, capsys, monkeypatch):
    from facesketch import demo

    monkeypatch.setenv("FS2K_ROOT", str(tmp_path / "missing"))
    assert demo.main(["--out", str(tmp_path / "demo")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "facesketch data download fs2k" in err
    assert not (tmp_path / "demo").exists()  # nothing written
