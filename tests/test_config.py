"""TrainConfig: presets resolve, bad values fail with one line naming them, precedence."""
from __future__ import annotations

import argparse

import pytest

from cotrain.config import PRESETS, ConfigError, TrainConfig, add_config_flags, config_from_args, load_yaml, resolve


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_resolves(preset):
    cfg = resolve(preset)
    assert cfg.preset == preset
    for key, value in PRESETS[preset].items():
        assert getattr(cfg, key) == value, key
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("key,value,named", [
    ("alpha", -1.0, "alpha"), ("beta", -0.1, "beta"), ("gamma", -2, "gamma"),
    ("alpha", float("nan"), "alpha"), ("temperature", 0.0, "temperature"), ("temperature", -1.0, "temperature"),
    ("cnn", "vgg16", "vgg16"), ("vit", "mobilenet_v2", "mobilenet_v2"), ("method", "magic", "magic"),
    ("num_classes", 1, "num_classes"), ("crop_size", 100, "crop_size"), ("crop_size", 16, "crop_size"),
    ("epochs", 0, "epochs"), ("alpha", "big", "alpha"), ("hfd", "yes", "hfd"),
])
def test_bad_values_raise_one_line_naming_them(key, value, named):
    with pytest.raises(ConfigError) as info:
        resolve("smoke", overrides={key: value})
    message = str(info.value)
    assert named in message and "\n" not in message


def test_unknown_encoder_lists_allowed():
    with pytest.raises(ConfigError, match="mobilenet_v2"):
        resolve(overrides={"cnn": "resnet9000"})


def test_unknown_preset():
    with pytest.raises(ConfigError, match="preset"):
        resolve("huge")


def test_unknown_key_in_yaml_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("alpha: 0.5\nalhpa: 2\n")
    with pytest.raises(ConfigError) as info:
        resolve(file_values=load_yaml(path))
    assert "alhpa" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("text", ["alpha: [1, 2\n", "alpha: 1\n  beta: : 2\n", "key: 'unterminated\n"])
def test_bad_yaml_is_a_config_error(tmp_path, text):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_yaml(path)
    assert "bad.yaml" in str(info.value) and "\n" not in str(info.value)


def test_yaml_that_is_not_a_mapping_or_missing(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_yaml(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_yaml(tmp_path / "absent.yaml")


def parse(argv: list[str]) -> TrainConfig:
    parser = argparse.ArgumentParser()
    add_config_flags(parser)
    return config_from_args(parser.parse_args(argv))


def test_precedence_defaults_preset_file_flag(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("preset: smoke\nalpha: 0.5\nbeta: 0.2\nhfd: false\nepochs: 3\n")
    cfg = parse(["--config", str(path), "--alpha", "2", "--hfd"])
    assert cfg.alpha == 2.0          # flag beats file
    assert cfg.hfd is True           # flag beats file (BooleanOptionalAction)
    assert cfg.beta == 0.2           # file beats default
    assert cfg.epochs == 3           # file beats preset (smoke has 2)
    assert cfg.crop_size == 64       # preset beats default
    assert cfg.gamma == 1.0          # default
    assert parse(["--config", str(path), "--no-hfd", "--preset", "cpu"]).crop_size == 128


def test_flags_coerce_types_and_none():
    cfg = parse(["--preset", "smoke", "--gamma", "2", "--num-classes", "none", "--max-train-steps", "3"])
    assert cfg.gamma == 2.0 and isinstance(cfg.gamma, float)
    assert cfg.num_classes is None and cfg.max_train_steps == 3


def test_replace_validates():
    cfg = resolve("smoke")
    assert cfg.replace(epochs=3).epochs == 3
    with pytest.raises(ConfigError, match="alpha"):
        cfg.replace(alpha=-1)


def test_loss_options_follow_config():
    cfg = resolve("smoke", overrides={"alpha": 0.5, "bsd_pixel": False, "temperature": 2})
    options = cfg.loss_options()
    assert options["alpha"] == 0.5 and options["bsd_pixel"] is False and options["temperature"] == 2.0
