"""``python -m benchmarks.distributed``: W4 from a Zarr store on local Dask workers.

Writes W4's data (``examples/curve_fit.py``: t, y, N samples, default 1e8 = 1.6 GB)
into a Zarr store on disk chunk by chunk, then times one full pass of
``symgen.distributed.loss_and_grad`` over it (throughput in samples per second):

- on a ``LocalCluster`` of 1 and of 2 worker processes (1 thread each), at a few
  chunk sizes (Dask chunks made of whole Zarr chunks), so that the cost per task
  shows;
- on Dask's local threads (no cluster, no serialization);
- and, where the data and the module's temporaries fit in memory, the generated
  module's own ``loss_and_grad`` on the same data as NumPy arrays.

It also times a pass over a single chunk of 1000 rows, which is the fixed cost of
one distributed step. Results go to ``benchmarks/distributed_results.md``.
Options: ``--n``, ``--store`` (default: a temporary folder, removed at the end),
``--repeat``, ``--output``.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import platform
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Rows per Zarr chunk on disk (2 MB per array); Dask chunks are multiples of it.
ZARR_CHUNK = 250_000
#: Dask chunk sizes (rows) timed on 2 workers; the middle one also on 1 worker.
CHUNKS = (250_000, 1_000_000, 5_000_000)
#: Bytes per sample the in-memory loss_and_grad needs: t, y and ~10 float64 temporaries.
MEMORY_PER_SAMPLE = 12 * 8


def available_memory() -> int:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def page_cache() -> int:
    """Bytes of file data the kernel holds in memory now (``Cached`` in /proc/meminfo)."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("Cached:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def busy_cpus(seconds: float = 2.0) -> float:
    """How many CPUs' worth of work other processes are doing now (from /proc/stat)."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as handle:
            fields = [int(x) for x in handle.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return sum(fields), idle

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return 0.0
    spent = total1 - total0
    return (spent - (idle1 - idle0)) / spent * (os.cpu_count() or 1) if spent else 0.0


def machine_lines() -> list[str]:
    from importlib import metadata

    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = load_average()

    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    return [
        f"CPU: {cpu}; logical CPUs: {os.cpu_count()}; memory available at start: "
        f"{available_memory() / 2**30:.1f} GiB; load average at start: {load}",
        f"OS: {platform.platform()}; Python {platform.python_version()}",
        f"NumPy {version('numpy')}, dask {version('dask')}, distributed "
        f"{version('distributed')}, zarr {version('zarr')}, symgen {version('symgen')}",
    ]


def write_store(path: Path, n: int) -> float:
    """W4's data in a Zarr store (uncompressed), one chunk at a time; returns seconds."""
    import numpy as np
    import zarr

    from examples.curve_fit import TRUE

    began = time.perf_counter()
    group = zarr.open_group(str(path), mode="w")
    arrays = {}
    for name in ("t", "y"):
        if hasattr(group, "create_array"):  # zarr 3
            arrays[name] = group.create_array(
                name, shape=(n,), chunks=(ZARR_CHUNK,), dtype="f8", compressors=None
            )
        else:  # zarr 2
            arrays[name] = group.create_dataset(
                name, shape=(n,), chunks=(ZARR_CHUNK,), dtype="f8", compressor=None
            )
    rng = np.random.default_rng(0)
    a, b, c, d, e, g = TRUE
    step = 20 * ZARR_CHUNK
    for begin in range(0, n, step):
        t = rng.uniform(0.0, 4.0, min(step, n - begin))
        y = np.exp(-a * t) * np.sin(b * t + c) + d * t**2 + e * t + g
        y += 0.01 * rng.standard_normal(len(t))
        arrays["t"][begin : begin + len(t)] = t
        arrays["y"][begin : begin + len(t)] = y
    return time.perf_counter() - began


def zarr_call(store: Path) -> float:
    """Seconds for one Zarr read call of one stored chunk (best of 5, in this process)."""
    import zarr

    array = zarr.open_array(str(store / "t"), mode="r")
    count = max(1, min(5, array.shape[0] // ZARR_CHUNK))
    times = []
    for k in range(count):
        began = time.perf_counter()
        array[k * ZARR_CHUNK : (k + 1) * ZARR_CHUNK]
        times.append(time.perf_counter() - began)
    return min(times)


def timed(function, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        function()
        times.append(time.perf_counter() - began)
    return times


def run(args: argparse.Namespace) -> dict:
    import dask
    import dask.array as da
    import numpy as np
    from distributed import Client, LocalCluster

    import symgen
    from examples.curve_fit import START, curve_fit
    from symgen.runtime.distributed.row_plan import RowPlan

    n = int(args.n)
    store = Path(args.store) / "w4.zarr"
    need_disk = 16 * n + 2**28
    free = shutil.disk_usage(store.parent).free
    if free < need_disk:
        raise SystemExit(f"need {need_disk / 2**30:.1f} GiB free at {store.parent}, have "
                         f"{free / 2**30:.1f} GiB; use a smaller --n")  # fmt: skip
    results: dict = {"n": n, "rows": [], "busy_start": busy_cpus()}
    print(f"writing {n:,} samples to {store} ...", flush=True)
    results["write_s"] = write_store(store, n)
    results["store_bytes"] = sum(f.stat().st_size for f in store.rglob("*") if f.is_file())
    print(f"  {results['write_s']:.1f}s", flush=True)
    results["zarr_call_s"] = zarr_call(store)

    def lazy(chunk: int) -> dict:
        return {name: da.from_zarr(str(store), component=name, chunks=(chunk,)) for name in "ty"}

    def row(label: str, workers: str, chunk: int, times: list[float], tasks: int | None):
        best = min(times)
        entry = {
            "label": label,
            "workers": workers,
            "chunk": chunk,
            "tasks": tasks,
            "best_s": best,
            "median_s": statistics.median(times),
            "rate": n / best,
        }
        results["rows"].append(entry)
        print(f"  {label:38s} best {best:7.3f}s  {n / best / 1e6:7.1f} M samples/s", flush=True)

    def graph_tasks(plan) -> int:
        graph = plan.graph("loss_and_grad", START)
        return len(dict(graph.__dask_graph__()))

    module = symgen.compile(curve_fit)
    reference = None
    for workers, chunks in ((1, (1_000_000,)), (2, CHUNKS)):
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        )
        with Client(cluster):
            tiny_data = {k: v[:1000] for k, v in lazy(ZARR_CHUNK).items()}
            tiny = RowPlan(curve_fit, START, tiny_data)
            tiny.loss_and_grad(START)
            times = timed(lambda plan=tiny: plan.loss_and_grad(START), 5 * args.repeat)
            results.setdefault("fixed_s", {})[workers] = statistics.median(times)
            # (the small passes above were the warm-up: the workers have imported symgen)
            if workers == 2:
                arrays = lazy(1_000_000)
                times = timed(lambda a=arrays: dask.compute(a["t"].sum(), a["y"].sum()), 2)
                row("read only: sum(t) and sum(y), 2 workers", "2", 1_000_000, times, None)
            for chunk in chunks:
                plan = RowPlan(curve_fit, START, lazy(chunk))
                times = []
                for _ in range(args.repeat):
                    began = time.perf_counter()
                    value = plan.loss_and_grad(START)
                    times.append(time.perf_counter() - began)
                reference = reference or value
                row(
                    f"LocalCluster, {workers} worker{'s' if workers > 1 else ''}, "
                    f"chunks of {chunk:,}",
                    str(workers),
                    chunk,
                    times,
                    graph_tasks(plan),
                )
        cluster.close()

    with dask.config.set(scheduler="threads", num_workers=2):
        plan = RowPlan(curve_fit, START, lazy(1_000_000))
        times = timed(lambda: plan.loss_and_grad(START), args.repeat)
        row("Dask local threads (2), chunks of 1,000,000", "2 threads", 1_000_000, times, None)

    results["page_cache"] = page_cache()
    results["load_end"] = load_average()
    need = MEMORY_PER_SAMPLE * n
    results["memory_needed"] = need
    if available_memory() > need * 1.2:
        began = time.perf_counter()
        t, y = (np.asarray(a) for a in dask.compute(*lazy(5_000_000).values()))
        results["load_s"] = time.perf_counter() - began
        want = module.loss_and_grad(*START, t=t, y=y)
        times = timed(lambda: module.loss_and_grad(*START, t=t, y=y), args.repeat)
        row("in memory: the module's loss_and_grad", "1 (this process)", n, times, None)
        got, expected = (reference[0], *reference[1]), (want[0], *want[1])
        worst = max(abs(g / w - 1) for g, w in zip(got, expected, strict=True))
        results["agreement"] = worst
        del t, y
    else:
        results["memory_skip"] = (
            f"not run: it needs about {need / 2**30:.1f} GiB, "
            f"{available_memory() / 2**30:.1f} GiB available"
        )
    return results


def _chunks(n: int, chunk: int) -> str:
    count = -(-n // chunk)
    return f"{count:,} chunk{'s' if count != 1 else ''}"


def report(results: dict, command: str, began: str, seconds: float, machine: list[str]) -> str:
    n = results["n"]
    cached = results.get("page_cache", 0)
    if cached and cached < results["store_bytes"]:
        cache_text = (
            f"The kernel held only {cached / 2**30:.1f} GiB of file data in memory (page "
            "cache) after the passes, less than the store, so every pass read most of it from "
            "the disk: the read-only row below is the disk's pace."
        )
    else:
        cache_text = (
            "The store fits in the page cache, so passes read it from memory, not the disk."
        )
    lines = [
        "# Distributed W4: `symgen.distributed.loss_and_grad` over a Zarr store",
        "",
        f"Written by `{command}` on {began} ({seconds / 60:.1f} minutes). "
        "Do not edit by hand: rerun the command.",
        "",
        "## Machine",
        "",
        *[f"- {line}" for line in machine],
        "",
        "## Setup",
        "",
        f"- W4 (`examples/curve_fit.py`, six parameters, mean over samples), N = {n:,} "
        f"samples (t, y float64: {16 * n / 1e9:.2f} GB) in a Zarr store on local disk, "
        f"uncompressed, {ZARR_CHUNK:,} rows per Zarr chunk "
        f"({results['store_bytes'] / 1e9:.2f} GB on disk; written chunk by chunk in "
        f"{results['write_s']:.1f}s). {cache_text}",
        "- One pass = one `loss_and_grad` over all N samples: one task per chunk reads the "
        "chunk's rows of t and y and runs the generated module on them (Dask fuses the read "
        "into the task, so a chunk never moves between workers), and the parts are added up "
        "in a tree (8 per addition). "
        f"Best and median of {results.get('repeat', '?')} passes (the workers had already "
        "imported symgen, in the small passes that measure the fixed cost).",
        "- Workers: `LocalCluster(processes=True, threads_per_worker=1)`; each worker is a "
        "process that reads its chunks from the store itself.",
        "",
        "## Results",
        "",
        "| how | Dask chunk (rows) | tasks per pass | best (s) | median (s) | samples/s |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results["rows"]:
        tasks = "" if r["tasks"] is None else f"{r['tasks']:,}"
        lines.append(
            f"| {r['label']} | {r['chunk']:,} | {tasks} | {r['best_s']:.3f} | "
            f"{r['median_s']:.3f} | {r['rate'] / 1e6:.1f} M |"
        )
    lines.append("")
    if "agreement" in results:
        lines.append(
            f"The distributed loss and gradients agree with the in-memory module's to "
            f"{results['agreement']:.1e} (relative); loading the store into NumPy arrays took "
            f"{results['load_s']:.1f}s."
        )
    else:
        lines.append(f"In memory: {results['memory_skip']}.")
    fixed = results.get("fixed_s", {})
    lines.append(
        f"\nOther processes used {results.get('busy_start', 0.0):.2f} CPUs just before the "
        f"run (2 s sample of /proc/stat); the 1-minute load average was "
        f"{results.get('load_end', '?')} at its end, this run's own work included."
    )
    if fixed:
        lines += [
            "",
            "Fixed cost of one distributed pass (one chunk of 1000 rows, median): "
            + ", ".join(f"{w} worker(s) {s * 1000:.0f} ms" for w, s in sorted(fixed.items()))
            + ".",
        ]
    rows = {(r["workers"], r["chunk"]): r for r in results["rows"]}
    one, two = rows.get(("1", 1_000_000)), rows.get(("2", 1_000_000))
    speedup = "? faster"
    if one and two:
        ratio = one["best_s"] / two["best_s"]
        speedup = (
            f"{ratio:.2f}x faster"
            if ratio > 1.05
            else f"no faster ({one['best_s']:.1f}s against {two['best_s']:.1f}s)"
        )
    reading = next((r for r in results["rows"] if r["label"].startswith("read only")), None)
    bound_text = ""
    if reading and two:
        share = reading["best_s"] / two["best_s"]
        bound_text = (
            f" (only reading t and y takes {reading['best_s']:.1f}s of its "
            f"{two['best_s']:.1f}s: {share:.0%}"
            + (", so here the passes are bound by the storage, not by the arithmetic)"
               if share > 0.6 else ")")
        )  # fmt: skip
    busy_text = ""
    busy = results.get("busy_start", 0.0)
    if busy >= 0.5:
        busy_text = (
            f"; but other processes kept {busy:.1f} of the {os.cpu_count()} logical CPUs busy "
            "just before this run started, so the second worker did not have a core of its "
            "own, and every row was measured on shared CPUs"
        )
    small, large = rows.get(("2", CHUNKS[0])), rows.get(("2", CHUNKS[-1]))
    per_task = "?"
    if small and large and small["tasks"] > large["tasks"]:
        extra = (small["best_s"] - large["best_s"]) / (small["tasks"] - large["tasks"])
        per_task = f"{extra * 1000:.2f} ms" if extra > 0 else "too small to measure"
    fixed_ms = ", ".join(f"{s * 1000:.0f} ms" for _, s in sorted(fixed.items())) or "?"
    two_worker = [r for r in results["rows"] if r["workers"] == "2" and r["tasks"]]
    tasks_text = "; ".join(
        f"{r['tasks']:,} tasks for {_chunks(n, r['chunk'])} of {r['chunk']:,} rows"
        for r in two_worker
    )
    chunk_text = ""
    if two_worker:
        best = min(two_worker, key=lambda r: r["best_s"])
        reasons = []
        if best["chunk"] != min(r["chunk"] for r in two_worker):
            reasons.append("smaller chunks pay the per-task cost more often")
        if best["chunk"] != max(r["chunk"] for r in two_worker):
            reasons.append(
                "larger ones leave too few chunks to keep both workers busy to the end, and "
                "their temporaries (about ten arrays of a chunk's size) no longer fit in the "
                "CPU caches"
            )
        because = ": " + "; ".join(reasons) if reasons else ""
        chunk_text = (
            f"Of the chunk sizes tried, {best['chunk']:,} rows ({best['chunk'] * 8 / 1e6:.0f} "
            f"MB per array) was fastest on 2 workers{because}."
        )
    lines += [
        "",
        "## How it scales, and where the overhead is",
        "",
        f"Going from 1 to 2 worker processes at chunks of 1,000,000 rows is {speedup} "
        f"on this 2-core machine{bound_text}{busy_text}. The pass is embarrassingly "
        "parallel "
        "(each chunk is read and reduced where it lives, only six floats and the loss travel back "
        "per chunk), so on a cluster the time per pass is about (chunks per worker) x "
        "(time per chunk) plus the fixed cost above, until the scheduler or the storage "
        "becomes the limit.",
        "",
        "The overhead per pass has two parts. (1) A fixed cost per `dask.compute`: "
        "building the graph, sending it to the scheduler, and gathering the result "
        f"({fixed_ms} here, measured on one small chunk); it is paid once per optimizer "
        "step in a full-batch `symgen.fit`, so full-batch training on a cluster only pays "
        "off when a pass over the data takes much longer than that. (2) A cost per task: "
        f"the scheduler's and the worker's bookkeeping plus one Zarr read call per array "
        f"(one call for one stored chunk of {ZARR_CHUNK * 8 / 1e6:.0f} MB took "
        f"{results.get('zarr_call_s', float('nan')) * 1000:.1f} ms here, most of it per-call "
        f"overhead; about {per_task} per extra task in all, from the 2-worker passes at the "
        "smallest and largest chunks): the graph has "
        f"{tasks_text}, so the task count grows as N / chunk. {chunk_text} On a real "
        "cluster, choose chunks of a few to tens of MB per array and at least a few chunks "
        "per worker core; reading from network storage instead of the page cache adds its "
        "own bandwidth limit per worker.",
        "",
        "The in-memory row is one process doing the same arithmetic with the data already "
        "in NumPy arrays: no reading, no tasks. A distributed pass adds reading the store "
        "and the costs above; it wins when there are more "
        "cores (or machines) than one process uses, or when the data does not fit in one "
        "machine's memory at all.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=float, default=1e8, help="samples (default: 1e8)")
    parser.add_argument("--store", help="folder for the Zarr store (default: a temporary one)")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes per setting")
    parser.add_argument(
        "--output", default=str(ROOT / "benchmarks" / "distributed_results.md"), help="report"
    )
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    command = "python -m benchmarks.distributed" + (
        " " + shlex.join(argv if argv is not None else sys.argv[1:])
        if (argv if argv is not None else sys.argv[1:])
        else ""
    )
    machine = machine_lines()
    began = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    start = time.perf_counter()
    temporary = args.store is None
    if temporary:
        args.store = tempfile.mkdtemp(prefix="symgen-distributed-")
    try:
        results = run(args)
    finally:
        if temporary:
            shutil.rmtree(args.store, ignore_errors=True)
    results["repeat"] = args.repeat
    text = report(results, command, began, time.perf_counter() - start, machine)
    Path(args.output).write_text(text, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
