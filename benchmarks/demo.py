"""Demo benchmark: `pvdm demo` at one or more time budgets, its summary as a RESULTS.md table.

    python benchmarks/demo.py [--minutes 10 30] [--out DIR] [--sheet docs/demo_contact_sheet.png] [--no-record]

Each budget runs `pvdm demo --out DIR/min-N --minutes N` in a subprocess (a finished folder is
reported again, not rerun), then prints one row per budget: steps trained, held-out AE PSNR/SSIM,
the three FVDs and their ratio, minutes taken, and whether the targets of issue 15 hold. It
writes the "## Demo" section of benchmarks/RESULTS.md (other sections untouched) and, with
--sheet, a copy of the first budget's contact sheet scaled to at most 1000 px wide, for the README.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reporting import cpu_model, replace_section  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "## Demo"


def run_demo(out: Path, minutes: float) -> dict:
    cmd = ["pvdm", "demo", "--out", str(out), "--minutes", str(minutes), "--json"]
    print("$", " ".join(cmd), file=sys.stderr)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"demo benchmark: `{' '.join(cmd)}` failed with exit code {proc.returncode}")
    return json.loads(proc.stdout)


def row(s: dict) -> str:
    ae, dm, fvd, t = s["autoencoder"], s["diffusion"], s["fvd"], s["targets"]
    met = lambda k: "met" if t[k]["met"] else "**missed**"
    return (f"| {s['budget_minutes']:g} | {s['minutes']:.1f} | {ae['steps']} | {dm['steps']} | "
            f"{ae['heldout_psnr_db']:.2f} ({met('heldout_psnr_db')}) | {ae['heldout_ssim']:.3f} | "
            f"{fvd['generated']:.0f} | {fvd['reconstruction']:.0f} | {fvd['untrained']:.0f} | "
            f"{fvd['generated_over_floor']:.2f} ({met('fvd_generated_over_floor')}) |")


def section(summaries: list[dict], command: str) -> str:
    first = summaries[0]
    load = first["load_average"]
    lines = [
        SECTION, "",
        f"Measured with `{command}` ({cpu_model()}, {first['cpu_count']} cores, device {first['device']}, "
        f"torch threads {first['torch_threads']}; load average at the start of the first run "
        f"{'/'.join(f'{x:.1f}' for x in load['start'])}, at its end {'/'.join(f'{x:.1f}' for x in load['end'])}).",
        f"FVD: {first['fvd']['num_videos']} clips of {first['fvd']['frames']} frames a side, Kinetics-400 I3D, "
        f"32x32 frames resized to 224; held-out real clips use test seeds never trained on. "
        f"Targets (issue 15): held-out PSNR >= 25 dB, generated FVD <= 2x the reconstruction floor.",
        "",
        "| budget (min) | took (min) | AE steps | DM steps | held-out PSNR (dB) | SSIM | FVD generated | FVD floor (recon) | FVD untrained | generated / floor |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *map(row, summaries), "",
        "Seconds per stage: " + "; ".join(
            f"{s['budget_minutes']:g} min: " + ", ".join(f"{k} {v:.0f}" for k, v in s["seconds"].items())
            for s in summaries) + ".", "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, nargs="+", default=[10.0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/pvdm-demo-bench"))
    ap.add_argument("--sheet", type=Path, help="copy the first budget's contact sheet here (scaled down)")
    ap.add_argument("--no-record", action="store_true", help="print only; leave RESULTS.md alone")
    args = ap.parse_args()

    summaries = [run_demo(args.out / f"min-{m:g}", m) for m in args.minutes]
    command = "python benchmarks/demo.py --minutes " + " ".join(f"{m:g}" for m in args.minutes)
    text = section(summaries, command)
    print(text)
    if args.sheet:
        sheet = Image.open(summaries[0]["paths"]["contact_sheet"])
        scale = min(1.0, 1000 / sheet.width)
        sheet = sheet.convert("RGB").resize((round(sheet.width * scale), round(sheet.height * scale)), Image.LANCZOS)
        args.sheet.parent.mkdir(parents=True, exist_ok=True)
        sheet.quantize(256, method=Image.Quantize.MEDIANCUT).save(args.sheet, optimize=True)  # a palette: 1/3 the bytes
    if not args.no_record:
        replace_section(RESULTS, SECTION, text)


if __name__ == "__main__":
    main()
