from pathlib import Path

import numpy as np
import pytest
import torch

from pvdm_core.base.config import DataConfig
from pvdm_core.base.errors import BadInputError
from pvdm_core.data.datasets import build_dataset
from pvdm_core.data.synthetic import synthetic_video, write_synthetic_videos
from pvdm_core.io.video_io import write_video


def test_synthetic_is_deterministic_and_structured():
    a, b = synthetic_video(7, 16, 32), synthetic_video(7, 16, 32)
    assert torch.equal(a, b) and a.shape == (3, 16, 32, 32)
    assert not torch.equal(a, synthetic_video(8, 16, 32))
    assert torch.equal(synthetic_video(7, 32, 32)[:, :16], a)  # longer videos continue the same motion
    assert (a[:, 1:] - a[:, :-1]).abs().mean() > 0.005  # things move
    assert synthetic_video(3, 4, 48).shape == (3, 4, 48, 48)


def test_synthetic_splits_do_not_overlap():
    cfg = DataConfig(synthetic_train=4, synthetic_test=4)
    train, test = build_dataset(cfg, "train"), build_dataset(cfg, "test")
    train_seeds = {train.first_seed + i for i in range(len(train))}
    test_seeds = {test.first_seed + i for i in range(len(test))}
    assert not train_seeds & test_seeds
    assert build_dataset(cfg, "train", frames=32)[0].shape[1] == 32


def _folder(tmp_path, n=12):
    write_synthetic_videos(tmp_path / "vids", n, 20, 24, first_seed=0)
    return tmp_path / "vids"


def test_folder_dataset_split_and_clips(tmp_path):
    root = _folder(tmp_path)
    cfg = DataConfig(dataset="folder", root=str(root), resolution=16, frames=8, test_fraction=0.3)
    train, test = build_dataset(cfg, "train"), build_dataset(cfg, "test")
    assert len(train) + len(test) == 12 and len(test) > 0
    assert not set(map(str, train.videos)) & set(map(str, test.videos))
    clip = train[0]
    assert clip.shape == (3, 8, 16, 16) and clip.min() >= -1 and clip.max() <= 1
    assert torch.equal(test[0], test[0])  # test clips are the first window: deterministic


def test_unreadable_skipped_or_strict(tmp_path):
    root = _folder(tmp_path, 3)
    (root / "broken.mp4").write_bytes(b"garbage" * 50)
    write_video(root / "short.mp4", np.zeros((3, 24, 24, 3), np.uint8))
    cfg = DataConfig(dataset="folder", root=str(root), resolution=16, frames=8, test_fraction=0.0)
    ds = build_dataset(cfg, "train")
    clips = [ds[i] for i in range(len(ds))]
    assert all(c.shape == (3, 8, 16, 16) for c in clips)
    assert len(ds.skipped) == 2 and any("too short" in r for r in ds.skipped.values())
    strict = build_dataset(cfg, "train", strict=True)
    with pytest.raises(BadInputError):
        [strict[i] for i in range(len(strict))]


def test_sky_and_ucf_layouts(tmp_path):
    import imageio.v3 as iio

    for split in ("train", "test"):
        clip = tmp_path / "sky" / split / "vid0" / "clip0"
        clip.mkdir(parents=True)
        for i in range(10):
            iio.imwrite(clip / f"{i}.jpg", np.full((20, 30, 3), 20 * i, np.uint8))
    sky = build_dataset(DataConfig(dataset="sky", root=str(tmp_path / "sky"), resolution=16, frames=8), "test")
    assert len(sky) == 1 and sky[0].shape == (3, 8, 16, 16)

    ucf = tmp_path / "ucf"
    write_synthetic_videos(ucf / "Archery", 2, 10, 16, 0, fmt="mp4")
    for p in (ucf / "Archery").iterdir():
        p.rename(p.with_suffix(".avi"))
    names = sorted(p.name for p in (ucf / "Archery").iterdir())
    lists = ucf / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "trainlist01.txt").write_text(f"Archery/{names[0]} 1\n")
    (lists / "testlist01.txt").write_text(f"Archery/{names[1]}\n")
    cfg = DataConfig(dataset="ucf", root=str(ucf), resolution=16, frames=8)
    assert [p.name for p in build_dataset(cfg, "train").videos] == [names[0]]
    assert [p.name for p in build_dataset(cfg, "test").videos] == [names[1]]
    with pytest.raises(BadInputError, match="needs a location"):
        build_dataset(DataConfig(dataset="ucf"), "train")


def _long_video_run(tmp_path, monkeypatch, out: str) -> list[int]:
    """A tiny train-ae on two long videos (one train, one test); the train clip starts it read."""
    from pvdm_core.base.config import load_config
    from pvdm_core.base.device import choose_device
    from pvdm_core.data import datasets
    from pvdm_core.training.train_ae import AETrainOptions, train_autoencoder

    for split, seed in (("train", 0), ("test", 1)):
        write_synthetic_videos(tmp_path / "vids" / split, 1, 40, 16, first_seed=seed, fmt="frames")
    starts: list[int] = []
    real = datasets.load_clip

    def spy(path, start, *args):
        if Path(path).parent.name == "train":
            starts.append(start)
        return real(path, start, *args)

    cfg = load_config("tiny", overrides=[
        "ae.dim=16", "ae.depth=1", "ae.heads=1", "ae.proj_heads=1", "ae.proj_mlp_dim=16", "data.dataset=folder",
        f"data.root={tmp_path / 'vids'}", "data.frames=4", "data.resolution=16", "ae_train.steps=6",
        "ae_train.batch_size=2", "ae_train.eval_every=1000", "ae_train.eval_clips=1", "ae_train.ckpt_every=3"])
    with monkeypatch.context() as m:
        m.setattr(datasets, "load_clip", spy)
        train_autoencoder(cfg, AETrainOptions(tmp_path / out, choose_device("cpu"), max_time=None))
    return starts


def test_training_clip_of_a_long_video_moves_with_the_epoch(tmp_path, monkeypatch, one_thread):
    """Each epoch shows another window of a video (was: one fixed window for the whole run),
    the same windows in every run with the seed."""
    starts = _long_video_run(tmp_path, monkeypatch, "a")
    assert len(starts) == 12 and len(set(starts)) >= 4, starts  # 12 visits of a 40-frame video
    assert _long_video_run(tmp_path, monkeypatch, "b") == starts


def test_clip_window_is_a_function_of_index_and_epoch(tmp_path):
    from pvdm_core.training.toolbox import StepBatchSampler

    root = _folder(tmp_path, 3)
    cfg = DataConfig(dataset="folder", root=str(root), resolution=16, frames=4, test_fraction=0.0)
    ds = build_dataset(cfg, "train", seed=5, uint8=True)
    a = ds[(1, 0)]
    assert a.dtype == torch.uint8 and a.shape == (3, 4, 16, 16)
    assert torch.equal(build_dataset(cfg, "train", seed=5)[(1, 0)], a.float() / 127.5 - 1)
    assert torch.equal(ds[1], a)  # a plain index is epoch 0 (set_epoch)
    assert any(not torch.equal(ds[(1, e)], a) for e in range(1, 6))
    # the sampler's keys depend on the step alone: a resumed run gets the same items
    full = list(StepBatchSampler(3, 2, 0, 0, 6, epochs=True))
    assert list(StepBatchSampler(3, 2, 0, 4, 6, epochs=True)) == full[4:]
    assert [e for batch in full for _, e in batch] == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
