"""How one scalar expression is spelled in generated Python.

``ScalarPrinter`` prints statements over Python floats (``math``);
``ArrayPrinter`` prints statements over NumPy arrays (``np``), with the
sample-independent factors of a product multiplied first so that they cost
one scalar operation instead of one array pass each. These two classes are
the only place that knows how a function is spelled.
"""

from __future__ import annotations

import sympy as sp
from sympy.printing.numpy import NumPyPrinter
from sympy.printing.precedence import precedence
from sympy.printing.pycode import PythonCodePrinter

from .functions import sigmoid


class ScalarPrinter(PythonCodePrinter):
    """Python floats and the ``math`` module."""

    def __init__(self) -> None:
        super().__init__({"fully_qualified_modules": True, "standard": "python3"})

    def _print_Integer(self, expr):
        # float literals: int * float takes a slower path than float * float in CPython
        return f"{int(expr)}.0"

    def _print_Pow(self, expr, rational=False):
        base, exp = expr.args
        if exp == 2 and base.is_Symbol:  # a multiply is cheaper than pow()
            b = self._print(base)
            return f"({b}*{b})"
        return super()._print_Pow(expr, rational=rational)

    def _print_relu(self, expr):
        return f"max({self._print(expr.args[0])}, 0.0)"

    def _print_sigmoid(self, expr):
        return f"(0.5*math.tanh(0.5*{self.parenthesize(expr.args[0], 50)}) + 0.5)"

    def _print_softplus(self, expr):
        z = self._print(expr.args[0])
        return f"(max({z}, 0.0) + math.log1p(math.exp(-abs({z}))))"

    def _print_logaddexp(self, expr):
        a, b = (self._print(x) for x in expr.args)
        return f"_logaddexp({a}, {b})"

    def _print_safelog(self, expr):
        return f"_safelog({self._print(expr.args[0])})"

    def _print_Heaviside(self, expr):
        z = self._print(expr.args[0])
        h0 = self._print(expr.args[1]) if len(expr.args) > 1 else "0.5"
        return f"(1.0 if {z} > 0 else ({h0} if {z} == 0 else 0.0))"


class ArrayPrinter(NumPyPrinter):
    """NumPy arrays as ``np``; ``arrays`` names the symbols that hold arrays."""

    def __init__(self, arrays: frozenset[str] = frozenset()) -> None:
        super().__init__({"fully_qualified_modules": True})
        self.arrays = arrays

    def _module_format(self, fqn, register=True):
        if fqn.startswith("numpy."):
            fqn = "np." + fqn[len("numpy.") :]
        return super()._module_format(fqn, register)

    def _is_array(self, expr: sp.Expr) -> bool:
        return any(s.name in self.arrays for s in expr.free_symbols)

    def _print_Mul(self, expr):
        # A step function times an array is a mask: ``g*(z > 0)`` costs a comparison,
        # np.heaviside costs several times more. (A float array factor keeps the dtype.)
        steps = [
            f
            for f in expr.args
            if isinstance(f, sp.Heaviside) and len(f.args) == 2 and f.args[1] == 0
        ]
        others = [f for f in expr.args if f not in steps]
        if steps and any(self._is_array(f) for f in others):
            masks = "*".join(f"({self._print(f.args[0])} > 0)" for f in steps)
            return f"{self.parenthesize(sp.Mul(*others), precedence(expr))}*{masks}"
        scalars = [f for f in expr.args if not self._is_array(f)]
        arrays = [f for f in expr.args if self._is_array(f)]
        if not arrays or not scalars or all(f.is_Number for f in scalars):
            return super()._print_Mul(expr)  # a number coefficient is printed first anyway
        head = sp.Mul(*scalars)
        tail = sp.Mul(*arrays)
        level = precedence(expr)
        return f"{self.parenthesize(head, level)}*{self.parenthesize(tail, level)}"

    def _print_Add(self, expr, order=None):
        # sigmoid(a) - sigmoid(b) = (tanh(a/2) - tanh(b/2))/2: the two +0.5 cancel
        plus = [t for t in expr.args if isinstance(t, sigmoid)]
        minus = [t for t in expr.args if isinstance(-t, sigmoid)]
        if not plus or not minus:
            return super()._print_Add(expr, order=order)
        tanh = self._module_format("numpy.tanh")
        pairs = []
        for a, b in zip(plus, minus, strict=False):
            x, y = self.parenthesize(a.args[0], 50), self.parenthesize((-b).args[0], 50)
            pairs.append(f"0.5*({tanh}(0.5*{x}) - {tanh}(0.5*{y}))")
        used = set(plus[: len(pairs)]) | set(minus[: len(pairs)])
        rest = [t for t in expr.args if t not in used]
        return " + ".join(([self._print(sp.Add(*rest))] if rest else []) + pairs)

    def _print_transposed(self, expr):
        return f"{self._print(expr.args[0])}.T"

    def _print_relu(self, expr):
        return f"{self._module_format('numpy.maximum')}({self._print(expr.args[0])}, 0.0)"

    def _print_sigmoid(self, expr):
        z = self.parenthesize(expr.args[0], 50)
        return f"(0.5*{self._module_format('numpy.tanh')}(0.5*{z}) + 0.5)"

    def _print_softplus(self, expr):
        return f"{self._module_format('numpy.logaddexp')}(0.0, {self._print(expr.args[0])})"

    def _print_logaddexp(self, expr):
        a, b = (self._print(x) for x in expr.args)
        return f"{self._module_format('numpy.logaddexp')}({a}, {b})"

    def _print_safelog(self, expr):
        return f"_safelog({self._print(expr.args[0])})"

    def _print_Heaviside(self, expr):
        h0 = self._print(expr.args[1]) if len(expr.args) > 1 else "0.5"
        return f"{self._module_format('numpy.heaviside')}({self._print(expr.args[0])}, {h0})"

    def _print_Max(self, expr):
        return self._fold("numpy.maximum", expr.args)

    def _print_Min(self, expr):
        return self._fold("numpy.minimum", expr.args)

    def _fold(self, fn: str, args) -> str:
        out = self._print(args[0])
        for a in args[1:]:
            out = f"{self._module_format(fn)}({out}, {self._print(a)})"
        return out

    def _print_Pow(self, expr, rational=False):
        base, exp = expr.args
        if exp.is_Integer and self._is_array(base):
            n = int(exp)
            b = self.parenthesize(base, precedence(expr))
            # Composite spellings are parenthesized: they may stand in a denominator.
            if n == -1:
                return f"(1/{b})"
            if n == 3:
                return f"({b}**2*{b})"
            if n == 4:
                return f"({b}**2)**2"
            if n < 0:
                return f"(1/{self.parenthesize(base**-n, precedence(expr))})"
        return super()._print_Pow(expr, rational=rational)
