"""The export file: the same tensors give the same bytes, readable by plain safetensors."""

from __future__ import annotations

import pytest
import torch
from helpers import make_unpaired


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_unpaired(tmp_path_factory.mktemp("rel_data"))


def test_exports_are_the_same_bytes_for_the_same_tensors_and_load_with_safetensors(tmp_path):
    from safetensors.torch import load_file

    from facesketch.tensorfile import safetensors_bytes

    ts = {"b.w": torch.randn(3, 4), "a.w": torch.randn(5).half(), "n": torch.arange(7), "h": torch.randn(2).bfloat16()}
    data = safetensors_bytes(ts, {"format": "x", "config": "{}"})
    assert data == safetensors_bytes(dict(reversed(list(ts.items()))), {"config": "{}", "format": "x"})
    (tmp_path / "t.safetensors").write_bytes(data)
    back = load_file(str(tmp_path / "t.safetensors"))
    assert set(back) == set(ts) and all(torch.equal(back[k], ts[k]) for k in ts)
