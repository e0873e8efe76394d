"""The workloads by key, with their contenders, correctness check and labels.

Keys: "w1", "w2-large", "w3-seed", "w3-seed-step", "w3-large", "w3-large-step", "w4-N"
(N samples, e.g. "w4-100000", "w4-10000000"); "solve-w4" and "solve-w2", the time to
solution of whole fits (``solve_times``); "huber-BACKEND-N" (BACKEND numpy or c: the
Huber loss as a Piecewise against its Min/Abs spelling); the second order's
"hessian-logistic-D", "hessian-quadratic-D", "hvp-factorization", "hvp-w3-seed",
"hvp-w3-large", "hvp-w4-N" (``second_order.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import curve_fit_grad, huber_grad, logistic_grad, mlp_grad, rosenbrock_step, solve_times
from .correctness import RTOL, RTOL_FLOAT32, tolerance
from .timing import Contender


@dataclass
class Workload:
    key: str
    title: str
    description: str
    reference: str  # contender name
    symgen: str  # contender name
    contenders: list[Contender]
    check: Callable[[], None]  # raises CheckFailed
    tolerance: str = tolerance(RTOL, "element")  # how close the check wants, in words
    #: Other symgen contenders (another spelling of the same loss) and a short label for
    #: each, for the targets, peers and floors tables.
    other_symgen: tuple[tuple[str, str], ...] = ()
    symgen_label: str = ""  # the same for the main symgen contender, when there are others


def build(key: str) -> Workload:
    if key == "w1":
        contenders = rosenbrock_step.contenders()
        return Workload(
            key,
            rosenbrock_step.TITLE,
            rosenbrock_step.DESCRIPTION,
            rosenbrock_step.REFERENCE,
            rosenbrock_step.SYMGEN,
            contenders,
            lambda: rosenbrock_step.check(contenders),
        )
    if key.startswith("w4-"):
        n = int(key.removeprefix("w4-"))
        t, y = curve_fit_grad.data(n)
        contenders = curve_fit_grad.contenders(t, y)
        return Workload(
            key,
            curve_fit_grad.title(n),
            curve_fit_grad.description(n),
            curve_fit_grad.REFERENCE,
            curve_fit_grad.SYMGEN,
            contenders,
            lambda: curve_fit_grad.check(contenders, t, y),
            other_symgen=((curve_fit_grad.SYMGEN_C, "C backend"),),
        )
    if key == "w2-large":
        X, t = logistic_grad.data()
        contenders = logistic_grad.contenders(X, t)
        return Workload(
            key,
            logistic_grad.title(),
            logistic_grad.description(),
            logistic_grad.REFERENCE,
            logistic_grad.SYMGEN,
            contenders,
            lambda: logistic_grad.check(contenders, X, t),
            other_symgen=(
                (logistic_grad.SYMGEN_CE, "cross-entropy spelling"),
                (logistic_grad.SYMGEN_C, "C backend"),
            ),
            symgen_label="the example's mixture spelling",
        )
    if key.startswith("w3-"):
        size, _, step = key.removeprefix("w3-").partition("-")
        arrays = mlp_grad.data(size)
        if step:
            contenders = mlp_grad.step_contenders(arrays)
            names = (mlp_grad.STEP_REFERENCE, mlp_grad.STEP_SYMGEN)
            c_backend = mlp_grad.STEP_SYMGEN_C
        else:
            contenders = mlp_grad.contenders(arrays)
            names = (mlp_grad.REFERENCE, mlp_grad.SYMGEN)
            c_backend = mlp_grad.SYMGEN_C
        return Workload(
            key,
            mlp_grad.title(size, bool(step)),
            mlp_grad.description(size, bool(step)),
            *names,
            contenders,
            lambda: mlp_grad.check(contenders, arrays, step=bool(step)),
            tolerance(RTOL_FLOAT32, "max"),
            other_symgen=((c_backend, "C backend"),),
        )
    if key == "solve-w4":
        contenders, found = solve_times.w4_contenders()
        return Workload(
            key,
            solve_times.w4_title(),
            solve_times.w4_description(),
            solve_times.W4_REFERENCE,
            solve_times.W4_SYMGEN,
            contenders,
            lambda: solve_times.check_w4(contenders, found["optimum"]),
            f"every parameter within {solve_times.W4_ACCURACY:g} of the optimum (relative)",
            other_symgen=((solve_times.W4_SYMGEN_NUMPY, "NumPy module"),),
            symgen_label="C backend",
        )
    if key == "solve-w2":
        contenders, found = solve_times.w2_contenders()
        return Workload(
            key,
            solve_times.w2_title(),
            solve_times.w2_description(),
            solve_times.W2_REFERENCE,
            solve_times.W2_SYMGEN,
            contenders,
            lambda: solve_times.check_w2(contenders, found["x"], found["t"]),
            f"mean gradient of max-norm ≤ {solve_times.W2_GRADIENT:g}",
            other_symgen=(
                (solve_times.W2_SYMGEN_NUMPY, "L-BFGS-B, NumPy module"),
                (solve_times.W2_NEWTON, "newton_step, C backend"),
            ),
            symgen_label="L-BFGS-B, C backend",
        )
    if key.startswith("huber-"):
        backend, _, size = key.removeprefix("huber-").partition("-")
        n = int(size)
        xs, ys = huber_grad.data(n)
        contenders = huber_grad.contenders(backend, xs, ys)
        return Workload(
            key,
            huber_grad.title(backend, n),
            huber_grad.description(backend, n),
            huber_grad.reference_name(backend),
            huber_grad.symgen_name(backend),
            contenders,
            lambda: huber_grad.check(backend, contenders, xs, ys),
        )
    if key.startswith(("hessian-", "hvp-")):
        from . import second_order

        contenders, reference, mine, others, check = second_order.build(key)
        return Workload(
            key,
            second_order.title(key),
            second_order.description(key),
            reference,
            mine,
            contenders,
            check,
            tolerance(second_order.RTOL, "max"),
            other_symgen=others,
        )
    raise ValueError(f"unknown workload {key!r}")
