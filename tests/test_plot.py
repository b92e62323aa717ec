"""`pvdm plot`: curves from metrics.jsonl, several runs overlaid, GAN events marked, clear errors."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from pvdm_core.io.plot import load_run, run_names


def write_run(run, records, config: str | None = None):
    run.mkdir(parents=True)
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    if config is not None:
        (run / "config.yaml").write_text(config)
    return run


def ae_records(n: int = 60) -> list[dict]:
    out = []
    for step in range(10, 10 * n + 1, 10):
        rec = {"time": 0.0, "step": step, "loss": 1.0 / step ** 0.5, "l1": 0.5 / step ** 0.5, "it_s": 3.0}
        if step > 300:
            rec.update(d_loss=1.9, g_adv=0.1)
        out.append(rec)
        if step % 100 == 0:
            out.append({"step": step, "split": "test", "psnr": 15 + step / 100, "ssim": step / 1000})
    out.append({"step": 450, "event": "gan_divergence", "psnr": 18.0, "best_psnr": 19.5, "action": "GAN learning rate scaled to 0.5"})
    return out


@pytest.fixture
def runs(tmp_path):
    ae = write_run(tmp_path / "ae", ae_records(), "ae_train:\n  steps: 600\n  disc_start: 300\n")
    dm = [{"step": s, "loss": 1.0 - s / 2000, "loss_ema": 1.0 - s / 2100} for s in range(10, 801, 10)]
    dm += [{"step": 400, "split": "fvd", "fvd": 3000.0}, {"step": 800, "split": "fvd", "fvd": 250.0}]
    return ae, write_run(tmp_path / "dm", dm)


def test_load_run_series_gan_marks_and_resume(tmp_path, runs):
    ae = load_run(runs[0], "ae")
    assert len(ae.loss) == 60 and len(ae.psnr) == 6 and ae.psnr[-1] == (600, 21.0)
    assert ae.gan_start == 300 and ae.gan_events == [(450, "GAN learning rate scaled to 0.5")]
    assert len(ae.loss_smooth) == 60 and ae.loss_smooth[0][1] < ae.loss[0][1]  # centred average
    assert load_run(runs[1], "dm").fvd == [(400, 3000.0), (800, 250.0)]
    # resumed at step 20 after logging up to 40 (the last line half-written): the re-logged steps win
    resumed = [{"step": s, "loss": 1.0} for s in (10, 20, 30, 40)] + [{"step": s, "loss": 2.0} for s in (30, 40, 50)]
    run = write_run(tmp_path / "resumed", resumed)
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 60, "lo')
    assert load_run(run, "r").loss == [(10, 1.0), (20, 1.0), (30, 2.0), (40, 2.0), (50, 2.0)]
    assert run_names([tmp_path / "a" / "ae", tmp_path / "b" / "ae", runs[1]]) == [
        str(tmp_path / "a" / "ae"), str(tmp_path / "b" / "ae"), "dm"]


def test_plot_writes_a_png_with_every_run(tmp_path, runs, cli):
    mpimg = pytest.importorskip("matplotlib.image")
    out = tmp_path / "curves.png"
    res = cli.json("plot", runs[0], runs[1], "-o", out)
    assert res["runs"] == ["ae", "dm"] and res["panels"] == ["loss", "psnr", "ssim", "fvd"]
    img = mpimg.imread(out)
    assert img.shape[:2] == (960, 1440)  # 2 x 2 panels of 6 x 4 inches at 120 dpi

    def has(rgb) -> bool:  # pixels of a run's line colour (matplotlib's C0 blue, C1 orange)
        return bool((np.abs(img[..., :3] - np.array(rgb) / 255).max(axis=-1) < 0.03).sum() > 200)

    assert has((31, 119, 180)) and has((255, 127, 14))


def one_line_error(cli, args: list) -> str:
    r = cli("plot", *args, code=2)
    assert r.stdout == "" and r.stderr.strip().count("\n") == 0, (r.stdout, r.stderr)
    return r.stderr


def test_plot_errors_are_one_line_exit_2(tmp_path, runs, monkeypatch, cli):
    (tmp_path / "empty").mkdir()
    write_run(tmp_path / "blank", [])
    png = tmp_path / "c.png"
    assert "empty: no metrics.jsonl (is it a pvdm run folder?)" in one_line_error(cli, [tmp_path / "empty", "-o", png])
    assert "missing: no metrics.jsonl" in one_line_error(cli, [runs[0], tmp_path / "missing", "-o", png])
    assert "no metrics records yet" in one_line_error(cli, [tmp_path / "blank", "-o", png])
    pytest.importorskip("matplotlib")  # the format check and the missing-package error below need it
    assert "cannot write .xyz" in one_line_error(cli, [runs[0], "-o", tmp_path / "c.xyz"])
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    assert "pip install 'pvdm[plot]'" in one_line_error(cli, [runs[0], "-o", png])
    assert not png.exists()
