"""`pvdm demo`'s judgement of its samples: what a viewer checks first, measured.

- Shapes: the shape judge (evaluation/metrics/shape_judge.py, trained on real videos only)
  names the shape of every generated video; the share of class-conditional samples judged the
  class asked for, overall and per class, is the demo's headline number. The null-label (unconditional) samples
  get the judge's class distribution, the reconstructions its accuracy (the ceiling).
- Continuity: the jump at the boundary between two generated clips, against the frame-to-frame
  change inside them (evaluation/metrics/continuity.py; a real video scores about 1).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pvdm_core.data.labels import class_of
from pvdm_core.evaluation.metrics.continuity import boundary_jump
from pvdm_core.evaluation.metrics.shape_judge import Judge, to_float_videos
from pvdm_core.io.checkpoint import load_tensors
from pvdm_core.io.video_io import read_video
from pvdm_core.tools.demo.state import DemoRun


def read_videos(folder: Path) -> tuple[list[Path], np.ndarray]:
    """The mp4s of a folder in name order, as uint8 (N, T, H, W, 3)."""
    paths = sorted(folder.glob("*.mp4"))
    return paths, np.stack([read_video(p) for p in paths])


def class_shares(judge: Judge, videos: np.ndarray, want: np.ndarray, names: list[str]) -> dict:
    """Share of videos judged their requested class `want` (N,), overall and per class name."""
    pred = judge.predict(to_float_videos(videos)).numpy()
    per_class = {name: float((pred[want == c] == c).mean()) for c, name in enumerate(names) if (want == c).any()}
    return {"share": float((pred == want).mean()), "per_class": per_class, "videos": len(want)}


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
        "null_label_classes": {name: float((null_pred == c).mean()) for c, name in enumerate(names)},
    }


def score_demo(run: DemoRun) -> dict:
    """The judge's shares (class-conditional models) and the clip-boundary jump of the long samples."""
    _, long = read_videos(run.path("long"))
    out = {"boundary": boundary_jump(long, run.cfg.data.frames)}
    if run.class_names:
        judge = Judge.from_state_dict(load_tensors(run.path("judge.pt"), "shape judge"))
        out["judge"] = judge_samples(run, judge, long)
    return out
