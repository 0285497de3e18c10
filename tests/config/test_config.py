"""The configuration: every shipped preset valid and only overriding, the paper's presets, bad values named by key."""

from __future__ import annotations


import pytest
import yaml
from conftest import ROOT

from facesketch.config import Config, load_config, preset_path
from facesketch.errors import UserError



@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "configs").glob("*.yaml")))
def test_every_shipped_config_is_valid(name):
    """Each preset loads (every key known, every value checked), names itself, and only overrides: each key it sets
    (or its parent sets) differs from the default or says so on purpose, and re-applying its resolved values is stable."""
    cfg = load_config(name)
    assert isinstance(cfg, Config) and cfg.name == name
    data = yaml.safe_load(preset_path(name).read_text())
    assert isinstance(data, dict) and set(data) - {"extends"} <= {"name", "data", "model", "loss", "priors", "train"}
    for section, values in data.items():
        if section in ("extends", "name"):
            continue
        for k, v in values.items():  # what the file says is what the resolved config holds, unless a child overrides
            assert getattr(getattr(cfg, section), k) == v or isinstance(v, str) and str(getattr(getattr(cfg, section), k)) == v
    assert load_config(None, base=cfg.to_dict()) == cfg  # the resolved config (as written into a run) round-trips


def test_paper_and_ablation_presets_say_what_they_are():
    paper = load_config("paper")
    assert (paper.loss.lambda_edge, paper.loss.lambda_normal, paper.loss.lambda_gan) == (1.0, 10.0, 1.0)
    assert (paper.loss.lambda_cycle_A, paper.loss.lambda_cycle_B, paper.loss.lambda_identity) == (0.1, 0.1, 0.0)
    assert (paper.train.lr, paper.train.batch_size, paper.train.n_epochs + paper.train.n_epochs_decay) == (2e-4, 4, 150)
    acg = load_config("attention-cyclegan")
    assert acg.loss.lambda_edge == acg.loss.lambda_normal == 0 and acg.model.generator == "attention"
    cg = load_config("cyclegan")
    assert cg.model.generator == "resnet" and cg.loss.lambda_cycle_A == 10 and cg.loss.lambda_identity == 0.5
    assert load_config("no-edge").loss.lambda_edge == 0 and load_config("no-edge").loss.lambda_normal == 10
    assert load_config("no-normal").loss.lambda_normal == 0 and load_config("no-normal").loss.lambda_edge == 1


@pytest.mark.parametrize("override, msg", [
    ("train.bacth_size=2", "unknown config key 'train.bacth_size'"),
    ("train.batch_size=two", "train.batch_size: expected an integer"),
    ("train.batch_size=0", "train.batch_size: must be between 1 and 4096"),
    ("data.crop_size=30", "data.crop_size: must be a multiple of 4"),
    ("data.load_size=100", "data.load_size: must be >= data.crop_size"),
    ("model.generator=unet", "model.generator"),
    ("loss.lambda_edge=-1", "loss.lambda_edge: must be a finite number >= 0"),
    ("train.amp=fp8", "train.amp"),
    ("nonsense", "expected key=value"),
])  # fmt: skip
def test_bad_config_values_name_the_key(override, msg):
    with pytest.raises(UserError, match=msg.replace(".", r"\.").replace("(", r"\(")):
        load_config(None, [override])


def test_bad_yaml_file_is_named(tmp_path):
    p = tmp_path / "x.yaml"
    p.write_text("train:\n  batch_size: [1, 2]\n")
    with pytest.raises(UserError, match="x.yaml: train.batch_size"):
        load_config(str(p))


def test_infinite_or_nan_settings_are_refused():
    for bad in ("train.lr=inf", "train.lr=nan", "train.batch_size=nan", "train.batch_size=1e400", "data.load_size=60000",
                "train.max_steps=-5", "train.max_minutes=-1", "loss.lambda_edge=inf"):  # fmt: skip
        with pytest.raises(UserError, match=bad.split("=")[0].split(".")[-1]):
            load_config("debug", [bad])


def test_on_off_values_reach_string_switches_from_flags_and_presets(tmp_path):
    cfg = load_config("debug", ["train.amp=off", "train.channels_last=off", "train.fused_adam=off"])
    assert (cfg.train.amp, cfg.train.channels_last, cfg.train.fused_adam) == ("off", "off", "off")
    preset = tmp_path / "p.yaml"
    preset.write_text("train:\n  amp: off\n  channels_last: on\n")
    cfg = load_config(str(preset))
    assert (cfg.train.amp, cfg.train.channels_last) == ("off", "on")


def test_a_config_built_in_code_is_checked_like_a_loaded_one():
    from facesketch.config import Config, LossConfig, ModelConfig, TrainConfig

    with pytest.raises(UserError, match="loss.gan_mode: use one of 'lsgan', 'vanilla'"):
        LossConfig(gan_mode="wgan")
    with pytest.raises(UserError, match="train.amp"):
        Config(train=TrainConfig(amp="fp8"))
    with pytest.raises(UserError, match="model.upsample"):
        ModelConfig(upsample="pixelshuffle")
    assert Config().loss.gan_mode == "lsgan"  # the defaults are valid
