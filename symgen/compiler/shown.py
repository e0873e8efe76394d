"""How an error message shows a piece of a loss: in the user's terms.

SymPy's ``str`` shows what symgen's helpers and SymPy build under the user's formula: the
variables of a ``Lambda`` (``Lambda(_z0, exp(_z0)).(X)`` for ``symgen.exp(X)``) and the
dummies that stand for an operand (``gamma(_Dummy_338)``). ``shown`` prints an
elementwise function as the function of its operand (``exp(X)``), and a variable that
stands for an operand as that operand, parenthesized only where the expression around it
needs it (``gamma(X - W)``, ``2*(X - W)``).
"""

from __future__ import annotations

import sympy as sp
from sympy.printing.str import StrPrinter


class _OperandPrinter(StrPrinter):
    """SymPy's plain notation, each symbol of ``operands`` printed as its operand."""

    def __init__(self, operands: dict[sp.Basic, sp.Basic]) -> None:
        super().__init__()
        self.operands = dict(operands)

    def _print_Symbol(self, expr):
        if expr in self.operands:
            return self._print(self.operands[expr])
        return super()._print_Symbol(expr)

    _print_Dummy = _print_Symbol

    def parenthesize(self, item, level, strict=False):
        return super().parenthesize(self.operands.get(item, item), level, strict)

    def _body(self, fn: sp.Lambda, operands) -> str:
        saved = dict(self.operands)
        self.operands.update(zip(fn.variables, operands, strict=True))
        try:
            return self._print(fn.expr)
        finally:
            self.operands = saved

    def _print_ElementwiseApplyFunction(self, expr):
        return self._body(expr.function, [expr.expr])

    def _print_ElementwiseMap(self, expr):
        return self._body(expr.function, expr.operands)

    def _print_AxisReduce(self, expr):
        return f"{expr.kind}({self._print(expr.arg)}, axis={expr.axis})"


def shown(expr: sp.Basic, operands: dict[sp.Basic, sp.Basic] | None = None) -> str:
    """``expr`` as an error message shows it; ``operands``: symbols (the variables of an
    elementwise function) and the expressions they stand for."""
    return _OperandPrinter(operands or {}).doprint(expr)
