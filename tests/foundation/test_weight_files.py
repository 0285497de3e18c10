"""Weight files that would run code, or are not weights at all, are refused in one line everywhere."""

from __future__ import annotations

import pytest
import torch

from facesketch.errors import UserError
from facesketch.training import checkpoint as ck


def _cli(*args) -> int:
    from facesketch.cli import main

    return main(list(args))


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
