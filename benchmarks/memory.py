"""Peak memory of one W4 call at large N, per contender, each in a fresh child process.

The child builds the data and only its contender, calls it once to warm it up (compiling,
filling caches, the allocator's first requests), then measures one more call:

- resident memory: the kernel's high-water mark of the process's resident set is reset
  (``/proc/self/clear_refs`` with ``5``) just before the call; ``getrusage(RUSAGE_SELF)
  .ru_maxrss`` after the call minus the resident set before it is what the call added at
  its peak, whoever allocated it (NumPy, XLA, PyTorch, Numba). Where the reset is not
  possible the warm-up is skipped and the first call is measured (compilation included);
- NumPy's allocations: ``tracemalloc``'s peak over a third call (NumPy reports its data
  buffers to it; other frameworks' buffers are invisible to it).

Both are reported against the size of the input arrays t and y (what a caller must hold
anyway): "peak / inputs" is (inputs + the call's peak addition) / inputs.
"""

from __future__ import annotations

import gc
import resource
import sys
import tracemalloc

from .timing import format_seconds

#: The issue's target for symgen: the call's peak under this many times the inputs' size.
TARGET = 1.25


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise OSError("no VmRSS in /proc/self/status")


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def _maxrss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def measure(index: int, n: int) -> dict:
    """Child process: the ``index``-th W4 contender at N = ``n``."""
    import time

    from . import curve_fit_grad

    t, y = curve_fit_grad.data(n)
    inputs = t.nbytes + y.nbytes
    (contender,) = curve_fit_grad.contenders(t, y, only=index)
    out = {
        "name": contender.name,
        "note": contender.note,
        "missing": contender.missing,
        "n": n,
        "inputs": inputs,
    }
    if contender.missing is not None:
        return out
    if sys.platform != "linux":
        out["missing"] = "not measured: needs Linux's /proc"
        return out

    resettable = _reset_peak()
    if resettable:
        contender.evaluate()  # warm-up: compilation, caches
    gc.collect()
    before = _rss_kib()
    _reset_peak()
    start = time.perf_counter()
    result = contender.evaluate()
    out["seconds"] = time.perf_counter() - start
    out["peak_added"] = max(0, _maxrss_kib() - before) * 1024
    out["warm"] = resettable
    del result
    gc.collect()

    tracemalloc.start()
    contender.evaluate()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    out["traced_peak"] = peak
    return out


def _mib(nbytes: float) -> str:
    return f"{nbytes / 2**20:,.0f} MiB"


def section(rows: list[dict], symgen_name: str) -> tuple[str, list[str]]:
    n = rows[0]["n"]
    inputs = rows[0]["inputs"]
    lines = [
        f"One W4 call (loss and six partials) at N = {n:,}, each contender in a fresh process: "
        f'the inputs t and y take {_mib(inputs)}. "Added at peak" is the rise of the '
        "resident set during one warm call (high-water mark reset just before it, read with "
        '`getrusage(RUSAGE_SELF).ru_maxrss`); "NumPy traced" is `tracemalloc`\'s peak over '
        "another call, which sees NumPy's buffers only. Peak / inputs = (inputs + added at "
        f"peak) / inputs; the target for symgen is under {TARGET:g}×.",
        "",
        "| contender | added at peak | peak / inputs | NumPy traced (peak) | traced / inputs "
        "| that call | notes |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        name = f"**{row['name']}**" if row["name"] == symgen_name else row["name"]
        if row.get("missing") is not None:
            lines.append(f"| {name} | {row['missing']} | — | — | — | — | not run |")
            continue
        added, traced = row["peak_added"], row["traced_peak"]
        note = "" if row.get("warm", True) else "first call (compilation included); "
        lines.append(
            f"| {name} | {_mib(added)} | {(inputs + added) / inputs:.2f}× | {_mib(traced)} "
            f"| {traced / inputs:.2f}× | {format_seconds(row['seconds'])} | {note}{row['note']} |"
        )
    return f"Peak memory — W4, N = {n:,}", lines


def symgen_ratio(rows: list[dict], symgen_name: str) -> float:
    """symgen's (inputs + added at peak) / inputs, or NaN."""
    for row in rows:
        if row["name"] == symgen_name and row.get("missing") is None:
            return (row["inputs"] + row["peak_added"]) / row["inputs"]
    return float("nan")


def summary(row: dict) -> str:
    """One line for the console."""
    if row.get("missing") is not None:
        return row["missing"]
    ratio = (row["inputs"] + row["peak_added"]) / row["inputs"]
    return (
        f"{_mib(row['peak_added'])} added at peak ({ratio:.2f}× the inputs), "
        f"NumPy traced {_mib(row['traced_peak'])}"
    )
