"""`pvdm plot`: training curves of one or more runs from their metrics.jsonl, as one image.

Panels, each shown when some run has its data: training loss (raw and smoothed), held-out
PSNR and SSIM (autoencoder runs), and FVD (records with an `fvd` field); a panel whose values
span a decade or more is drawn in log scale. Runs are overlaid in one colour each; the AE's GAN
phase is marked: its start (`ae_train.disc_start` from config.yaml) and every divergence
rollback or stop. A resumed run re-logs the steps after its checkpoint; the later records win.
Matplotlib is an optional extra (`pip install 'pvdm[plot]'`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pvdm_core.base.atomic import atomic_path
from pvdm_core.base.errors import BadInputError

INSTALL_HINT = "pip install 'pvdm[plot]'"
Series = list[tuple[int, float]]


@dataclass
class RunCurves:
    name: str
    loss: Series = field(default_factory=list)
    loss_smooth: Series = field(default_factory=list)  # the run's loss_ema, else a moving average
    psnr: Series = field(default_factory=list)
    ssim: Series = field(default_factory=list)
    fvd: Series = field(default_factory=list)
    gan_start: int | None = None
    gan_events: list[tuple[int, str]] = field(default_factory=list)  # (step, action)


def _add(series: Series, step: int, value: Any) -> None:
    """Append, first dropping points at or past `step`: after a resume, the re-logged steps replace the old ones."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    while series and series[-1][0] >= step:
        series.pop()
    series.append((step, float(value)))


def _smooth(series: Series, points_per_window: int = 25) -> Series:
    """Centred moving average over 1/25 of the points (no lag, unlike an EMA); [] when too few to smooth."""
    half = len(series) // points_per_window // 2
    if half == 0:
        return []
    ys = [v for _, v in series]
    return [(step, sum(ys[max(0, i - half) : i + half + 1]) / len(ys[max(0, i - half) : i + half + 1]))
            for i, (step, _) in enumerate(series)]


def _metrics_path(run: Path) -> Path:
    path = run if run.is_file() else run / "metrics.jsonl"
    if not path.is_file():
        raise BadInputError(f"{run}: no metrics.jsonl (is it a pvdm run folder?)")
    return path


def _gan_start(run_dir: Path) -> int | None:
    """disc_start from the run's config.yaml, if the GAN phase is on its schedule."""
    try:
        tc = (yaml.safe_load((run_dir / "config.yaml").read_text()) or {}).get("ae_train", {})
    except (OSError, yaml.YAMLError, AttributeError):
        return None
    start, steps = tc.get("disc_start", -1), tc.get("steps", 0)
    return start if isinstance(start, int) and 0 <= start < steps else None


def load_run(run: Path, name: str) -> RunCurves:
    """A run's curves; a half-written last line (a run being written) is skipped."""
    path = _metrics_path(run)
    curves = RunCurves(name)
    records, gan_seen = 0, False
    for line in path.read_text().splitlines():
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(r, dict) or not isinstance(r.get("step"), int):
            continue
        records += 1
        step = r["step"]
        if "event" in r:
            if r["event"] == "gan_divergence":
                curves.gan_events.append((step, str(r.get("action", "rollback"))))
        elif r.get("split") == "test":
            _add(curves.psnr, step, r.get("psnr"))
            _add(curves.ssim, step, r.get("ssim"))
        elif "loss" in r:
            _add(curves.loss, step, r["loss"])
            _add(curves.loss_smooth, step, r.get("loss_ema"))
            gan_seen = gan_seen or "d_loss" in r
        if "fvd" in r:
            _add(curves.fvd, step, r["fvd"])
    if records == 0:
        raise BadInputError(f"{path}: no metrics records yet")
    if not curves.loss_smooth:
        curves.loss_smooth = _smooth(curves.loss)
    curves.gan_start = _gan_start(path.parent) if gan_seen else None
    return curves


def run_names(runs: list[Path]) -> list[str]:
    """Folder names, or the paths as given where two folders share a name."""
    dirs = [r.parent if r.is_file() else r for r in runs]
    names = [d.resolve().name for d in dirs]
    return [n if names.count(n) == 1 else str(d) for n, d in zip(names, dirs)]


def _import_matplotlib():
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise BadInputError(f"pvdm plot needs matplotlib: {INSTALL_HINT}") from None
    return Figure


def _mark_gan(ax, runs: list[RunCurves], colors: dict[str, str]) -> None:
    for run in runs:
        if run.gan_start is not None:
            ax.axvline(run.gan_start, color=colors[run.name], ls="--", lw=1, alpha=0.8)
        for step, action in run.gan_events:
            ax.axvline(step, color=colors[run.name], ls=":", lw=1.5)
            ax.plot([step], [1.0], marker="v" if "stopped" not in action else "x", color=colors[run.name],
                    transform=ax.get_xaxis_transform(), clip_on=False, ms=7)


def _panel(ax, runs: list[RunCurves], colors: dict[str, str], key: str, title: str, ylabel: str) -> None:
    values = []
    for run in runs:
        series = getattr(run, key)
        if not series:
            continue
        steps, ys = zip(*series)
        values += ys
        if key == "loss" and run.loss_smooth:
            ax.plot(steps, ys, color=colors[run.name], lw=0.8, alpha=0.35)
            ax.plot(*zip(*run.loss_smooth), color=colors[run.name], lw=1.8, label=run.name)
        else:
            ax.plot(steps, ys, color=colors[run.name], lw=1.5, marker="o", ms=3, label=run.name)
    if values and min(values) > 0 and max(values) / min(values) >= 10:  # log only where it spans a decade
        ax.set_yscale("log")
    if key == "loss" and any(run.loss_smooth for run in runs):
        title += " (thin: as logged, thick: smoothed)"
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.grid(True, which="major", alpha=0.3)


PANELS = (("loss", "training loss", "loss"),
          ("psnr", "held-out PSNR", "dB"), ("ssim", "held-out SSIM", "SSIM"), ("fvd", "FVD", "FVD"))


def plot_runs(runs: list[Path], out: Path, dpi: int = 120) -> dict[str, Any]:
    """Write the curves of `runs` to `out` (png, pdf, svg: from its extension); returns a summary."""
    if not runs:
        raise BadInputError("give at least one run folder")
    curves = [load_run(Path(r), n) for r, n in zip(runs, run_names([Path(r) for r in runs]))]
    panels = [p for p in PANELS if any(getattr(c, p[0]) for c in curves)]
    if not panels:
        raise BadInputError(f"{', '.join(map(str, runs))}: no loss, PSNR, SSIM or FVD records to plot")
    Figure = _import_matplotlib()
    cols = 2 if len(panels) == 4 else len(panels)
    rows = -(-len(panels) // cols)
    fig = Figure(figsize=(6 * cols, 4 * rows), layout="constrained")
    fmt = Path(out).suffix.lower().lstrip(".")
    if fmt not in fig.canvas.get_supported_filetypes():
        raise BadInputError(f"{out}: cannot write .{fmt} (use .png, .pdf or .svg)")
    palette = [f"C{i}" for i in range(10)]
    colors = {c.name: palette[i % len(palette)] for i, c in enumerate(curves)}
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (key, title, ylabel) in zip(axes, panels):
        _panel(ax, curves, colors, key, title, ylabel)
        _mark_gan(ax, [c for c in curves if getattr(c, key)], colors)  # only where the run has data
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    axes[0].legend(loc="best", fontsize="small")
    if any(c.gan_start is not None or c.gan_events for c in curves):
        fig.supxlabel("dashed line: GAN phase starts; dotted line, ▼: GAN divergence rolled back; ×: GAN phase stopped",
                      fontsize="small")
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=dpi, format=fmt)
    return {"plot": str(out), "runs": [c.name for c in curves], "panels": [p[0] for p in panels],
            "points": {c.name: len(c.loss) + len(c.psnr) + len(c.fvd) for c in curves}}
