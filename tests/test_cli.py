import json

import pytest
import yaml


def test_version_and_help(cli):
    assert cli("--version").stdout.startswith("pvdm ")
    r = cli("--help")
    for command in ("train-ae", "encode", "train-diffusion", "sample", "extend", "eval-fvd", "synth", "presets", "info"):
        assert command in r.stdout


def test_presets_table_and_show(cli):
    assert "sky256" in cli("presets").stdout
    cfg = yaml.safe_load(cli("presets", "show", "sky256").stdout)
    assert cfg["data"]["resolution"] == 256 and cfg["preset"] == "sky256"
    rows = cli.json("presets")["presets"]
    assert {row["name"] for row in rows} >= {"tiny", "ucf256"}


def test_bad_preset_one_line_exit_2(cli):
    r = cli("presets", "show", "nope", code=2)
    assert r.stderr.strip().count("\n") == 0 and "unknown preset 'nope'" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    assert "closest valid key: dim" in cli("presets", "show", "tiny", "--set", "ae.dimm=3", code=2).stderr


@pytest.mark.parametrize("args", [["train-ae"], ["train-diffusion", "--ae", "nowhere"], ["presets", "show", "tiny"]])
def test_fixed_choice_typo_exits_2_at_load_naming_the_choices(cli, tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)  # where a default run folder would go
    r = cli(*args, "--set", "sample.sampler=dimm", code=2)
    assert "config key sample.sampler must be one of ddpm, ddim, dpm, got 'dimm'" in r.stderr
    assert not (tmp_path / "runs").exists()  # refused before any run folder or training


def test_info_json_is_clean_stdout(cli):
    info = json.loads(cli("info", "--json", "--device", "cpu").stdout)
    assert info["device"] == "cpu" and info["device_reason"] == "chosen with --device"
    assert "i3d (FVD)" in info["weights"]


def test_info_reports_reference_model_sizes(cli):
    info = cli.json("info", "--preset", "sky256")
    assert abs(info["ae_params"] - 62_064_399) / 62_064_399 < 0.03
    assert abs(info["unet_params"] - 528_273_412) / 528_273_412 < 0.03
    small = cli.json("info", "--preset", "ucf256", "--set", "unet.base_channels=128")
    assert abs(small["unet_params"] - 132_163_588) / 132_163_588 < 0.03


def test_synth_writes_videos_progress_on_stderr(cli, tmp_path):
    out = cli.json("synth", tmp_path / "real", "--num", 2)
    assert out["num"] == 2 and all(p.endswith(".mp4") for p in out["videos"])
    assert "--num" in cli("synth", tmp_path / "x", "--num", 0, code=2).stderr


def test_missing_inputs_exit_2(cli, tmp_path):
    r = cli("encode", "--ae", tmp_path / "nope", tmp_path, "-o", tmp_path / "z.npz", code=2)
    assert "not found" in r.stderr and "Traceback" not in r.stderr
    cli("sample", "--model", tmp_path / "nope", "-o", tmp_path / "x.mp4", code=2)


def test_log_lines_drop_markup_when_piped(capsys):
    from pvdm_core.base.progress import log

    log("[yellow]warning: latents [1, 2] hold no pairs[/]")
    assert capsys.readouterr().err == "warning: latents [1, 2] hold no pairs\n"


def test_out_that_is_a_file_exits_2_and_keeps_the_file(cli, tmp_path):
    taken = tmp_path / "notes.txt"
    taken.write_text("mine")
    r = cli("train-ae", "--preset", "tiny", "--steps", 1, "--out", taken, code=2)
    assert "is a file, not a run folder" in r.stderr and "Traceback" not in r.stderr
    assert taken.read_text() == "mine"
