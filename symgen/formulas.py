"""Derivative formulas for people: what ``symgen show`` and ``symgen diff`` print.

These are for reading, not for code generation (the generated code comes
from the IR and its CSE'd program). Each derivative is put in the shortest
of a few standard forms: as differentiated, expanded (polynomials read best
expanded: ``3*x**2 - 8*x + 6``), and ``simplify``'d when the expression is
small enough for that to be quick.
"""

from __future__ import annotations

import sympy as sp

from .problem import Problem

#: ``simplify`` is only tried below this many operations (it can take seconds on big inputs).
SIMPLIFY_LIMIT = 60


def readable(expr: sp.Expr) -> sp.Expr:
    """The shortest of ``expr``, its common factors pulled out, ``expand(expr)``
    and (when small) ``simplify(expr)``; the first of equals wins."""
    candidates = [expr, sp.factor_terms(expr), sp.expand(expr)]
    if sp.count_ops(expr) <= SIMPLIFY_LIMIT:
        candidates.append(sp.simplify(expr))
    return min(candidates, key=sp.count_ops)  # min keeps the first of equals


def derivative(expr: sp.Expr, wrt: sp.Symbol) -> sp.Expr:
    """The readable derivative of ``expr`` with respect to ``wrt``, over the reals."""
    real = {s: sp.Symbol(s.name, real=True) for s in expr.free_symbols if isinstance(s, sp.Symbol)}
    back = {r: s for s, r in real.items()}
    wrt_real = real.get(wrt, sp.Symbol(wrt.name, real=True))
    d = sp.diff(expr.xreplace(real), wrt_real)
    return _pull_number(readable(d).xreplace(back))


def _pull_number(expr: sp.Expr) -> sp.Expr:
    """``2*a + 2*b + 2*c`` → ``2*(a + b + c)`` (kept unevaluated) when that is shorter."""
    if not expr.is_Add:
        return expr
    content, primitive = expr.as_content_primitive()
    if content == 1 or content == -1:
        return expr
    pulled = sp.Mul(content, primitive, evaluate=False)
    return pulled if sp.count_ops(pulled) < sp.count_ops(expr) else expr


def gradients(problem: Problem) -> dict[sp.Symbol, sp.Expr]:
    """The simplified derivative of the loss with respect to each parameter.

    For a per-sample problem the formula is that of one sample's term:
    the gradient is its sum over samples (its mean, for ``reduce="mean"``).
    Keys are the problem's own parameter symbols, in ``params`` order.
    """
    return {p: derivative(problem.loss, p) for p in problem.params}
