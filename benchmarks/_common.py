"""Shared bits of the benchmark scripts (not part of the package)."""

from __future__ import annotations

import os
import statistics
import time

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def alternate(label_fns: dict, repeats: int) -> dict[str, list[float]]:
    """Run each function ``repeats`` times, interleaved (A B A B ...), so drift hits both alike."""
    times: dict[str, list[float]] = {label: [] for label in label_fns}
    for _ in range(repeats):
        for label, fn in label_fns.items():
            times[label].append(timed(fn))
    return times


def report(times: dict[str, list[float]], *, baseline: str, subject: str, unit: str = "s") -> float:
    for label, values in times.items():
        print(f"  {label:<28} median {statistics.median(values):8.3f} {unit}  runs {[round(v, 3) for v in values]}")
    ratio = statistics.median(times[subject]) / statistics.median(times[baseline])
    print(f"  ratio {subject} / {baseline} = {ratio:.3f}")
    return ratio
