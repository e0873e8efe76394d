"""Least-squares losses: the residuals a loss squares, found in it as users write it.

A loss is a least-squares loss when it is ``c * sum(r**2)`` over a vector (or matrix) of
residuals ``r``, with ``c`` a positive number, or ``c * mean(r**2)``:

- per-sample: the per-sample loss is ``k * r**2`` (``(model - y)**2``, ``(y - model)**2/2``,
  ``((model - y)/sigma)**2``) with ``k`` a positive number; ``reduce="mean"`` makes it a mean;
- matrix: ``k * symgen.sum(E)`` or ``symgen.mean(E)`` (``k`` may divide by the number of
  residuals: ``/(M*N_O)``) where ``E`` squares ``R`` elementwise: ``symgen.square(R)``,
  ``HadamardPower(R, 2)``, ``hadamard_product(R, R)``, ``symgen.elementwise(lambda p, y:
  (p - y)**2, P, Y)`` (then ``R`` is ``P - Y``); or ``R.T*R`` of a column ``R`` (a 1 x 1
  product, or its ``[0, 0]``).

The residuals are then a vector (N,) (per-sample) or the elements of ``R`` in row-major
order, and the Jacobian has one column per parameter element in ``PARAMS`` order, built by
forward mode (``compiler.forward``): for a per-sample loss the per-sample derivatives of
``r``; for a matrix loss the blocks of scalar parameters (any ``R``) and of vector
parameters (``R`` a vector and every value depending on them a vector: ``X*w - y``,
``exp(X*w) - y``). Anything else is not a least-squares loss to symgen (``detect`` gives
None), and its module has no ``residuals``/``jacobian``. A sum of several squares
(``(r1)**2 + (r2)**2``, a ridge term) and weights from the data are not recognised.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import sympy as sp
from sympy.matrices.expressions import MatrixExpr
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions.matexpr import MatrixElement

from symgen.compiler.forward import Unsupported, tangent
from symgen.compiler.frontend import Lowered, lower_matrix
from symgen.compiler.functions import ElementwiseMap, FullReduce
from symgen.compiler.indexed import entry_of_product
from symgen.compiler.ir import Node, Transpose, map_
from symgen.compiler.stable import stabilize


@dataclass(frozen=True)
class LeastSquares:
    """A loss equal to ``scale * sum(residual**2)`` (``reduce="sum"``) or ``scale *
    mean(residual**2)`` (``"mean"``: divided by the number of residuals)."""

    #: The residuals: (N,) for a per-sample loss; a column (L, 1) or a matrix for a matrix
    #: loss (a row is taken as its transpose, a column).
    residual: Node
    #: ``∂residual/∂p`` for each parameter p in ``PARAMS`` order (``forward.tangent``): the
    #: residual's shape for a scalar parameter, (L, D) for a vector of D elements.
    jacobian: tuple[Node, ...]
    scale: sp.Expr
    reduce: Literal["sum", "mean"]


def _square(expr: sp.Expr) -> tuple[sp.Expr, sp.Expr] | None:
    """``(k, r)`` when ``expr`` is ``k * r**2`` with ``k`` a positive number."""
    factors = sp.Mul.make_args(expr)
    squares = [f for f in factors if f.is_Pow and f.exp == 2]
    if len(squares) != 1:
        return None
    k = sp.Mul(*[f for f in factors if f is not squares[0]])
    if not (k.is_number and k.is_positive):
        return None
    return k, squares[0].base


def _squared_matrix(expr: sp.Basic) -> tuple[sp.Expr, MatrixExpr] | None:
    """``(k, R)`` when the matrix expression ``expr`` is ``k * R ⊙ R``, elementwise."""
    if isinstance(expr, sp.HadamardPower) and expr.args[1] == 2:
        return sp.S.One, expr.args[0]
    if isinstance(expr, sp.HadamardProduct) and len(expr.args) == 2:
        first, second = expr.args
        return (sp.S.One, first) if first == second else None
    if isinstance(expr, (ElementwiseApplyFunction, ElementwiseMap)):
        fn = expr.function
        operands = (expr.expr,) if isinstance(expr, ElementwiseApplyFunction) else expr.operands
        found = _square(fn.expr)
        if found is None:
            return None
        k, base = found
        if len(operands) == 1 and base == fn.variables[0]:
            return k, operands[0]
        return k, ElementwiseMap(sp.Lambda(fn.variables, base), *operands)
    return None


def _gram(expr: sp.Basic) -> tuple[sp.Expr, MatrixExpr] | None:
    """``(k, R)`` when ``expr`` is ``k * R.T*R`` (a 1 x 1 product), or its ``[0, 0]`` (which
    SymPy may have expanded into a ``Sum``)."""
    if isinstance(expr, sp.Sum):
        expr = entry_of_product(expr)
    if isinstance(expr, MatrixElement) and tuple(expr.args[1:]) == (0, 0):
        expr = expr.args[0]
    if not isinstance(expr, sp.MatMul):
        return None
    factors = [a for a in expr.args if isinstance(a, MatrixExpr)]
    numbers = [a for a in expr.args if not isinstance(a, MatrixExpr)]
    if len(factors) != 2 or any(not a.is_number for a in numbers):
        return None
    left, right = factors
    if right.shape[1] != 1 or sp.Transpose(left).doit() != right.doit():
        return None
    return sp.Mul(*numbers), right


def _matrix_residuals(problem) -> tuple[sp.Expr, MatrixExpr] | None:
    """``(c, R)`` with the loss ``c * sum(R ⊙ R)``; ``c`` may hold dimensions."""
    loss = problem.loss
    coefficient, found = sp.S.One, None
    for factor in sp.Mul.make_args(loss) if not isinstance(loss, MatrixExpr) else (loss,):
        if isinstance(factor, FullReduce) and factor.kind == "sum" and found is None:
            squared = _squared_matrix(factor.arg)
            if squared is None:
                return None
            k, found = squared
            coefficient *= k
        elif (gram := _gram(factor)) is not None and found is None:
            k, found = gram
            coefficient *= k
        elif isinstance(factor, sp.Expr) and not isinstance(factor, MatrixExpr):
            coefficient *= factor
        else:
            return None
    if found is None or coefficient.free_symbols & {s for s in problem.params}:
        return None
    return coefficient, found


def _scale(coefficient: sp.Expr, count: sp.Expr) -> tuple[sp.Expr, str] | None:
    """``(scale, reduce)`` of ``coefficient * sum`` over ``count`` residuals."""
    if coefficient.is_number:
        return (coefficient, "sum") if coefficient.is_positive else None
    scale = sp.simplify(coefficient * count)
    if scale.is_number and scale.is_positive:
        return scale, "mean"
    return None


def detect(problem, lowered: Lowered) -> LeastSquares | None:
    """The residuals of ``problem``'s loss and their Jacobian, if it is a least-squares loss
    of a form above; else None."""
    if problem.kind == "per_sample":
        found = _square(problem.real_loss())
        if found is None:
            return None
        k, base = found
        real = problem.real_symbols()
        inputs = (*lowered.params, *lowered.data)
        body = stabilize(base, frozenset(real[b] for b in problem.binary))
        residual = map_(
            sp.Lambda(tuple(i.symbol for i in inputs), body), inputs, lowered.data[0].shape
        )
        scale: tuple[sp.Expr, str] | None = (k, problem.reduce)
    elif problem.kind == "matrix":
        found_matrix = _matrix_residuals(problem)
        if found_matrix is None:
            return None
        coefficient, matrix = found_matrix
        rows, cols = matrix.shape
        scale = _scale(coefficient, rows * cols)
        residual = lower_matrix(problem, matrix)
        if rows == 1 and cols != 1:  # a row: the same elements as a column
            residual = Transpose(residual, (cols, rows))
    else:
        return None
    if scale is None:
        return None
    try:
        jacobian = tuple(tangent(residual, p) for p in lowered.params)
    except Unsupported:
        return None
    return LeastSquares(residual, jacobian, scale[0], scale[1])  # type: ignore[arg-type]


__all__ = ["LeastSquares", "detect"]
