"""Elementwise functions a loss can use, beyond SymPy's own.

``relu``, ``sigmoid`` and ``softplus`` are SymPy functions with their
derivatives attached (``fdiff``), so ``sympy.diff`` handles them like ``exp``.
The lowercase helpers (``exp``, ``log``, ``square`` ...) accept a scalar SymPy
expression and return the plain SymPy expression; on a matrix expression they
return SymPy's ``ElementwiseApplyFunction`` of the same scalar function.

By convention the derivative of ``relu`` at 0 is 0: ``relu'(z) = Heaviside(z, 0)``.
"""

from __future__ import annotations

from collections.abc import Callable

import sympy as sp
from sympy.matrices.expressions import MatrixExpr
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction


class relu(sp.Function):  # noqa: N801 - reads like the math
    """max(z, 0); derivative Heaviside(z, 0) (0 at z = 0)."""

    nargs = 1

    @classmethod
    def eval(cls, z):
        if z.is_Number:
            return z if z > 0 else sp.S.Zero
        if z.is_nonnegative:
            return z
        if z.is_nonpositive:
            return sp.S.Zero
        return None

    def fdiff(self, argindex=1):
        return sp.Heaviside(self.args[0], 0)

    def _eval_rewrite_as_Max(self, z, **kwargs):
        return sp.Max(z, 0)


class sigmoid(sp.Function):  # noqa: N801
    """1 / (1 + exp(-z)); derivative sigmoid(z) * (1 - sigmoid(z))."""

    nargs = 1

    @classmethod
    def eval(cls, z):
        if z.is_zero:
            return sp.S.Half
        return None

    def fdiff(self, argindex=1):
        return self * (1 - self)

    def _eval_rewrite_as_exp(self, z, **kwargs):
        return 1 / (1 + sp.exp(-z))


class softplus(sp.Function):  # noqa: N801
    """log(1 + exp(z)), evaluated stably; derivative sigmoid(z)."""

    nargs = 1

    @classmethod
    def eval(cls, z):
        if z.is_zero:
            return sp.log(2)
        return None

    def fdiff(self, argindex=1):
        return sigmoid(self.args[0])

    def _eval_rewrite_as_exp(self, z, **kwargs):
        return sp.log(1 + sp.exp(z))

    def _eval_rewrite_as_log(self, z, **kwargs):
        return sp.log(1 + sp.exp(z))


def elementwise(fn: Callable | sp.Lambda | type, *operands):
    """Apply a scalar function elementwise.

    ``fn`` is a ``sympy.Lambda``, a SymPy function class (``sympy.cos``) or a
    Python callable building a SymPy expression from scalar symbols.
    """
    if not operands:
        raise TypeError("elementwise() needs at least one operand")
    if any(isinstance(op, MatrixExpr) for op in operands):
        if len(operands) != 1:
            from .errors import SpecError

            raise SpecError("elementwise() over several matrix operands is not supported yet")
        dummy = sp.Dummy("z")
        lam = fn if isinstance(fn, sp.Lambda) else sp.Lambda(dummy, fn(dummy))
        return ElementwiseApplyFunction(lam, operands[0])
    return fn(*[sp.sympify(op) for op in operands])


def _unary(fn: Callable, name: str, doc: str) -> Callable:
    def apply(z):
        return elementwise(fn, z)

    apply.__name__ = name
    apply.__qualname__ = name
    apply.__doc__ = doc
    return apply


exp = _unary(sp.exp, "exp", "Elementwise exp(z).")
log = _unary(sp.log, "log", "Elementwise natural logarithm.")
tanh = _unary(sp.tanh, "tanh", "Elementwise tanh(z).")
sqrt = _unary(sp.sqrt, "sqrt", "Elementwise square root.")
square = _unary(lambda z: z**2, "square", "Elementwise z**2.")
abs = _unary(sp.Abs, "abs", "Elementwise |z|.")  # noqa: A001 - public helper name
