"""Sampler steps against FVD: the cheapest sampler and step count that keep quality.

    python benchmarks/steps.py --run DIR [--num 64] [--steps 10 20 50 100] [--samplers ddim:0 ddim:1 dpm]
                               [--repeat dpm:20] [--plot benchmarks/steps_fvd.png] [--no-write]

DIR holds a trained autoencoder `ae/` and diffusion model `dm/` (the layout of `pvdm demo` and
benchmarks/quality.py). Everything goes through the `pvdm` CLI, one subprocess per command:

1. `pvdm synth` --num held-out test videos (never trained on) with the model's data config;
   `pvdm encode --reconstruct` of them gives the floor, the FVD of the AE's reconstructions;
   its `eval-fvd` saves the real I3D statistics, which every later score reuses.
2. For every sampler (`ddim:ETA` or `dpm`, DPM-Solver++(2M)) and step count: `pvdm sample` of
   --num videos, the same --seed for every point, so the points differ only in the sampler,
   then `pvdm eval-fvd` against the saved statistics. The wall time of `pvdm sample` (process
   start-up and mp4 writing included) is the cost column.
3. --repeat points are sampled again with seed + num (disjoint videos): the spread between the
   two FVDs at the same setting is the sampling noise of an FVD at this --num.

Results are cached in OUT/results.json keyed by point and seed, so a rerun with more --steps
only measures the new points. Prints a markdown table and, unless --no-write, replaces the
"## Sampler steps against FVD" section of benchmarks/RESULTS.md (the reading written beneath the
table, up to the next "## " heading, is kept from the previous version).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
sys.path.insert(0, str(ROOT / "benchmarks"))
from reporting import cpu_model, load_avg, pvdm, read_metrics, replace_section  # noqa: E402

SECTION = "## Sampler steps against FVD"
READING = "### Reading"  # a hand-written subsection under the table; rewriting the table keeps it


def parse_sampler(spec: str) -> tuple[str, float | None]:
    """`ddim:0` -> ("ddim", 0.0); `dpm` -> ("dpm", None): the dpm solver has no eta."""
    name, _, eta = spec.partition(":")
    if name not in ("ddim", "dpm"):
        raise SystemExit(f"steps benchmark: sampler {spec!r} is not ddim:ETA or dpm")
    if name == "ddim" and not eta:
        raise SystemExit(f"steps benchmark: give DDIM's eta, e.g. ddim:0 or ddim:1, not {spec!r}")
    return name, (float(eta) if name == "ddim" else None)


def label(spec: str) -> str:
    name, eta = parse_sampler(spec)
    return f"DDIM η={eta:g}" if name == "ddim" else "DPM-Solver++(2M)"


class Bench:
    """The shared state of one benchmark run: paths, the cache and the command log."""

    def __init__(self, run: Path, out: Path, num: int) -> None:
        self.run, self.out, self.num = run, out, num
        self.cache_path = out / "results.json"
        self.cache: dict = json.loads(self.cache_path.read_text()) if self.cache_path.is_file() else {}
        self.log: list[dict] = []
        self.stats = out / "real.stats.npz"

    def save(self) -> None:
        self.cache_path.write_text(json.dumps(self.cache, indent=2))

    def floor(self) -> float:
        """Held-out real videos, their reconstructions, and the real statistics every point reuses."""
        if "floor" not in self.cache or not self.stats.is_file():
            real, rec = self.out / "real", self.out / "recon"
            pvdm("synth", str(real), "--num", str(self.num), "--split", "test",
                 "--config", str(self.run / "dm" / "config.yaml"), log=self.log)
            pvdm("encode", str(real), "--ae", str(self.run / "ae"), "-o", str(self.out / "real-latents.npz"),
                 "--clips", "first", "--reconstruct", str(rec), log=self.log)
            r = pvdm("eval-fvd", str(real), str(rec), "-n", str(self.num), "--save-stats-real", str(self.stats),
                     log=self.log)
            self.cache["floor"] = {"fvd": r["fvd"], "detector": r.get("detector"),
                                   "weights_sha256": r.get("weights_sha256")}
            self.save()
        return self.cache["floor"]["fvd"]

    def point(self, spec: str, steps: int, seed: int) -> dict:
        """FVD and sampling seconds of one (sampler, steps, seed), measured once and cached."""
        key = f"{spec}@{steps}@seed{seed}"
        if key not in self.cache:
            name, eta = parse_sampler(spec)
            videos = self.out / "samples" / key.replace(":", "-").replace("@", "_")
            args = ["sample", "--model", str(self.run / "dm"), "--num", str(self.num), "--seed", str(seed),
                    "--sampler", name, "--steps", str(steps), "-o", str(videos)]
            pvdm(*args, *(["--eta", f"{eta:g}"] if eta is not None else []), log=self.log)
            sample_s = self.log[-1]["seconds"]
            r = pvdm("eval-fvd", str(self.stats), str(videos), "-n", str(self.num), log=self.log)
            self.cache[key] = {"fvd": r["fvd"], "sample_s": sample_s, "load": load_avg()}
            self.save()
        return self.cache[key]


def table(b: Bench, specs: list[str], steps: list[int], seed: int) -> list[str]:
    """One row per step count; FVD and the seconds of `pvdm sample` per sampler."""
    head = "| steps | " + " | ".join(f"{label(s)} FVD | s" for s in specs) + " |"
    rows = [head, "|---" * (1 + 2 * len(specs)) + "|"]
    best = min(b.cache[f"{s}@{n}@seed{seed}"]["fvd"] for s in specs for n in steps)
    for n in steps:
        cells = []
        for s in specs:
            p = b.cache[f"{s}@{n}@seed{seed}"]
            fvd = f"**{p['fvd']:.0f}**" if p["fvd"] == best else f"{p['fvd']:.0f}"
            cells.append(f"{fvd} | {p['sample_s']:.0f}")
        rows.append(f"| {n} | " + " | ".join(cells) + " |")
    return rows


def plot(b: Bench, specs: list[str], steps: list[int], seed: int, noise: float | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display on a benchmark machine
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for s in specs:
        ys = [b.cache[f"{s}@{n}@seed{seed}"]["fvd"] for n in steps]
        # the bars are ± the noise estimate: points closer than that are not told apart
        ax.errorbar(steps, ys, yerr=noise, marker="o", capsize=3, label=label(s))
    ax.axhline(b.cache["floor"]["fvd"], color="gray", ls="--", label="AE reconstructions (floor)")
    ax.set_xscale("log")
    ax.set_xticks(steps, [str(n) for n in steps])
    ax.minorticks_off()
    ax.set_xlabel("sampling steps (network evaluations)")
    ax.set_ylabel(f"FVD ({b.num} videos a side; lower is better)")
    ax.set_title("Tiny model: FVD against sampling steps")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def kept_reading() -> str:
    """The reading subsection of the current section, so a rerun refreshes numbers, not prose."""
    if not RESULTS.is_file():
        return ""
    text = RESULTS.read_text()
    start = text.find(SECTION + "\n")
    at = text.find(READING + "\n", start) if start >= 0 else -1
    if at < 0:
        return ""
    end = text.find("\n## ", at)
    return text[at: end + 1 if end >= 0 else len(text)].rstrip("\n") + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True, help="Folder with a trained ae/ and dm/.")
    ap.add_argument("--out", type=Path, help="Working folder: videos, stats, results.json (default RUN/steps).")
    ap.add_argument("--num", type=int, default=64, help="Videos per FVD side (default 64).")
    ap.add_argument("--steps", type=int, nargs="+", default=[10, 20, 50, 100], help="Step counts.")
    ap.add_argument("--samplers", nargs="+", default=["ddim:0", "ddim:1", "dpm"], help="ddim:ETA or dpm.")
    ap.add_argument("--seed", type=int, default=0, help="Sampling seed of every point (video i uses seed + i).")
    ap.add_argument("--repeat", nargs="*", default=["dpm:20"], metavar="SAMPLER:STEPS",
                    help="Points sampled again with seed + num, for the noise estimate (e.g. dpm:20 ddim:1:50).")
    ap.add_argument("--plot", type=Path, help="Write a PNG of FVD against steps here.")
    ap.add_argument("--no-write", action="store_true", help="Print only; leave RESULTS.md alone.")
    args = ap.parse_args()

    run = args.run.resolve()
    out = (args.out or run / "steps").resolve()
    out.mkdir(parents=True, exist_ok=True)
    started, load_before = dt.datetime.now(dt.timezone.utc), load_avg()
    b = Bench(run, out, args.num)
    floor = b.floor()
    for n in args.steps:  # step count first: stopped early, the cache holds every sampler at the cheap steps
        for s in args.samplers:
            b.point(s, n, args.seed)

    # noise: |FVD(seed) - FVD(seed + num)| at the same setting, the two sets of videos disjoint
    diffs = []
    for rep in args.repeat:
        spec, _, n = rep.rpartition(":")
        a, c = b.point(spec, int(n), args.seed), b.point(spec, int(n), args.seed + args.num)
        diffs.append((rep, a["fvd"], c["fvd"]))
    noise = max((abs(x - y) for _, x, y in diffs), default=None)

    lines = table(b, args.samplers, args.steps, args.seed)
    floor_line = f"AE reconstructions of the {args.num} held-out videos (the floor): FVD {floor:.0f}."
    noise_line = ("Same setting, another seed (videos seed + num, disjoint): " + "; ".join(
        f"{label(r.rpartition(':')[0])} {r.rpartition(':')[2]} steps {x:.0f} vs {y:.0f}" for r, x, y in diffs)
        + f" (largest difference {noise:.0f})." if diffs else "")
    print("\n".join(lines) + f"\n\n{floor_line}\n{noise_line}")
    if args.plot:
        plot(b, args.samplers, args.steps, args.seed, noise, args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    if args.no_write:
        return

    ae_steps = next((m["step"] for m in reversed(read_metrics(run / "ae")) if "step" in m), "?")
    dm_steps = next((m["step"] for m in reversed(read_metrics(run / "dm")) if "step" in m), "?")
    det = b.cache["floor"]
    cmd = "python benchmarks/steps.py" + "".join(f" {a}" for a in sys.argv[1:])
    text = [
        SECTION, "",
        f"Measured with `{cmd}`, finished {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} "
        f"(started {started.strftime('%H:%M')}); {cpu_model()}, {os.cpu_count()} cores, CPU only, "
        f"torch threads {os.environ.get('OMP_NUM_THREADS', 'default')}; load average before {load_before}, "
        f"after {load_avg()} (the machine is shared: seconds are wall time under that load).",
        f"Model: {run} — autoencoder {ae_steps} steps, diffusion {dm_steps} steps. FVD: `pvdm eval-fvd`, "
        f"Kinetics-400 I3D (detector {det.get('detector')}, weights {str(det.get('weights_sha256'))[:12]}), "
        f"{args.num} clips of 16 frames a side against {args.num} held-out test videos, EMA weights, every "
        f"point sampled with seed {args.seed}. s = wall seconds of `pvdm sample --num {args.num}` "
        "(start-up, decode and mp4 writing included). Bold: the lowest FVD.",
        "", *lines, "", floor_line, *([noise_line] if noise_line else []), "",
    ]
    if args.plot:
        text += [f"![FVD against sampling steps]({os.path.relpath(args.plot.resolve(), RESULTS.parent)})", ""]
    reading = kept_reading()
    replace_section(RESULTS, SECTION, "\n".join(text) + ("\n" + reading if reading else ""))
    print(f"wrote the {SECTION[3:]} section of {RESULTS}", file=sys.stderr)


if __name__ == "__main__":
    main()
