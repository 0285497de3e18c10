"""Every option of every verb explains itself, and the shared options behave the same in every verb."""

from __future__ import annotations

import argparse

import pytest

from facesketch.cli import EXIT_CODES, VERBS, build_parser


def _parsers(p: argparse.ArgumentParser, path: str = "facesketch"):
    yield path, p
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, sub in a.choices.items():
                yield from _parsers(sub, f"{path} {name}")


def test_every_option_of_every_verb_has_help_text():
    missing = []
    for path, p in _parsers(build_parser([])):
        for a in p._actions:
            if isinstance(a, (argparse._HelpAction, argparse._SubParsersAction, argparse._VersionAction)):
                continue
            if a.help == argparse.SUPPRESS:
                continue
            if not (a.help or "").strip():
                missing.append(f"{path} {'/'.join(a.option_strings) or a.dest}")
    assert missing == []


def test_device_defaults_to_auto_and_quiet_exists_wherever_progress_is_drawn():
    seen = {}
    for path, p in _parsers(build_parser([])):
        opts = {o: a for a in p._actions for o in a.option_strings}
        if "--device" in opts:
            seen[path] = opts["--device"].default
    # train's --device defaults to the config's train.device (auto); every other verb's to auto itself
    assert seen and all(v == "auto" for k, v in seen.items() if k != "facesketch train"), seen
    for verb in ("facesketch translate", "facesketch evaluate", "facesketch normals", "facesketch train",
                 "facesketch data download", "facesketch weights fetch"):
        p = dict(_parsers(build_parser([])))[verb]
        assert "--quiet" in {o for a in p._actions for o in a.option_strings}, verb


def test_exit_codes_are_in_the_top_level_help(capsys):
    with pytest.raises(SystemExit):
        build_parser([]).parse_args(["--help"])
    out = capsys.readouterr().out
    assert "exit status: 0" in out and "130" in out and set(VERBS) <= set(out.split())
    assert "2 a usage or input error" in EXIT_CODES


@pytest.mark.parametrize("argv, msg", [
    (["translate", "--size", "102", "--out", "o", "x.png"], "--size 102: use a multiple of 4 from 64 to 2048"),
    (["export", "--onnx", "x.onnx", "--size", "100000"], "--size 100000: use a multiple of 4"),
    (["train", "--config", "debug", "--device", "cpu", "train.device=cuda"], "--device cpu and train.device=cuda disagree"),
])  # fmt: skip
def test_sizes_and_conflicting_devices_are_one_line_errors(argv, msg, capsys, tmp_path, monkeypatch):
    from facesketch.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and msg in err, err
