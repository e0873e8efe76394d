"""``python -m benchmarks [--quick] [--only KEY,...] [--output PATH]``: time W1-W4 and the time
to solution of whole fits, rewrite BENCHMARKS.md (a ``--quick`` run writes
benchmarks/out/BENCHMARKS-quick.md instead; ``--only`` some workloads, without memory and
generation timing, benchmarks/out/BENCHMARKS-only.md).

The process first fixes its own environment (one BLAS/OpenMP thread, OpenBLAS core
overrides removed, pinned to one CPU), re-executing itself if needed, before NumPy loads.
Everything is then measured in fresh child processes with the same settings, one after
the other: the machine's rates (floors), each workload (its contenders are built, checked
against symgen's generated module, and only then timed; a disagreement stops the run and
nothing is written), W4's peak memory at N = 10⁷ (one process per contender), and
``symgen.generate`` (the examples, then a family of growing size, one process per size).
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.process import Settings, prepare

ROOT = Path(__file__).resolve().parents[1]

#: Per workload: seconds of timing, and the least and most rounds.
PLANS = {
    "quick": {
        "w1": (2, 5, 100),
        "w2-large": (2, 3, 20),
        "w3-seed": (2, 5, 100),
        "w3-large": (2, 3, 20),
        "w4-100000": (2, 5, 100),
        "w4-1000000": (2, 3, 20),
        "solve-w4": (2, 1, 3),
        "solve-w2": (2, 1, 3),
        "huber-numpy-1000000": (2, 5, 100),
        "huber-c-1000000": (2, 5, 100),
    },
    "full": {
        "w1": (20, 30, 1000),
        "w2-large": (40, 15, 300),
        "w3-seed": (20, 30, 1000),
        "w3-seed-step": (15, 20, 1000),
        "w3-large": (45, 10, 300),
        "w3-large-step": (30, 8, 300),
        "w4-100000": (25, 30, 600),
        "w4-1000000": (20, 10, 300),
        "w4-10000000": (60, 4, 300),
        # whole fits: the README's Adam loop takes seconds, so a few rounds
        "solve-w4": (60, 5, 100),
        "solve-w2": (60, 5, 100),
        "huber-numpy-1000000": (20, 15, 600),
        "huber-c-1000000": (20, 15, 600),
        # The second order (benchmarks/second_order.py)
        "hessian-logistic-16": (15, 20, 500),
        "hessian-logistic-64": (15, 20, 500),
        "hessian-logistic-256": (20, 10, 200),
        "hessian-logistic-1024": (30, 3, 50),
        "hessian-quadratic-64": (10, 20, 500),
        "hessian-quadratic-1024": (15, 10, 200),
        "hvp-factorization": (15, 10, 200),
        "hvp-w3-seed": (10, 20, 500),
        "hvp-w3-large": (20, 5, 100),
        "hvp-w4-100000": (10, 20, 300),
    },
}
#: W4's peak memory is measured at this N (the issue's target is stated at 10⁷).
MEMORY_N = {"quick": 1_000_000, "full": 10_000_000}
TARGET = 0.02  # seconds: the shortest sample; fast calls are repeated inside it
#: Where each mode writes its report: a full run rewrites the committed BENCHMARKS.md; a
#: quick run (a smoke test, not numbers to quote) writes beside it, in a git-ignored folder.
OUTPUT = {
    "full": ROOT / "BENCHMARKS.md",
    "quick": ROOT / "benchmarks" / "out" / "BENCHMARKS-quick.md",
}
#: Where a run of some workloads only (``--only``) writes its report.
ONLY_OUTPUT = ROOT / "benchmarks" / "out" / "BENCHMARKS-only.md"


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, with ``mode`` ("quick" or "full") and ``output`` resolved."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a shorter run (fewer rounds)")
    parser.add_argument(
        "--output",
        type=Path,
        help="the report (default: BENCHMARKS.md; with --quick or --only, "
        "benchmarks/out/BENCHMARKS-quick.md or BENCHMARKS-only.md)",
    )
    parser.add_argument(
        "--only",
        metavar="KEY,...",
        help="time only these workloads (e.g. solve-w4,solve-w2; no memory or generation "
        "timing), into benchmarks/out/BENCHMARKS-only.md unless --output says otherwise",
    )
    # Internal: what a child process measures, and the JSON file it writes its results to.
    parser.add_argument("--measure", metavar="KEY", help=argparse.SUPPRESS)
    parser.add_argument("--floors", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--memory", type=int, metavar="INDEX", help=argparse.SUPPRESS)
    parser.add_argument("--generation", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--family", type=int, metavar="K", help=argparse.SUPPRESS)
    parser.add_argument("--threads", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--shapes", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--into", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.mode = "quick" if args.quick else "full"
    if args.only is not None:
        args.only = args.only.split(",")
        unknown = sorted(set(args.only) - set(PLANS[args.mode]))
        if unknown:
            parser.error(f"--only: unknown workload(s) {', '.join(unknown)}")
    default = ONLY_OUTPUT if args.only and args.output is None else OUTPUT[args.mode]
    args.output = args.output or default
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    # may re-execute this process; NumPy is not imported before it
    settings = prepare(all_cores=args.threads)

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    mode = args.mode
    child = _child_result(args, mode)
    if child is not None:
        if child is _FAILED:
            return 3
        args.into.write_text(json.dumps(child), encoding="utf-8")
        return 0
    return run_all(args, mode, settings)


_FAILED = object()


def _child_result(args: argparse.Namespace, mode: str):
    """The JSON-able result of the child's one measurement, None in the parent."""
    import warnings

    warnings.filterwarnings("ignore", message=".*contiguous arrays.*")  # Numba's, on W2's X.T
    if args.measure:
        results = []
        for key in args.measure.split(","):
            result = measure_one(key, PLANS[mode][key])
            if result is _FAILED:
                return _FAILED
            results.append(result)
        return results
    if args.floors:
        from benchmarks import floors

        return floors.measure(quick=mode == "quick")
    if args.memory is not None:
        from benchmarks import memory

        return memory.measure(args.memory, MEMORY_N[mode])
    if args.generation:
        from benchmarks import generation

        return generation.examples()
    if args.family is not None:
        from benchmarks import generation

        return generation.family(args.family)
    if args.threads:
        from benchmarks import threads

        return threads.measure_all(quick=mode == "quick")
    if args.shapes:
        from benchmarks import shapes

        return shapes.measure_all(quick=mode == "quick")
    return None


def measure_one(key: str, plan: tuple[int, int, int]):
    """Build workload ``key``, check every contender against symgen's module, then time them."""
    from benchmarks import workloads
    from benchmarks.correctness import CheckFailed
    from benchmarks.timing import measure

    start = time.perf_counter()
    workload = workloads.build(key)
    for c in workload.contenders:
        if c.missing is not None:
            print(f"  {workload.title}: {c.name}: {c.missing}", flush=True)
    try:
        workload.check()
    except CheckFailed as exc:
        print(f"ABORTED, nothing written: {workload.title}: {exc}", file=sys.stderr)
        return _FAILED
    print(
        f"  {workload.title}: all contenders agree ({workload.tolerance}); built and checked "
        f"in {time.perf_counter() - start:.0f} s",
        flush=True,
    )
    budget, low, high = plan
    measurements = measure(
        workload.contenders,
        budget=budget,
        min_rounds=low,
        max_rounds=high,
        target=TARGET,
        label=workload.title,
    )
    return {
        "key": key,
        "title": workload.title,
        "description": workload.description,
        "reference": workload.reference,
        "symgen": workload.symgen,
        "other_symgen": [list(pair) for pair in workload.other_symgen],
        "symgen_label": workload.symgen_label,
        "contenders": [
            {
                "name": m.contender.name,
                "note": m.contender.note,
                "missing": m.contender.missing,
                "number": m.number,
                "samples": m.samples,
                "faults": m.faults,
            }
            for m in measurements
        ],
    }


def run_only(args: argparse.Namespace, mode: str, settings: Settings, header) -> int:
    """``--only``: the chosen workloads, each in a fresh child process, and their report."""
    from benchmarks import machine, report

    started = datetime.datetime.now(datetime.UTC)
    results = []
    for key in args.only:
        print(f"{key}: built, checked and timed in a fresh process ...", flush=True)
        for data in _in_child(["--measure", key], mode):
            results.append(report.WorkloadResult.from_json(data))
    minutes = (datetime.datetime.now(datetime.UTC) - started).total_seconds() / 60
    header.append(("Method", _method(mode, minutes, machine.load_average())))
    sections = [
        ("Targets", report.speed_targets(results, measured_only=True)),
        report.peers_section(results),
    ]
    report.write(args.output, report.render(header, sections, results))
    for heading, lines in sections:
        print(f"{heading}\n" + "\n".join(lines) + "\n")
    print(f"wrote {args.output}")
    return 0


def run_all(args: argparse.Namespace, mode: str, settings: Settings) -> int:
    from benchmarks import (
        curve_fit_grad,
        floors,
        generation,
        machine,
        memory,
        report,
        shapes,
        threads,
    )

    started = datetime.datetime.now(datetime.UTC)
    header = [
        (
            "Run",
            [
                f"command: `{shlex.join(sys.orig_argv)}` (mode: {mode})",
                f"date: {started:%Y-%m-%d %H:%M} UTC",
            ],
        ),
        ("Machine", machine.cpu_lines()),
        ("Software", machine.software_lines() + machine.blas_lines()),
        ("Process settings", settings.lines()),
    ]
    for heading, items in header:
        print(f"{heading}:\n" + "\n".join(f"  {item}" for item in items), flush=True)
    if args.only:
        return run_only(args, mode, settings, header)

    print("measuring memory bandwidth, BLAS and elementwise rates ...", flush=True)
    rates_at_start = _in_child(["--floors"], mode)
    # Full: one fresh process per workload. Quick: one for all (imports and compilers'
    # start-up paid once), so the allocator's state carries over from one to the next.
    keys = [key for key in PLANS[mode] if args.only is None or key in args.only]
    groups = [[key] for key in keys] if mode == "full" else [keys]
    results = []
    for keys in groups:
        print(f"{', '.join(keys)}: built, checked and timed in a fresh process ...", flush=True)
        for data in _in_child(["--measure", ",".join(keys)], mode):
            results.append(report.WorkloadResult.from_json(data))

    n = MEMORY_N[mode]
    memory_rows, examples_times, family_times = [], {}, []
    if args.only is None:
        print(f"W4 peak memory at N = {n:,}, one fresh process per contender ...", flush=True)
        for index in range(len(curve_fit_grad.BUILDERS)):
            row = _in_child(["--memory", str(index)], mode)
            print(f"  {row['name']}: {memory.summary(row)}", flush=True)
            memory_rows.append(row)

        print("timing symgen.generate, one fresh process per problem family size ...", flush=True)
        examples_times = _in_child(["--generation"], mode)
        sizes = generation.FAMILY_SIZES if mode == "full" else generation.FAMILY_SIZES[::3]
        for k in sizes:
            family_times.append(_in_child(["--family", str(k)], mode))
            print(f"  K = {k}: first call {family_times[-1]['samples'][0]:.2f} s", flush=True)

    print("the shapes section (Theano's logistic regression), one thread ...", flush=True)
    shapes_result = _in_child(["--shapes"], mode)
    print("the multi-thread section, on every core ...", flush=True)
    threads_result = _in_child(["--threads"], mode)

    print("measuring the rates again ...", flush=True)
    rates = floors.best(rates_at_start, _in_child(["--floors"], mode))

    minutes = (datetime.datetime.now(datetime.UTC) - started).total_seconds() / 60
    header.append(("Method", _method(mode, minutes, machine.load_average())))
    generated = generation.headline(examples_times, family_times)
    memory_ratio = memory.symgen_ratio(memory_rows, curve_fit_grad.SYMGEN)
    sections = [
        report.targets_section(results, generated, memory_ratio, memory.TARGET, n),
        report.peers_section(results),
    ]
    tail = [
        threads.section(threads_result),
        shapes.section(shapes_result),
        floors.section(
            rates,
            [(r.key, label, r.median_of(name)) for r in results for name, label in r.symgen_rows()],
        ),
    ]
    if args.only is None:
        tail += [
            memory.section(memory_rows, curve_fit_grad.SYMGEN),
            generation.section(examples_times, family_times),
        ]
    report.write(args.output, report.render(header, sections, results, tail))
    print()
    for heading, lines in sections:
        print(f"{heading}\n" + "\n".join(lines) + "\n")
    print(f"wrote {args.output}")
    return 0


def _in_child(what: list[str], mode: str):
    """Run ``python -m benchmarks WHAT --into FILE`` and return FILE's JSON."""
    with tempfile.TemporaryDirectory() as tmp:
        into = Path(tmp) / "result.json"
        command = [sys.executable, "-m", "benchmarks", *what, "--into", str(into)]
        if mode == "quick":
            command.append("--quick")
        start = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, check=False)
        print(f"  ({what[0]} child: {time.perf_counter() - start:.0f} s)", flush=True)
        if done.returncode != 0 or not into.exists():
            raise SystemExit(
                f"{' '.join(what)} failed in its child process (exit {done.returncode}); "
                "nothing written"
            )
        return json.loads(into.read_text(encoding="utf-8"))


def _method(mode: str, minutes: float, load: str) -> list[str]:
    from benchmarks.correctness import RTOL, RTOL_FLOAT32, tolerance

    where = (
        "each workload is built, checked and timed in its own fresh child process with the "
        "settings above, so that none inherits the memory allocator's state from another "
        "(glibc adapts its mmap and trim thresholds to the largest block freed so far, which "
        "changes how many page faults temporaries cost)"
    )
    if mode == "quick":
        where = (
            "quick run: all workloads are built, checked and timed one after the other in one "
            "child process with the settings above (imports and compilers start once), so "
            "the later ones inherit the memory allocator's state, and few rounds are timed: "
            "a smoke test, not numbers to quote; W4 is timed at N = 10⁵ and 10⁶ and its peak "
            "memory measured at 10⁶ (the full run: 10⁵, 10⁶, 10⁷)"
        )
    return [
        where,
        "before anything of a workload was timed, every contender was checked against "
        "symgen's module (loss, and gradient or new parameters) at several points: "
        f"{tolerance(RTOL, 'element')} for the float64 workloads (W1, W2, W4), "
        f"{tolerance(RTOL_FLOAT32, 'max')} for the float32 W3; a disagreement stops the run",
        "time to solution (`solve-*`): each call is a whole fit from the same start; before "
        "timing, every fit was run once and had to reach the stated accuracy (W4: every "
        "parameter within 1e-10 of the optimum, found by two routes that agree; W2: the mean "
        "gradient's max-norm ≤ 1e-8), except the README's Adam loop, whose accuracy is noted",
        "compiled contenders (JAX `jit`, `torch.compile`, PyTensor) are compiled and called "
        "before timing; JAX results are waited for with `block_until_ready`; every framework "
        "runs on one thread (and the process is pinned to one CPU), except in the "
        "multi-thread section, run in a child process of its own on every CPU the runner was "
        "allowed (thread pools as large, not pinned)",
        "every round times every contender once (round-robin, the starting contender "
        f"rotating); a sample is a `timeit` loop of enough calls to last ≥ {TARGET * 1000:.0f} "
        "ms (one call for slower contenders), garbage collection off; the tables give the "
        "median over rounds of the time per call, and half the interquartile range relative "
        "to it",
        "ratios are of medians measured in the same run; page faults per call are minor "
        "faults counted with `getrusage` over one extra sample after the rounds",
        f"whole run: {minutes:.1f} min; load average (1/5/15 min) at the end: {load}",
    ]


if __name__ == "__main__":
    sys.exit(main())
