"""Numerically stable forms of scalar expressions, applied before differentiation.

Each rule replaces a form that overflows or loses all precision for large
arguments by an equal one that does not:

- ``log(alpha + beta*sigmoid(z))``, any expression linear in ``sigmoid(z)``
  (such as the naive logistic loss ``log(p*t + (1-p)*(1-t))`` with
  ``p = sigmoid(z)``), is ``log(u*sigmoid(z) + v*sigmoid(-z))`` with
  ``u = alpha + beta``, ``v = alpha``, evaluated as
  ``logaddexp(log(u) - softplus(-z), log(v) - softplus(z))``; in particular
  ``log(sigmoid(z))`` → ``-softplus(-z)`` and ``log(1 - sigmoid(z))`` → ``-softplus(z)``
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

from .functions import logaddexp, safelog, sigmoid, softplus


def _log_linear_in_sigmoid(arg: sp.Expr) -> sp.Expr | None:
    sigmoids = arg.atoms(sigmoid)
    if len(sigmoids) != 1:
        return None
    (sig,) = sigmoids
    z = sig.args[0]
    s = sp.Dummy("s")
    linear = sp.expand(arg.xreplace({sig: s}))
    if linear.diff(s, 2) != 0:
        return None
    v = linear.subs(s, 0)
    u = sp.expand(v + linear.diff(s))
    if v == 0:
        return _log(u) - softplus(-z)
    if u == 0:
        return _log(v) - softplus(z)
    return logaddexp(_log(u) - softplus(-z), _log(v) - softplus(z))


def _log(u: sp.Expr) -> sp.Expr:
    if u == 1:
        return sp.S.Zero
    return sp.log(u) if u.is_number else safelog(sp.factor_terms(u))


def _log_of(arg: sp.Expr) -> sp.Expr | None:
    linear = _log_linear_in_sigmoid(arg)
    if linear is not None:
        return linear
    if isinstance(arg, sp.exp):
        return arg.args[0]
    if arg.is_Add and len(arg.args) == 2 and sp.S.One in arg.args:
        other = arg - 1
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
