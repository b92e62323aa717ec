"""benchmarks/run.py's output: the table on the terminal and the "## Speed" section of RESULTS.md."""

from __future__ import annotations

SECTION = "## Speed"


COLUMNS = {"title": "Row", "setting": "Setting", "time": "Time (wall)", "cpu": "CPU time", "memory": "Peak memory",
           "load": "Load"}


def print_table(lines: list[dict], title: str) -> None:
    try:
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table
    except ImportError:
        for ln in lines:
            print(" | ".join(ln[k] for k in COLUMNS))
        return
    t = Table(title=title, show_lines=True)
    for col in COLUMNS.values():
        t.add_column(col, overflow="fold")
    for ln in lines:
        t.add_row(*(escape(str(ln[k])) for k in COLUMNS))
    Console(width=200).print(t)


def speed_section(lines: list[dict], info: dict, command: str, load_before: str, load_after: str, total_s: float,
                  device: str) -> str:
    gpu = info["gpu"] or "none (no GPU was available in this session; GPU-only rows are not measured)"
    md = [SECTION, "",
          f"Measured with `{command}` on {info['date']} ({total_s / 60:.1f} min in all).", "",
          f"- Machine: {info['cpu']}, {info['cores']} cores, {info['ram_gib']} GiB RAM; GPU: {gpu}",
          f"- Software: torch {info['torch']}, Python {info['python']}; device `{device}`; torch threads per "
          f"row: {info['threads']}",
          f"- Load average (1/5/15 min) before: {load_before}, after: {load_after}. The machine is shared; "
          "timings under load above the core count are pessimistic.",
          *_caveat(info, [load_before, load_after, *(ln["load"] for ln in lines)], device),
          "- Method (benchmarks/README.md): one fresh process per row; wall-clock median of the timed repeats "
          "after one warm-up; CPU time = process CPU seconds (all threads) of the same work, which a loaded "
          "machine inflates far less than wall time; peak memory in GB (10^9 bytes, as in spec §5) = rise "
          "of peak RSS (ru_maxrss) above the process's RSS after imports on CPU, "
          "torch.cuda.max_memory_allocated on CUDA. CPU rows: fp32, batch 1. Training step = forward + "
          "backward + AdamW step, with forward + backward alone in brackets (its peak taken before AdamW "
          "allocates its state). "
          "No EMA update, no LPIPS in the AE loss (L1 only). Sampling on CPU is extrapolated from 3 real "
          "sampler steps plus one measured AE decode.",
          "- The release is compared in the same run, on the same machine, only in \"Speed: pvdm vs the "
          "release, side by side\" (`vs_release.py --speed`); figures from another day or machine are no "
          "comparison.", "",
          "| " + " | ".join(COLUMNS.values()) + " |",
          "|" + "---|" * len(COLUMNS)]
    esc = lambda s: str(s).replace("|", "\\|")
    for ln in lines:
        md.append("| " + " | ".join(esc(ln[k]) for k in COLUMNS) + " |")
    return "\n".join(md) + "\n"


def _caveat(info: dict, loads: list[str], device: str) -> list[str]:
    """A warning line when CPU timings were taken on one thread or a machine busier than its cores."""
    if device != "cpu":
        return []
    busiest = max((float(x) for ld in loads for x in str(ld).split("/") if x.replace(".", "", 1).isdigit()),
                  default=0.0)
    parts = []
    if info.get("threads") == 1:
        parts.append("each row used 1 torch thread")
    if busiest > (info.get("cores") or 1):
        parts.append(f"other jobs kept the load average up to {busiest:.1f} on {info.get('cores')} cores")
    if not parts:
        return []
    return [f"- **Caveat**: {'; '.join(parts)}. Wall times are therefore "
            "pessimistic (one thread instead of two can double a time, and sharing the cores adds more); "
            "the CPU-time column is the steadier figure. Memory is unaffected."]
