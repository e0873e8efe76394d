"""Generation time: ``symgen.generate(problem)`` wall time, and how it grows with the problem.

Two kinds of measurement, each in a fresh child process after its imports:

- the examples' problems (W1-W4), ``REPEATS`` calls each in one process (the first call
  also fills SymPy's caches for the later ones);
- a family of per-sample losses of growing size, one fresh process per size so that
  every size's first call is cold: a sum of K/2 damped sinusoids
  ``p_{2i} exp(-p_{2i+1} t) sin((i + 1) t)`` minus y, squared, averaged over samples,
  whose gradient has K parameters. For each size the table gives the number of
  statements and of operations (``sympy.count_ops`` over every statement) of the
  generated loss-and-gradient program, and the growth exponent is fitted on a log-log
  scale (least squares).
"""

from __future__ import annotations

import math
import statistics
import time

from .timing import format_seconds

REPEATS = 5
FAMILY_REPEATS = 3
#: Parameters in the family's sizes; the last one is the issue's 50-parameter loss.
FAMILY_SIZES = (10, 20, 30, 50)
#: Generation-time targets in seconds, from the issue.
TARGETS = {"W3": 1.0, "family-50": 5.0}


def damped_sines(k: int):
    """The family's problem with ``k`` parameters (``k`` even)."""
    import sympy as sp

    import symgen

    t, y = sp.symbols("t y")
    p = sp.symbols(f"p0:{k}")
    model = sum(p[2 * i] * sp.exp(-p[2 * i + 1] * t) * sp.sin((i + 1) * t) for i in range(k // 2))
    return symgen.Problem(
        (model - y) ** 2, params=list(p), data=[t, y], reduce="mean", name=f"damped_sines_{k}"
    )


def examples() -> dict:
    """Child process: the examples' problems, REPEATS calls each."""
    import symgen
    from examples.curve_fit import curve_fit
    from examples.logistic import logistic
    from examples.mlp import mlp
    from examples.rosenbrock import rosenbrock

    out = {}
    for key, problem in (("W1", rosenbrock), ("W2", logistic), ("W3", mlp), ("W4", curve_fit)):
        out[key] = {"problem": problem.name, "samples": _time(symgen.generate, problem, REPEATS)}
    return out


def family(k: int) -> dict:
    """Child process: the ``k``-parameter member of the family, and its program's size."""
    import sympy as sp

    import symgen

    problem = damped_sines(k)
    samples = _time(symgen.generate, problem, FAMILY_REPEATS)
    out = {"params": k, "samples": samples, "loss_ops": int(sp.count_ops(problem.loss))}
    try:  # the program symgen prints: internal API, so optional
        from symgen.compiler.pipeline import run

        stmts = run(problem).grad_program.stmts
        out["statements"] = len(stmts)
        out["operations"] = int(sum(sp.count_ops(e) for s in stmts for e in s.inputs))
    except Exception as exc:  # noqa: BLE001 - reported as unknown
        out["size_error"] = f"{type(exc).__name__}: {exc}"
    return out


def _time(fn, arg, repeats: int) -> list[float]:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(arg)
        samples.append(time.perf_counter() - start)
    return samples


def exponent(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of log(ys) against log(xs)."""
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = statistics.fmean(lx), statistics.fmean(ly)
    den = sum((a - mx) ** 2 for a in lx)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True)) / den if den else math.nan


def verdict(seconds: float, target: float | None) -> str:
    if target is None:
        return "—"
    return f"< {target:g} s: {'met' if seconds < target else 'MISSED'}"


def section(examples_times: dict, family_times: list[dict]) -> tuple[str, list[str]]:
    lines = [
        "Wall time of `symgen.generate(problem)` (spec to NumPy module source) in a fresh "
        "process after its imports. The first call is cold (it also fills SymPy's caches); "
        "the targets are judged on it.",
        "",
        "| workload | problem | first call (cold) | median | all calls | target |",
        "|---|---|---:|---:|---|---|",
    ]
    for key, entry in examples_times.items():
        samples = entry["samples"]
        lines.append(
            f"| {key} | `{entry['problem']}` | {format_seconds(samples[0])} "
            f"| {format_seconds(statistics.median(samples))} "
            f"| {', '.join(format_seconds(s) for s in samples)} "
            f"| {verdict(samples[0], TARGETS.get(key))} |"
        )
    lines += [
        "",
        "Growth with the size of the expression: the damped-sinusoid family (K/2 terms "
        "p₂ᵢ exp(-p₂ᵢ₊₁ t) sin((i + 1) t), minus y, squared, mean over samples; gradient of K "
        f"parameters), one fresh process per size, {FAMILY_REPEATS} calls each. Statements "
        "and operations (`sympy.count_ops`) are those of the generated loss-and-gradient "
        "program (after fusion and CSE); loss ops are those of the per-sample loss as written.",
        "",
        "| K parameters | loss ops | generated statements | generated operations "
        "| first call (cold) | median | target |",
        "|---:|---:|---:|---:|---:|---:|---|",
    ]
    for entry in family_times:
        samples = entry["samples"]
        target = TARGETS.get(f"family-{entry['params']}")
        lines.append(
            f"| {entry['params']} | {entry['loss_ops']:,} | {entry.get('statements', '?')} "
            f"| {entry.get('operations', '?')} | {format_seconds(samples[0])} "
            f"| {format_seconds(statistics.median(samples))} | {verdict(samples[0], target)} |"
        )
    lines += ["", *growth(family_times)]
    return "Generation time", lines


def growth(family_times: list[dict]) -> list[str]:
    """The fitted exponents, in words."""
    if len(family_times) < 2:
        return []
    firsts = [e["samples"][0] for e in family_times]
    medians = [statistics.median(e["samples"]) for e in family_times]
    params = [e["params"] for e in family_times]
    parts = [
        f"against K: {exponent(params, firsts):.2f} (first calls), "
        f"{exponent(params, medians):.2f} (medians)"
    ]
    if all("operations" in e for e in family_times):
        ops = [e["operations"] for e in family_times]
        parts.append(
            f"against generated operations: {exponent(ops, firsts):.2f} (first calls), "
            f"{exponent(ops, medians):.2f} (medians); operations grow as K^"
            f"{exponent(params, ops):.2f}"
        )
    return [
        "Fitted growth exponent of generation time (slope of log time on log size, least "
        "squares over the sizes above): " + "; ".join(parts) + "."
    ]


def headline(examples_times: dict, family_times: list[dict]) -> dict[str, float]:
    """First-call seconds for the targets table: ``{"W3": s, "family-50": s}``."""
    out = {}
    if "W3" in examples_times:
        out["W3"] = examples_times["W3"]["samples"][0]
    for entry in family_times:
        out[f"family-{entry['params']}"] = entry["samples"][0]
    return out
