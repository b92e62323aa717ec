import pytest
import yaml

from pvdm_core.base.config import config_hash, given_keys, load_config, parse_set, preset_names, resolve_config
from pvdm_core.base.errors import BadInputError


def test_presets_listed_and_load():
    assert {"tiny", "sky128", "sky256", "ucf128", "ucf256"} <= set(preset_names())
    for name in preset_names():
        cfg = load_config(name)
        assert cfg.preset == name
        assert cfg.data.resolution % cfg.ae.patch_size == 0


def test_reference_hyperparameters_from_spec():
    sky, ucf = load_config("sky256"), load_config("ucf256")
    assert (sky.diffusion.cond_prob, ucf.diffusion.cond_prob) == (0.2, 0.3)
    assert sky.ae.dim == 384 and sky.ae.depth == 8 and sky.ae.patch_size == 8
    assert sky.ae_train.betas == [0.5, 0.9] and sky.ae_train.batch_size == 24  # the reference's 8 x 3
    assert sky.diffusion_train.batch_size == 64  # global; the accumulation is a memory setting (`pvdm plan`)
    assert sky.unet.base_channels == 256 and sky.unet.channel_mult == [1, 2, 4, 4]
    assert sky.diffusion_train.ema_decay == 0.9999


def test_merge_order_preset_file_set(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump({"ae_train": {"lr": 0.5, "steps": 7}}))
    cfg = load_config("tiny", f, ["ae_train.lr=2e-4", "unet.channel_mult=[1, 2, 2]"])
    assert cfg.ae_train.lr == pytest.approx(2e-4)  # --set wins over the file
    assert cfg.ae_train.steps == 7  # the file wins over the preset
    assert cfg.unet.channel_mult == [1, 2, 2]


def test_unknown_key_names_closest():
    with pytest.raises(BadInputError, match=r"unknown config key ae_train.lrr \(closest valid key: lr\)"):
        load_config("tiny", overrides=["ae_train.lrr=1"])
    with pytest.raises(BadInputError, match="unknown config key daata"):
        load_config("tiny", overrides=["daata.root=x"])


def test_wrong_types_rejected():
    with pytest.raises(BadInputError, match="ae.dim must be int"):
        load_config("tiny", overrides=["ae.dim=abc"])
    with pytest.raises(BadInputError, match="must be int"):
        load_config("tiny", overrides=["ae.dim=true"])
    with pytest.raises(BadInputError, match="must be a list"):
        load_config("tiny", overrides=["unet.channel_mult=3"])
    assert load_config("tiny", overrides=["ae_train.lr=1"]).ae_train.lr == 1.0  # int -> float is fine


@pytest.mark.parametrize("key, typo, choices", [
    ("data.dataset", "folders", "synthetic, folder, sky, ucf"), ("run.amp", "fp8", "auto, off, bf16, fp16"),
    ("diffusion.prediction", "x0", "eps, v"), ("diffusion.cond_draw", "batches", "example, batch"),
    ("sample.sampler", "dimm", "ddpm, ddim, dpm"), ("sample.noise", "per_video", "per-video, release")])
def test_fixed_choice_typos_name_the_choices(key, typo, choices):
    with pytest.raises(BadInputError, match=f"^config key {key} must be one of {choices}, got '{typo}'$"):
        load_config("tiny", overrides=[f"{key}={typo}"])
    assert load_config("tiny", overrides=[f"{key}={choices.split(', ')[-1]}"])  # every choice loads


def test_given_keys_are_the_users_not_the_presets(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump({"ae": {"dim": 8, "depth": 1}}))
    assert given_keys(f, ["data.frames=8", "run.seed=1"]) == {"ae.dim", "ae.depth", "data.frames", "run.seed"}
    assert given_keys(None, [], data="/videos") == {"data.dataset", "data.root"}


def test_unknown_preset_and_bad_file(tmp_path):
    with pytest.raises(BadInputError, match="unknown preset"):
        load_config("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n")
    with pytest.raises(BadInputError, match="mapping"):
        load_config("tiny", bad)
    with pytest.raises(BadInputError, match="not found"):
        load_config("tiny", tmp_path / "missing.yaml")


def test_parse_set_yaml_values():
    assert parse_set("a.b=1e-4") == {"a": {"b": 1e-4}}
    assert parse_set("a=null") == {"a": None}
    with pytest.raises(BadInputError):
        parse_set("novalue")


def test_data_shortcut_and_roundtrip():
    cfg = resolve_config("tiny", None, [], data="/videos", section="ae_train", steps=5)
    assert cfg.data.dataset == "folder" and cfg.data.root == "/videos" and cfg.ae_train.steps == 5
    again = load_config(None, None, [])
    assert again.to_dict().keys() == cfg.to_dict().keys()
    assert config_hash(cfg.ae) == config_hash(load_config("tiny").ae)
    assert config_hash(cfg.ae) != config_hash(load_config("sky256").ae)


def test_every_preset_batch_splits_into_micro_batches():
    from pvdm_core.training.toolbox import micro_batches

    for name in preset_names():
        cfg = load_config(name)
        for tc in (cfg.ae_train, cfg.diffusion_train):
            assert micro_batches(tc.batch_size, tc.grad_accum) * tc.grad_accum == tc.batch_size, name
