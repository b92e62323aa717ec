"""Every command that reads a checkpoint refuses one whose pickle needs code, in one line,
without running it (pvdm_core.io.checkpoint.load_tensors)."""

import os
import pickle

import numpy as np
import pytest
import torch

from pvdm_core.io.video_io import write_video


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("fmt", ["torch", "pickle"])
@pytest.mark.parametrize("command", ["sample", "extend", "encode", "convert"])
def test_code_pickles_are_refused_in_one_line(cli, tmp_path, recwarn, command, fmt):
    marker, evil = tmp_path / "pwned", tmp_path / "evil.pt"
    state = {"kind": "diffusion", "config": {}, "x": _Evil(marker)}
    if fmt == "torch":
        torch.save(state, evil)
    else:  # a plain pickle (protocol 4): torch warns about the protocol before refusing
        evil.write_bytes(pickle.dumps(state, protocol=4))
    video = write_video(tmp_path / "in.mp4", np.zeros((8, 16, 16, 3), np.uint8))
    args = {"sample": ["sample", "--model", evil, "-o", tmp_path / "out.mp4"],
            "extend": ["extend", video, "--model", evil, "-o", tmp_path / "out.mp4"],
            "encode": ["encode", video, "--ae", evil, "-o", tmp_path / "out.npz"],
            "convert": ["convert", evil, "--out", tmp_path / "out"]}[command]
    r = cli(*args, "--device", "cpu", code=2) if command != "convert" else cli(*args, code=2)
    assert not marker.exists()
    if fmt == "torch" or command != "convert":  # convert refuses a non-zip file before reading it
        assert "needs more than tensors to load (refused, nothing in it was run)" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "weights_only" not in r.stderr
    assert not [w for w in recwarn if "pickle" in str(w.message)]  # pytest holds warnings back from stderr
