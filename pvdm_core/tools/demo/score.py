"""`pvdm demo`'s judgement of its samples: what a viewer checks first, measured.

- Shapes: the shape judge (evaluation/metrics/shape_judge.py, trained on real videos only)
  names the shape of every generated video; the share of class-conditional samples judged the
  class asked for, overall and per class, is the demo's headline number. The null-label (unconditional) samples
  get the judge's class distribution, the reconstructions its accuracy (the ceiling).
- Continuity: the jump at the boundary between two generated clips, against the frame-to-frame
  change inside them (evaluation/metrics/continuity.py; a real video scores about 1), and the
  autoencoder's own jump (its floor): held-out 32-frame videos whose two clips are encoded and
  decoded apart, as every generated clip is decoded. A generator cannot go below that floor,
  whose reconstruction error differs from one clip to the next (benchmarks/RESULTS.md, "Learning").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pvdm_core.artifacts.load import load_autoencoder
from pvdm_core.data.labels import class_of
from pvdm_core.data.synthetic import synthetic_video
from pvdm_core.evaluation.metrics.continuity import boundary_jump, reconstruction_jump
from pvdm_core.evaluation.metrics.shape_judge import NONE, Judge, to_float_videos
from pvdm_core.generate.sample import ae_decode, ae_encode
from pvdm_core.io.checkpoint import load_tensors
from pvdm_core.io.video_io import read_video
from pvdm_core.tools.demo.plan import NUM_LONG
from pvdm_core.tools.demo.state import DemoRun


def read_videos(folder: Path) -> tuple[list[Path], np.ndarray]:
    """The mp4s of a folder in name order, as uint8 (N, T, H, W, 3)."""
    paths = sorted(folder.glob("*.mp4"))
    return paths, np.stack([read_video(p) for p in paths])


def class_shares(judge: Judge, videos: np.ndarray, want: np.ndarray, names: list[str]) -> dict:
    """Share of videos judged their requested class `want` (N,), overall and per class name, and
    what each class's videos were judged instead (`judged_as`: requested -> judged -> share)."""
    pred = judge.predict(to_float_videos(videos)).numpy()
    asked = [(c, name) for c, name in enumerate(names) if (want == c).any()]
    judged_as = {name: {seen: float((pred[want == c] == k).mean()) for k, seen in enumerate([*names, NONE])}
                 for c, name in asked}
    return {"share": float((pred == want).mean()), "per_class": {name: judged_as[name][name] for _, name in asked},
            "judged_as": judged_as, "videos": len(want),
            "judged_none": float((pred == len(names)).mean())}  # no shape a viewer could name


def judge_samples(run: DemoRun, judge: Judge, long: np.ndarray) -> dict:
    """The judge on the generated, null-label, reconstructed and `long` (uint8) videos."""
    names = run.class_names
    _, generated = read_videos(run.path("generated"))
    want = np.arange(len(generated)) % len(names)  # sample_videos cycles over the classes
    _, null = read_videos(run.path("null"))
    null_pred = judge.predict(to_float_videos(null)).numpy()
    recon_paths, recon = read_videos(run.path("recon"))
    truth = np.array([names.index(class_of(p.name.rsplit("_", 1)[0])) for p in recon_paths])
    return {
        "generated": class_shares(judge, generated, want, names),
        "long": class_shares(judge, long, np.arange(len(long)) % len(names), names),
        "reconstructed": class_shares(judge, recon, truth, names),
        "null_label_classes": {name: float((null_pred == c).mean()) for c, name in enumerate([*names, NONE])},
    }


def autoencoder_boundary_floor(run: DemoRun) -> dict[str, float]:
    """boundary_jump of NUM_LONG held-out 32-frame videos, each clip encoded and decoded on its own."""
    device = run.opts.device
    ae = load_autoencoder(run.path("ae"), device.device)
    d = ae.cfg.data
    videos = torch.stack([synthetic_video(run.test_seed(i), 2 * d.frames, d.resolution, d.class_labels)
                          for i in range(NUM_LONG)])  # (N, 3, 2T, H, W)
    return reconstruction_jump(lambda clip: ae_decode(ae.model, ae_encode(ae.model, clip, device), device), videos, d.frames)


def score_demo(run: DemoRun) -> dict:
    """The judge's shares (class-conditional models) and the clip-boundary jump of the long samples,
    with the autoencoder's own jump beside it."""
    _, long = read_videos(run.path("long"))
    out = {"boundary": {**boundary_jump(long, run.cfg.data.frames), "autoencoder_floor": autoencoder_boundary_floor(run)}}
    if run.class_names:
        judge = Judge.from_state_dict(load_tensors(run.path("judge.pt"), "shape judge"))
        out["judge"] = judge_samples(run, judge, long)
    return out
