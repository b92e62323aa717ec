"""The machine benchmarks/run.py measures on, and one fresh process per row (`run.py --row NAME`)."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from reporting import cpu_model, load_avg
from speed_measure import GiB

RUN = Path(__file__).resolve().parent / "run.py"


def machine_info(device_arg: str) -> dict:
    import torch

    mem = meminfo()
    gpu = None
    if device_arg != "cpu" and torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        gpu = f"{p.name}, {p.total_memory / GiB:.0f} GiB"
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "ram_gib": round(mem.get("MemTotal", 0) / GiB, 1),
            "gpu": gpu, "torch": torch.__version__, "python": platform.python_version(),
            "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds")}


def meminfo() -> dict[str, int]:
    out = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            k, v = line.split(":", 1)
            out[k] = int(v.split()[0]) * 1024
    except (OSError, ValueError):
        pass
    return out


def spawn_row(name: str, device_arg: str, mem_limit: int, timeout: float, threads: int) -> dict:
    cmd = [sys.executable, str(RUN), "--row", name, "--device", device_arg,
           "--mem-limit-gib", f"{mem_limit / GiB:.2f}", "--threads", str(threads)]
    load = load_avg()
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s", "load": load, "wall_s": timeout}
    res = None
    for line in reversed(p.stdout.strip().splitlines()):
        if line.startswith("{"):
            res = json.loads(line)
            break
    if res is None:
        why = f"killed by signal {-p.returncode} (out of memory?)" if p.returncode < 0 else f"exit {p.returncode}"
        tail = (p.stderr.strip().splitlines() or [""])[-1][:200]
        res = {"error": f"{why}: {tail}" if tail else why}
    res["load"], res["wall_s"] = load, time.perf_counter() - t0
    return res
