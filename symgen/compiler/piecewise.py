"""``Piecewise`` in a loss: what its conditions may be, and the form code is made from.

A condition compares two real expressions (``<``, ``<=``, ``>``, ``>=``, ``Eq``, ``Ne``),
is ``True`` or ``False``, or joins conditions with ``And`` (``&``), ``Or`` (``|``) and
``Not`` (``~``). ``ITE``, ``Xor``, ``Implies``, ``Equivalent``, ``Nand`` and ``Nor`` are
accepted too: ``normalize`` rewrites every condition into its negation normal form, where
only ``And`` and ``Or`` join comparisons (``Not(x > 0)`` is ``x <= 0``), which every target
spells. A ``Piecewise`` takes the value of the first piece whose condition holds (as SymPy
does); where none holds its value is NaN.

``pull_factors`` takes a factor that every piece has out of a ``Piecewise``
(``Piecewise((x*r, c), (x*delta*sign(r), True))``, a gradient by the chain rule, is
``x*Piecewise((r, c), (delta*sign(r), True))``): the optimizer then sums it as a dot
product, and shares the ``Piecewise`` between the gradients that differ by that factor.

``normalize`` also moves a function of a ``Piecewise`` into its branches:
``sqrt(Piecewise((x, x > 0), (0, True)))`` is ``Piecewise((sqrt(x), x > 0), (0, True))``, so
that each branch is differentiated where it holds (the derivative of the first form is
``inf*0`` where ``x <= 0``; of the second, 0).
"""

from __future__ import annotations

import sympy as sp
from sympy.logic.boolalg import Boolean, BooleanFalse, BooleanTrue

from symgen.compiler.guards import total
from symgen.errors import SpecError

#: Comparisons of two real expressions.
COMPARISONS = (
    sp.StrictLessThan,
    sp.LessThan,
    sp.StrictGreaterThan,
    sp.GreaterThan,
    sp.Eq,
    sp.Ne,
)
#: The connectives that the generated code spells.
CONNECTIVES = (sp.And, sp.Or, sp.Not)
#: Connectives accepted in a loss and rewritten with ``And``, ``Or`` (``normalize``).
REWRITTEN = (sp.ITE, sp.Xor, sp.Implies, sp.Equivalent, sp.Nand, sp.Nor)

_SUPPORTED = "a comparison (<, <=, >, >=, Eq, Ne) of real expressions, or And (&), Or (|), Not (~)"


def check_condition_node(node: Boolean, shown) -> None:
    """Raise ``SpecError`` unless ``node`` (a node of a condition) is one symgen spells or
    rewrites; the message says how to write it when SymPy knows an equivalent comparison.
    ``shown`` prints an expression as the user wrote it."""
    if isinstance(node, (*COMPARISONS, *CONNECTIVES, *REWRITTEN, BooleanTrue, BooleanFalse)):
        return
    hint = _as_comparisons(node)
    rewrite = f"; write it as {shown(hint)}" if hint is not None else ""
    raise SpecError(
        f"unsupported condition {shown(node)} ({type(node).__name__}) in a Piecewise; a "
        f"condition is {_SUPPORTED} of conditions{rewrite}"
    )


def _as_comparisons(node: Boolean) -> Boolean | None:
    """``node`` written with comparisons (``Contains(x, Interval(0, 1))``: ``(0 <= x) &
    (x <= 1)``), or None when SymPy knows no such form."""
    symbols = node.free_symbols
    if len(symbols) != 1:
        return None
    (x,) = symbols
    try:
        out = node.as_set().as_relational(x)
    except (NotImplementedError, TypeError, ValueError, AttributeError):
        return None
    spelled = (*COMPARISONS, *CONNECTIVES)
    nodes = sp.preorder_traversal(out)
    if any(isinstance(n, Boolean) and not (n.is_Symbol or isinstance(n, spelled)) for n in nodes):
        return None
    return out


def _normal(condition: Boolean) -> Boolean:
    if not any(isinstance(n, (*REWRITTEN, sp.Not)) for n in sp.preorder_traversal(condition)):
        return condition
    return condition.to_nnf()


def _foldable(e: sp.Basic) -> bool:
    """A function (or a power that is not a polynomial) of an expression with one
    ``Piecewise`` in it: folded, it keeps as many pieces."""
    if isinstance(e, (sp.Piecewise, Boolean)) or not (
        isinstance(e, sp.Function) or (e.is_Pow and not (e.exp.is_Integer and e.exp >= 0))
    ):
        return False
    return len(e.atoms(sp.Piecewise)) == 1


def _fold(e: sp.Basic) -> sp.Basic:
    """``f(Piecewise((a, c), ...))`` as ``Piecewise((f(a), c), ...)``, unless a branch of it
    would be infinite (``log(0)``: then the loss itself is, there)."""
    folded = sp.piecewise_fold(e)
    if folded.has(sp.zoo, sp.oo, -sp.oo, sp.nan):
        return e
    return folded


def normalize(expr: sp.Expr) -> sp.Expr:
    """``expr`` with the condition of each ``Piecewise`` written with ``And``, ``Or`` and
    comparisons only (its negation normal form), and functions of a ``Piecewise`` moved
    into its branches."""
    if not expr.has(sp.Piecewise):
        return expr
    expr = expr.replace(
        lambda e: isinstance(e, sp.Piecewise),
        lambda e: sp.Piecewise(*[(value, _normal(cond)) for value, cond in e.args]),
    )
    return expr.replace(_foldable, _fold)


def _pull(pw: sp.Piecewise) -> sp.Expr:
    values = [value for value, _ in pw.args]
    if any(v == 0 for v in values):  # 0 would become f*0: NaN where f overflows
        return pw
    common = set.intersection(*(set(sp.Mul.make_args(v)) for v in values))
    # a factor outside the pieces is computed where none holds: it must be safe there (and
    # a number stays inside, where it costs nothing)
    common = sorted((f for f in common if not f.is_Number and total(f)), key=sp.default_sort_key)
    if not common:
        return pw
    kept = set(common)
    pieces = [
        (sp.Mul(*[f for f in sp.Mul.make_args(value) if f not in kept]), cond)
        for value, cond in pw.args
    ]
    return sp.Mul(*common) * sp.Piecewise(*pieces)


def pull_factors(expr: sp.Expr) -> sp.Expr:
    """``expr`` with the factors that every piece of a ``Piecewise`` has (and that are safe
    to compute anywhere) taken out of it."""
    if not expr.has(sp.Piecewise):
        return expr
    return expr.replace(lambda e: isinstance(e, sp.Piecewise), _pull)
