"""What a scalar loss may be built from: the SymPy nodes and functions symgen can
differentiate and print (the functions are those ``scalar_functions`` gives the role
"loss"; those of the role "data_only" in terms free of the parameters), and the check
that refuses anything else by name."""

from __future__ import annotations

from collections.abc import Mapping

import sympy as sp
from sympy.core.function import Application

from symgen.compiler.scalar_functions import DATA_ONLY_FUNCTIONS, SUPPORTED_FUNCTIONS
from symgen.errors import SpecError

_ATOMS = (sp.Symbol, sp.Number, sp.NumberSymbol)
_OPERATIONS = (sp.Add, sp.Mul, sp.Pow)

#: What to write instead of a function symgen does not know, where there is a way.
_INSTEAD = {
    "factorial": "; for log(y!) write loggamma(y + 1)",
    "gamma": "; for log(gamma(x)) write loggamma(x)",
}


def _fail_unsupported(node: sp.Basic) -> None:
    supported = ", ".join(sorted(SUPPORTED_FUNCTIONS))
    if isinstance(node, Application):
        name = type(node).__name__
        data_only = ", ".join(sorted(DATA_ONLY_FUNCTIONS))
        raise SpecError(
            f"unsupported function '{name}' in the loss ({node}); supported: {supported} "
            f"(and {data_only} in terms free of the parameters){_INSTEAD.get(name, '')}"
        )
    raise SpecError(
        f"unsupported SymPy node '{type(node).__name__}' in the loss ({node}); a loss is built "
        f"from symbols, numbers, + - * / **, and the functions {supported}"
    )


def check_scalar_expression(
    expr: sp.Basic, params: Mapping[sp.Symbol, frozenset[str]] | None = None
) -> None:
    """Raise ``SpecError`` unless ``expr`` uses only what symgen can differentiate and print.
    ``params``: its symbols that depend on parameters, each with the names of those (``X*w``:
    ``w``); the arguments of a data-only function (``loggamma``) must hold none."""
    for node in sp.preorder_traversal(expr):
        if node in (sp.zoo, sp.oo, -sp.oo, sp.nan):
            raise SpecError(f"the loss contains the non-finite constant {node}")
        if node is sp.I or (isinstance(node, sp.Number) and not node.is_real):
            raise SpecError("the loss contains an imaginary number; symgen works over the reals")
        if isinstance(node, _ATOMS) or isinstance(node, _OPERATIONS):
            continue
        if SUPPORTED_FUNCTIONS.get(type(node).__name__) is type(node):
            continue
        if DATA_ONLY_FUNCTIONS.get(type(node).__name__) is type(node):
            _check_data_only(node, params or {})
            continue
        _fail_unsupported(node)


def _check_data_only(node: sp.Basic, params: Mapping[sp.Symbol, frozenset[str]]) -> None:
    used = sorted(set().union(*(params.get(s, ()) for s in node.free_symbols)))
    if used:
        name = type(node).__name__
        raise SpecError(
            f"{node} depends on the parameter{'s' if len(used) > 1 else ''} {', '.join(used)}: "
            f"symgen evaluates {name} only in terms constant in the parameters (data-only terms, "
            f"such as log(y!) = loggamma(y + 1) in a Poisson likelihood), as no generated code "
            f"spells its derivative; make {', '.join(used)} data, or write the term without {name}"
        )
