"""SymPy problem → IR graph.

A scalar loss over scalar parameters is one ``Map`` of shape ``()``. A
per-sample loss is a ``Map`` over the data vectors (shape ``(N,)``, the
parameters broadcast against them) followed by a ``Reduce`` over samples, and
a division by ``N`` for ``reduce="mean"``. The whole scalar formula goes into
one ``Map`` body, so that ``sympy.diff`` sees it whole in ``autodiff``.

A matrix loss is lowered node by node: ``MatMul``/``Transpose`` as they are,
every elementwise operation (``MatAdd``, Hadamard products and powers,
``applyfunc``, symgen's helpers) as a ``Map``, sums as ``Reduce``, and
``logsumexp`` in its stable form ``m + log(sum(exp(z - m)))`` with ``m`` the
maximum, ``take`` as a ``Gather`` at its integer labels, an entry ``X[0, 1]`` at integer
indices as an ``Entry``. Anything else raises
``SpecError`` naming the node.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sympy as sp
from sympy.matrices.expressions import MatrixExpr
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions.matexpr import MatrixElement

from symgen.compiler.autodiff import transpose
from symgen.compiler.functions import (
    AxisReduce,
    ElementwiseMap,
    FullReduce,
    Take,
    refuse_scalar_functions_of_matrices,
)
from symgen.compiler.indexed import entry_of_product, summed_entries
from symgen.compiler.ir import (
    Entry,
    Eye,
    Gather,
    Input,
    Map,
    MatMul,
    Node,
    Reduce,
    Shape,
    broadcast_shapes,
    map_,
)
from symgen.compiler.piecewise import normalize
from symgen.compiler.shown import shown
from symgen.compiler.stable import stabilize
from symgen.compiler.supported import check_scalar_expression
from symgen.errors import SpecError


@dataclass(frozen=True)
class Lowered:
    """The IR of a problem: its loss node and its inputs, in call order."""

    loss: Node
    params: tuple[Input, ...]
    data: tuple[Input, ...]
    #: Dimension symbols, each with the input (and axis) whose shape defines it.
    dims: tuple[tuple[sp.Symbol, Input, int], ...]
    #: Data holding class indices (``symgen.take``'s labels), each with the extents its
    #: entries must stay below (the columns of the matrices they index).
    labels: tuple[tuple[Input, tuple[sp.Expr, ...]], ...] = ()


def sample_dim(problem) -> sp.Symbol:
    """The symbol for the number of samples: ``N`` unless a user symbol has that name."""
    taken = {s.name for s in (*problem.params, *problem.data)}
    name = next(n for n in ("N", "n_samples", "num_samples") if n not in taken)
    return sp.Symbol(name, integer=True, positive=True)


def _dims(inputs: tuple[Input, ...]) -> tuple[tuple[sp.Symbol, Input, int], ...]:
    found: dict[sp.Symbol, tuple[sp.Symbol, Input, int]] = {}
    for inp in inputs:
        for axis, d in enumerate(inp.shape):
            if isinstance(d, sp.Symbol) and d not in found:
                found[d] = (d, inp, axis)
    return tuple(found.values())


def lower(problem) -> Lowered:
    if problem.kind == "matrix":
        return _MatrixLowering(problem).lower()
    real = problem.real_symbols()
    loss = stabilize(normalize(problem.real_loss()), frozenset(real[b] for b in problem.binary))
    params = tuple(Input(p.name, (), "param", real[p]) for p in problem.params)
    if not problem.data:
        body = Map(sp.Lambda(tuple(real[p] for p in problem.params), loss), params, ())
        return Lowered(body, params, (), ())

    n = sample_dim(problem)
    data = tuple(Input(d.name, (n,), "data", real[d]) for d in problem.data)
    inputs = params + data
    per_sample = map_(sp.Lambda(tuple(i.symbol for i in inputs), loss), inputs, (n,))
    total: Node = Reduce(per_sample, (0,), ())
    if problem.reduce == "mean":
        s = sp.Dummy("s")
        total = map_(sp.Lambda(s, s / n), (total,), ())
    return Lowered(total, params, data, _dims(data))


def lower_matrix(problem, expr: sp.Basic) -> Node:
    """The IR of a matrix expression over ``problem``'s symbols (a part of its loss, such as
    the residuals of a least-squares loss); its inputs are the nodes ``lower`` makes."""
    return _MatrixLowering(problem).matrix(expr)


def _ones(shape: Shape) -> Node:
    return Map(sp.Lambda((), sp.S.One), (), shape)


def _is_ones(node: Node) -> bool:
    return isinstance(node, Map) and not node.args and node.fn.expr == 1


def _broadcast_to(node: Node, shape: Shape) -> Node:
    u = sp.Dummy("u")
    return node if node.shape == shape else Map(sp.Lambda(u, u), (node,), shape)


def _keep(shape: Shape, axes: tuple[int, ...]) -> Shape:
    return tuple(sp.S.One if i in axes else d for i, d in enumerate(shape))


def reduce_sum(node: Node, axes: tuple[int, ...], keepdims: bool) -> Node:
    return Reduce(node, axes, _keep(node.shape, axes) if keepdims else ())


def logsumexp(node: Node, axes: tuple[int, ...], keepdims: bool) -> Node:
    """``m + log(sum(exp(z - m)))``, with ``m`` the maximum over ``axes`` (no gradient flows
    through ``m``: the result does not depend on it)."""
    shape = _keep(node.shape, axes) if keepdims else ()
    m = Reduce(node, axes, shape, op="max")
    z, mz, s, mm = sp.Dummy("z"), sp.Dummy("m"), sp.Dummy("s"), sp.Dummy("m")
    shifted = map_(sp.Lambda((z, mz), sp.exp(z - mz)), (node, m))
    total = Reduce(shifted, axes, shape)
    return map_(sp.Lambda((s, mm), sp.log(s) + mm), (total, m))


class _MatrixLowering:
    """Lowers a matrix loss, one SymPy node at a time (memoized: shared subtrees stay shared)."""

    def __init__(self, problem) -> None:
        self.problem = problem
        real = problem.real_symbols()
        self.inputs: dict[str, Input] = {}
        for role, syms in (("param", problem.params), ("data", problem.data)):
            for s in syms:
                shape = tuple(sp.sympify(d) for d in s.shape) if isinstance(s, MatrixExpr) else ()
                self.inputs[s.name] = Input(s.name, shape, role, real.get(s))
        self.memo: dict[sp.Basic, Node] = {}
        self.param_names = frozenset(p.name for p in problem.params)
        #: The labels of ``take``, each with the column counts of the matrices it indexes.
        self.labels: dict[str, list[sp.Expr]] = {}
        self.numbers: set[str] = set()  # inputs read as numbers
        self.rules: dict[type, Callable[[sp.Basic], Node]] = {
            sp.MatrixSymbol: self._symbol,
            Take: self._take,
            sp.MatMul: self._matmul,
            sp.MatPow: self._matpow,
            sp.MatAdd: self._matadd,
            sp.Transpose: lambda e: _transpose(self.matrix(e.arg)),
            sp.HadamardProduct: self._hadamard,
            sp.HadamardPower: self._hadamard_power,
            ElementwiseApplyFunction: self._applyfunc,
            ElementwiseMap: self._elementwise,
            AxisReduce: self._axis_reduce,
            sp.OneMatrix: lambda e: _ones(tuple(e.shape)),
            sp.ZeroMatrix: lambda e: Map(sp.Lambda((), sp.S.Zero), (), tuple(e.shape)),
            sp.Identity: lambda e: Eye(tuple(e.shape)),
        }

    def lower(self) -> Lowered:
        loss = self.problem.loss
        if isinstance(loss, MatrixExpr):
            node = reduce_sum(self.matrix(loss), (0, 1), keepdims=False)  # a 1 x 1 matrix
        else:
            node = self.scalar(loss)
        inputs = tuple(self.inputs.values())
        params = tuple(i for i in inputs if i.role == "param")
        data = tuple(i for i in inputs if i.role == "data")
        both = sorted(self.numbers & set(self.labels))
        if both:
            raise SpecError(
                f"data '{both[0]}' holds class labels (symgen.take) and is also used as numbers; "
                "labels can only index: pass a separate float array for the arithmetic"
            )
        labels = tuple(
            (self.inputs[name], tuple(dict.fromkeys(bounds)))
            for name, bounds in self.labels.items()
        )
        return Lowered(node, params, data, _dims(inputs), labels)

    def _symbol(self, expr: sp.MatrixSymbol) -> Node:
        self.numbers.add(expr.name)
        return self.inputs[expr.name]

    def _take(self, expr: Take) -> Node:
        name = expr.labels.name
        labels = self.inputs.get(name)
        if labels is None or labels.role != "data":
            raise SpecError(
                f"take(): the labels {name} must be data (class indices), not a "
                f"{'parameter' if labels is not None else 'symbol outside params and data'}"
            )
        self.labels.setdefault(name, []).append(sp.sympify(expr.matrix.shape[1]))
        return Gather(self.matrix(expr.matrix), labels, tuple(expr.shape))

    # -- matrix expressions -------------------------------------------------
    def matrix(self, expr: sp.Basic) -> Node:
        if expr in self.memo:
            return self.memo[expr]
        rule = self.rules.get(type(expr))
        if rule is None:
            raise SpecError(
                f"unsupported matrix expression {type(expr).__name__} ({shown(expr)}); supported: "
                "MatrixSymbol, products, sums, scalar multiples, .T, HadamardProduct, "
                "HadamardPower, applyfunc and symgen's elementwise helpers, symgen.sum/mean/"
                "logsumexp, Trace, OneMatrix, ZeroMatrix, Identity"
            )
        node = self.memo[expr] = rule(expr)
        return node

    def _matmul(self, expr: sp.MatMul) -> Node:
        coeff = sp.Mul(*[a for a in expr.args if not isinstance(a, MatrixExpr)])
        acc: Node | None = None
        for factor in (a for a in expr.args if isinstance(a, MatrixExpr)):
            if isinstance(factor, sp.Identity):
                continue
            node = self.matrix(factor)
            acc = node if acc is None else _product(acc, node)
        if acc is None:  # a product of identities, perhaps scaled: -I, 2*I
            acc = Eye(tuple(expr.shape))
        return acc if coeff == 1 else self._scale(coeff, acc)

    def _matpow(self, expr: sp.MatPow) -> Node:
        base, exp = expr.args
        rows, cols = base.shape
        square = sp.simplify(rows - cols) == 0
        if not (exp.is_Integer and exp > 0 and square):
            entrywise = {sp.S.Half: "symgen.sqrt", sp.S(2): "symgen.square"}.get(exp)
            rewrite = f"{entrywise}({base})" if entrywise else f"sp.HadamardPower({base}, {exp})"
            shape = "" if square else f", and {base} is {rows} x {cols}, not square"
            raise SpecError(
                f"{expr} is a matrix power (SymPy's ** and sqrt of a matrix are matrix "
                f"functions){shape}; symgen takes positive integer powers of square matrices: "
                f"for the power of each entry write {rewrite}"
            )
        node = self.matrix(base)
        out = node
        for _ in range(int(exp) - 1):
            out = _product(out, node)
        return out

    def _scale(self, coeff: sp.Expr, node: Node) -> Node:
        c, u = sp.Dummy("c"), sp.Dummy("u")
        return self.elementwise(sp.Lambda((c, u), c * u), [self.scalar(coeff), node])

    def _matadd(self, expr: sp.MatAdd) -> Node:
        nodes = [self.matrix(a) for a in expr.args]
        us = [sp.Dummy(f"u{i}") for i in range(len(nodes))]
        return self.elementwise(sp.Lambda(tuple(us), sp.Add(*us)), nodes)

    def _hadamard(self, expr: sp.HadamardProduct) -> Node:
        nodes = [self.matrix(a) for a in expr.args]
        us = [sp.Dummy(f"u{i}") for i in range(len(nodes))]
        return self.elementwise(sp.Lambda(tuple(us), sp.Mul(*us)), nodes)

    def _hadamard_power(self, expr: sp.HadamardPower) -> Node:
        base, exp = expr.args
        u, k = sp.Dummy("u"), sp.Dummy("k")
        if isinstance(exp, MatrixExpr):
            return self.elementwise(sp.Lambda((u, k), u**k), [self.matrix(base), self.matrix(exp)])
        return self.elementwise(sp.Lambda((u, k), u**k), [self.matrix(base), self.scalar(exp)])

    def _applyfunc(self, expr: ElementwiseApplyFunction) -> Node:
        return self.elementwise(expr.function, [self.matrix(expr.expr)], [expr.expr])

    def _elementwise(self, expr: ElementwiseMap) -> Node:
        nodes = [self.matrix(op) for op in expr.operands]
        return self.elementwise(expr.function, nodes, list(expr.operands))

    def _params_in(self, expr: sp.Basic) -> frozenset[str]:
        """The names of the parameters the SymPy expression ``expr`` holds."""
        return frozenset(
            s.name for s in expr.free_symbols if getattr(s, "name", None) in self.param_names
        )

    def _axis_reduce(self, expr: AxisReduce) -> Node:
        node = self.matrix(expr.arg)
        fn = reduce_sum if expr.kind == "sum" else logsumexp
        return fn(node, (expr.axis,), keepdims=True)

    def elementwise(
        self, fn: sp.Lambda, nodes: list[Node], operands: list[sp.Basic] | None = None
    ) -> Node:
        """A ``Map`` of ``fn`` over ``nodes``; scalar symbols free in its body become operands.
        ``operands``: the SymPy expressions that ``nodes`` lower, which an error names in
        place of ``fn``'s variables, and whose parameters a data-only function
        (``loggamma``) of them must not hold."""
        try:
            shape = broadcast_shapes(*(n.shape for n in nodes))
        except ValueError as exc:
            raise SpecError(f"elementwise operands do not broadcast: {exc}") from None
        entries = sorted(fn.expr.atoms(MatrixElement), key=sp.default_sort_key)
        if entries:  # X.applyfunc(lambda v: v*w[0, 0]): each entry is one more (scalar) operand
            extra = [sp.Dummy("e") for _ in entries]
            operands = [*(operands or fn.variables), *entries]
            nodes = [*nodes, *(self._element(e) for e in entries)]
            fn = sp.Lambda(
                (*fn.variables, *extra), fn.expr.xreplace(dict(zip(entries, extra, strict=True)))
            )
        dummies = [sp.Dummy() for _ in fn.variables]
        named = dict(zip(dummies, operands or fn.variables, strict=True))
        body = fn.expr.xreplace(dict(zip(fn.variables, dummies, strict=True)))
        params = {d: self._params_in(e) for d, e in named.items()}
        params |= {s: frozenset({s.name}) for s in body.free_symbols if s.name in self.param_names}
        check_scalar_expression(body, params, shown=lambda e: shown(e, named))
        fn, nodes = _compose(fn, nodes)
        binary = {b.name for b in self.problem.binary}
        body = stabilize(
            normalize(fn.expr),
            frozenset(
                v
                for v, n in zip(fn.variables, nodes, strict=True)
                if isinstance(n, Input) and n.name in binary
            ),
        )
        variables, nodes = list(fn.variables), list(nodes)
        for sym in sorted(body.free_symbols - set(variables), key=lambda s: s.name):
            if sym.name in self.inputs and self.inputs[sym.name].shape == ():
                real = self.inputs[sym.name].symbol
                body = body.xreplace({sym: real})
                variables.append(real)
                nodes.append(self.inputs[sym.name])
            elif sym not in self._dimension_symbols():
                raise SpecError(
                    f"the loss uses {sym.name!r}, which is neither a param nor data nor a "
                    "dimension; add it to params or data, or substitute a number"
                )
        return map_(sp.Lambda(tuple(variables), body), tuple(nodes), shape)

    def _dimension_symbols(self) -> set[sp.Symbol]:
        return {d for i in self.inputs.values() for d in i.shape if isinstance(d, sp.Symbol)}

    # -- scalar expressions over matrix reductions ------------------------------
    def scalar(self, expr: sp.Expr) -> Node:
        """A scalar expression whose leaves may be matrix reductions, as a ``Map`` of shape ()."""
        bindings: dict[sp.Symbol, Node] = {}
        originals: dict[sp.Symbol, sp.Basic] = {}
        body = self._bind_reductions(sp.sympify(expr), bindings, originals)
        us = list(bindings)
        return self.elementwise(
            sp.Lambda(tuple(us), body), [bindings[u] for u in us], [originals[u] for u in us]
        )

    def _bind_reductions(self, expr: sp.Basic, bindings: dict, originals: dict) -> sp.Basic:
        if isinstance(expr, MatrixExpr):
            raise SpecError(
                f"the loss must be a scalar; {shown(expr)} is a matrix of shape {expr.shape}"
            )
        node = None
        if isinstance(expr, FullReduce):
            fn = reduce_sum if expr.kind == "sum" else logsumexp
            node = fn(self.matrix(expr.arg), (0, 1), keepdims=False)
        elif isinstance(expr, sp.Trace):
            node = self._trace(expr.arg)
        elif isinstance(expr, (sp.Sum, MatrixElement)):
            node = self._element(expr)
        elif any(isinstance(a, MatrixExpr) for a in expr.args):
            refuse_scalar_functions_of_matrices(expr)
            raise SpecError(
                f"unsupported matrix operation {type(expr).__name__} ({shown(expr)}); scalars "
                "come from matrices through symgen.sum/mean/logsumexp, Trace, entries X[i, j] "
                "at integer indices or [0, 0] of a 1 x 1 product"
            )
        if node is not None:
            u = sp.Dummy("r")
            bindings[u], originals[u] = node, expr
            return u
        if not expr.args:
            return expr
        return expr.func(*[self._bind_reductions(a, bindings, originals) for a in expr.args])

    def _element(self, expr: sp.Basic) -> Node:
        """``A[0, 0]`` of a 1 x 1 matrix (SymPy may have expanded it into a ``Sum``; one it
        cannot turn back into the product, ``(w.T*w)[0, 0]``, is read as index notation), or
        the entry ``A[i, j]`` at integer indices of a matrix of integer dimensions (SymPy writes
        ``(r.T*r)[0, 0]`` of integer dimensions out entry by entry: ``X[0, 1]*w[1, 0] + ...``)."""
        element = entry_of_product(expr) if isinstance(expr, sp.Sum) else expr
        if isinstance(expr, sp.Sum) and element.is_Add:  # entries of products, and numbers
            return self.scalar(element)
        if isinstance(element, MatrixElement):
            matrix, row, col = element.args
            if tuple(matrix.shape) == (1, 1) and (row, col) == (0, 0):
                return reduce_sum(self.matrix(matrix), (0, 1), keepdims=False)
            if row.is_Integer and col.is_Integer:
                return self._entry(element, matrix, int(row), int(col))
        if isinstance(expr, sp.Sum):
            summed = summed_entries(expr, self.problem.params, self.problem.data)
            if summed is not None:
                return self.scalar(summed)
        written_out = (
            "; SymPy writes [0, 0] of a product over a symbolic dimension out as a Sum before "
            "symgen sees it: pass the 1 x 1 product itself as the loss (Problem(A*B, ...)) or "
            "symgen.sum(A*B) (the sum of a 1 x 1 matrix is its entry)"
            if isinstance(expr, sp.Sum)
            else ""
        )
        raise SpecError(
            f"unsupported indexing {shown(element)}; symgen reads entries at integer indices "
            "(X[0, 1]) of matrices whose dimensions are integers, and [0, 0] of a 1 x 1 matrix "
            "expression (use symgen.sum for sums of elements, symgen.take for entries at "
            f"class labels){written_out}"
        )

    def _entry(self, element: MatrixElement, matrix: sp.Basic, row: int, col: int) -> Node:
        """``Entry`` of the lowered ``matrix``, its indices checked against its dimensions."""
        rows, cols = (sp.sympify(d) for d in matrix.shape)
        if not (rows.is_Integer and cols.is_Integer):
            raise SpecError(
                f"{shown(element)} reads an entry of {shown(matrix)}, of shape ({rows}, {cols}); "
                "symgen reads entries at integer indices of matrices whose dimensions are "
                f"integers: give {shown(matrix)} integer dimensions, or write the loss with "
                "symgen.sum (a 1 x 1 product itself, or symgen.sum(A*B), is its entry)"
            )
        if not (0 <= row < rows and 0 <= col < cols):
            raise SpecError(
                f"{shown(element)} is outside {shown(matrix)}, of shape ({rows}, {cols}): "
                f"rows run from 0 to {rows - 1}, columns from 0 to {cols - 1}"
            )
        return Entry(self.matrix(matrix), row, col)

    def _trace(self, arg: sp.Basic) -> Node:
        """trace(A B) = sum(A ⊙ Bᵀ), trace(A) = sum(A ⊙ I); linear over sums and scalar
        multiples. A product is never formed: a trace costs one elementwise pass."""
        if isinstance(arg, sp.Transpose):
            return self._trace(arg.arg)
        if isinstance(arg, sp.MatAdd):
            parts = [self._trace(a) for a in arg.args]
            us = [sp.Dummy(f"t{i}") for i in range(len(parts))]
            return map_(sp.Lambda(tuple(us), sp.Add(*us)), tuple(parts), ())
        if arg.shape[0] != arg.shape[1]:
            raise SpecError(
                f"unsupported Trace({shown(arg)}): the trace of a matrix that is not square"
            )
        factors = arg.args if isinstance(arg, sp.MatMul) else (arg,)
        coeff = sp.Mul(*[f for f in factors if not isinstance(f, MatrixExpr)])
        mats: list[sp.Basic] = []
        for f in (f for f in factors if isinstance(f, MatrixExpr)):
            if isinstance(f, sp.MatPow) and f.args[1].is_Integer and f.args[1] > 0:
                mats.extend([f.args[0]] * int(f.args[1]))
            elif not isinstance(f, sp.Identity):  # a factor I changes nothing
                mats.append(f)
        eye = Eye(tuple(arg.shape))
        left = self.matrix(mats[0]) if mats else eye
        if len(mats) >= 2:
            right = self.matrix(mats[1])
            for m in mats[2:]:
                right = _product(right, self.matrix(m))
            right = _transpose(right)
        else:  # trace(A) = trace(A I)
            right = eye
        u, v = sp.Dummy("u"), sp.Dummy("v")
        total = reduce_sum(map_(sp.Lambda((u, v), u * v), (left, right)), (0, 1), keepdims=False)
        return total if coeff == 1 else self._scale(coeff, total)


def _compose(fn: sp.Lambda, nodes: list[Node]) -> tuple[sp.Lambda, list[Node]]:
    """Inline operands that are maps themselves: ``f(g(x), y)`` becomes one map over ``x, y``.

    The whole elementwise formula then reaches ``stabilize`` and ``sympy.diff`` at once
    (``log(sigmoid(z))`` can only be rewritten when both are in one body).
    """
    variables: dict[Node, sp.Symbol] = {}
    subs: dict[sp.Symbol, sp.Expr] = {}

    def var_for(node: Node) -> sp.Symbol:
        if node not in variables:
            variables[node] = sp.Dummy(f"v{len(variables)}", real=True)
        return variables[node]

    for var, node in zip(fn.variables, nodes, strict=True):
        if isinstance(node, Map):
            inner = {v: var_for(a) for v, a in zip(node.fn.variables, node.args, strict=True)}
            subs[var] = node.fn.expr.xreplace(inner)
        else:
            subs[var] = var_for(node)
    body = fn.expr.xreplace(subs)
    return sp.Lambda(tuple(variables.values()), body), list(variables)


def _transpose(node: Node) -> Node:
    return transpose(node)


def _product(a: Node, b: Node) -> Node:
    """``a @ b``, where a ``OneMatrix`` factor is a sum and a broadcast, not a product."""
    (m, k), (k2, n) = a.shape, b.shape
    if k != k2:
        raise SpecError(f"matrix product of shapes {a.shape} and {b.shape} does not match")
    if _is_ones(b):
        summed = a if k == 1 else reduce_sum(a, (1,), keepdims=True)
        return _broadcast_to(summed, (m, n))
    if _is_ones(a):
        summed = b if k2 == 1 else reduce_sum(b, (0,), keepdims=True)
        return _broadcast_to(summed, (m, n))
    return MatMul(a, b, (m, n))
