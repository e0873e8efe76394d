"""What a loss is written with, beyond SymPy: elementwise application, broadcasting,
reductions (``sum``, ``mean``, ``logsumexp``), ``take`` (one entry per row, at integer
labels) and the lowercase helpers.

``relu``, ``sigmoid``, ``softplus`` and every other scalar function live in
``scalar_functions`` (their derivatives and spellings). The lowercase helpers (``exp``,
``log``, ``square`` ...) accept a scalar SymPy expression and return the plain SymPy
expression; on a matrix expression they return SymPy's ``ElementwiseApplyFunction`` of
the same scalar function.
"""

from __future__ import annotations

from collections.abc import Callable

import sympy as sp
from sympy.core.function import Application
from sympy.core.symbol import Str
from sympy.matrices.expressions import MatrixExpr
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions.matexpr import MatrixElement

from symgen.errors import SpecError


def _broadcast(shapes: list[tuple]) -> tuple:
    rows = {r for r, _ in shapes if r != 1}
    cols = {c for _, c in shapes if c != 1}
    if len(rows) > 1 or len(cols) > 1:
        raise SpecError(f"shapes {', '.join(str(s) for s in shapes)} do not broadcast")
    return (rows.pop() if rows else sp.S.One, cols.pop() if cols else sp.S.One)


class _Broadcasting(MatrixExpr):
    """Matrix expressions that broadcast like NumPy in + - with full matrices.

    A row (1 x n) or column (m x 1) result added to an m x n matrix is spread
    over it by a product with ``OneMatrix``, which the frontend reads back as
    a broadcast.
    """

    _op_priority = 12.0

    def _spread(self, shape):
        rows, cols = self.shape
        out = self
        if rows == 1 and shape[0] != 1:
            out = sp.OneMatrix(shape[0], 1) * out
        if cols == 1 and shape[1] != 1:
            out = out * sp.OneMatrix(1, shape[1])
        return out

    def _pair(self, other):
        if isinstance(other, MatrixExpr) and other.shape != self.shape:
            shape = _broadcast([self.shape, other.shape])
            mine = self._spread(shape)
            theirs = other._spread(shape) if isinstance(other, _Broadcasting) else other
            if isinstance(theirs, MatrixExpr) and theirs.shape != shape:
                theirs = _Broadcasting._spread(theirs, shape)
            return mine, theirs
        return self, other

    def __add__(self, other):
        a, b = self._pair(other)
        return sp.MatAdd(a, b).doit(deep=False) if isinstance(b, MatrixExpr) else NotImplemented

    def __radd__(self, other):
        a, b = self._pair(other)
        return sp.MatAdd(b, a).doit(deep=False) if isinstance(b, MatrixExpr) else NotImplemented

    def __sub__(self, other):
        a, b = self._pair(other)
        return sp.MatAdd(a, -b).doit(deep=False) if isinstance(b, MatrixExpr) else NotImplemented

    def __rsub__(self, other):
        a, b = self._pair(other)
        return sp.MatAdd(b, -a).doit(deep=False) if isinstance(b, MatrixExpr) else NotImplemented


class ElementwiseMap(_Broadcasting):
    """``fn`` applied elementwise to several matrix operands, broadcast together."""

    def __new__(cls, fn: sp.Lambda, *operands):
        return MatrixExpr.__new__(cls, fn, *operands)

    @property
    def function(self) -> sp.Lambda:
        return self.args[0]

    @property
    def operands(self) -> tuple:
        return self.args[1:]

    @property
    def shape(self):
        return _broadcast([op.shape for op in self.operands])

    def _entry(self, i, j, **kwargs):  # pragma: no cover - symgen never indexes these
        return self.function(*[op[i, j] for op in self.operands])


class AxisReduce(_Broadcasting):
    """A sum or logsumexp down the columns (axis 0: 1 x n) or along the rows (axis 1: m x 1)."""

    def __new__(cls, kind, arg, axis):
        return MatrixExpr.__new__(cls, Str(str(kind)), arg, sp.Integer(axis))

    @property
    def kind(self) -> str:
        return self.args[0].name

    @property
    def arg(self):
        return self.args[1]

    @property
    def axis(self) -> int:
        return int(self.args[2])

    @property
    def shape(self):
        rows, cols = self.arg.shape
        return (sp.S.One, cols) if self.axis == 0 else (rows, sp.S.One)

    def _entry(self, i, j, **kwargs):  # pragma: no cover
        raise NotImplementedError


class Take(_Broadcasting):
    """``matrix[r, labels[r]]`` for each row ``r``: an (N, 1) column (``symgen.take``)."""

    def __new__(cls, matrix, labels):
        return MatrixExpr.__new__(cls, matrix, labels)

    @property
    def matrix(self):
        return self.args[0]

    @property
    def labels(self):
        return self.args[1]

    @property
    def shape(self):
        return (self.labels.shape[0], sp.S.One)

    def _entry(self, i, j, **kwargs):
        return self.matrix[i if self.matrix.shape[0] != 1 else 0, self.labels[i, 0]]


class FullReduce(sp.Expr):
    """A sum or logsumexp of all elements of a matrix expression: a scalar."""

    is_commutative = True
    is_real = True

    def __new__(cls, kind, arg):
        return sp.Expr.__new__(cls, Str(str(kind)), arg)

    @property
    def kind(self) -> str:
        return self.args[0].name

    @property
    def arg(self):
        return self.args[1]

    def _sympystr(self, printer):
        return f"{self.kind}({printer._print(self.arg)})"

    def _latex(self, printer):
        body = printer._print(self.arg)
        return rf"\sum {body}" if self.kind == "sum" else rf"\operatorname{{logsumexp}}({body})"


def elementwise(fn: Callable | sp.Lambda | type, *operands):
    """Apply a scalar function elementwise.

    ``fn`` is a ``sympy.Lambda``, a SymPy function class (``sympy.cos``) or a
    Python callable building a SymPy expression from scalar symbols. On
    matrix operands the result is a matrix expression (operands broadcast
    against each other: a 1 x n row or m x 1 column spreads over m x n).
    """
    if not operands:
        raise TypeError("elementwise() needs at least one operand")
    for op in operands:
        refuse_scalar_functions_of_matrices(op)
    if any(isinstance(op, MatrixExpr) for op in operands):
        if isinstance(fn, sp.Lambda):
            lam = fn
        else:
            dummies = [sp.Dummy(f"z{i}") for i in range(len(operands))]
            lam = sp.Lambda(tuple(dummies), fn(*dummies))
        if len(operands) == 1:
            return ElementwiseApplyFunction(lam, operands[0])
        return ElementwiseMap(lam, *operands)
    return fn(*[sp.sympify(op) for op in operands])


def _reduce(kind: str, expr, axis):
    if axis not in (None, 0, 1):
        raise ValueError(f"axis must be None, 0 or 1, got {axis!r}")
    if not isinstance(expr, MatrixExpr):
        expr = sp.sympify(expr)
        refuse_scalar_functions_of_matrices(expr)
        return expr  # a scalar is its own sum and its own logsumexp
    if axis is None:
        return FullReduce(kind, expr)
    return AxisReduce(kind, expr, axis)


def sum(expr, axis=None):  # noqa: A001 - public helper name
    """Sum of the elements of a matrix expression: all (axis=None), per column (0), per row (1)."""
    return _reduce("sum", expr, axis)


def mean(expr, axis=None):
    """Mean of the elements: all (axis=None), per column (0), per row (1)."""
    total = _reduce("sum", expr, axis)
    if not isinstance(expr, MatrixExpr):
        return total
    rows, cols = expr.shape
    count = rows * cols if axis is None else (rows if axis == 0 else cols)
    return total / count


def logsumexp(expr, axis=None):
    """log(sum(exp(expr))), evaluated stably (shifted by the maximum)."""
    return _reduce("logsumexp", expr, axis)


def take(matrix, labels):
    """One entry per row of ``matrix`` (N x K): ``matrix[r, labels[r]]``, an N x 1 column.

    ``labels`` is a data ``MatrixSymbol`` of shape N x 1 holding class indices (integers in
    ``0 .. K-1``; the generated module takes them as an integer array of shape (N,) or
    (N, 1), refuses floats and checks the range). This is how a multinomial loss reads the
    score of each sample's class without a one-hot matrix: ``take(Z, y)`` gathers, and its
    gradient adds into one entry per row. ``matrix`` may also be a 1 x K row (every label
    reads it: a per-class bias).
    """
    if not isinstance(matrix, MatrixExpr):
        raise SpecError(f"take() needs a matrix expression (N x K), got {type(matrix).__name__}")
    if not isinstance(labels, sp.MatrixSymbol) or labels.shape[1] != 1:
        raise SpecError(
            f"take()'s labels must be a data MatrixSymbol of shape N x 1 (class indices), got "
            f"{labels!r}"
        )
    rows = matrix.shape[0]
    if rows != 1 and rows != labels.shape[0]:
        raise SpecError(
            f"take(): {matrix} has {rows} rows but the labels {labels.name} have "
            f"{labels.shape[0]}; one label per row"
        )
    return Take(matrix, labels)


def ones(rows, cols=1):
    """A ``rows`` x ``cols`` matrix of ones (SymPy's ``OneMatrix``): the way to add a bias.

    SymPy refuses ``X*w + b`` for a scalar ``b`` ("Mix of Matrix and Scalar symbols") and
    ``X*W + b`` for a row ``b`` (1 x K); ``X*w + symgen.ones(N)*b`` adds ``b`` to each of
    the N rows, whether ``b`` is a scalar or a row (symgen reads the product with ones as
    a broadcast: nothing is multiplied)."""
    return sp.OneMatrix(rows, cols)


#: symgen's elementwise helper for each SymPy function that has one, by class (named in
#: the error for ``sympy.exp(X*w)``); the others are ``symgen.elementwise(sp.f, ...)``.
HELPER_OF: dict[type, str] = {}


def _unary(fn: Callable, name: str, doc: str) -> Callable:
    if isinstance(fn, type):
        HELPER_OF[fn] = name

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


def _one_plus_exp(expr) -> sp.Expr | None:
    """``u`` if ``expr`` is ``1 + exp(u)``, else None."""
    if isinstance(expr, sp.Add) and len(expr.args) == 2 and sp.S.One in expr.args:
        (rest,) = [a for a in expr.args if a != 1]
        if isinstance(rest, sp.exp):
            return rest.args[0]
    return None


def _rewrite(node: sp.Basic) -> str | None:
    """What to write instead of ``node`` if it applies a SymPy function to a matrix
    expression (the common compositions first: sigmoid, softplus), else None."""
    if isinstance(node, sp.Pow) and node.exp == -1:
        u = _one_plus_exp(node.base)
        if isinstance(u, MatrixExpr):
            return f"symgen.sigmoid({-u}), the elementwise 1/(1 + exp(-z)), evaluated stably"
    if isinstance(node, sp.log):
        u = _one_plus_exp(node.args[0])
        if isinstance(u, MatrixExpr):
            return f"symgen.softplus({u}), the elementwise log(1 + exp(z)), evaluated stably"
    if isinstance(node, Application) and any(isinstance(a, MatrixExpr) for a in node.args):
        args = ", ".join(str(a) for a in node.args)
        helper = HELPER_OF.get(node.func)
        if helper is not None:
            return f"symgen.{helper}({args})"
        return f"symgen.elementwise(sp.{node.func.__name__}, {args})"
    return None


def refuse_scalar_functions_of_matrices(expr) -> None:
    """Raise ``SpecError`` if the scalar expression ``expr`` applies a SymPy function to a
    matrix expression (``sympy.exp(X*w)``), naming the symgen helper to write instead.

    SymPy's functions take scalars: ``sympy.exp(X*w)`` is a scalar expression with a
    matrix inside, not the matrix of the entries' exponentials."""
    stack = [sp.sympify(expr)]
    while stack:
        node = stack.pop()
        if isinstance(node, (MatrixExpr, MatrixElement, FullReduce, sp.Trace)):
            continue  # matrices, and the scalars that come from them
        rewrite = _rewrite(node)
        if rewrite is not None:
            name = next(
                type(n).__name__
                for n in sp.preorder_traversal(node)
                if isinstance(n, Application) and any(isinstance(a, MatrixExpr) for a in n.args)
            )
            raise SpecError(
                f"{node} applies sympy.{name} to a matrix expression; SymPy's functions take "
                f"scalars, not each entry of a matrix: write {rewrite}"
            )
        stack.extend(reversed(node.args))
