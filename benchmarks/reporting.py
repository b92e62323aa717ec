"""Reporting helpers the benchmark scripts share: machine facts and RESULTS.md sections."""

from __future__ import annotations

import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_avg() -> str:
    try:
        return "/".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def rss_bytes() -> int:
    """This process's resident set now (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def maxrss_bytes() -> int:
    """This process's peak resident set so far."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def matmul_gflops(n: int = 2048, repeats: int = 5, dtype=None) -> float:
    """The machine's measured dense matmul rate (GFLOP/s, median of `repeats`) at n x n, fp32 by default."""
    import torch

    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / statistics.median(times) / 1e9


def replace_section(path: Path, heading: str, text: str) -> None:
    """Replace the `heading` section of a markdown file (up to the next "## " heading) with
    `text`, or append it; written to a temp file and renamed."""
    old = path.read_text() if path.exists() else "# Benchmark results\n\n"
    lines = old.splitlines(keepends=True)
    start = next((i for i, ln in enumerate(lines) if ln.rstrip() == heading), None)
    if start is None:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        end = next((j for j in range(start + 1, len(lines)) if lines[j].startswith("## ")), len(lines))
        tail = "".join(lines[end:])
        new = "".join(lines[:start]) + text + ("\n" + tail if tail else "")
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(new)
    os.replace(tmp, path)


def pvdm(*args: str, log: list[dict], timeout: float | None = None) -> dict:
    """Run one `pvdm ... --json` command; return its JSON result (stdout), logging time and command."""
    cmd = [sys.executable, "-m", "pvdm_cli", *args, "--json"]
    shown = "pvdm " + " ".join(shlex.quote(a) for a in args)
    print(f"$ {shown}", file=sys.stderr, flush=True)
    t0 = time.monotonic()
    # run from the caller's directory, so relative paths mean the same to pvdm as to the benchmark;
    # the repository root on PYTHONPATH finds pvdm_cli there even when pvdm is not installed
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=None, text=True, timeout=timeout, env=env)
    seconds = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"benchmark: `{shown}` failed with exit code {proc.returncode}")
    result = json.loads(proc.stdout)
    log.append({"command": shown, "seconds": round(seconds, 1)})
    print(f"  ({seconds:.1f} s)", file=sys.stderr, flush=True)
    return result


def read_metrics(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
