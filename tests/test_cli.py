import json

import yaml
from typer.testing import CliRunner

from pvdm_cli.main import app
import pvdm_cli.commands  # noqa: F401  - registers the pipeline commands

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args))


def test_version_and_help():
    r = invoke("--version")
    assert r.exit_code == 0 and r.stdout.startswith("pvdm ")
    r = invoke("--help")
    assert r.exit_code == 0
    for command in ("train-ae", "encode", "train-diffusion", "sample", "extend", "presets", "info"):
        assert command in r.stdout


def test_presets_table_and_show():
    r = invoke("presets")
    assert r.exit_code == 0 and "sky256" in r.stdout
    r = invoke("presets", "show", "sky256")
    assert r.exit_code == 0
    cfg = yaml.safe_load(r.stdout)
    assert cfg["data"]["resolution"] == 256 and cfg["preset"] == "sky256"
    rows = json.loads(invoke("presets", "--json").stdout)["presets"]
    assert {row["name"] for row in rows} >= {"tiny", "ucf256"}


def test_bad_preset_one_line_exit_2():
    r = invoke("presets", "show", "nope")
    assert r.exit_code == 2
    assert r.stderr.strip().count("\n") == 0 and "unknown preset 'nope'" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    r = invoke("presets", "show", "tiny", "--set", "ae.dimm=3")
    assert r.exit_code == 2 and "closest valid key: dim" in r.stderr


def test_info_json_is_clean_stdout():
    r = invoke("info", "--json", "--device", "cpu")
    assert r.exit_code == 0
    info = json.loads(r.stdout)
    assert info["device"] == "cpu" and info["device_reason"] == "chosen with --device"
    assert "i3d (FVD)" in info["weights"]


def test_info_reports_reference_model_sizes():
    info = json.loads(invoke("info", "--preset", "sky256", "--json").stdout)
    assert abs(info["ae_params"] - 62_064_399) / 62_064_399 < 0.03
    assert abs(info["unet_params"] - 528_273_412) / 528_273_412 < 0.03
    small = json.loads(invoke("info", "--preset", "ucf256", "--set", "unet.base_channels=128", "--json").stdout)
    assert abs(small["unet_params"] - 132_163_588) / 132_163_588 < 0.03


def test_synth_writes_videos_progress_on_stderr(tmp_path):
    r = invoke("synth", str(tmp_path / "real"), "--num", "2", "--json")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["num"] == 2 and all(p.endswith(".mp4") for p in out["videos"])
    r = invoke("synth", str(tmp_path / "x"), "--num", "0")
    assert r.exit_code == 2 and "--num" in r.stderr


def test_missing_inputs_exit_2(tmp_path):
    r = invoke("encode", "--ae", str(tmp_path / "nope"), str(tmp_path), "-o", str(tmp_path / "z.npz"))
    assert r.exit_code == 2 and "not found" in r.stderr and "Traceback" not in r.stderr
    r = invoke("sample", "--model", str(tmp_path / "nope"), "-o", str(tmp_path / "x.mp4"))
    assert r.exit_code == 2


def test_log_lines_drop_markup_when_piped(capsys):
    from pvdm_core.progress import log

    log("[yellow]warning: latents [1, 2] hold no pairs[/]")
    assert capsys.readouterr().err == "warning: latents [1, 2] hold no pairs\n"
