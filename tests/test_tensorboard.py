"""run.tensorboard=true: event files under the run folder hold metrics.jsonl's scalars and the previews."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from helpers import SMALL
from pvdm_core.data.synthetic import synthetic_video
from pvdm_core.io.video_io import to_uint8, write_video
from pvdm_core.training.reporting import RunReporter

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402


def events(log_dir) -> EventAccumulator:
    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def scalars(acc: EventAccumulator, tag: str) -> list[tuple[int, float]]:
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_train_ae_writes_scalars_and_preview_videos(tmp_path, cli):
    r = cli("train-ae", "--out", tmp_path, "--steps", 4, "--batch-size", 2, *SMALL,
            "--set", "ae_train.log_every=1", "--set", "ae_train.eval_every=2", "--set", "run.tensorboard=true")
    assert "train-ae step" not in r.stderr  # PVDM_NO_PROGRESS=1 (conftest) keeps the lines off
    acc = events(tmp_path / "tensorboard")
    tags = acc.Tags()
    assert {"train/loss", "train/l1", "train/lr", "train/it_s", "test/psnr", "test/ssim"} <= set(tags["scalars"])
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train = [m for m in records if "split" not in m]
    test = [m for m in records if m.get("split") == "test"]
    assert scalars(acc, "train/loss") == [(m["step"], pytest.approx(m["loss"], rel=1e-6)) for m in train]
    assert scalars(acc, "test/psnr") == [(m["step"], pytest.approx(m["psnr"], rel=1e-6)) for m in test]
    assert [v for _, v in scalars(acc, "train/lr")] == pytest.approx([1e-3] * 4)
    previews = acc.Images("preview")
    assert [p.step for p in previews] == [2, 4]
    assert previews[0].encoded_image_string[:6] == b"GIF89a" and (previews[0].width, previews[0].height) == (2 * 16, 4 * 16)  # input | recon, 4 clips


def test_reporter_events_text_and_resume_purge(tmp_path):
    video = tmp_path / "preview.mp4"
    write_video(video, to_uint8(synthetic_video(0, 4, 16)))
    report = RunReporter(tmp_path, "train-diffusion", 10, tensorboard=True)
    with report.live(0):
        for step in (2, 4, 6):
            report.write(step=step, loss=1.0 / step, loss_ema=1.5 / step, lr=1e-3, it_s=5.0)
        report.write(step=4, event="gan_divergence", psnr=20.0, best_psnr=25.0, action="GAN phase stopped")
        report.preview(video, 4)
    with report.live(4):  # resumed from step 4: TensorBoard purges the crashed run's step 6
        report.write(step=6, loss=0.5, loss_ema=0.4, lr=1e-3, it_s=5.0)
    acc = events(tmp_path / "tensorboard")
    assert scalars(acc, "train/loss") == [(2, 0.5), (4, 0.25), (6, 0.5)]
    assert scalars(acc, "gan_divergence/best_psnr") == [(4, 25.0)]
    assert acc.Images("preview")[0].width == 16
    text = acc.Tensors("events/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "gan_divergence" in text and "GAN phase stopped" in text


def test_missing_tensorboard_is_one_line_exit_2(tmp_path, monkeypatch, cli):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard -> ImportError
    r = cli("train-ae", "--out", tmp_path, "--steps", 2, *SMALL, "--set", "run.tensorboard=true", code=2)
    assert r.stderr.strip().count("\n") == 0, r.stderr
    assert "pip install 'pvdm[tensorboard]'" in r.stderr
    assert not np.any([p.suffix == ".pt" for p in tmp_path.iterdir()])
