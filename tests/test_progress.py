"""Progress off a terminal: plain stderr lines from training (step, loss, ETA) and from item loops."""

from __future__ import annotations

import re

import pytest

from helpers import SMALL
from pvdm_core.base import progress
from pvdm_core.base.progress import LineProgress, format_duration, progress_bar

STAMP = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d "


@pytest.fixture
def off_terminal(monkeypatch):
    """Progress on, and rich's terminal detection left to isatty (the cli fixture's stderr is no tty)."""
    for var in ("PVDM_NO_PROGRESS", "FORCE_COLOR", "TTY_COMPATIBLE"):
        monkeypatch.delenv(var, raising=False)


def test_format_duration_for_long_runs():
    assert format_duration(59.6) == "0:01:00"
    assert format_duration(3 * 86400 + 4 * 3600 + 5) == "3d 04:00:05"
    assert format_duration(float("inf")) == "?"


def test_line_progress_every_n_items_or_interval(off_terminal, capsys):
    assert isinstance(progress_bar(), LineProgress) and not isinstance(progress_bar(lines=False), LineProgress)
    clock = [0.0]
    with LineProgress(clock=lambda: clock[0]) as bar:
        task = bar.add_task("encode", total=100, info="3 videos")
        for _ in range(12):  # a line every 5 items (5%)
            clock[0] += 0.5
            bar.advance(task)
    lines = capsys.readouterr().err.splitlines()
    assert [re.search(r"encode (\d+)/100", line).group(1) for line in lines] == ["0", "5", "10", "12"]
    assert re.match(STAMP, lines[1]) and "2 it/s" in lines[1] and "ETA 0:00:48" in lines[1] and "3 videos" in lines[1]

    with LineProgress(clock=lambda: clock[0]) as bar:
        task = bar.add_task("sample", total=None)
        clock[0] += 31  # nothing to count yet, but 30 s passed: a line anyway
        bar.update(task, advance=1)
        bar.update(task, advance=1)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3 and "sample 1 " in lines[1] and "sample 2 " in lines[2]


def test_no_progress_silences_lines(monkeypatch, capsys):
    monkeypatch.setenv("PVDM_NO_PROGRESS", "1")
    with progress_bar() as bar:
        bar.advance(bar.add_task("x", total=2), 2)
    progress.progress_line("hidden")
    assert capsys.readouterr().err == ""


def test_train_ae_off_a_terminal_prints_step_loss_eta_eval_and_checkpoint_lines(tmp_path, off_terminal, cli):
    r = cli("train-ae", "--out", tmp_path, "--steps", 4, "--batch-size", 2, *SMALL,
            "--set", "ae_train.log_every=1", "--set", "ae_train.eval_every=2", "--set", "ae_train.ckpt_every=2")
    lines = r.stderr.splitlines()
    steps = [line for line in lines if re.search(r"train-ae step \d/4 \(", line)]
    assert len(steps) == 4 and all(re.match(STAMP, line) for line in steps)
    assert all(re.search(r"loss \d[\d.e+-]* l1 [\d.e+-]+ lr 0\.001 (\| test [^|]+ )?\| [\d.]+ it/s, elapsed \d:\d\d:\d\d, "
                         r"ETA \d:\d\d:\d\d$",
                         line) for line in steps), steps
    assert "test psnr" not in steps[0] and re.search(r"\| test psnr [\d.]+ ssim [\d.]+ \(step 2\)", steps[2])
    assert sum(bool(re.search(r"train-ae step [24]/4 test psnr [\d.]+ ssim", line)) for line in lines) == 2
    assert any(f"train-ae step 2/4 checkpoint {tmp_path / 'step-0000002.pt'}" in line for line in lines)
    assert any(f"train-ae step 4/4 checkpoint {tmp_path / 'step-0000004.pt'}" in line for line in lines)


def test_resumed_run_lines_show_the_last_held_out_scores(tmp_path, off_terminal, capsys):
    from pvdm_core.training.reporting import RunReporter

    (tmp_path / "metrics.jsonl").write_text('{"step": 10, "split": "test", "psnr": 17.25, "ssim": 0.3}\n'
                                            '{"step": 30, "split": "test", "psnr": 99.0, "ssim": 0.9}\n')
    report = RunReporter(tmp_path, "train-ae", 40, enabled=True)
    with report.live(20):  # resumed at step 20: step 30's evaluation belongs to the crashed run
        report.write(step=25, loss=0.5, it_s=2.0)
    line = capsys.readouterr().err.strip()
    assert line.endswith("train-ae step 25/40 (62%) loss 0.5 | test psnr 17.25 ssim 0.3 (step 10) | 2 it/s, "
                         "elapsed 0:00:00, ETA 0:00:08"), line
