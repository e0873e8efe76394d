"""The workloads by key, with their contenders, correctness check and labels.

Keys: "w1", "w2-large", "w3-seed", "w3-seed-step", "w3-large", "w3-large-step", "w4-N"
(N samples, e.g. "w4-100000", "w4-10000000"); the second order's "hessian-logistic-D",
"hessian-quadratic-D", "hvp-factorization", "hvp-w3-seed", "hvp-w3-large", "hvp-w4-N"
(``second_order.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import curve_fit_grad, logistic_grad, mlp_grad, rosenbrock_step
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
