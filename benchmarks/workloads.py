"""The workloads by key ("w1", "w4-100000", ...): contenders, correctness check, labels."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import curve_fit_grad, rosenbrock_step
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
        )
    raise ValueError(f"unknown workload {key!r}")
