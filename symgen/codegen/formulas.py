"""Derivative formulas for people: what ``symgen show`` and ``symgen diff`` print.

These are for reading, not for code generation (the generated code comes
from the IR and its CSE'd program). Each derivative is put in the shortest
of a few standard forms: as differentiated, expanded (polynomials read best
expanded: ``3*x**2 - 8*x + 6``), and ``simplify``'d when the expression is
small enough for that to be quick.
"""

from __future__ import annotations

import math

import sympy as sp
from mpmath import libmp as mlib
from sympy.core.evalf import PrecisionExhausted
from sympy.matrices.expressions import MatrixExpr
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions.matexpr import MatrixElement
from sympy.printing.latex import LatexPrinter
from sympy.printing.precedence import PRECEDENCE, precedence
from sympy.printing.str import StrPrinter

from symgen.compiler.autodiff import gradients as backprop
from symgen.compiler.frontend import lower
from symgen.compiler.functions import AxisReduce, ElementwiseMap, FullReduce, Take
from symgen.compiler.ir import (
    Const,
    Entry,
    Eye,
    Gather,
    Input,
    Map,
    MatMul,
    PlaceAdd,
    Reduce,
    ScatterAdd,
    Stored,
    Transpose,
    broadcast_shapes,
)
from symgen.compiler.problem import Problem
from symgen.compiler.scalar_functions import BY_CLASS
from symgen.compiler.second_order import hessian_nodes, hvp_blocks, weighted_product

#: Working precision (decimal digits) up to which ``value_at`` tells a value from zero.
MAX_DIGITS = 3000

#: ``readable`` leaves an expression of more operations than this as it is.
REWRITE_LIMIT = 2000

#: ``expand`` is only tried when its result has at most this many terms (see ``expanded_terms``).
EXPAND_LIMIT = 1000

#: ``simplify`` is only tried below this many operations (it can take seconds on big inputs).
SIMPLIFY_LIMIT = 60


def readable(expr: sp.Expr) -> sp.Expr:
    """The shortest of ``expr``, its common factors pulled out, ``expand(expr)``
    and (when small) ``simplify(expr)``; the first of equals wins. Nothing is tried on an
    expression of more than ``REWRITE_LIMIT`` operations, nor ``expand`` or ``simplify``
    where expanding would write more than ``EXPAND_LIMIT`` terms: their time and memory
    grow too fast (``(x + 1)**10**9``, a power tower)."""
    ops = sp.count_ops(expr)
    if ops > REWRITE_LIMIT:
        return expr
    candidates = [expr, sp.factor_terms(expr)]
    if expanded_terms(expr) <= EXPAND_LIMIT:
        candidates.append(sp.expand(expr))
        if ops <= SIMPLIFY_LIMIT:
            candidates.append(sp.simplify(expr))
    return min(candidates, key=sp.count_ops)  # min keeps the first of equals


def expanded_terms(expr: sp.Expr) -> int:
    """An upper bound on the number of terms in the largest sum that ``expand(expr)``
    writes (``(x + y)**10000`` has 10001), computed without expanding."""
    terms: dict[sp.Basic, int] = {}
    for node in sp.postorder_traversal(expr):
        if node in terms:
            continue
        if node.is_Add:
            count = sum(terms.get(a, 1) for a in node.args)
        elif node.is_Mul:
            count = math.prod(terms.get(a, 1) for a in node.args)
        elif node.is_Pow and node.exp.is_Integer:
            n, k = abs(int(node.exp)), terms.get(node.base, 1)
            count = 1 if k == 1 else math.comb(n + k - 1, k - 1) if n < 10**6 else 10**6 * k
        else:  # a function or symbol: one term (its arguments are counted on their own)
            count = 1
        terms[node] = min(count, 10**9)
    return max(terms.values(), default=1)


def derivative(expr: sp.Expr, wrt: sp.Symbol) -> sp.Expr:
    """The readable derivative of ``expr`` with respect to ``wrt``, over the reals."""
    real = {s: sp.Symbol(s.name, real=True) for s in expr.free_symbols if isinstance(s, sp.Symbol)}
    back = {r: s for s, r in real.items()}
    wrt_real = real.get(wrt, sp.Symbol(wrt.name, real=True))
    d = sp.diff(expr.xreplace(real), wrt_real)
    return _pull_number(readable(d).xreplace(back))


def second_derivative(expr: sp.Expr, p: sp.Symbol, q: sp.Symbol) -> sp.Expr:
    """The readable ``∂²expr/∂p∂q``, over the reals."""
    real = {s: sp.Symbol(s.name, real=True) for s in expr.free_symbols if isinstance(s, sp.Symbol)}
    back = {r: s for s, r in real.items()}
    d = sp.diff(expr.xreplace(real), real.get(p, p), real.get(q, q))
    return _pull_number(readable(d).xreplace(back))


def value_at(expr: sp.Expr, point: dict[sp.Symbol, sp.Expr]) -> float:
    """``expr`` where ``point`` says, computed to 20 significant digits and rounded to the
    nearest float64 (``inf`` when it overflows float64, 0.0 when it underflows or cannot be
    told from zero with ``MAX_DIGITS`` digits of working precision).

    Nothing is evaluated exactly (``2**(2**x)`` at ``x=100`` would be an integer of 2**100
    bits): the values go in unevaluated, functions are applied to them (symgen's written
    out as their meaning: ``sigmoid(z)`` as ``1/(1 + exp(-z))``), and SymPy's ``evalf``
    raises its working precision until the digits are right (``1 - sigmoid(400)`` is
    1.9e-174, not 0).
    Raises ``ValueError`` when the value is not finite or not real.
    """
    with sp.evaluate(False):
        value = expr.xreplace(point)
    value = value.replace(lambda e: isinstance(e, sp.Function), _function_value)
    try:
        number = value.evalf(20, strict=True, maxn=MAX_DIGITS)
    except PrecisionExhausted:
        return 0.0
    except OverflowError:  # an exponent too large even for mpmath's floats
        return math.inf
    if number.is_zero:  # exactly 0 (2*x at x = 0): SymPy's zero, not a Float
        return 0.0
    if (
        number.has(sp.zoo, sp.oo, -sp.oo, sp.nan)
        or not number.is_Number
        and number.is_finite is False
    ):
        raise ValueError(f"the derivative is not finite at that point: {number}")
    if number.has(sp.I) or not number.is_Float:
        raise ValueError(f"the derivative is not real at that point: {sp.N(number, 6)}")
    return float(mlib.to_str(number._mpf_, 20))


def _function_value(call: sp.Function) -> sp.Expr:
    """A function of numbers, evaluated (``Heaviside(2, 0)`` is 1), symgen's as their meaning."""
    home = BY_CLASS.get(type(call))
    if home is not None and home.meaning is not None:
        return home.meaning(*call.args)
    return call.func(*call.args)


def _pull_number(expr: sp.Expr) -> sp.Expr:
    """``2*a + 2*b + 2*c`` → ``2*(a + b + c)`` (kept unevaluated) when that is shorter."""
    if not expr.is_Add:
        return expr
    content, primitive = expr.as_content_primitive()
    if content == 1 or content == -1:
        return expr
    pulled = sp.Mul(content, primitive, evaluate=False)
    return pulled if sp.count_ops(pulled) < sp.count_ops(expr) else expr


def gradients(problem: Problem) -> dict[sp.Symbol, sp.Expr]:
    """The simplified derivative of the loss with respect to each parameter.

    For a per-sample problem the formula is that of one sample's term:
    the gradient is its sum over samples (its mean, for ``reduce="mean"``).
    For a matrix problem each gradient is a matrix expression (products,
    transposes, elementwise products and functions), read back from the
    reverse-mode graph that the generated code computes.
    Keys are the problem's own parameter symbols, in ``params`` order.
    """
    if problem.kind == "matrix":
        return matrix_gradients(problem)
    return {p: derivative(problem.loss, p) for p in problem.params}


def hessians(problem: Problem) -> dict[tuple[sp.Basic, sp.Basic], sp.Basic]:
    """The simplified second derivatives of the loss, one per pair of parameters ``(p, q)``
    with ``p`` not after ``q`` in ``params`` order (the Hessian is symmetric).

    For a per-sample problem the formula is that of one sample's term. For a matrix
    problem whose parameters are vectors, block ``(p, q)`` of the Hessian in matrix
    notation (a GLM's ``X.T*diag(s)*X``); with matrix parameters (a block is then a
    4-index tensor), the block applied to a direction ``v_q`` shaped like ``q``: the
    ``p`` part of the Hessian-vector product ``∂/∂p <∂L/∂q, v_q>``.
    """
    if problem.kind == "matrix":
        return matrix_hessians(problem)
    params = problem.params
    return {
        (p, q): second_derivative(problem.loss, p, q)
        for i, p in enumerate(params)
        for q in params[i:]
    }


def directions(problem: Problem) -> dict[sp.Basic, sp.MatrixSymbol]:
    """The direction ``v_<name>`` of each parameter (a ``MatrixSymbol`` shaped like it, a
    symbol for a scalar), as ``hessians`` names them (``v_<name>_`` if the problem has a
    symbol of that name)."""
    taken = {s.name for s in (*problem.params, *problem.data)}
    out = {}
    for p in problem.params:
        name = f"v_{p.name}"
        while name in taken:
            name += "_"
        out[p] = sp.MatrixSymbol(name, *p.shape) if p.is_Matrix else sp.Symbol(name, real=True)
    return out


def matrix_hessians(problem: Problem) -> dict[tuple[sp.Basic, sp.Basic], sp.Basic]:
    """``hessians`` of a matrix problem, read back from the IR of the second derivatives."""
    lowered = lower(problem)
    grads = backprop(lowered.loss, lowered.params)
    named = directions(problem)
    pairs = zip(problem.params, lowered.params, strict=True)
    inputs = tuple(Input(named[p].name, i.shape, "data") for p, i in pairs)
    form, nodes = hessian_nodes(lowered, grads, inputs, products=False)
    symbols = {s.name: s for s in (*problem.params, *problem.data)}
    params = problem.params
    if form.kind == "blocks":
        rebuild = _MatrixFormula(symbols)
        return {
            (params[p], params[q]): _for_reading(rebuild(n))
            for (p, q), n in zip(form.pairs, nodes, strict=True)
        }
    rebuild = _MatrixFormula({**symbols, **{v.name: v for v in named.values()}})
    blocks = hvp_blocks(lowered.loss, lowered.params, inputs)
    return {(params[p], params[q]): _for_reading(rebuild(n)) for (p, q), n in blocks.items()}


# -- matrix problems: the IR gradient graph read back as matrix notation -------------


class _MatrixFormula:
    """Rebuilds SymPy matrix expressions from IR nodes (for reading, not for code)."""

    def __init__(self, symbols: dict[str, sp.Basic]) -> None:
        self.symbols = symbols
        self.memo: dict = {}

    def __call__(self, node) -> sp.Basic:
        if node in self.memo:
            return self.memo[node]
        if isinstance(node, Input):
            out = self.symbols[node.name]
        elif isinstance(node, Const):
            out = node.value
        elif isinstance(node, Eye):
            out = sp.Identity(node.shape[0])
        elif isinstance(node, MatMul) and weighted_product(node) is not None:
            a, weight, _ = weighted_product(node)
            s = self(weight)
            if isinstance(s, MatrixExpr):
                out = sp.MatMul(self(node.a), _Diag(_unspread(s)), self(a))
            else:  # the same weight for every row: a number
                out = sp.MatMul(s, self(node.a), self(a)).doit(deep=False)
        elif isinstance(node, MatMul):
            out = sp.MatMul(self._matrix(node.a), self._matrix(node.b)).doit(deep=False)
            coeff, matrices = out.as_coeff_matrices() if isinstance(out, sp.MatMul) else (1, [])
            if matrices and coeff != 1:  # one coefficient in front: 2/(M*N_O) * A*B
                out = sp.MatMul(coeff, *matrices)
        elif isinstance(node, Transpose):
            arg = self(node.arg)
            if isinstance(arg, ElementwiseApplyFunction):
                out = sp.Transpose(arg)  # relu(X*W1).T, not relu(W1.T*X.T)
            else:
                out = arg.T if isinstance(arg, MatrixExpr) else arg
        elif isinstance(node, Reduce):
            out = self._reduce(node)
        elif isinstance(node, Stored):
            out = self(node.arg)
        elif isinstance(node, Map):  # operands at their own shapes, the result at the map's
            env = {v: _unspread(self(a)) for v, a in zip(node.fn.variables, node.args, strict=True)}
            out = _spread(_lift(sp.factor_terms(node.fn.expr), env), node.shape)
        elif isinstance(node, Gather):
            out = Take(self(node.arg), self.symbols[node.index.name])
        elif isinstance(node, ScatterAdd):
            out = _Scatter(self(node.value), self.symbols[node.index.name], *node.shape)
            if node.base is not None:
                out = sp.MatAdd(self(node.base), out)
        elif isinstance(node, Entry):
            out = MatrixElement(self(node.arg), node.row, node.col)
        elif isinstance(node, PlaceAdd):  # of integer dimensions: written out, zeros around
            rows, cols = (int(d) for d in node.shape)
            entries = [[sp.S.Zero] * cols for _ in range(rows)]
            for value, (row, col) in zip(node.values, node.positions, strict=True):
                entries[row][col] = self(value)
            out = sp.ImmutableMatrix(entries)
            if node.base is not None:
                out = sp.MatAdd(self(node.base), out)
        else:  # pragma: no cover
            raise TypeError(type(node).__name__)
        self.memo[node] = out
        return out

    def _matrix(self, node) -> sp.Basic:
        """``node``'s formula as a matrix of its shape: a scalar spread over it is the scalar
        times ones (printed as the scalar)."""
        out = self(node)
        if isinstance(out, MatrixExpr) or not node.shape:
            return out
        return sp.MatMul(out, sp.OneMatrix(*node.shape))

    def _reduce(self, node) -> sp.Basic:
        arg = self(node.arg)
        if not isinstance(arg, MatrixExpr):  # a sum of a broadcast scalar
            return arg * sp.Mul(*[node.arg.shape[a] for a in node.axes])
        kind = "sum" if node.op == "sum" else "max"
        if not node.shape:
            return FullReduce(kind, arg)
        if len(node.axes) == 1:
            return AxisReduce(kind, arg, node.axes[0])
        return FullReduce(kind, arg)


def _lift(expr: sp.Basic, env: dict) -> sp.Basic:
    """A scalar body over map variables, as a matrix expression (elementwise operations)."""
    if expr in env:
        return env[expr]
    if not expr.args:
        return expr
    if isinstance(expr, sp.Piecewise):
        return _lift_whole(expr, env)
    args = [_lift(a, env) for a in expr.args]
    matrices = [a for a in args if isinstance(a, MatrixExpr)]
    if not matrices:
        return expr.func(*args)
    if expr.is_Add:
        shape = _common_shape(matrices)
        scalars = sp.Add(*[a for a in args if not isinstance(a, MatrixExpr)])
        terms = [_spread(m, shape) for m in matrices]
        terms += [_Broadcast(scalars, *shape)] if scalars != 0 else []
        return sp.MatAdd(*terms) if len(terms) > 1 else terms[0]
    if expr.is_Mul:
        coeff = sp.Mul(*[a for a in args if not isinstance(a, MatrixExpr)])
        if len(matrices) > 1:
            shape = _common_shape(matrices)
            prod = sp.HadamardProduct(*[_spread(m, shape) for m in matrices])
        else:
            prod = matrices[0]
        return prod if coeff == 1 else sp.MatMul(coeff, prod).doit(deep=False)
    if expr.is_Pow and isinstance(args[0], MatrixExpr) and not isinstance(args[1], MatrixExpr):
        return args[0] if args[1] == 1 else sp.HadamardPower(args[0], args[1])
    z = sp.Dummy("z", real=True)
    if len(matrices) == 1:
        index = next(i for i, a in enumerate(args) if isinstance(a, MatrixExpr))
        inner = list(args)
        inner[index] = z
        return ElementwiseApplyFunction(sp.Lambda(z, expr.func(*inner)), args[index])
    return ElementwiseMap(sp.Lambda(tuple(env), expr), *env.values())


def _common_shape(matrices: list[MatrixExpr]) -> tuple:
    """The shape that ``matrices`` broadcast to (a 1 x K row and an N x 1 column: N x K)."""
    return broadcast_shapes(*(tuple(m.shape) for m in matrices))


def _spread(expr: sp.Basic, shape: tuple) -> sp.Basic:
    """``expr`` as a term or factor of a sum or elementwise product of ``shape``: a matrix
    of another shape (a row or column that broadcasts) wrapped in ``_Broadcast``. SymPy
    refuses terms that differ in a dimension where both are integers (5 x 2 ``X*W`` plus
    the 1 x 2 row ``b``) and lets a symbolic one pass (``N`` against 1): without the
    wrapper only problems of integer dimensions failed. A scalar is left as it is:
    ``_lift`` makes it a coefficient, or spreads it over a sum itself."""
    if not isinstance(expr, MatrixExpr) or tuple(expr.shape) == tuple(shape):
        return expr
    return _Broadcast(expr, *shape)


def _unspread(expr: sp.Basic) -> sp.Basic:
    """``expr`` at its own shape: the value of a ``_Broadcast``. A map's operands go in as
    their values (``2 * b``, ``exp(b)`` of a row ``b``, and SymPy folds ``-1 * X*w`` into
    ``-X*w`` only when no wrapper sits between), and its result is spread again."""
    return expr.args[0] if isinstance(expr, _Broadcast) else expr


def _lift_whole(expr: sp.Basic, env: dict) -> sp.Basic:
    """``expr`` (a ``Piecewise``) as one elementwise function of the matrices it reads."""
    scalars = {v: e for v, e in env.items() if not isinstance(e, MatrixExpr)}
    expr = expr.xreplace(scalars)
    used = [v for v in env if v not in scalars and v in expr.free_symbols]
    if not used:
        return expr
    if len(used) == 1:
        return ElementwiseApplyFunction(sp.Lambda(used[0], expr), env[used[0]])
    return ElementwiseMap(sp.Lambda(tuple(used), expr), *[env[v] for v in used])


class _Readable:
    """A node of a formula for reading: ``str()``, ``repr()`` and ``sympy.latex`` print
    the expression below it as ``symgen show`` does (``relu(X*W1)``, ``A ⊙ B``), not as
    SymPy's own printers would (``Lambda(_z, relu(_z)).(X*W1)``)."""

    __slots__ = ()

    def _sympystr(self, printer):
        return show_matrix(self)

    def _latex(self, printer):
        return latex_matrix(self)


class _Broadcast(_Readable, MatrixExpr):
    """A scalar, row or column spread over a ``rows`` x ``cols`` matrix, for display only
    (printed as the value). Its shape is the spread one, not the value's: SymPy checks the
    integer dimensions of sums and products (see ``_spread``)."""

    def __new__(cls, value, rows, cols):
        return MatrixExpr.__new__(cls, sp.sympify(value), sp.sympify(rows), sp.sympify(cols))

    @property
    def shape(self):
        return tuple(self.args[1:])

    @property
    def precedence(self) -> int:
        """That of the value (parentheses go where the value needs them)."""
        return precedence(self.args[0])

    def could_extract_minus_sign(self) -> bool:
        """That of the value: the LaTeX printer writes ``A - max(A)``, not ``A + -max(A)``."""
        return self.args[0].could_extract_minus_sign()

    def __neg__(self):
        """The negated value, spread: ``-(-m)`` is ``m``, as the printers of sums need."""
        return _Broadcast(-self.args[0], *self.shape)

    def _eval_transpose(self):
        """The transposed value, spread: ``b^{T}``, where LaTeX would bracket a transposed
        expression that is not a symbol: ``\\left(b\\right)^{T}``."""
        value, (rows, cols) = self.args[0], self.shape
        return _Broadcast(value.T if isinstance(value, MatrixExpr) else value, cols, rows)


class _Scatter(_Readable, MatrixExpr):
    """For display: the N x K matrix with ``value[r]`` at ``[r, labels[r]]``, zero elsewhere
    (the gradient of ``take``)."""

    def __new__(cls, value, labels, *shape):
        return MatrixExpr.__new__(cls, sp.sympify(value), labels, *map(sp.sympify, shape))

    @property
    def shape(self):
        return tuple(self.args[2:])


class _Diag(_Readable, MatrixExpr):
    """The diagonal matrix of a column, for display: ``diag(s)``."""

    def __new__(cls, column):
        return MatrixExpr.__new__(cls, column)

    @property
    def shape(self):
        n = self.args[0].shape[0]
        return (n, n)


def _shown(call: sp.Function) -> str:
    """A function's name in a matrix formula (``abs``, not SymPy's ``Abs``)."""
    home = BY_CLASS.get(type(call))
    return home.shown if home is not None and home.shown else type(call).__name__


def _readable_kind(base: type) -> type:
    """``base`` printed as ``_Readable`` says, under the same name: SymPy's printers
    choose parentheses, and order the terms of sums, by class name."""
    return type(base.__name__, (_Readable, base), {"__slots__": (), "__module__": __name__})


#: The matrix nodes of a formula and their readable kinds (same arguments, same meaning).
_READABLE = {
    base: _readable_kind(base)
    for base in (
        sp.MatMul,
        sp.MatAdd,
        sp.Transpose,
        sp.HadamardProduct,
        sp.HadamardPower,
        ElementwiseApplyFunction,
        ElementwiseMap,
        AxisReduce,
        FullReduce,
        Take,
    )
}


def _for_reading(expr: sp.Basic) -> sp.Basic:
    """``expr`` with each matrix node replaced by its readable kind (see ``_Readable``)."""
    args = tuple(_for_reading(a) for a in expr.args)
    kind = _READABLE.get(type(expr))
    if kind is None and args == expr.args:
        return expr
    return (kind or expr.func)(*args)


class FormulaPrinter(StrPrinter):
    """SymPy's plain notation, with a ``Piecewise`` written as cases:
    ``{ r**2/2 if Abs(r) <= delta; delta*(Abs(r) - delta/2) otherwise }`` (the first piece
    whose condition holds gives the value), and its conditions with ``==``, ``!=``,
    ``and``, ``or``, ``not``."""

    def _print_Piecewise(self, expr):
        pieces = []
        for value, cond in expr.args:
            text = self._print(value)
            pieces.append(
                f"{text} otherwise" if cond == sp.true else f"{text} if {self._print(cond)}"
            )
        return "{ " + "; ".join(pieces) + " }"

    def _print_Relational(self, expr):
        return f"{self._print(expr.lhs)} {expr.rel_op} {self._print(expr.rhs)}"

    def _connect(self, expr, word):
        parts = [self._print(a) for a in expr.args]
        parts = [
            f"({p})" if isinstance(a, (sp.And, sp.Or)) else p
            for a, p in zip(expr.args, parts, strict=True)
        ]
        return f" {word} ".join(parts)

    def _print_And(self, expr):
        return self._connect(expr, "and")

    def _print_Or(self, expr):
        return self._connect(expr, "or")

    def _print_Not(self, expr):
        arg = expr.args[0]
        text = self._print(arg)
        return f"not ({text})" if isinstance(arg, (sp.And, sp.Or)) else f"not {text}"


class MatrixFormulaPrinter(FormulaPrinter):
    """Matrix notation as a person writes it: ``*`` for products, ``⊙`` for elementwise
    products, ``f(A)`` for elementwise functions, ``.T`` for transposes."""

    printmethod = "_symgen_str"  # not ``_sympystr``: that of ``_Readable`` calls this printer

    def _print_MatMul(self, expr):
        coeff, matrices = expr.as_coeff_matrices()
        matrices = [m for m in matrices if not isinstance(m, sp.OneMatrix)]  # a broadcast
        if not matrices:  # a scalar spread over a matrix
            return self._print(coeff)
        product = "*".join(self.parenthesize(m, PRECEDENCE["Mul"]) for m in matrices)
        if coeff == 1:
            return product
        if coeff == -1:
            return f"-{product}"
        return f"{self._print(coeff)} * {product}"

    def _print_HadamardProduct(self, expr):
        return " ⊙ ".join(self.parenthesize(a, PRECEDENCE["Mul"]) for a in expr.args)

    def _print_HadamardPower(self, expr):
        base, exp = expr.args
        return f"{self.parenthesize(base, PRECEDENCE['Pow'])}**{self._print(exp)}"

    def _print_ElementwiseApplyFunction(self, expr):
        body, (var,) = expr.function.expr, expr.function.variables
        arg = self._print(expr.expr)
        if isinstance(body, sp.Function) and body.args and body.args[0] == var:
            return f"{_shown(body)}({arg})"
        return self._print(body.xreplace({var: sp.Symbol(f"({arg})")}))

    def _print_ElementwiseMap(self, expr):
        names = {}
        for var, op in zip(expr.function.variables, expr.operands, strict=True):
            text = self._print(op)
            atomic = precedence(op) >= PRECEDENCE["Func"]  # a name, a call, a transpose
            names[var] = sp.Symbol(text if atomic else f"({text})")
        return f"elementwise({self._print(expr.function.expr.xreplace(names))})"

    def _print_AxisReduce(self, expr):
        return f"{expr.kind}({self._print(expr.arg)}, axis={expr.axis})"

    def _print_FullReduce(self, expr):
        return f"{expr.kind}({self._print(expr.arg)})"

    def _print_Take(self, expr):
        return f"take({self._print(expr.matrix)}, {self._print(expr.labels)})"

    def _print__Scatter(self, expr):
        return f"scatter({self._print(expr.args[0])}, {self._print(expr.args[1])})"

    def _print__Broadcast(self, expr):
        return self._print(expr.args[0])

    def _print__Diag(self, expr):
        return f"diag({self._print(expr.args[0])})"

    def _print_Transpose(self, expr):
        return f"{self.parenthesize(expr.arg, PRECEDENCE['Pow'])}.T"


class MatrixLatexPrinter(LatexPrinter):
    """LaTeX for the same notation: ``\\operatorname{relu}(X W_1)``, ``\\odot``."""

    printmethod = "_symgen_latex"  # not ``_latex``: that of ``_Readable`` calls this printer

    def _print_ElementwiseApplyFunction(self, expr):
        body, (var,) = expr.function.expr, expr.function.variables
        arg = self._print(expr.expr)
        if isinstance(body, sp.Function) and body.args and body.args[0] == var:
            return rf"\operatorname{{{_shown(body)}}}\left({arg}\right)"
        return self._print(body.xreplace({var: sp.Symbol(rf"\left({arg}\right)")}))

    def _print_HadamardProduct(self, expr):
        return r" \odot ".join(self.parenthesize(a, PRECEDENCE["Mul"]) for a in expr.args)

    def _print_HadamardPower(self, expr):
        base, exp = expr.args
        return rf"{self.parenthesize(base, PRECEDENCE['Pow'])}^{{\circ {self._print(exp)}}}"

    def _print_MatMul(self, expr):
        coeff, matrices = expr.as_coeff_matrices()
        kept = [m for m in matrices if not isinstance(m, sp.OneMatrix)]  # a broadcast
        if not kept:  # a scalar spread over a matrix
            return self._print(coeff)
        if len(kept) == 1 and len(matrices) > 1:  # a row or column spread over a matrix
            return self._print(kept[0] if coeff == 1 else sp.MatMul(coeff, kept[0]))
        return super()._print_MatMul(expr)

    def _print_ElementwiseMap(self, expr):
        names = {}
        for var, op in zip(expr.function.variables, expr.operands, strict=True):
            text = self._print(op)
            atomic = precedence(op) >= PRECEDENCE["Func"]  # a name, a call, a transpose
            names[var] = sp.Symbol(text if atomic else rf"\left({text}\right)")
        body = self._print(expr.function.expr.xreplace(names))
        return rf"\operatorname{{elementwise}}\left({body}\right)"

    def _print_FullReduce(self, expr):
        if expr.kind == "sum":
            return rf"\sum {self.parenthesize(expr.arg, PRECEDENCE['Mul'])}"
        return rf"\operatorname{{{expr.kind}}}\left({self._print(expr.arg)}\right)"

    def _print_AxisReduce(self, expr):
        arg = self._print(expr.arg)
        return rf"\operatorname{{{expr.kind}}}_{{{expr.axis}}}\left({arg}\right)"

    def _print_Take(self, expr):
        matrix, labels = self._print(expr.matrix), self._print(expr.labels)
        return rf"\operatorname{{take}}\left({matrix}, {labels}\right)"

    def _print__Scatter(self, expr):
        value, labels = self._print(expr.args[0]), self._print(expr.args[1])
        return rf"\operatorname{{scatter}}\left({value}, {labels}\right)"

    def _print__Broadcast(self, expr):
        return self._print(expr.args[0])

    def _print__Diag(self, expr):
        return rf"\operatorname{{diag}}\left({self._print(expr.args[0])}\right)"


def latex_matrix(expr: sp.Basic) -> str:
    return MatrixLatexPrinter().doprint(expr)


def matrix_gradients(problem: Problem) -> dict[sp.Basic, sp.Basic]:
    """The gradient of a matrix loss with respect to each parameter, in matrix notation."""

    lowered = lower(problem)
    grads = backprop(lowered.loss, lowered.params)
    rebuild = _MatrixFormula({s.name: s for s in (*problem.params, *problem.data)})
    return {p: _for_reading(rebuild(g)) for p, g in zip(problem.params, grads, strict=True)}


def show_matrix(expr: sp.Basic) -> str:
    return MatrixFormulaPrinter().doprint(expr)


def formula_text(problem: Problem, expr: sp.Basic) -> str:
    """``expr`` (the loss or a derivative of ``problem``) as ``symgen show`` prints it."""
    return show_matrix(expr) if problem.kind == "matrix" else FormulaPrinter().doprint(expr)


def formula_latex(problem: Problem, expr: sp.Basic) -> str:
    """``expr`` as ``symgen show --format latex`` prints it."""
    return latex_matrix(expr) if problem.kind == "matrix" else sp.latex(expr)
