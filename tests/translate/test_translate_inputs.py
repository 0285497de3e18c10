"""Translation inputs and model folders: a thin image is listed and the batch goes on; a demo folder points to its run."""

from __future__ import annotations

import pytest

from facesketch.errors import UserError


def _cli(*args) -> int:
    from facesketch.cli import main

    return main(list(args))


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


def test_model_folder_of_the_demo_points_to_its_run(tiny_model, tmp_path):
    import shutil

    from facesketch.translate.load import load_translator

    demo = tmp_path / "demo"
    shutil.copytree(tiny_model, demo / "run")
    with pytest.raises(UserError, match=r"^model .*did you mean .*demo/run") as e:
        load_translator(demo)  # the library names its argument; the command line names the flag
    assert e.value.cli_message().startswith("--model ")
