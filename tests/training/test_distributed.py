"""torchrun with 2 CPU processes (gloo): the same entry point trains with DDP, shards data, and only rank 0 writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from helpers import make_unpaired, tiny_overrides

from facesketch.training import checkpoint as ck


@pytest.mark.slow
def test_two_process_gloo_training_and_checkpoint(tmp_path):
    data = make_unpaired(tmp_path / "d", n_a=8, n_b=8)
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "facesketch",
           "train", "--config", "debug", "--out", str(run), "--device", "cpu",
           *tiny_overrides(data, **{"train.max_steps": 3})]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    # rank 0 alone writes: one stats line per step, one "stopped" message
    steps = [json.loads(x)["step"] for x in (run / "stats.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]
    assert res.stdout.count("stopped (max_steps)") == 1
    state = ck.load_train_state(ck.list_checkpoints(run)[-1])
    assert state["world"] == 2 and len(state["per_rank"]) == 2
    # 8 photos / 2 ranks / batch 2 = 2 steps per epoch per rank: 3 steps crossed one epoch
    assert state["epoch"] == 1 and state["samples_in_epoch"] == 2
    # each rank kept its own image pool (different fakes went in)
    pa, pb = (r["pool_A"]["images"] for r in state["per_rank"])
    assert pa.shape == pb.shape and not torch.equal(pa, pb)
    assert (run / "export" / "model.safetensors").is_file()
