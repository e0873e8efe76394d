"""What a scalar loss may be built from: the SymPy nodes and functions symgen can
differentiate and print (the functions are those ``scalar_functions`` gives the role
"loss"), and the check that refuses anything else by name."""

from __future__ import annotations

import sympy as sp
from sympy.core.function import Application

from symgen.compiler.scalar_functions import SUPPORTED_FUNCTIONS
from symgen.errors import SpecError

_ATOMS = (sp.Symbol, sp.Number, sp.NumberSymbol)
_OPERATIONS = (sp.Add, sp.Mul, sp.Pow)


def _fail_unsupported(node: sp.Basic) -> None:
    supported = ", ".join(sorted(SUPPORTED_FUNCTIONS))
    if isinstance(node, Application):
        name = type(node).__name__
        raise SpecError(
            f"unsupported function '{name}' in the loss ({node}); supported: {supported}"
        )
    raise SpecError(
        f"unsupported SymPy node '{type(node).__name__}' in the loss ({node}); a loss is built "
        f"from symbols, numbers, + - * / **, and the functions {supported}"
    )


def check_scalar_expression(expr: sp.Basic) -> None:
    """Raise ``SpecError`` unless ``expr`` uses only what symgen can differentiate and print."""
    for node in sp.preorder_traversal(expr):
        if node in (sp.zoo, sp.oo, -sp.oo, sp.nan):
            raise SpecError(f"the loss contains the non-finite constant {node}")
        if node is sp.I or (isinstance(node, sp.Number) and not node.is_real):
            raise SpecError("the loss contains an imaginary number; symgen works over the reals")
        if isinstance(node, _ATOMS) or isinstance(node, _OPERATIONS):
            continue
        if SUPPORTED_FUNCTIONS.get(type(node).__name__) is type(node):
            continue
        _fail_unsupported(node)
