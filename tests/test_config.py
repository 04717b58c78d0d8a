"""TrainConfig: presets resolve, bad values fail with one line naming them, precedence."""
from __future__ import annotations

import argparse
import re

import pytest

from cotrain.config import PRESETS, TrainConfig, add_config_flags, config_from_args, load_yaml, resolve
from cotrain.errors import ConfigError


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


@pytest.mark.parametrize("key,value,named", [
    ("region_grid", "4", "region_grid='4' is invalid: must be HxW"),
    ("region_grid", "0x4", "must be HxW with H, W >= 1"),
    ("region_grid", "5x5", "region_grid=5x5 is invalid: both sides must divide crop_size=64"),
    ("aspp_rates", "6,12", "aspp_rates='6,12' is invalid: must be three comma-separated integers"),
    ("bsd_norm", "pixel", "bsd_norm='pixel' is invalid: allowed: batch, image"),
    ("kdcl_mode", "mean", "kdcl_mode='mean' is invalid: allowed: minlogit, naive, logit_mean"),
    ("ifvd_features", "stage3", "allowed: decoder, last"),
    ("update_order", "random", "allowed: joint, sequential"),
])
def test_method_options_are_validated(key, value, named):
    with pytest.raises(ConfigError, match=re.escape(named)):
        resolve("smoke", overrides={key: value})


def test_sequential_update_needs_one_worker():
    with pytest.raises(ConfigError, match="update_order=sequential is invalid with workers > 1"):
        resolve("smoke", overrides={"update_order": "sequential", "workers": 2})


def test_method_options_reach_build_pair():
    cfg = resolve("smoke", overrides={"region_grid": "4x2", "aspp_rates": "1,2,3", "bsd_norm": "image",
                                      "kdcl_mode": "naive", "ifvd_weight": 5, "ifvd_features": "last"})
    options = cfg.pair_options()
    assert options["region_grid"] == "4x2" and options["aspp_rates"] == (1, 2, 3)
    assert (options["bsd_norm"], options["kdcl_mode"], options["ifvd_weight"], options["ifvd_features"]) == \
        ("image", "naive", 5.0, "last")
    assert resolve("smoke").pair_options()["region_grid"] is None


def test_method_options_are_cli_flags():
    parser = argparse.ArgumentParser()
    add_config_flags(parser)
    args = parser.parse_args(["--region-grid", "2x2", "--bsd-norm", "image", "--ifvd-kd-weight", "0",
                              "--update-order", "sequential", "--preset", "smoke"])
    cfg = config_from_args(args)
    assert (cfg.region_grid, cfg.bsd_norm, cfg.ifvd_kd_weight, cfg.update_order) == ("2x2", "image", 0.0, "sequential")


def test_method_options_are_sweep_sets():
    from cotrain.sweep import parse_sets

    sets = parse_sets(["region_grid=4x4", "aspp_rates=12,24,36", "kdcl_mode=naive", "ifvd_weight=1"])
    cfg = resolve("smoke", overrides=sets)
    assert cfg.pair_options()["region_grid"] == "4x4" and cfg.pair_options()["aspp_rates"] == (12, 24, 36)
    assert cfg.kdcl_mode == "naive" and cfg.ifvd_weight == 1.0


def _flags(argv):
    parser = argparse.ArgumentParser()
    add_config_flags(parser)
    return config_from_args(parser.parse_args(argv))


def test_weights_none_on_the_command_line_overrides_a_preset_with_imagenet_weights():
    # Regression: "none" was parsed to None, which reads as "flag not given", so the paper
    # preset's imagenet weights silently won (and failed offline).
    assert _flags(["--preset", "paper"]).weights == "imagenet"
    assert _flags(["--preset", "paper", "--weights", "none"]).weights is None


@pytest.mark.parametrize("preset,dataset,expected", [
    # The paper's 512 crops and batch 4 on every dataset (its sentence names none); the epochs are our choice.
    ("paper", "camvid", {"crop_size": 512, "batch_size": 4, "epochs": 870, "weights": "imagenet"}),
    ("paper", "cityscapes", {"crop_size": 512, "batch_size": 4, "epochs": 215}),
    ("paper", "voc", {"crop_size": 512, "batch_size": 4, "epochs": 60}),
    ("cpu", "camvid", {"crop_size": 128, "batch_size": 8, "eval_size": "180x240", "train_scale": "0.25,0.75",
                       "max_train_steps": None}),
    ("cpu", "builtin", {"crop_size": 128, "max_train_steps": 60, "eval_size": None, "train_scale": "0.5,2.0"}),
])
def test_presets_depend_on_the_dataset(preset, dataset, expected):
    cfg = resolve(preset, overrides={"dataset": dataset})
    assert {k: getattr(cfg, k) for k in expected} == expected


def test_flags_and_files_override_a_dataset_preset():
    assert resolve("cpu", overrides={"dataset": "camvid", "crop_size": 256}).crop_size == 256
    assert resolve("cpu", file_values={"dataset": "camvid", "epochs": 3}).epochs == 3
    assert _flags(["--preset", "cpu", "--dataset", "camvid", "--eval-size", "none"]).eval_size is None


@pytest.mark.parametrize("key,value", [("train_scale", "2,1"), ("train_scale", "0,1"), ("train_scale", "a,b"),
                                       ("train_scale", "0.5"), ("eval_size", "180"), ("eval_size", "0x240")])
def test_bad_scale_and_eval_size_name_the_value_and_the_form(key, value):
    with pytest.raises(ConfigError) as info:
        resolve("smoke", overrides={key: value})
    assert f"{key}={value!r}" in str(info.value) and "e.g." in str(info.value)


def test_a_relative_data_root_becomes_absolute(tmp_path, monkeypatch):
    # Ray's workers run in other folders: a relative root only worked with --direct.
    monkeypatch.chdir(tmp_path)
    assert resolve("smoke", overrides={"data_root": "data/camvid"}).data_root == str(tmp_path / "data/camvid")
    assert resolve("smoke", overrides={"data_root": "s3://bucket/camvid"}).data_root == "s3://bucket/camvid"
    assert resolve("smoke").data_root is None
