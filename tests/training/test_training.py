"""Training: real steps on tiny data, exact resume, the learning-rate schedule, checkpoints, exports, configs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from helpers import make_unpaired, tiny_overrides

from facesketch.config import load_config
from facesketch.errors import UserError
from facesketch.training import checkpoint as ck
from facesketch.training.loop import lr_factor, train


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_unpaired(tmp_path_factory.mktemp("data") / "unpaired")


def _cfg(data, **extra):
    return load_config(None, tiny_overrides(data, **extra))


def _weights(run: Path) -> dict:
    state = ck.load_train_state(ck.list_checkpoints(run)[-1])
    return state


class _ToyGenerator(torch.nn.Module):
    """A 1x1 convolution with tanh: the smallest generator the registry can hold."""

    def __init__(self, width: int):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 1)
        self.width = width

    def forward(self, x):
        from facesketch.models import GeneratorOutput

        return GeneratorOutput(torch.tanh(self.conv(x)))


def test_a_few_real_steps_write_a_complete_run(data, tmp_path):
    run = tmp_path / "run"
    summary = train(_cfg(data, **{"train.max_steps": 3}), run)
    assert summary["step"] == 3 and summary["stop"] == "max_steps"
    stats = [json.loads(x) for x in (run / "stats.jsonl").read_text().splitlines()]
    assert [s["step"] for s in stats] == [1, 2, 3]
    for key in ("G_A", "G_B", "cycle_A", "cycle_B", "D_A", "D_B", "G_total", "attn_bg_A", "lr", "images_per_s"):
        assert key in stats[-1] and stats[-1][key] == stats[-1][key]  # present and not NaN
    assert yaml.safe_load((run / "config.yaml").read_text())["model"]["ngf"] == 4
    assert ck.list_checkpoints(run)[-1].name == "step_00000003.pt"
    assert (run / "export" / "model.safetensors").is_file()
    assert sorted(p.name for p in (run / "samples").glob("step_*.png")) == ["step_00000001.png", "step_00000003.png"]
    assert (run / "samples" / "attention_00000003.png").is_file()


def test_step_overfits_a_fixed_batch():
    """The G phase and the D phase both learn: on one repeated batch the cycle loss collapses and D separates."""
    from facesketch.models import PatchDiscriminator, build_generator
    from facesketch.training.step import (
        CycleDiscriminators,
        CycleGANStep,
        CycleGenerators,
        StepSettings,
    )

    torch.manual_seed(0)
    G = CycleGenerators(build_generator("attention", ngf=8, n_blocks=1, n_masks=3), build_generator("attention", ngf=8, n_blocks=1, n_masks=3))
    D = CycleDiscriminators(PatchDiscriminator(ndf=8), PatchDiscriminator(ndf=8))
    opt_G, opt_D = torch.optim.Adam(G.parameters(), 2e-3, betas=(0.5, 0.999)), torch.optim.Adam(D.parameters(), 2e-3, betas=(0.5, 0.999))
    from facesketch.config import LossConfig

    settings = StepSettings.from_config(LossConfig(lambda_cycle_A=10, lambda_cycle_B=10, lambda_identity=0.5))
    step = CycleGANStep(G, D, opt_G, opt_D, settings)
    smooth = lambda: torch.nn.functional.interpolate(torch.rand(2, 3, 4, 4) * 2 - 1, size=32, mode="bilinear")  # noqa: E731
    a, b = smooth(), smooth()
    first = step(a, b)
    assert set(first) >= {"G_A", "G_B", "cycle_A", "cycle_B", "idt_A", "idt_B", "D_A", "D_B", "G_total", "attn_bg_A"}
    assert all(v.dim() == 0 and not v.requires_grad for v in first.values())
    for _ in range(40):
        last = step(a, b)
    assert last["cycle_A"] < 0.5 * first["cycle_A"] and last["cycle_B"] < 0.5 * first["cycle_B"]
    assert last["D_A"] < first["D_A"] and last["D_B"] < first["D_B"]


def test_resume_is_bit_exact(data, tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    # batch 2 on 6 photos: 3 steps per epoch, so the resume point (step 2) is mid-epoch and step 4 crosses an epoch
    train(_cfg(data, **{"train.max_steps": 4, "train.n_epochs": 1, "train.n_epochs_decay": 2}), straight)
    train(_cfg(data, **{"train.max_steps": 2, "train.n_epochs": 1, "train.n_epochs_decay": 2}), split)
    from facesketch.cli import main

    assert main(["train", "--out", str(split), "--resume", "train.max_steps=4"]) == 0
    a, b = _weights(straight), _weights(split)
    assert a["step"] == b["step"] == 4 and a["epoch"] == b["epoch"] == 1
    for net in ("G_A", "G_B", "D_A", "D_B"):
        for k, v in a["nets"][net].items():
            assert torch.equal(v, b["nets"][net][k]), f"{net}.{k} differs after resume"
    for opt in ("opt_G", "opt_D"):
        for pid, st in a[opt]["state"].items():
            for k, v in st.items():
                assert torch.equal(v, b[opt]["state"][pid][k]), f"{opt} state {pid}.{k} differs"
    assert a["sched_G"]["last_epoch"] == b["sched_G"]["last_epoch"] == 1
    assert torch.equal(a["per_rank"][0]["pool_A"]["images"], b["per_rank"][0]["pool_A"]["images"])
    # the decayed lr after the first epoch is the same too
    assert a["opt_G"]["param_groups"][0]["lr"] == b["opt_G"]["param_groups"][0]["lr"] == pytest.approx(2e-4 * (1 - 1 / 3))
    # stats.jsonl of the resumed run has no duplicate steps
    steps = [json.loads(x)["step"] for x in (split / "stats.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]


def test_lr_schedule_steps_at_epoch_end():
    # 75 + 75: epochs 1..75 at lr0; epoch 76 at lr0 * (1 - 1/76); epoch 150 at lr0 / 76
    assert [lr_factor(e, 75, 75) for e in (0, 74)] == [1.0, 1.0]
    assert lr_factor(75, 75, 75) == pytest.approx(1 - 1 / 76)
    assert lr_factor(149, 75, 75) == pytest.approx(1 / 76)
    # scheduler stepping after each epoch reproduces those values on the optimiser
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=2e-4)
    sch = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: lr_factor(e, 2, 3))
    seen = []
    for _epoch in range(5):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sch.step()
    assert seen == pytest.approx([2e-4, 2e-4, 2e-4 * 3 / 4, 2e-4 * 2 / 4, 2e-4 * 1 / 4])


def test_lr_in_stats_follows_the_schedule(data, tmp_path):
    run = tmp_path / "run"
    # 3 steps per epoch; n_epochs 1 + decay 2 -> epoch 1 at lr0, epoch 2 at 2/3 lr0, epoch 3 at 1/3 lr0
    train(_cfg(data, **{"train.max_steps": 9, "train.n_epochs": 1, "train.n_epochs_decay": 2}), run)
    stats = [json.loads(x) for x in (run / "stats.jsonl").read_text().splitlines()]
    lrs = [round(s["lr"] / 2e-4, 6) for s in stats]
    assert lrs == [1, 1, 1, round(2 / 3, 6), round(2 / 3, 6), round(2 / 3, 6), round(1 / 3, 6), round(1 / 3, 6), round(1 / 3, 6)]


def test_refuses_to_overwrite_and_to_resume_nothing(data, tmp_path):
    run = tmp_path / "run"
    train(_cfg(data, **{"train.max_steps": 1}), run)
    with pytest.raises(UserError, match="--resume"):
        train(_cfg(data, **{"train.max_steps": 1}), run)
    with pytest.raises(UserError, match="no checkpoint"):
        train(_cfg(data), tmp_path / "empty", resume=True)


def test_corrupt_newest_checkpoint_falls_back(data, tmp_path):
    run = tmp_path / "run"
    train(_cfg(data, **{"train.max_steps": 2, "train.checkpoint_every": 1, "train.keep_checkpoints": 3}), run)
    ck.checkpoint_path(run, 2).write_bytes(b"garbage")
    path, state = ck.latest_checkpoint(run)
    assert path.name == "step_00000001.pt" and state["step"] == 1


def test_checkpoint_loading_never_unpickles_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    p = tmp_path / "step_00000001.pt"
    torch.save({"format": ck.FORMAT, "x": Evil()}, p)
    with pytest.raises(UserError, match="cannot read checkpoint"):
        ck.load_train_state(p)


def test_evaluation_during_training_logs_the_five_metrics(fs2k_dir, tmp_path):
    """train.eval_every: a fixed FS2K test subset is translated and scored; the metrics land in stats.jsonl."""
    over = tiny_overrides(fs2k_dir, **{"data.max_items": 4, "train.max_steps": 2, "train.n_epochs": 1, "train.n_epochs_decay": 1,
                                      "train.eval_every": 1, "train.eval_subset": 2})  # fmt: skip
    train(load_config(None, over), tmp_path / "run")
    stats = [json.loads(x) for x in (tmp_path / "run" / "stats.jsonl").read_text().splitlines()]
    evals = [s for s in stats if any(k.startswith("eval/") for k in s)]
    assert len(evals) == 1 and evals[0]["epoch"] == 1.0
    # the logged numbers are the export's scores on the same fixed subset (the run ends at that epoch)
    from facesketch.data import fs2k
    from facesketch.evaluation.during_training import evaluate_translator, spread_subset
    from facesketch.translate.load import load_translator

    records = spread_subset([r for r in fs2k.load_split(fs2k_dir, "test") if r.photo and r.sketch], 2)
    tr = load_translator(tmp_path / "run")
    metrics = tuple(k.split("/")[1] for k in evals[0] if k.startswith("eval/"))
    again = evaluate_translator(lambda imgs: tr.translate_arrays(imgs), records, metrics=metrics)
    for k in metrics:
        assert evals[0][f"eval/{k}"] == pytest.approx(again[k], rel=1e-6, abs=1e-9), k
    from facesketch.priors.build import build_lpips

    try:
        build_lpips("alex")
        lpips_available = True
    except UserError:
        lpips_available = False
    assert ("eval/lpips" in evals[0]) == lpips_available  # LPIPS is scored whenever its weights are cached
    assert (tmp_path / "run" / "report.html").is_file()


def test_a_run_records_its_environment_and_a_log_beside_the_stats(data, tmp_path):
    run = tmp_path / "run"
    train(_cfg(data, **{"train.max_steps": 2, "train.log_every": 1}), run)
    from facesketch.cli import main

    assert main(["train", "--out", str(run), "--resume", "train.max_steps=3"]) == 0
    envs = [json.loads(s) for s in (run / "environment.jsonl").read_text().splitlines()]
    assert len(envs) == 2  # one line per start
    from facesketch.device import amp_dtype as _amp_dtype

    amp = _amp_dtype("auto", torch.device("cpu"))  # bf16 on CPUs with AMX tiles, fp32 elsewhere
    assert envs[0]["torch"] == torch.__version__ and envs[0]["device"] == "cpu"
    assert envs[0]["amp"] == ("fp32" if amp is None else str(amp).replace("torch.", ""))
    assert {"git", "python", "cpu", "argv", "started", "facesketch"} <= set(envs[0])
    log = (run / "log.txt").read_text().splitlines()
    assert any("run: " in ln for ln in log) and any("resuming from" in ln for ln in log)
    steps = [ln for ln in log if "  step " in ln]
    assert len(steps) == 3 and "G_total" in steps[0]  # one line per stats.jsonl line
    assert sum(1 for ln in log if "stopped (max_steps)" in ln) == 2


def test_a_toy_generator_plugs_in_through_the_registry_alone(tmp_path, monkeypatch):
    """Register an architecture: training builds it from the config, the export carries the model config as a whole,
    and inference rebuilds it from the export alone."""
    import numpy as np

    from facesketch.models import GENERATORS, GeneratorSpec
    from facesketch.models.export_file import read_export
    from facesketch.translate.load import load_translator

    monkeypatch.setitem(GENERATORS, "toy-1x1", GeneratorSpec("toy-1x1", lambda m: _ToyGenerator(m["ngf"])))
    data = make_unpaired(tmp_path / "d")
    train(load_config(None, tiny_overrides(data, **{"model.generator": "toy-1x1", "train.max_steps": 2})), tmp_path / "run")
    meta, sds = read_export(tmp_path / "run" / "export" / "model.safetensors")
    assert meta["model"]["generator"] == "toy-1x1" and meta["model"]["ngf"] == 4 and set(sds["G_A"]) == {"conv.weight", "conv.bias"}
    tr = load_translator(tmp_path / "run" / "export" / "model.safetensors")
    assert isinstance(tr.G, _ToyGenerator) and tr.G.width == 4
    out = tr.translate_arrays([np.zeros((40, 48, 3), np.uint8)])
    assert out[0].shape == (32, 32, 3)
    with pytest.raises(UserError, match="model.generator"):
        load_config(None, ["model.generator=nope"])
