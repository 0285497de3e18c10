"""The training loop, top to bottom: set-up, data, networks, optimisers, resume, steps, logging, checkpoints, export.

Run directory layout:
    config.yaml          resolved configuration (every field)
    stats.jsonl          one JSON object per log interval (named scalars, lr, images/s, eval metrics)
    tb/                  the same scalars for TensorBoard
    samples/             step_XXXXXXXX.png grids of fixed test images and attention_XXXXXXXX.png mask panels
    checkpoints/         step_XXXXXXXX.pt full training states (latest ``keep_checkpoints`` kept)
    export/              model.safetensors: both generators + their config, for `facesketch translate`
    losses.png, report.html
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from facesketch import run_layout as layout
from facesketch.config import Config, save_config
from facesketch.data import fs2k
from facesketch.data.datasets import (
    EpochSampler,
    ImageBank,
    TargetBank,
    UnpairedDataset,
    build_banks,
    discover,
    hold_out,
    target_path,  # fmt: skip
)
from facesketch.data.transforms import from_model_range, load_size_for, to_model_range
from facesketch.device import amp_dtype, usable_cpus
from facesketch.errors import UserError
from facesketch.losses import priors as _priors  # noqa: F401  (registers the prior terms)
from facesketch.losses.gan import ImagePool
from facesketch.losses.registry import active_terms, build_terms, check_target_manifest
from facesketch.models import build_discriminator_from, build_generator_from
from facesketch.training import checkpoint as ck
from facesketch.training.distributed import DistInfo, barrier, init_distributed, shutdown
from facesketch.training.evaluator import make_evaluator
from facesketch.training.run import RunLog, RunOutputs, StopSignals, environment, prepare_run_dir
from facesketch.training.state import TrainState
from facesketch.training.stats import StatsAccumulator, StatsWriter
from facesketch.training.step import CycleDiscriminators, CycleGANStep, CycleGenerators, StepSettings

N_FIXED = 4  # test images per domain shown in sample grids


def lr_factor(epoch: int, n_epochs: int, n_epochs_decay: int) -> float:
    """Learning-rate multiplier for 0-based ``epoch``.

    The scheduler steps at the END of each epoch (AttentionGAN / original CycleGAN order), so 1-based epoch
    k trains at lr0 * (1 - max(0, k - n_epochs) / (n_epochs_decay + 1)): constant for the first n_epochs,
    then linear decay that never reaches 0 (the last epoch trains at lr0 / (n_epochs_decay + 1)).
    """
    return 1.0 - max(0, epoch + 1 - n_epochs) / float(n_epochs_decay + 1)


def resolve_data_root(cfg: Config) -> Path:
    if cfg.data.root:
        return Path(cfg.data.root)
    root = fs2k.find_root()
    if root is None:
        raise UserError(f"data.root is not set and {fs2k.FS2K_HOWTO}")
    return root


def _adam(params, cfg: Config, device: torch.device) -> torch.optim.Adam:
    t = cfg.train
    kw = {}
    mode = t.fused_adam if t.fused_adam != "auto" else ("fused" if device.type == "cuda" else "foreach")
    if mode == "fused":
        kw["fused"] = True
    elif mode == "foreach":
        kw["foreach"] = True
    else:
        kw["foreach"] = False
    return torch.optim.Adam(params, lr=t.lr, betas=(t.beta1, t.beta2), **kw)


def _fixed_batch(cfg: Config, root: Path, device: torch.device) -> tuple:
    """The first N_FIXED test photos and sketches (train ones if there is no test phase), resized to the model's image
    size; for a style-conditioned model also the styles to draw the photos in (0, 1, 2, ... in turn) and the sketches' own."""
    try:
        files = discover(root, "test", cfg.data.source)
    except UserError:
        files = discover(root, "train", cfg.data.source)
    size = cfg.image_size
    A = ImageBank(files.A[:N_FIXED], size, cache=False)
    B = ImageBank(files.B[:N_FIXED], size, cache=False)
    to = lambda bank: to_model_range(torch.stack([torch.from_numpy(bank[i].transpose(2, 0, 1).copy()) for i in range(len(bank))]))  # noqa: E731
    a, b = to(A).to(device), to(B).to(device)
    if not cfg.model.styles:
        return a, b, None, None
    style_A = torch.arange(a.shape[0], device=device) % cfg.model.styles
    labels = files.styles_B[: b.shape[0]] if files.styles_B is not None else [0] * b.shape[0]
    return a, b, style_A, torch.tensor([min(x, cfg.model.styles - 1) for x in labels], device=device)


@torch.no_grad()
def save_samples(run_dir: Path, step: int, G: CycleGenerators, fixed: tuple[torch.Tensor, torch.Tensor]) -> Path:
    """Grid of real_A, fake_B, rec_A, real_B, fake_A, rec_B for the fixed test images, plus G_A's attention masks."""
    from facesketch.data.images import save_image_atomic
    from facesketch.report.grids import attention_panel, sample_grid

    from facesketch.training.step import _g

    real_A, real_B, style_A, style_B = fixed
    G_A, G_B = G.G_A, G.G_B
    out_A = _g(G_A, real_A, style_A)
    fake_B = out_A.image
    rec_A = G_B(fake_B).image
    fake_A = G_B(real_B).image
    rec_B = _g(G_A, fake_A, style_B).image
    n = min(real_A.shape[0], real_B.shape[0])
    cols = {k: from_model_range(v[:n]).cpu().numpy() for k, v in
            dict(real_A=real_A, fake_B=fake_B, rec_A=rec_A, real_B=real_B, fake_A=fake_A, rec_B=rec_B).items()}  # fmt: skip
    path = layout.sample_file(run_dir, step)
    save_image_atomic(sample_grid(cols), path)
    if out_A.attention is not None:
        panel = attention_panel(cols["real_A"][0], out_A.attention[0].float().cpu().numpy(), cols["fake_B"][0])
        save_image_atomic(panel, layout.sample_file(run_dir, step, "attention"))
    return path


def _check_finite(stats: dict, step: int) -> None:
    """Stop on the first non-finite loss term, naming the step and the term (before any checkpoint is written)."""
    values = torch.stack([v.detach().float().reshape(()) for v in stats.values()])
    if bool(torch.isfinite(values).all()):
        return
    bad = [f"{k}={v:g}" for k, v in zip(stats, values.cpu().tolist()) if not math.isfinite(v)]
    raise UserError(f"step {step}: non-finite loss ({', '.join(bad)}); training stopped, checkpoints and export left "
                    "as they were (lower train.lr, check the data, or --resume from the last checkpoint)")  # fmt: skip


def train(cfg: Config, run_dir: str | Path, *, resume: bool = False) -> dict:
    """Train a model as ``cfg`` says, writing everything into ``run_dir``. Returns a summary dict (rank 0)."""
    run_dir = Path(run_dir)
    dist = init_distributed(cfg.train.device)
    try:
        with StopSignals() as signals:
            return _train(cfg, run_dir, resume, dist, signals)
    finally:
        shutdown(dist)


def _train(cfg: Config, run_dir: Path, resume: bool, dist: DistInfo, signals: StopSignals) -> dict:
    t, device, main = cfg.train, dist.device, dist.is_main
    prepare_run_dir(run_dir, resume, write=main)
    state = None
    if resume:
        found = ck.latest_checkpoint(run_dir)
        if found is None:
            raise UserError(f"--resume: no readable checkpoint in {run_dir / 'checkpoints'}")
        state = found[1]
    say = RunLog(run_dir, enabled=main)
    if state is not None and main:
        say(f"resuming from {found[0]} (step {state['step']})")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = t.cudnn_benchmark
    amp = amp_dtype(t.amp, device)
    channels_last = t.channels_last == "on" or (t.channels_last == "auto" and device.type == "cuda")

    # ---- frozen priors first: a missing weight file should fail before minutes of data loading
    terms = build_terms(cfg.loss, cfg.priors, device)
    specs = active_terms(cfg.loss)  # what the enabled built terms ask of the data pipeline

    # ---- data: validated once, cached as uint8; each term's precomputed target served by its key
    root = resolve_data_root(cfg)
    files = discover(root, "train", cfg.data.source)
    files, holdout = hold_out(files, cfg.data.holdout)
    if cfg.data.max_items:
        k = cfg.data.max_items
        files.A, files.B, files.ids_A = files.A[:k], files.B[:k], files.ids_A[:k]
        files.styles_B = files.styles_B[:k] if files.styles_B is not None else None
    n_styles = cfg.model.styles
    if n_styles:
        if files.styles_B is None:
            raise UserError(f"model.styles={n_styles}: the sketches of {root} carry no style labels (FS2K's annotations, or "
                            "ROOT/styles.json mapping each trainB file stem to its style)")  # fmt: skip
        bad = sorted({x for x in files.styles_B if x >= n_styles})
        if bad:
            raise UserError(f"model.styles={n_styles}: the sketches are labelled with styles up to {max(bad)}; set model.styles={max(bad) + 1}")
    A, B = build_banks(files, load_size=cfg.data.load_size, crop_size=cfg.data.crop_size, preprocess=cfg.data.preprocess,
                       cache=cfg.data.cache, progress=t.progress and main)  # fmt: skip
    size = load_size_for(cfg.data.preprocess, cfg.data.load_size, cfg.data.crop_size)
    targets = {}
    for spec in specs:
        if spec.target is None:
            continue
        target = spec.target(cfg, root)
        check_target_manifest(target)
        bank = TargetBank([target_path(target.folder, root, p) for p in files.A], size, cache=cfg.data.cache,
                          negate_x_on_flip=target.negate_x_on_flip)  # fmt: skip
        bank.validate(target.howto)
        targets[target.key] = bank
    context = tuple(sorted({k for spec in specs for k in spec.context(cfg)}))
    dataset = UnpairedDataset(A, B, load_size=cfg.data.load_size, crop_size=cfg.data.crop_size, preprocess=cfg.data.preprocess,
                              flip=cfg.data.flip, seed=t.seed, serial=cfg.data.serial_batches, targets=targets,
                              context=context, styles_B=files.styles_B if n_styles else None, n_styles=n_styles)  # fmt: skip
    if t.batch_size > len(dataset):
        raise UserError(f"train.batch_size={t.batch_size} is more than the {len(dataset)} training images; "
                        f"use at most {len(dataset)}")  # fmt: skip
    sampler = EpochSampler(len(dataset), shuffle=not cfg.data.serial_batches, seed=t.seed, rank=dist.rank, world=dist.world)
    usable = usable_cpus()
    workers = cfg.data.num_workers if cfg.data.num_workers >= 0 else min(4, max(0, usable - 1))
    if workers > usable:
        say(f"note: data.num_workers={workers} capped at {usable}, the CPUs this process may use", err=True)
        workers = usable
    loader = DataLoader(dataset, batch_size=t.batch_size, sampler=sampler, num_workers=workers,
                        pin_memory=device.type == "cuda", persistent_workers=workers > 0, drop_last=False)  # fmt: skip
    steps_per_epoch = math.ceil(sampler.per_rank() / t.batch_size)
    total_epochs = t.n_epochs + t.n_epochs_decay
    total_steps = total_epochs * steps_per_epoch
    if t.max_steps:
        total_steps = min(total_steps, t.max_steps)
    fixed = _fixed_batch(cfg, root, device) if main else None

    # ---- networks, optimisers, schedules, pools: the TrainState (a checkpoint restores all of it)
    ts = build_state(cfg, dist, device, amp, channels_last)
    if state is not None:
        ts.restore(state, cfg, dist, device, say)
    G, D = ts.G, ts.D
    if dist.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [device.index] if device.type == "cuda" else None
        G, D = DDP(G, device_ids=ids), DDP(D, device_ids=ids)
    G_run, D_run = (torch.compile(G), torch.compile(D)) if t.compile else (G, D)
    settings = StepSettings.from_config(cfg.loss, amp_dtype=amp, channels_last=channels_last)
    step_fn = CycleGANStep(G_run, D_run, ts.opt_G, ts.opt_D, settings, terms, ts.pool_A, ts.pool_B, ts.scaler)

    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / layout.CONFIG)
        import json

        with open(run_dir / layout.ENVIRONMENT, "a", encoding="utf-8") as f:  # one line per start (resumes append)
            f.write(json.dumps(environment(device, amp)) + "\n")
    from tqdm import tqdm

    bar = tqdm(total=total_steps, initial=min(ts.step, total_steps), desc="training", unit="step",
               disable=not (t.progress and main), dynamic_ncols=True)  # fmt: skip
    out = RunOutputs(StatsWriter(run_dir, enabled=main, resume_step=ts.step if state is not None else None), say, bar,
                     steps_per_epoch * t.batch_size, dist.world)  # fmt: skip
    evaluator = make_evaluator(cfg, root, ts.G_eval, device, holdout, raw=ts.G if ts.ema is not None else None) \
        if (t.eval_every and main) else None
    say(f"run: {run_dir}  device: {device}  amp: {amp}  steps/epoch: {steps_per_epoch}  epochs: {total_epochs}"
        f"  images: {len(A)} photos / {len(B)} sketches", echo=main)  # fmt: skip

    # ---- the loop: epochs of steps; a stop (schedule, max_steps, max_minutes, a signal) ends it after a step
    t_start = time.time()
    last_ckpt_step = ts.step if state is not None else -1
    stop_reason = None
    while ts.epoch < total_epochs and stop_reason is None:
        if ts.step >= total_steps:
            stop_reason = "max_steps"
            break
        sampler.set_epoch(ts.epoch, start=ts.done_in_epoch)
        for batch in loader:
            real_A = to_model_range(batch["A"].to(device, non_blocking=True))
            real_B = to_model_range(batch["B"].to(device, non_blocking=True))
            tgt = {k: batch[f"A_{k}"].to(device, non_blocking=True).float() for k in targets}
            ctx = {k: batch[k].to(device) for k in context}
            styles = {"A": batch["A_style"], "B": batch["B_style"]} if n_styles else None
            stats = step_fn(real_A, real_B, tgt, ctx, styles)
            _check_finite(stats, ts.step + 1)
            ts.step += 1
            ts.update_ema()
            ts.done_in_epoch += real_A.shape[0]
            ts.acc.add(stats)
            ts.n_log += real_A.shape[0]
            bar.update(1)
            if ts.step % t.log_every == 0:
                out.log_line(ts)
            if main and (ts.step % t.sample_every == 0 or ts.step == 1):
                save_samples(run_dir, ts.step, ts.G_eval, fixed)
            if ts.step % t.checkpoint_every == 0:
                ts.save(cfg, dist, run_dir, t.keep_checkpoints)
                last_ckpt_step = ts.step
            if ts.step >= total_steps:
                stop_reason = "max_steps" if t.max_steps else "done"
                break
            if t.max_minutes and (time.time() - t_start) / 60 >= t.max_minutes:
                stop_reason = "max_minutes"
                break
            if signals.signum is not None:
                stop_reason = "signal"
                break
        # the epoch is complete when the sampler is exhausted (also when a stop landed exactly on its last batch)
        if ts.done_in_epoch >= sampler.per_rank():
            # schedulers step AFTER the epoch's last optimiser step, then evaluate every eval_every epochs
            ts.sched_G.step(), ts.sched_D.step()
            ts.epoch, ts.done_in_epoch = ts.epoch + 1, 0
            if evaluator is not None and ts.epoch % t.eval_every == 0:
                out.log_evaluation(ts, evaluator())
            barrier(dist)
    bar.close()
    if stop_reason is None:
        stop_reason = "done"
    if ts.step != last_ckpt_step:
        ts.save(cfg, dist, run_dir, t.keep_checkpoints)  # with the unfinished interval's sums, before the partial line empties them
    if ts.acc.count:
        out.log_line(ts, partial=True)
    summary = {"run_dir": str(run_dir), "step": ts.step, "epoch": ts.epoch, "stop": stop_reason,
               "minutes": (time.time() - t_start) / 60,
               "exit_code": 128 + int(signals.signum) if stop_reason == "signal" else 0}  # fmt: skip
    if main:
        save_samples(run_dir, ts.step, ts.G_eval, fixed)
        from facesketch.models.export_file import export_generators, model_meta

        G_out = ts.G_eval
        export_generators(run_dir / layout.EXPORT, {"G_A": G_out.G_A, "G_B": G_out.G_B}, model_meta(cfg))
        out.writer.close()
        from facesketch.report.run_report import write_run_report

        summary["report"] = str(write_run_report(run_dir))
        say(f"stopped ({stop_reason}) at step {ts.step}, epoch {ts.epoch}; export: {run_dir / layout.EXPORT}")
    barrier(dist)
    return summary


def build_state(cfg: Config, dist: DistInfo, device: torch.device, amp, channels_last: bool) -> TrainState:
    """A fresh TrainState: G and D by their symmetric factories from the model config (identical init on every rank;
    DDP also broadcasts rank 0's weights), Adam, the constant-then-linear schedule, seeded image pools."""
    t = cfg.train
    torch.manual_seed(t.seed)
    model = dataclasses.asdict(cfg.model)
    G = CycleGenerators(build_generator_from(model, "G_A"), build_generator_from(model, "G_B")).to(device)
    D = CycleDiscriminators(build_discriminator_from(model, "D_A"), build_discriminator_from(model, "D_B")).to(device)
    if channels_last:
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    opt_G, opt_D = _adam(G.parameters(), cfg, device), _adam(D.parameters(), cfg, device)
    lam = lambda e: lr_factor(e, t.n_epochs, t.n_epochs_decay)  # noqa: E731
    sched_G = torch.optim.lr_scheduler.LambdaLR(opt_G, lam)
    sched_D = torch.optim.lr_scheduler.LambdaLR(opt_D, lam)
    torch.manual_seed(t.seed + dist.rank)  # per-rank stream for anything random from here on
    pool_A = ImagePool(cfg.loss.pool_size, seed=t.seed * 1000 + 2 * dist.rank)
    pool_B = ImagePool(cfg.loss.pool_size, seed=t.seed * 1000 + 2 * dist.rank + 1)
    scaler = torch.amp.GradScaler(device.type) if amp == torch.float16 else None
    ema = None
    if t.ema_decay > 0:
        import copy

        ema = copy.deepcopy(G).requires_grad_(False).eval()
    return TrainState(G, D, opt_G, opt_D, sched_G, sched_D, scaler, pool_A, pool_B, StatsAccumulator(), ema=ema,
                      ema_decay=t.ema_decay)  # fmt: skip


