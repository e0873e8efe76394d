"""What a scalar loss may be built from: the SymPy nodes and functions symgen can
differentiate and print (the functions are those ``scalar_functions`` gives the role
"loss"), ``Piecewise`` with the conditions of ``conditions``, and the check that refuses
anything else by name, with a rewrite into supported functions when SymPy knows one."""

from __future__ import annotations

from collections.abc import Callable

import sympy as sp
from sympy.core.function import Application
from sympy.functions.elementary.piecewise import ExprCondPair
from sympy.logic.boolalg import Boolean

from symgen.compiler.piecewise import check_condition_node
from symgen.compiler.scalar_functions import SUPPORTED_FUNCTIONS
from symgen.errors import SpecError

_ATOMS = (sp.Symbol, sp.Number, sp.NumberSymbol)
_OPERATIONS = (sp.Add, sp.Mul, sp.Pow, sp.Piecewise, ExprCondPair)

#: What an unsupported function may be rewritten with (``sec(x)``: ``1/cos(x)``).
_REWRITE_TARGETS = (
    sp.exp,
    sp.log,
    sp.sin,
    sp.cos,
    sp.tan,
    sp.tanh,
    sp.atan,
    sp.Abs,
    sp.Max,
    sp.Heaviside,
    sp.Piecewise,
)


def _problem(node: sp.Basic) -> str | None:
    """Why ``node`` alone (not its arguments) cannot be in a loss, or None."""
    if node in (sp.zoo, sp.oo, -sp.oo, sp.nan):
        return f"the loss contains the non-finite constant {node}"
    if node is sp.I or (isinstance(node, sp.Number) and not node.is_real):
        return "the loss contains an imaginary number; symgen works over the reals"
    return None


def _supported(expr: sp.Basic) -> bool:
    try:
        check_scalar_expression(expr)
    except SpecError:
        return False
    return True


def rewrite_hint(node: sp.Basic) -> sp.Expr | None:
    """The shortest rewrite of ``node`` that a loss may contain (``cot(x)``: ``1/tan(x)``),
    or None."""
    found = []
    for target in _REWRITE_TARGETS:
        try:
            other = node.rewrite(target)
        except (TypeError, ValueError, NotImplementedError, AttributeError):
            continue
        if other != node and _supported(other):
            found.append(other)
    return min(found, key=lambda e: (sp.count_ops(e), sp.default_sort_key(e)), default=None)


def _fail_unsupported(node: sp.Basic, shown: Callable[[sp.Basic], str]) -> None:
    supported = ", ".join(sorted(SUPPORTED_FUNCTIONS))
    hint = rewrite_hint(node)
    rewrite = f"; write it as {shown(hint)}" if hint is not None else ""
    if isinstance(node, Application):
        name = type(node).__name__
        raise SpecError(
            f"unsupported function '{name}' in the loss ({shown(node)}){rewrite}; "
            f"supported: {supported}, Piecewise"
        )
    raise SpecError(
        f"unsupported SymPy node '{type(node).__name__}' in the loss ({shown(node)}){rewrite}; "
        f"a loss is built from symbols, numbers, + - * / **, Piecewise, and the functions "
        f"{supported}"
    )


def check_scalar_expression(expr: sp.Basic, shown: Callable[[sp.Basic], str] = str) -> None:
    """Raise ``SpecError`` unless ``expr`` uses only what symgen can differentiate and print.

    ``shown`` prints a piece of ``expr`` for the message, in the user's names (the matrix
    frontend names the operands of an elementwise function)."""
    for node in sp.preorder_traversal(expr):
        problem = _problem(node)
        if problem is not None:
            raise SpecError(problem)
        if isinstance(node, _ATOMS) or isinstance(node, _OPERATIONS):
            continue
        if isinstance(node, Boolean):
            check_condition_node(node, shown)
            continue
        if SUPPORTED_FUNCTIONS.get(type(node).__name__) is type(node):
            continue
        _fail_unsupported(node, shown)
