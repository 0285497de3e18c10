"""The command line under bad invocations: every one fails in one line without a traceback; overrides anywhere."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import make_unpaired, tiny_overrides

from facesketch.training import checkpoint as ck


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_unpaired(tmp_path_factory.mktemp("rel_data"))


def _cli(*args) -> int:
    from facesketch.cli import main

    return main(list(args))


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


def test_overrides_may_come_before_and_between_the_flags(data, tmp_path):
    run = tmp_path / "run"
    rc = _cli("train", f"data.root={data}", "--config", "debug", "train.max_steps=2", "--out", str(run),
              *tiny_overrides(data, **{"train.max_steps": 2})[1:])  # fmt: skip
    assert rc == 0
    assert ck.latest_checkpoint(run)[1]["step"] == 2


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
