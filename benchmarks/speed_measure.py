"""benchmarks/run.py's measuring, inside the per-row process: the clock and peak-memory reader
(Meter), timed repeats within a budget (repeat), the out-of-memory guard, and what a row
function gets (Ctx)."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from statistics import median

from reporting import maxrss_bytes, rss_bytes

GiB = 1024**3


class Meter:
    """Clock and peak-memory reader for one device; `baseline` is taken at construction."""

    def __init__(self, device):
        import torch

        self.torch, self.device = torch, device
        self.cuda = device.type == "cuda"
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(device)
            self.baseline = torch.cuda.memory_allocated(device)
        else:
            self.baseline = rss_bytes()

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize(self.device)

    def now(self) -> float:
        self.sync()
        return time.perf_counter()

    def peak(self) -> int:
        """Peak bytes above the baseline so far."""
        if self.cuda:
            return self.torch.cuda.max_memory_allocated(self.device) - self.baseline
        return max(0, maxrss_bytes() - self.baseline)


@dataclass
class Timing:
    wall: list[float]  # seconds per timed call
    cpu: list[float]  # process CPU seconds (all threads) per timed call: less sensitive to machine load
    warm: bool  # False: the only measurement is the first (cold) call

    def summary(self, prefix: str = "") -> dict:
        return {f"{prefix}s": median(self.wall), f"{prefix}cpu_s": median(self.cpu), "runs": len(self.wall),
                "warm": self.warm}


def repeat(meter: Meter, fn: Callable[[], object], budget_s: float, max_reps: int = 3) -> Timing:
    """Time fn: one warm-up call, then as many timed calls as fit in budget_s (1 to max_reps).
    A warm-up slower than budget_s is itself the one (cold) measurement."""

    def once() -> tuple[float, float]:
        t0, c0 = meter.now(), time.process_time()
        fn()
        return meter.now() - t0, time.process_time() - c0

    first = once()
    if first[0] > budget_s:
        return Timing([first[0]], [first[1]], False)
    runs = [once() for _ in range(max(1, min(max_reps, int(budget_s // max(first[0], 1e-6)))))]
    return Timing([w for w, _ in runs], [c for _, c in runs], True)


def memory_guard(limit_bytes: int) -> None:
    """Exit this process before it drives the shared machine into the OOM killer."""

    def watch() -> None:
        while True:
            rss = rss_bytes()
            if rss > limit_bytes:
                print(json.dumps({"error": f"stopped at {rss / GiB:.1f} GiB resident, over the "
                                           f"{limit_bytes / GiB:.1f} GiB guard (out of memory here)"}), flush=True)
                os._exit(3)
            time.sleep(0.05)

    threading.Thread(target=watch, daemon=True).start()


@dataclass
class Ctx:
    """What a row function gets: the device and the settings that depend on it."""

    device: object  # torch.device
    meter: Meter
    cuda: bool
    train_batch: int  # 1 on CPU, 8 on GPU
    amp: object  # torch dtype for autocast, or None (fp32)
    budget_s: float  # rough seconds a row may spend on timed repeats

    def autocast(self):
        import contextlib

        import torch

        if self.amp is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp)
