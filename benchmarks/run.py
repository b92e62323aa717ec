"""Speed and memory of every pvdm stage (side by side with the release: vs_release.py --speed).

    python benchmarks/run.py [--device auto|cpu|cuda] [--quick] [--only NAME,...] [--list]

Each row runs in a fresh Python process (this file with `--row NAME`), so one row's memory
never shows up in another's peak:
- time: wall clock around the measured work, after warm-up, the median of a few repeats (fewer
  when one repeat is slow: each row has a time budget). CUDA work is synchronised before each
  clock read.
- peak memory: on CPU, how far the process's peak resident set (getrusage ru_maxrss) rose above
  its resident set right after imports, so model weights, optimizer state and activations count,
  and the Python/torch runtime does not; on CUDA, torch.cuda.max_memory_allocated.
- on CPU the models run in fp32 at batch 1; with a GPU, training rows use batch 8 and bf16 autocast.
- sampling a full 16-frame 256² clip takes hours on CPU (100-1000 UNet-L evaluations), so there
  the sampler runs a few real steps, and the per-sample figure is the median step time times the
  number of steps plus one measured AE decode, labelled "extrapolated from N steps".

Without --quick or --only the run rewrites the "## Speed" section of benchmarks/RESULTS.md (the
rest of the file is kept); --write/--no-write overrides that. --json PATH also saves the raw rows.

This file is the driver; the parts: speed_measure.py (clock, peak memory, timed repeats),
speed_bench.py (what each row measures), speed_rows.py (the rows, their table cells, the per-row
process's entry point), speed_machine.py (machine facts, spawning a row), speed_table.py (the
table and the RESULTS.md section).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from reporting import load_avg, replace_section  # noqa: E402
from speed_machine import machine_info, meminfo, spawn_row  # noqa: E402
from speed_measure import GiB  # noqa: E402
from speed_rows import BY_NAME, ROWS, format_row, run_row  # noqa: E402
from speed_table import SECTION, print_table, speed_section  # noqa: E402

RESULTS = HERE / "RESULTS.md"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--quick", action="store_true", help="only the tiny rows (a smoke test, < 1 min)")
    ap.add_argument("--only", default="", help="comma-separated row names (see --list)")
    ap.add_argument("--list", action="store_true", help="print the row names and exit")
    ap.add_argument("--write", dest="write", action="store_true", default=None, help="write RESULTS.md's Speed section")
    ap.add_argument("--no-write", dest="write", action="store_false")
    ap.add_argument("--json", type=Path, default=None, help="also save the raw results here")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per row before it is stopped")
    ap.add_argument("--mem-limit-gib", type=float, default=None,
                    help="stop a row whose resident memory passes this (default: available RAM - 1 GiB)")
    ap.add_argument("--threads", type=int, default=-1,
                    help="torch CPU threads per row: 0 = torch's default (one per core); default -1 = auto: "
                         "torch's default on an idle machine, 1 when the load average is above half the cores "
                         "(several OpenMP threads per process on a busy machine wait on each other, many times slower)")
    ap.add_argument("--from-json", type=Path, default=None,
                    help="re-print (and with --write, re-write) the table of an earlier --json file; measures nothing")
    ap.add_argument("--row", default=None, help=argparse.SUPPRESS)  # internal: run one row, print JSON
    args = ap.parse_args(argv)

    if args.row is not None:
        limit = int((args.mem_limit_gib or 0) * GiB)
        print(json.dumps(run_row(args.row, args.device, limit, args.threads), default=str), flush=True)
        return 0

    if args.from_json is not None:
        return render_saved(args.from_json, bool(args.write))
    if args.list:
        for r in ROWS:
            print(f"{r.name:22s} {r.title}{'  [quick]' if r.quick else ''}{'  [GPU only]' if r.gpu_only else ''}")
        return 0
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in BY_NAME]
        if unknown:
            print(f"unknown row(s) {', '.join(unknown)}; choose from {', '.join(BY_NAME)}", file=sys.stderr)
            return 2
        rows = [BY_NAME[n] for n in names]
    else:
        rows = [r for r in ROWS if r.quick or not args.quick]
    write = args.write if args.write is not None else not (args.quick or args.only)

    info = machine_info(args.device)
    device = "cuda" if info["gpu"] else "cpu"
    if args.device == "cuda" and device != "cuda":
        print("--device cuda: torch sees no CUDA device", file=sys.stderr)
        return 2
    if args.threads < 0:  # auto
        load1, cores = os.getloadavg()[0], os.cpu_count() or 1
        args.threads = 1 if device == "cpu" and load1 > cores / 2 else 0
        if args.threads == 1:
            print(f"load average {load1:.1f} on {cores} cores: 1 torch thread per row (--threads 0 to use all)",
                  file=sys.stderr)
    info["threads"] = args.threads or "torch default"
    mem_limit = int((args.mem_limit_gib or max(1.0, meminfo().get("MemAvailable", 8 * GiB) / GiB - 1.0)) * GiB)
    command = "python benchmarks/run.py" + "".join(f" {shlex.quote(a)}" for a in (argv if argv is not None else sys.argv[1:]))
    print(f"{info['cpu']}, {info['cores']} cores, {info['ram_gib']} GiB RAM, GPU: {info['gpu'] or 'none'}, "
          f"torch {info['torch']}; load {load_avg()}; memory guard {mem_limit / GiB:.1f} GiB", flush=True)
    load_before, t0 = load_avg(), time.perf_counter()
    results, lines = {}, []
    for row in rows:
        if row.gpu_only and device != "cuda":
            res = {"skip": "not measured (no GPU)", "load": load_avg()}
        else:
            print(f"[{row.name}] ...", end=" ", flush=True)
            res = spawn_row(row.name, device, mem_limit, args.timeout, args.threads)
            print(f"{res.get('wall_s', 0):.0f} s" + (f" ({res['error']})" if "error" in res else ""), flush=True)
        results[row.name] = res
        lines.append(format_row(row, res, device))
    total = time.perf_counter() - t0
    load_after = load_avg()
    info["threads"] = next((r["torch_threads"] for r in results.values() if "torch_threads" in r), info["threads"])
    run = {"machine": info, "command": command, "device": device, "load_before": load_before,
           "load_after": load_after, "total_s": total, "rows": results}
    if args.json:
        args.json.write_text(json.dumps(run, indent=2, default=str))
    return render(run, lines, write)


def render(run: dict, lines: list[dict], write: bool) -> int:
    print_table(lines, f"pvdm speed ({run['device']}, {run['total_s'] / 60:.1f} min, "
                       f"load {run['load_before']} -> {run['load_after']})")
    if write:
        replace_section(RESULTS, SECTION, speed_section(lines, run["machine"], run["command"], run["load_before"],
                                                        run["load_after"], run["total_s"], run["device"]))
        print(f"wrote the Speed section of {RESULTS}")
    return 0


def render_saved(path: Path, write: bool) -> int:
    run = json.loads(path.read_text())
    lines = [format_row(BY_NAME[name], res, run["device"]) for name, res in run["rows"].items() if name in BY_NAME]
    return render(run, lines, write)


if __name__ == "__main__":
    sys.exit(main())
