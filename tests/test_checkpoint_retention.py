"""run.keep_checkpoints: the newest N step checkpoints stay, with `latest`, good.pt and marked ones."""

import os

from torch import nn

from pvdm_core.base.config import load_config
from pvdm_core.io.checkpoint import LATEST, prune_checkpoints
from pvdm_core.training.toolbox import TrainState


def _names(run_dir):
    return sorted(p.name for p in run_dir.iterdir())


def test_train_state_keeps_the_newest_n_and_marked(tmp_path):
    state = TrainState({"kind": "test", "config": {}}, 2, model=nn.Linear(2, 2))
    for step in range(1, 6):
        state.step = step
        state.save(tmp_path)
        if step == 2:
            (tmp_path / "step-0000002.pt.keep").touch()  # the user's milestone
            state.save(tmp_path, "good.pt")
    assert _names(tmp_path) == ["good.pt", LATEST, "step-0000002.pt", "step-0000002.pt.keep",
                                "step-0000004.pt", "step-0000005.pt"]
    assert (tmp_path / LATEST).read_text().strip() == "step-0000005.pt"


def test_prune_never_deletes_what_latest_names_and_zero_keeps_all(tmp_path):
    for i, step in enumerate((1, 2, 3)):
        f = tmp_path / f"step-000000{step}.pt"
        f.write_bytes(b"x")
        os.utime(f, ns=(i * 10**9, i * 10**9))
    assert prune_checkpoints(tmp_path, 0) == []
    (tmp_path / LATEST).write_text("step-0000001.pt\n")  # e.g. pointed back by hand: the oldest
    prune_checkpoints(tmp_path, 1)
    assert _names(tmp_path) == [LATEST, "step-0000001.pt", "step-0000003.pt"]


def test_reference_presets_bound_their_checkpoints():
    assert load_config("tiny").run.keep_checkpoints == 0  # default: keep all, as before
    for preset in ("ucf256", "sky256", "ucf128", "sky128"):
        assert load_config(preset).run.keep_checkpoints == 3
