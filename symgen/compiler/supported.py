"""What a scalar loss may be built from: the SymPy nodes and functions symgen can
differentiate and print (the functions are those ``scalar_functions`` gives the role
"loss"; those of the role "data_only" in terms free of the parameters), ``Piecewise`` with
the conditions of ``conditions``, and the check that refuses anything else by name, with a
rewrite into supported functions when SymPy knows one."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import sympy as sp
from sympy.core.function import Application
from sympy.functions.elementary.piecewise import ExprCondPair
from sympy.logic.boolalg import Boolean

from symgen.compiler.piecewise import check_condition_node
from symgen.compiler.scalar_functions import DATA_ONLY_FUNCTIONS, SUPPORTED_FUNCTIONS
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

#: What to write instead of a function symgen does not know, where there is a way.
_INSTEAD = {
    "factorial": "; for log(y!) write loggamma(y + 1)",
    "gamma": "; for log(gamma(x)) write loggamma(x)",
}


def _problem(node: sp.Basic) -> str | None:
    """Why ``node`` alone (not its arguments) cannot be in a loss, or None."""
    if node in (sp.zoo, sp.oo, -sp.oo, sp.nan):
        return f"the loss contains the non-finite constant {node}"
    if node is sp.I or (isinstance(node, sp.Number) and not node.is_real):
        return "the loss contains an imaginary number; symgen works over the reals"
    return None


def _supported(expr: sp.Basic) -> bool:
    """Whether ``expr`` may be a loss; no rewrite is looked for (a rewrite of a rewrite could
    go on forever: log2 -> ... -> log2)."""
    try:
        check_scalar_expression(expr, hints=False)
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


def _fail_unsupported(node: sp.Basic, shown: Callable[[sp.Basic], str], hints: bool) -> None:
    supported = ", ".join(sorted(SUPPORTED_FUNCTIONS))
    hint = rewrite_hint(node) if hints else None
    rewrite = f"; write it as {shown(hint)}" if hint is not None else ""
    if isinstance(node, Application):
        name = type(node).__name__
        data_only = ", ".join(sorted(DATA_ONLY_FUNCTIONS))
        raise SpecError(
            f"unsupported function '{name}' in the loss ({shown(node)}){rewrite}; "
            f"supported: {supported}, Piecewise (and {data_only} in terms free of the "
            f"parameters){_INSTEAD.get(name, '')}"
        )
    raise SpecError(
        f"unsupported SymPy node '{type(node).__name__}' in the loss ({shown(node)}){rewrite}; "
        f"a loss is built from symbols, numbers, + - * / **, Piecewise, and the functions "
        f"{supported}"
    )


def check_scalar_expression(
    expr: sp.Basic,
    params: Mapping[sp.Symbol, frozenset[str]] | None = None,
    shown: Callable[[sp.Basic], str] = str,
    hints: bool = True,
) -> None:
    """Raise ``SpecError`` unless ``expr`` uses only what symgen can differentiate and print.

    ``params``: its symbols that depend on parameters, each with the names of those (``X*w``:
    ``w``); the arguments of a data-only function (``loggamma``) must hold none. ``shown``
    prints a piece of ``expr`` for the message, in the user's names (the matrix frontend
    names the operands of an elementwise function); ``hints``: say a rewrite SymPy knows into
    what a loss may contain."""
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
        if DATA_ONLY_FUNCTIONS.get(type(node).__name__) is type(node):
            _check_data_only(node, params or {}, shown)
            continue
        _fail_unsupported(node, shown, hints)


def _check_data_only(
    node: sp.Basic, params: Mapping[sp.Symbol, frozenset[str]], shown: Callable[[sp.Basic], str]
) -> None:
    used = sorted(set().union(*(params.get(s, ()) for s in node.free_symbols)))
    if used:
        name, plural = type(node).__name__, "s" if len(used) > 1 else ""
        raise SpecError(
            f"{shown(node)} depends on the parameter{plural} {', '.join(used)}: "
            f"symgen evaluates {name} only in terms constant in the parameters (data-only terms, "
            f"such as log(y!) = loggamma(y + 1) in a Poisson likelihood), as no generated code "
            f"spells its derivative; make {', '.join(used)} data, or write the term without {name}"
        )
