"""Training throughput: a reference-style loop (a) vs facesketch's training step (b), same model, same device, one run.

(a) behaves like the AttentionGAN/CycleGAN reference code with the paper's two prior losses added in the
    straightforward way: fp32, eager, NCHW, one forward call per network application in reference.md section 2
    order (G_A(A), G_B(fake_B), G_B(B), G_A(fake_A); D on real and fake separately), default (for-loop on CPU)
    Adam, no caching: the data pipeline decodes and resizes each image every time (PIL + torchvision transforms,
    as CycleGAN's UnalignedDataset), and the pseudo-GT normals are computed by DSINE on every step.
(b) facesketch: ``CycleGANStep`` (independent generator/discriminator calls batched, HED target without a graph),
    mixed precision / channels_last / fused Adam where they help, the uint8-cached data pipeline with pinned
    memory and persistent workers, and normals read from precomputed maps.

Before timing, both compute the losses of one identical batch in fp32 from identical weights and the script
checks they agree (relative tolerance stated below). Each variant is then timed in its own subprocess so that
peak memory is its own. Usage:
    python benchmarks/train_throughput.py --device cpu --size 128 --steps 6
    python benchmarks/train_throughput.py --device cuda --size 256 --steps 30 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from facesketch.losses.gan import ImagePool  # noqa: E402
from facesketch.losses.priors import EdgeLoss, NormalLoss  # noqa: E402
from facesketch.models import PatchDiscriminator, build_generator  # noqa: E402
from facesketch.training.step import CycleDiscriminators, CycleGANStep, CycleGenerators, StepSettings  # noqa: E402

LOSS_RTOL = 2e-4  # fp32, different call batching / op order: agreement to ~1e-6 expected, 2e-4 allowed
CONFIGS = {"paper": {"edge": 1.0, "normal": 10.0}, "no-prior": {"edge": 0.0, "normal": 0.0}}


# ------------------------------------------------------------------------------------------------ data


def make_image_folder(root: Path, n: int, size: int = 250) -> tuple[list[Path], list[Path]]:
    """FS2K photos/sketches if available (same files both variants read), else synthetic JPEGs."""
    from facesketch.data import fs2k

    fs = fs2k.find_root()
    if fs is not None:
        recs = fs2k.load_split(fs, "train")[:n]
        return [r.photo for r in recs], [r.sketch for r in recs]
    from PIL import Image

    rng = np.random.default_rng(0)
    A, B = [], []
    for i in range(n):
        for kind, lst in (("A", A), ("B", B)):
            p = root / kind / f"{i:04d}.jpg"
            p.parent.mkdir(parents=True, exist_ok=True)
            small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
            Image.fromarray(small).resize((size, size), Image.BICUBIC).save(p, quality=95)
            lst.append(p)
    return A, B


class ReferenceDataset(torch.utils.data.Dataset):
    """CycleGAN's UnalignedDataset: open + convert RGB + Resize(bicubic) + RandomCrop + flip + ToTensor + Normalize, every time."""

    def __init__(self, A, B, load, crop):
        import torchvision.transforms as T

        self.A, self.B = A, B
        self.tf = T.Compose([T.Resize([load, load], T.InterpolationMode.BICUBIC), T.RandomCrop(crop), T.RandomHorizontalFlip(),
                             T.ToTensor(), T.Normalize((0.5,) * 3, (0.5,) * 3)])  # fmt: skip

    def __len__(self):
        return max(len(self.A), len(self.B))

    def __getitem__(self, i):
        from PIL import Image

        a = self.tf(Image.open(self.A[i % len(self.A)]).convert("RGB"))
        b = self.tf(Image.open(self.B[np.random.randint(len(self.B))]).convert("RGB"))
        return {"A": a, "B": b}


def ours_loader(A, B, load, crop, batch, workers, device, normals: bool):
    from facesketch.data.datasets import EpochSampler, ImageBank, TargetBank, UnpairedDataset

    bank_A, bank_B = ImageBank(A, load), ImageBank(B, load)
    bank_A.validate(progress=False), bank_B.validate(progress=False)
    nb = None
    if normals:  # precomputed maps: random unit vectors stand in (reading them costs the same)
        nb = TargetBank([], load, negate_x_on_flip=True)
        v = np.random.default_rng(0).standard_normal((len(A), 3, load, load)).astype(np.float32)
        nb._data = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float16)
    ds = UnpairedDataset(bank_A, bank_B, load_size=load, crop_size=crop, seed=0, targets={"normals": nb} if nb else None,
                         context=("A_intrins",) if nb else ())
    sampler = EpochSampler(len(ds), seed=0)
    return torch.utils.data.DataLoader(ds, batch_size=batch, sampler=sampler, num_workers=workers, drop_last=True,
                                       pin_memory=device.type == "cuda", persistent_workers=workers > 0)  # fmt: skip


# ------------------------------------------------------------------------------------------------ networks


def build_nets(device, ngf=64, seed=0):
    torch.manual_seed(seed)
    nets = {k: build_generator("attention", ngf=ngf) for k in ("G_A", "G_B")}
    nets.update({k: PatchDiscriminator(ndf=64) for k in ("D_A", "D_B")})
    for k in ("D_A", "D_B"):
        from facesketch.models.generators import init_weights

        init_weights(nets[k])
    return {k: v.to(device) for k, v in nets.items()}


def build_priors(device, cfg):
    """HED, LPIPS-alex and DSINE: real weights when cached, otherwise random/synthetic ones (same cost)."""
    from facesketch.errors import UserError
    from facesketch.priors.frozen import FrozenPrior, InputConvention

    out = {}
    if cfg["edge"]:
        from facesketch.priors.build import build_edge_detector, build_lpips
        from facesketch.priors.hed import HED
        from facesketch.priors.lpips import LPIPS

        try:
            out["hed"] = build_edge_detector("auto", device=device)
        except UserError:
            out["hed"] = FrozenPrior(HED().to(device), name="hed", convention=InputConvention((0, 1), "BGR"), weights_source="random")
        try:
            out["lpips"] = build_lpips("alex", device=device)
        except UserError:
            out["lpips"] = FrozenPrior(LPIPS("alex").to(device), name="lpips", convention=InputConvention((-1, 1), "RGB"),
                                       weights_source="random")  # fmt: skip
    if cfg["normal"]:
        from facesketch.priors.dsine import build_normal_estimator

        out["dsine"] = build_normal_estimator(synthetic_seed=0, device=device)
    return out


# ------------------------------------------------------------------------------------------------ (a) reference step


class ReferenceStep:
    """The reference loop's optimize_parameters, with the edge and normal terms added where the paper puts them."""

    def __init__(self, nets, priors, cfg, lambda_cycle=0.1):
        self.n, self.p, self.cfg, self.lc = nets, priors, cfg, lambda_cycle
        self.opt_G = torch.optim.Adam(list(nets["G_A"].parameters()) + list(nets["G_B"].parameters()), 2e-4, betas=(0.5, 0.999))
        self.opt_D = torch.optim.Adam(list(nets["D_A"].parameters()) + list(nets["D_B"].parameters()), 2e-4, betas=(0.5, 0.999))
        self.pool_A, self.pool_B = ImagePool(50, 1), ImagePool(50, 2)

    @staticmethod
    def _mse_target(pred, real):
        return F.mse_loss(pred, torch.full_like(pred, 1.0 if real else 0.0))

    def __call__(self, real_A, real_B, normals_A=None):
        n, p, cfg = self.n, self.p, self.cfg
        fake_B = n["G_A"](real_A).image
        rec_A = n["G_B"](fake_B).image
        fake_A = n["G_B"](real_B).image
        rec_B = n["G_A"](fake_A).image
        for d in ("D_A", "D_B"):
            n[d].requires_grad_(False)
        self.opt_G.zero_grad()
        L = {"G_A": self._mse_target(n["D_A"](fake_B), True), "G_B": self._mse_target(n["D_B"](fake_A), True),
             "cycle_A": F.l1_loss(rec_A, real_A) * self.lc, "cycle_B": F.l1_loss(rec_B, real_B) * self.lc}  # fmt: skip
        if cfg["edge"]:
            bgr = lambda x: ((x + 1) / 2).flip(1)  # noqa: E731
            e_rec, e_real = p["hed"](bgr(rec_A)), p["hed"](bgr(real_A))
            L["edge"] = p["lpips"](e_rec.repeat(1, 3, 1, 1), e_real.repeat(1, 3, 1, 1), normalize=True).mean() * cfg["edge"]
        if cfg["normal"]:
            with torch.no_grad():
                target = p["dsine"]((real_A + 1) / 2) if normals_A is None else normals_A
            L["normal"] = F.mse_loss(p["dsine"]((rec_A + 1) / 2), target) * cfg["normal"]
        sum(L.values()).backward()
        self.opt_G.step()
        for d in ("D_A", "D_B"):
            n[d].requires_grad_(True)
        self.opt_D.zero_grad()
        fb, fa = self.pool_B.query(fake_B), self.pool_A.query(fake_A)
        L["D_A"] = 0.5 * (self._mse_target(n["D_A"](real_B), True) + self._mse_target(n["D_A"](fb.detach()), False))
        L["D_A"].backward()
        L["D_B"] = 0.5 * (self._mse_target(n["D_B"](real_A), True) + self._mse_target(n["D_B"](fa.detach()), False))
        L["D_B"].backward()
        self.opt_D.step()
        return {k: v.detach() for k, v in L.items()}


def ours_step(nets, priors, cfg, device, *, amp, channels_last, fused):
    G = CycleGenerators(nets["G_A"], nets["G_B"])
    D = CycleDiscriminators(nets["D_A"], nets["D_B"])
    if channels_last:
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    kw = {"fused": True} if (fused and device.type == "cuda") else {"foreach": True}
    opt_G = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999), **kw)
    opt_D = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999), **kw)
    terms = []
    if cfg["edge"]:
        terms.append(EdgeLoss(priors["hed"], priors["lpips"], cfg["edge"]))
    if cfg["normal"]:
        terms.append(NormalLoss(priors["dsine"], cfg["normal"]))
    from facesketch.config import LossConfig

    s = StepSettings.from_config(LossConfig(lambda_cycle_A=0.1, lambda_cycle_B=0.1), amp_dtype=amp, channels_last=channels_last)
    return CycleGANStep(G, D, opt_G, opt_D, s, terms, ImagePool(50, 1), ImagePool(50, 2))


# ------------------------------------------------------------------------------------------------ measurements


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def check_losses(device, size, cfg_name) -> float:
    """Max relative difference between (a) and (b) losses on one batch, fp32, identical weights."""
    cfg = CONFIGS[cfg_name]
    torch.manual_seed(1)
    real_A, real_B = torch.rand(4, 3, size, size, device=device) * 2 - 1, torch.rand(4, 3, size, size, device=device) * 2 - 1
    priors = build_priors(device, cfg)
    normals = None
    if cfg["normal"]:
        with torch.no_grad():
            normals = priors["dsine"]((real_A + 1) / 2)  # what the precomputed map holds for this exact crop
    a = ReferenceStep(build_nets(device), priors, cfg)(real_A, real_B)  # (a) recomputes the target itself
    b = ours_step(build_nets(device), priors, cfg, device, amp=None, channels_last=False, fused=False)(real_A, real_B, {"normals": normals} if normals is not None else None)
    worst = 0.0
    for k, v in a.items():
        rel = abs(v.item() - b[k].item()) / max(abs(v.item()), 1e-8)
        worst = max(worst, rel)
        if rel > LOSS_RTOL:
            raise SystemExit(f"loss mismatch for {k}: reference {v.item():.8f} vs facesketch {b[k].item():.8f}")
    return worst


def run_variant(variant, device, size, cfg_name, steps, warmup, workers, compile_):
    cfg = CONFIGS[cfg_name]
    load = int(round(size * 286 / 256))
    tmp = Path(tempfile.mkdtemp())
    A, B = make_image_folder(tmp, 64)
    nets, priors = build_nets(device), build_priors(device, cfg)
    if variant == "a":
        ds = ReferenceDataset(A, B, load, size)
        loader = torch.utils.data.DataLoader(ds, batch_size=4, shuffle=True, num_workers=workers, drop_last=True)
        step = ReferenceStep(nets, priors, cfg)
    else:
        from facesketch.device import amp_dtype as _amp_dtype

        loader = ours_loader(A, B, load, size, 4, workers, device, normals=bool(cfg["normal"]))
        amp = _amp_dtype("auto", device)
        step = ours_step(nets, priors, cfg, device, amp=amp, channels_last=device.type == "cuda", fused=True)
        if compile_:
            step.G, step.D = torch.compile(step.G), torch.compile(step.D)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    it, done, t0 = iter(_forever(loader)), 0, None
    data_time = 0.0
    for i in range(warmup + steps):
        if i == warmup:
            sync(device)
            t0, data_time = time.perf_counter(), 0.0
        td = time.perf_counter()
        batch = next(it)
        if variant == "a":
            real_A, real_B, normals = batch["A"].to(device), batch["B"].to(device), None
        else:
            from facesketch.data.transforms import to_model_range

            real_A = to_model_range(batch["A"].to(device, non_blocking=True))
            real_B = to_model_range(batch["B"].to(device, non_blocking=True))
            normals = batch["A_normals"].to(device, non_blocking=True).float() if "A_normals" in batch else None
        data_time += time.perf_counter() - td
        step(real_A, real_B, {"normals": normals} if normals is not None else None)
        done += 1 if i >= warmup else 0
    sync(device)
    dt = time.perf_counter() - t0
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"variant": variant, "config": cfg_name, "images_per_s": 4 * done / dt, "s_per_step": dt / done,
            "data_s_per_step": data_time / done, "peak_mem_mib": peak, "peak_kind": "cuda allocated" if device.type == "cuda" else "process RSS"}  # fmt: skip


def _forever(loader):
    while True:
        yield from loader


def breakdown(device, size, cfg_name, amp=None, reps=3) -> dict:
    """Seconds per training step spent in each component (forward + backward where the step needs a backward)."""
    import contextlib

    cfg = CONFIGS[cfg_name]
    nets, priors = build_nets(device), build_priors(device, cfg)
    x = torch.rand(4, 3, size, size, device=device) * 2 - 1
    ctx = (lambda: torch.autocast(device.type, dtype=amp)) if amp else contextlib.nullcontext

    def timeit(fn):
        with ctx():
            fn()
        sync(device)
        t = time.perf_counter()
        for _ in range(reps):
            with ctx():
                fn()
        sync(device)
        return (time.perf_counter() - t) / reps

    def g_cost():  # three batched generator calls with backward, as in one step
        xs = x.clone().requires_grad_(True)
        y = nets["G_A"](xs).image
        z = nets["G_B"](torch.cat([y, x])).image
        w = nets["G_A"](z[4:]).image
        (y.mean() + z.mean() + w.mean()).backward()

    def d_cost():
        (nets["D_A"](x).mean() + nets["D_B"](x).mean()).backward()
        (nets["D_A"](torch.cat([x, x])).mean() + nets["D_B"](torch.cat([x, x])).mean()).backward()

    out = {"G (fwd+bwd)": timeit(g_cost), "D (fwd+bwd)": timeit(d_cost)}
    if cfg["normal"]:
        def dsine():
            xs = x.clone().requires_grad_(True)
            priors["dsine"]((xs + 1) / 2).mean().backward()
        out["DSINE (fwd+bwd on rec_A)"] = timeit(dsine)
    if cfg["edge"]:
        def hed():
            xs = x.clone().requires_grad_(True)
            priors["hed"](((xs + 1) / 2).flip(1)).mean().backward()
            with torch.no_grad():
                priors["hed"](((x + 1) / 2).flip(1))
        out["HED (fwd+bwd rec_A, fwd real_A)"] = timeit(hed)
        e = torch.rand(4, 1, size, size, device=device)

        def lp():
            es = e.clone().requires_grad_(True)
            priors["lpips"](es.expand(-1, 3, -1, -1), e.expand(-1, 3, -1, -1), normalize=True).mean().backward()
        out["LPIPS (fwd+bwd)"] = timeit(lp)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--size", type=int, default=None, help="crop size (default 128 on CPU, 256 on CUDA)")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--configs", default="paper,no-prior")
    ap.add_argument("--compile", action="store_true", help="also torch.compile (b)")
    ap.add_argument("--json", help="write results here")
    ap.add_argument("--only", help=argparse.SUPPRESS)  # internal: run one variant in this process
    ap.add_argument("--no-breakdown", action="store_true")
    args = ap.parse_args()
    device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    size = args.size or (256 if device.type == "cuda" else 128)
    steps = args.steps or (30 if device.type == "cuda" else 6)
    workers = args.workers if args.workers is not None else (4 if device.type == "cuda" else 1)
    if args.only:
        v, cfg_name = args.only.split(":")
        print(json.dumps(run_variant(v, device, size, cfg_name, steps, args.warmup, workers, args.compile)))
        return
    hw = torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name()
    results = {"device": hw, "torch": torch.__version__, "size": size, "batch": 4, "threads": torch.get_num_threads(), "configs": {}}
    for cfg_name in args.configs.split(","):
        rel = check_losses(device, min(size, 64) if device.type == "cpu" else size, cfg_name)
        row = {"loss_check_max_rel_diff": rel}
        for v in ("a", "b"):
            cmd = [sys.executable, __file__, "--only", f"{v}:{cfg_name}", "--device", str(device), "--size", str(size),
                   "--steps", str(steps), "--warmup", str(args.warmup), "--workers", str(workers)] + (["--compile"] if args.compile else [])  # fmt: skip
            out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
            if out.returncode != 0:
                raise SystemExit(out.stderr[-3000:])
            row[v] = json.loads(out.stdout.strip().splitlines()[-1])
        row["speedup"] = row["b"]["images_per_s"] / row["a"]["images_per_s"]
        if not args.no_breakdown:
            from facesketch.device import amp_dtype as _amp_dtype

            amp = _amp_dtype("auto", device)
            bd_a, bd_b = breakdown(device, size, cfg_name), breakdown(device, size, cfg_name, amp)
            bd_a["data"], bd_b["data"] = row["a"]["data_s_per_step"], row["b"]["data_s_per_step"]
            row["breakdown_s_per_step"] = {"a": bd_a, "b": bd_b, "b_precision": str(amp or "fp32")}
        results["configs"][cfg_name] = row
        print(f"{cfg_name}: loss check max rel diff {rel:.2e} (tolerance {LOSS_RTOL:g})")
    print(markdown(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


def _cpu_name() -> str:
    try:
        for ln in Path("/proc/cpuinfo").read_text().splitlines():
            if ln.startswith("model name"):
                return f"{ln.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    import platform

    return platform.processor() or "cpu"


def markdown(r: dict) -> str:
    lines = [f"Device: {r['device']}; torch {r['torch']}; {r['size']}x{r['size']}, batch {r['batch']}, {r['threads']} threads", "",
             "| config | (a) reference img/s | (b) facesketch img/s | speedup | (a) peak MiB | (b) peak MiB | loss check |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, row in r["configs"].items():
        a, b = row["a"], row["b"]
        lines.append(f"| {name} | {a['images_per_s']:.2f} | {b['images_per_s']:.2f} | {row['speedup']:.2f}x | {a['peak_mem_mib']:.0f} "
                     f"| {b['peak_mem_mib']:.0f} | {row['loss_check_max_rel_diff']:.1e} |")  # fmt: skip
    for name, row in r["configs"].items():
        if "breakdown_s_per_step" in row:
            bd = row["breakdown_s_per_step"]
            lines += ["", f"Cost per step, {name} (seconds; (a) fp32, (b) {bd['b_precision']}):", "",
                      "| component | (a) s/step | (b) s/step |", "|---|---|---|"]  # fmt: skip
            lines += [f"| {k} | {v:.3f} | {bd['b'][k]:.3f} |" for k, v in bd["a"].items()]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
