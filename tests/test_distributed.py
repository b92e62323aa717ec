"""DDP on CPU (gloo): 2 ranks x batch 2 give the same weights as 1 process x batch 4."""

import os
import socket
import subprocess
import sys
import textwrap

import torch

from pvdm_core.checkpoint import load_checkpoint

WORKER = textwrap.dedent("""
    import sys, torch
    from pathlib import Path
    from pvdm_core import distributed as dist
    from pvdm_core.config import load_config
    from pvdm_core.device import choose_device
    from pvdm_core.{module} import {fn}, {opts}
    cfg = load_config("tiny", overrides=[
        "ae.dim=32", "ae.depth=1", "ae.heads=2", "ae.proj_heads=2", "ae.proj_mlp_dim=64",
        "data.frames=8", "data.resolution=16", "data.synthetic_train=8", "data.synthetic_test=2",
        "ae_train.steps=2", "ae_train.batch_size=4", "ae_train.eval_every=100"])
    choice = choose_device("cpu")
    dist.setup(choice.device)
    run_dir = Path(sys.argv[1]) / f"rank{{dist.rank()}}"
    run_dir.mkdir(parents=True)
    {fn}(cfg, {opts}(run_dir, choice))
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(tmp, world: int) -> None:
    code = WORKER.format(module="train_ae", fn="train_autoencoder", opts="AETrainOptions")
    port = _free_port()
    procs = []
    for rank in range(world):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1"}
        if world == 1:
            for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
                env.pop(k)
        procs.append(subprocess.Popen([sys.executable, "-c", code, str(tmp)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()[-2000:]


def test_two_gloo_ranks_match_one_process(tmp_path):
    _launch(tmp_path / "one", 1)
    _launch(tmp_path / "two", 2)
    single = load_checkpoint(tmp_path / "one" / "rank0")["model"]
    ddp = load_checkpoint(tmp_path / "two" / "rank0")["model"]
    for k in single:
        torch.testing.assert_close(ddp[k], single[k], rtol=0, atol=1e-5, msg=k)
    assert list((tmp_path / "two" / "rank1").iterdir()) == []  # only rank 0 writes
