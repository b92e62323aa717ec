"""DDP on CPU (gloo): 2 ranks x batch 2 give the same weights as 1 process x batch 4."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from pvdm_core.base import distributed as dist
from pvdm_core.base.errors import BadInputError
from pvdm_core.io.checkpoint import load_checkpoint
from pvdm_core.training.toolbox import TimeBudget

WORKER = textwrap.dedent("""
    import sys, torch
    from pathlib import Path
    from pvdm_core.base import distributed as dist
    from pvdm_core.base.config import load_config
    from pvdm_core.base.device import choose_device
    from pvdm_core.{module} import {fn}, {opts}
    cfg = load_config("tiny", overrides=[
        "ae.dim=32", "ae.depth=1", "ae.heads=2", "ae.proj_heads=2", "ae.proj_mlp_dim=64",
        "data.frames=8", "data.resolution=16", "data.synthetic_train=8", "data.synthetic_test=2",
        "ae_train.steps=2", "ae_train.batch_size=4", "ae_train.eval_every=100"])
    choice = choose_device("cpu")
    dist.setup(choice.device)
    run_dir = Path(sys.argv[1]) / (f"rank{{dist.rank()}}" if sys.argv[2:] == ["apart"] else "")
    run_dir.mkdir(parents=True, exist_ok=True)
    {fn}(cfg, {opts}(run_dir, choice))
""")


def _launch(tmp, world: int, apart: bool = False, code: int = 0) -> list[str]:
    """Run the worker in `world` processes, one run folder (apart: one per process, as on nodes
    without a shared filesystem); each must exit with `code`; their stderr."""
    script = WORKER.format(module="training.train_ae", fn="train_autoencoder", opts="AETrainOptions")
    port = dist.free_port()
    procs = []
    for rank in range(world):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1"}
        if world == 1:
            for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
                env.pop(k)
        procs.append(subprocess.Popen([sys.executable, "-c", script, str(tmp), *(["apart"] if apart else [])],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    errs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == code, err.decode()[-2000:]
        errs.append(err.decode())
    return errs


def test_two_gloo_ranks_match_one_process(tmp_path):
    _launch(tmp_path / "one", 1)
    _launch(tmp_path / "two", 2)
    single = load_checkpoint(tmp_path / "one")["model"]
    ddp = load_checkpoint(tmp_path / "two")["model"]
    for k in single:
        torch.testing.assert_close(ddp[k], single[k], rtol=0, atol=1e-5, msg=k)


@pytest.mark.slow
def test_a_run_folder_the_processes_do_not_share_is_refused(tmp_path):
    """Several nodes without a shared filesystem: each process would resume from its own view of
    the folder that only process 0 writes; a clear error at start instead."""
    errs = _launch(tmp_path, 2, apart=True, code=1)
    assert all("process(es) 1 on" in e and "filesystem all of them share" in e for e in errs), errs
    assert not list((tmp_path / "rank0").glob("*.pt"))


STOP_WORKER = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from pvdm_core.base import distributed as dist
    from pvdm_core.base.config import load_config
    from pvdm_core.base.device import choose_device
    from pvdm_core.training.train_ae import AETrainOptions, train_autoencoder
    cfg = load_config("tiny", overrides=[
        "ae.dim=16", "ae.depth=1", "ae.heads=1", "ae.proj_heads=1", "ae.proj_mlp_dim=16",
        "data.frames=4", "data.resolution=16", "data.synthetic_train=8", "data.synthetic_test=2",
        "ae_train.steps=200", "ae_train.batch_size=2", "ae_train.eval_every=1000", "ae_train.eval_clips=1"])
    choice = choose_device("cpu")
    dist.setup(choice.device)
    # only rank 0 has a (spent) time budget: it alone decides to stop, after its first step
    result = train_autoencoder(cfg, AETrainOptions(Path(sys.argv[1]), choice, max_time=1e-9 if dist.rank() == 0 else None))
    print(json.dumps({"step": result["step"], "stopped": result["stopped"], "checkpoint": result["checkpoint"]}))
""")


def test_a_stop_on_one_rank_stops_every_rank_at_the_same_step(tmp_path):
    """--max-time (or a signal) seen by one rank: every rank stops after the same step and the
    final checkpoint is written, instead of one rank saving while the other all-reduces (a hang)."""
    port = dist.free_port()
    procs = []
    for rank in range(2):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1"}
        procs.append(subprocess.Popen([sys.executable, "-c", STOP_WORKER, str(tmp_path)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    results = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=90)
            assert p.returncode == 0, err.decode()[-2000:]
            results.append(json.loads(out.decode().strip().splitlines()[-1]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert results[0]["step"] == results[1]["step"] < 200
    assert results[0]["stopped"] == results[1]["stopped"] == "max-time"
    saved = load_checkpoint(tmp_path)
    assert saved["step"] == results[0]["step"]


def _probe(total_s: float) -> dict:
    """Runs in each local rank: rank 1 has spent more of the same budget than rank 0."""
    share = TimeBudget(total_s, spent_s=10.0 * dist.rank()).share(torch.device("cpu"))
    return {"rank": dist.rank(), "world": dist.world_size(), "threads": torch.get_num_threads(), "share": share}


def _fails_on_rank_1() -> None:
    if dist.rank() == 1:
        raise BadInputError("rank 1 read a corrupt file")


def test_local_ranks_return_rank_0s_result_and_agree_on_the_time_share():
    """`pvdm demo --procs 2`: two processes of one thread, joined by gloo; the lr's time share is
    the largest of the ranks' (rank 0 alone would say ~0, rank 1 0.1), so both anneal alike."""
    out = dist.run_on_local_ranks(_probe, (100.0,), 2)
    assert (out["rank"], out["world"], out["threads"]) == (0, 2, 1)
    assert 0.1 <= out["share"] < 0.5
    assert dist.run_on_local_ranks(_probe, (100.0,), 1)["world"] == 1  # one process: no spawn, no group


def test_an_error_in_a_local_rank_is_raised_with_its_message_and_exit_code():
    with pytest.raises(BadInputError, match="rank 1 read a corrupt file"):
        dist.run_on_local_ranks(_fails_on_rank_1, (), 2)
