"""The stages in order: frontend → autodiff → optimize, for one problem."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import sympy as sp

from symgen.compiler.autodiff import gradients
from symgen.compiler.frontend import Lowered, lower
from symgen.compiler.least_squares import detect
from symgen.compiler.optimize import Namer, Program, build_program
from symgen.compiler.problem import RESERVED_NAMES, Problem
from symgen.compiler.second_order import SecondOrder, second_order
from symgen.version import __version__


@dataclass(frozen=True)
class Residuals:
    """The programs of a least-squares loss (``compiler.least_squares``): its residuals, and
    their Jacobian as one block per parameter followed by the residuals (the pass that makes
    the Jacobian evaluates most of them on the way: ``jacobian(..., residuals=r)`` hands
    them back); the loss is ``scale`` times the sum (``reduce="sum"``) or the mean
    (``"mean"``) of the squared residuals."""

    residual_program: Program
    jacobian_program: Program
    scale: sp.Expr
    reduce: str


@dataclass(frozen=True)
class Compiled:
    """A problem with its IR and its two programs: loss only, and loss with gradients;
    ``residuals`` when the loss is a least-squares loss."""

    problem: Problem
    lowered: Lowered
    loss_program: Program
    grad_program: Program
    version: str = __version__
    residuals: Residuals | None = None

    @cached_property
    def second_order(self) -> SecondOrder:
        """The hvp, Hessian and Newton programs (``compiler/second_order.py``), built when
        first asked for."""
        grads = gradients(self.lowered.loss, self.lowered.params)
        return second_order(self.lowered, grads, _namer)


def _namer(lowered: Lowered) -> Namer:
    taken = {i.name for i in (*lowered.params, *lowered.data)}
    taken |= {str(d) for d, _, _ in lowered.dims} | set(RESERVED_NAMES)
    return Namer(taken)


def _residuals(problem: Problem, lowered: Lowered) -> Residuals | None:
    found = detect(problem, lowered)
    if found is None:
        return None
    residual = build_program(lowered, [found.residual], ["residual"], _namer(lowered))
    names = [f"jac_{p.name}" for p in lowered.params] + ["residual"]
    outputs = [*found.jacobian, found.residual]
    jacobian = build_program(lowered, outputs, names, _namer(lowered))
    return Residuals(residual, jacobian, found.scale, found.reduce)


def run(problem: Problem) -> Compiled:
    lowered = lower(problem)
    grads = gradients(lowered.loss, lowered.params)
    loss_program = build_program(lowered, [lowered.loss], ["loss"], _namer(lowered))
    names = ["loss"] + [f"grad_{p.name}" for p in lowered.params]
    grad_program = build_program(lowered, [lowered.loss, *grads], names, _namer(lowered))
    residuals = _residuals(problem, lowered)
    return Compiled(problem, lowered, loss_program, grad_program, residuals=residuals)
