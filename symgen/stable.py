"""Numerically stable forms of scalar expressions, applied before differentiation.

Each rule replaces a form that overflows or loses all precision for large
arguments by an equal one that does not:

- ``log(sigmoid(z))`` → ``-softplus(-z)``
- ``log(1 - sigmoid(z))`` → ``-softplus(z)``
- ``log(1 + exp(z))`` → ``softplus(z)``
- ``log(exp(z))`` → ``z``
- ``1/(1 + exp(-z))`` → ``sigmoid(z)``

``softplus`` and ``sigmoid`` are printed in stable forms (``logaddexp``,
``tanh``), and their derivatives (``sigmoid``, ``sigmoid*(1-sigmoid)``) stay
finite, so the rewritten loss has a finite gradient wherever the loss is
finite.
"""

from __future__ import annotations

import sympy as sp

from .functions import sigmoid, softplus


def _log_of(arg: sp.Expr) -> sp.Expr | None:
    if isinstance(arg, sigmoid):
        return -softplus(-arg.args[0])
    if isinstance(arg, sp.exp):
        return arg.args[0]
    if arg.is_Add and len(arg.args) == 2 and sp.S.One in arg.args:
        other = arg - 1
        if isinstance(-other, sigmoid):
            return -softplus((-other).args[0])
        if isinstance(other, sp.exp):
            return softplus(other.args[0])
    return None


def _reciprocal(base: sp.Expr) -> sp.Expr | None:
    if base.is_Add and len(base.args) == 2 and sp.S.One in base.args:
        other = base - 1
        if isinstance(other, sp.exp):
            return sigmoid(-other.args[0])
    return None


def stabilize(expr: sp.Expr) -> sp.Expr:
    """``expr`` with the unstable forms above rewritten, bottom up."""
    if not expr.args:
        return expr
    args = [stabilize(a) for a in expr.args]
    e = expr.func(*args) if args != list(expr.args) else expr
    if isinstance(e, sp.log):
        return _log_of(e.args[0]) or e
    if e.is_Pow and e.exp == -1:
        return _reciprocal(e.base) or e
    return e
