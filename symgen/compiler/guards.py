"""A ``Piecewise`` computes each branch only where it holds (no JAX ``where`` trap).

``Piecewise((sqrt(x), x > 0), (0, True))`` must neither compute ``sqrt(x)`` where
``x <= 0`` (Python's ``math.sqrt`` raises, NumPy warns and makes a NaN) nor let such a
value reach the loss or its gradient. Every target evaluates a ``Piecewise`` lazily (a
Python conditional expression, a C ternary, NumPy's masked assignments), so what remains
is to keep the optimizer from moving work out of a branch:

- ``total``: whether an expression can be computed at every finite real input without an
  error, a floating-point warning or an infinity (polynomials, and the functions whose
  homes in ``scalar_functions`` say ``total``; not ``log``, ``sqrt``, a division, ``exp``
  of something that may be positive). A total branch may be computed everywhere (NumPy's
  ``np.where``); another only where it holds.
- ``guard``: after common subexpressions are taken out (``sympy.cse``), a temporary that
  is not total and that only branches read goes back into the branches that read it.

The first condition of a ``Piecewise`` is evaluated everywhere; a later condition and each
branch only where the conditions before it do not hold.
"""

from __future__ import annotations

from collections.abc import Iterable

import sympy as sp
from sympy.functions.elementary.piecewise import ExprCondPair
from sympy.logic.boolalg import Boolean

from symgen.compiler.scalar_functions import BY_CLASS

#: Nodes that are total when their arguments are: arithmetic, conditions.
_TRANSPARENT = (sp.Add, sp.Mul, sp.Piecewise, ExprCondPair, Boolean)


def total(
    expr: sp.Basic,
    failing: Iterable[sp.Symbol] = (),
    leaves: tuple[type, ...] = (),
    lazy: bool = False,
) -> bool:
    """Whether ``expr`` can be computed at any finite real input without an error, a
    warning or an infinity; ``failing``: symbols whose values cannot (temporaries defined
    by such expressions); ``leaves``: node kinds that stand for a value (array views);
    ``lazy``: a ``Piecewise`` computes its branches only where they hold, so only its first
    condition counts."""
    failing = frozenset(failing)

    def ok(e: sp.Basic) -> bool:
        if lazy and isinstance(e, sp.Piecewise):
            return ok(e.args[0].cond)
        if e.is_Symbol:
            return e not in failing
        if e.is_Atom:
            return e.is_finite is not False
        if isinstance(e, leaves):
            return all(ok(a) for a in e.args)
        if e.is_Pow:
            base, exp = e.args
            return bool(exp.is_Integer and exp >= 0) and ok(base)
        if isinstance(e, sp.exp):  # exp(-|z|) cannot overflow; exp(z) can
            return bool(e.args[0].is_nonpositive) and ok(e.args[0])
        home = BY_CLASS.get(type(e))
        if isinstance(e, _TRANSPARENT) or (home is not None and home.total):
            return all(ok(a) for a in e.args)
        return False

    return ok(expr)


def pieces_total(piecewise: sp.Piecewise, leaves: tuple[type, ...] = ()) -> bool:
    """Whether every part of ``piecewise`` that is evaluated only where earlier conditions
    fail (each value, every condition after the first) is total: then computing them all
    everywhere and selecting (``np.where``) is safe."""
    values = [value for value, _ in piecewise.args]
    later = [cond for _, cond in piecewise.args[1:]]
    return all(total(e, leaves=leaves) for e in (*values, *later))


def open_symbols(expr: sp.Basic) -> set[sp.Symbol]:
    """The symbols that computing ``expr`` reads whatever its conditions: all but those
    inside the branches (and the later conditions) of a ``Piecewise``."""
    if expr.is_Symbol:
        return {expr}
    if isinstance(expr, sp.Piecewise):
        return open_symbols(expr.args[0].cond)
    out: set[sp.Symbol] = set()
    for a in expr.args:
        out |= open_symbols(a)
    return out


def guard(
    replacements: list[tuple[sp.Symbol, sp.Expr]],
    reduced: list[sp.Expr],
    leaves: tuple[type, ...] = (),
) -> tuple[list[tuple[sp.Symbol, sp.Expr]], list[sp.Expr]]:
    """``sympy.cse``'s output with each temporary that is not total and that is read only
    inside ``Piecewise`` branches put back into the expressions that read it, so that it is
    computed only where its branch holds (the same for what it reads in turn)."""
    if not any(e.has(sp.Piecewise) for e in (*reduced, *(d for _, d in replacements))):
        return replacements, reduced
    failing: set[sp.Symbol] = set()
    for sym, definition in replacements:
        if not total(definition, failing, leaves, lazy=True):
            failing.add(sym)
    # Temporaries needed wherever the program runs: read outside branches, or by such.
    definitions = dict(replacements)
    needed: set[sp.Symbol] = set()
    todo = set().union(*(open_symbols(e) for e in reduced))
    while todo:
        sym = todo.pop()
        if sym in definitions and sym not in needed:
            needed.add(sym)
            todo |= open_symbols(definitions[sym])
    inline = failing - needed
    if not inline:
        return replacements, reduced
    mapping: dict[sp.Symbol, sp.Expr] = {}
    kept = []
    for sym, definition in replacements:
        definition = definition.xreplace(mapping)
        if sym in inline:
            mapping[sym] = definition
        else:
            kept.append((sym, definition))
    return kept, [e.xreplace(mapping) for e in reduced]
