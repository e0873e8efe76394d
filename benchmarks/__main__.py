"""``python -m benchmarks [--quick] [--output PATH]``: time W1-W4, rewrite BENCHMARKS.md.

The process first fixes its own environment (one BLAS/OpenMP thread, OpenBLAS core
overrides removed, pinned to one CPU), re-executing itself if needed, before NumPy loads.
Then every contender of every workload is checked against symgen's generated module, and
only then timed: each workload in a fresh child process (same settings), so that no
workload's timings depend on what an earlier one left in the memory allocator. Last,
``symgen.generate`` is timed for each workload's problem, in a fresh child process too.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.process import Settings, prepare

ROOT = Path(__file__).resolve().parents[1]

#: Per workload: seconds of timing, and the least and most rounds.
PLANS = {
    "quick": {
        "w1": (20, 15, 400),
        "w2-large": (20, 5, 100),
        "w3-seed": (15, 10, 300),
        "w3-large": (20, 5, 100),
        "w4-100000": (30, 10, 300),
    },
    "full": {
        "w1": (45, 30, 1000),
        "w2-large": (90, 20, 300),
        "w3-seed": (45, 30, 1000),
        "w3-seed-step": (20, 30, 1000),
        "w3-large": (90, 20, 300),
        "w3-large-step": (45, 15, 300),
        "w4-100000": (60, 30, 600),
        "w4-1000000": (90, 15, 300),
    },
}
#: ``symgen.generate`` is timed this many times per problem (the median is reported).
GENERATIONS = 5
TARGET = 0.02  # seconds: the shortest sample; fast calls are repeated inside it


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a shorter run (about a minute)")
    parser.add_argument(
        "--output", type=Path, default=ROOT / "BENCHMARKS.md", help="default: BENCHMARKS.md"
    )
    # Internal: time one workload in this (child) process and write the samples as JSON.
    parser.add_argument("--measure", metavar="KEY", help=argparse.SUPPRESS)
    parser.add_argument("--generation", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--into", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    settings = prepare()  # may re-execute this process; NumPy is not imported before it

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    mode = "quick" if args.quick else "full"
    if args.measure:
        return measure_one(args.measure, PLANS[mode][args.measure], args.into)
    if args.generation:
        return time_generation(args.into)
    return run_all(args, mode, settings)


def measure_one(key: str, plan: tuple[int, int, int], into: Path) -> int:
    from benchmarks import workloads
    from benchmarks.timing import measure

    workload = workloads.build(key)
    budget, low, high = plan
    measurements = measure(
        workload.contenders,
        budget=budget,
        min_rounds=low,
        max_rounds=high,
        target=TARGET,
        label=workload.title,
    )
    rows = [
        {"name": m.contender.name, "number": m.number, "samples": m.samples, "faults": m.faults}
        for m in measurements
        if m.contender.missing is None
    ]
    into.write_text(json.dumps(rows), encoding="utf-8")
    return 0


def time_generation(into: Path) -> int:
    """Wall time of ``symgen.generate(problem)``, GENERATIONS times per problem, after imports."""
    import time

    import symgen
    from examples.curve_fit import curve_fit
    from examples.logistic import logistic
    from examples.mlp import mlp
    from examples.rosenbrock import rosenbrock

    times = {}
    for key, problem in (("W1", rosenbrock), ("W2", logistic), ("W3", mlp), ("W4", curve_fit)):
        samples = []
        for _ in range(GENERATIONS):
            start = time.perf_counter()
            symgen.generate(problem)
            samples.append(time.perf_counter() - start)
        times[key] = {"problem": problem.name, "samples": samples}
    into.write_text(json.dumps(times), encoding="utf-8")
    return 0


def run_all(args: argparse.Namespace, mode: str, settings: Settings) -> int:
    from benchmarks import machine, report, workloads
    from benchmarks.correctness import CheckFailed
    from benchmarks.timing import Measurement

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

    print("building every workload and checking it against symgen's module ...", flush=True)
    built = []
    for key in PLANS[mode]:
        workload = workloads.build(key)
        try:
            workload.check()
        except CheckFailed as exc:
            print(f"ABORTED, nothing timed: {workload.title}: {exc}", file=sys.stderr)
            return 1
        for c in workload.contenders:
            if c.missing is not None:
                print(f"  {workload.title}: {c.name}: {c.missing}", flush=True)
        print(f"  {workload.title}: all contenders agree ({workload.tolerance})", flush=True)
        for c in workload.contenders:  # only names and notes are needed from here on
            c.namespace = {}
        workload.check = _checked
        built.append(workload)

    results = []
    for workload in built:
        rows = {row["name"]: row for row in _in_child(["--measure", workload.key], mode)}
        measurements = []
        for c in workload.contenders:
            m = Measurement(c)
            if c.name in rows:
                m.number = rows[c.name]["number"]
                m.samples = rows[c.name]["samples"]
                m.faults = rows[c.name]["faults"]
            measurements.append(m)
        results.append(
            report.WorkloadResult(
                workload.title,
                workload.description,
                measurements,
                workload.reference,
                workload.symgen,
            )
        )

    print("timing symgen.generate in a fresh process ...", flush=True)
    generation = report.generation_section(_in_child(["--generation"], mode))

    minutes = (datetime.datetime.now(datetime.UTC) - started).total_seconds() / 60
    header.append(("Method", _method(minutes, machine.load_average())))
    report.write(args.output, report.render(header, results, [generation]))
    print()
    for result in results:
        print(f"{result.title}\n" + "\n".join(report.table(result)))
        print(report.summary(result) + "\n")
    print("\n".join(generation[1]))
    print(f"wrote {args.output}")
    return 0


def _checked() -> None:
    """Stands in for a workload's check once it has passed (its data are let go)."""


def _in_child(what: list[str], mode: str):
    """Run ``python -m benchmarks WHAT --into FILE`` and return FILE's JSON."""
    with tempfile.TemporaryDirectory() as tmp:
        into = Path(tmp) / "result.json"
        command = [sys.executable, "-m", "benchmarks", *what, "--into", str(into)]
        if mode == "quick":
            command.append("--quick")
        done = subprocess.run(command, cwd=ROOT, check=False)
        if done.returncode != 0 or not into.exists():
            raise SystemExit(
                f"{' '.join(what)} failed in its child process (exit {done.returncode})"
            )
        return json.loads(into.read_text(encoding="utf-8"))


def _method(minutes: float, load: str) -> list[str]:
    from benchmarks.correctness import RTOL, RTOL_FLOAT32, tolerance

    return [
        "before anything was timed, every contender was checked against symgen's module "
        "(loss, and gradient or new parameters) at several points: "
        f"{tolerance(RTOL, 'element')} for the float64 workloads (W1, W2, W4), "
        f"{tolerance(RTOL_FLOAT32, 'max')} for the float32 W3",
        "each workload is timed in a fresh child process with the settings above, so that "
        "none inherits the memory allocator's state from another (glibc adapts its mmap and "
        "trim thresholds to the largest block freed so far, which changes how many page "
        "faults the W4 temporaries cost); the JAX contenders are compiled before timing and "
        "their results waited for with `block_until_ready`",
        "every round times every contender once (round-robin, the starting contender "
        f"rotating); a sample is a `timeit` loop of enough calls to last ≥ {TARGET * 1000:.0f} "
        "ms (one call for slower contenders), garbage collection off; the table gives the "
        "median over rounds of the time per call, and half the interquartile range relative "
        "to it",
        "ratios are of medians measured in the same run; page faults per call are minor "
        "faults counted with `getrusage` over one extra sample after the rounds",
        f"whole run: {minutes:.1f} min; load average (1/5/15 min) at the end: {load}",
    ]


if __name__ == "__main__":
    sys.exit(main())
