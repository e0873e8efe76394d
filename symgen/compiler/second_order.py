"""Second derivatives over the IR: Hessian-vector products and dense Hessians.

``hvp``: reverse over forward. The derivative of the loss along directions ``v_p``
(inputs shaped like the parameters) is a graph of its own (``jvp``: forward mode over
the IR, one differentiation per map, however many variables it has), and its gradient
(``autodiff.gradients``) is ``H v``. Its graph is a small constant times the loss's, so an
hvp costs a small constant times ``loss_and_grad``, and it is fused, CSE'd and printed
like the gradient.

The dense Hessian over the parameters flattened in ``PARAMS`` order takes one of three
forms (``HessianForm.kind``):

- ``entries`` (every parameter a scalar, at most ``ENTRY_LIMIT`` of them): each second
  partial ``∂²L/∂p_i∂p_j`` (i <= j) is a graph of its own, the gradient's graph
  differentiated once more; for a per-sample loss each is a sum over the samples, and all
  of them are sums of the one pass over the samples.
- ``blocks`` (every parameter a vector: a column (n, 1) or a row (1, n), as the weights
  of a GLM): block (p, q) of H is the hvp of p along the n_q unit vectors of q at once,
  the hvp graph along ``v_q`` alone with ``v_q`` replaced by the identity matrix (``_Batch``:
  each node that depends on it gains an axis of length n_q). For a GLM the gradient
  ``X.T @ r(X w)`` gives ``X.T @ (r'(X w) ⊙ X)``, the form an expert writes; a diagonal
  block ``A.T @ (c ⊙ A)`` whose weight ``c`` is provably >= 0 becomes ``B.T @ B`` with
  ``B = sqrt(c) ⊙ A`` (``_gram``): a symmetric product, which BLAS computes in half the
  operations (``syrk``), exactly symmetric. Where that costs more than it saves (few
  columns: the cost of a call, not the operations, counts), the same block is also made
  as ``A.T @ (c ⊙ A)`` with ``c`` a column of its own (``_weighted``): the module chooses
  between the two by size (``SecondOrder.direct_program``).
- ``directions`` (anything else, e.g. matrix parameters): the module computes the hvp
  along each unit vector, a column of H per call, and symmetrizes.

Second derivatives keep the stable forms: ``1 - sigmoid(z)`` (the derivative of
``sigmoid``) is written ``sigmoid(-z)``, exact where the difference would round to 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

import sympy as sp
from sympy.functions.elementary.piecewise import ExprCondPair
from sympy.logic.boolalg import Boolean

from symgen.compiler.autodiff import gradients, partial, transpose
from symgen.compiler.frontend import Lowered
from symgen.compiler.ir import (
    Const,
    Entry,
    Eye,
    Gather,
    Input,
    Map,
    MatMul,
    Node,
    PlaceAdd,
    Reduce,
    ScatterAdd,
    Stored,
    Transpose,
    map_,
    topological,
)
from symgen.compiler.optimize import Namer, Program, build_program
from symgen.compiler.scalar_functions import sigmoid, softplus
from symgen.compiler.stable import simplify_derivative

#: The most scalar parameters whose Hessian is written entry by entry (P*(P+1)/2 sums
#: in one pass); beyond it the module computes it from hvps along unit vectors.
ENTRY_LIMIT = 16


@dataclass(frozen=True)
class HessianForm:
    """How the dense Hessian is computed (see the module docstring)."""

    kind: Literal["entries", "blocks", "directions"]
    #: The (p, q) pairs of parameter indices (p <= q) that the outputs hold, in order: a
    #: second partial (``entries``) or a block of shape (size of p, size of q) (``blocks``).
    pairs: tuple[tuple[int, int], ...] = ()
    #: Per output: whether it is exactly symmetric as computed (a diagonal block that is a
    #: symmetric product); the module symmetrizes the other diagonal blocks.
    symmetric: tuple[bool, ...] = ()


@dataclass(frozen=True)
class SecondOrder:
    """The second-order programs of a problem."""

    #: The direction inputs of ``hvp``, one per parameter, shaped like it.
    directions: tuple[Input, ...]
    #: The Hessian times the directions, one output per parameter (``hvp_<name>``).
    hvp_program: Program
    hessian: HessianForm
    #: The Hessian's outputs (``entries`` and ``blocks``), else None.
    hessian_program: Program | None
    #: The loss, the gradients and the Hessian's outputs from one program (``newton_step``).
    newton_program: Program | None
    #: The Hessian's outputs with each symmetric product ``B.T @ B`` of ``hessian_program``
    #: made ``A.T @ (c ⊙ A)`` instead (``_weighted``), and its form (the product is not
    #: exactly symmetric as computed); None when it has none.
    direct_program: Program | None = None
    direct: HessianForm | None = None


def _product(a: Node, b: Node) -> Node:
    x, y = sp.Dummy("x"), sp.Dummy("y")
    return map_(sp.Lambda((x, y), x * y), (a, b))


def _directional(body: sp.Expr, moves: dict[sp.Symbol, sp.Symbol]) -> sp.Expr:
    """The derivative of ``body`` along ``moves`` (variable -> its tangent), ``d/de
    body(x + e*t)`` at ``e = 0``: forward mode over the expression, each distinct
    subexpression's tangent made once from its operands' (sums, the product rule, powers,
    a function's partials), so its cost grows with the size of ``body``, not with the
    number of variables that move times it."""
    moving = set(moves)
    tangent: dict[sp.Basic, sp.Expr] = {}
    for e in sp.postorder_traversal(body):
        if e not in tangent:
            tangent[e] = _tangent(e, moves, moving, tangent)
    d = simplify_derivative(tangent[body])
    # Step functions are differentiated almost everywhere, as in reverse mode: their delta is 0.
    return d.replace(sp.DiracDelta, lambda *args: sp.S.Zero) if d.has(sp.DiracDelta) else d


def _tangent(e: sp.Basic, moves: dict, moving: set, tangent: dict) -> sp.Expr:
    """The tangent of ``e``, its operands' already in ``tangent``."""
    if e in moves:
        return moves[e]
    if isinstance(e, (Boolean, ExprCondPair)):  # conditions are not differentiated
        return sp.S.Zero
    if not e.args or not (e.free_symbols & moving):
        return sp.S.Zero
    if isinstance(e, sp.Piecewise):  # each piece's tangent, where that piece holds
        return sp.Piecewise(*[(tangent[p.expr], p.cond) for p in e.args])
    ts = [tangent[a] for a in e.args]
    if e.is_Add:
        return sp.Add(*ts)
    if e.is_Mul:
        rest = lambda k: sp.Mul(*e.args[:k], *e.args[k + 1 :])  # noqa: E731
        return sp.Add(*[t * rest(k) for k, t in enumerate(ts) if t != 0])
    if e.is_Pow:
        (base, exponent), (tb, te) = e.args, ts
        out = exponent * base ** (exponent - 1) * tb if tb != 0 else sp.S.Zero
        return out + e * sp.log(base) * te if te != 0 else out
    if isinstance(e, sp.Function):
        partials = [e.fdiff(k + 1) * t for k, t in enumerate(ts) if t != 0]
        if not any(p.has(sp.Derivative, sp.Subs) for p in partials):
            return sp.Add(*partials)
    # anything else (Max, Min with several arguments, ...): each moving variable's
    # partial as reverse mode takes it, times its tangent
    return sp.Add(*[partial(e, x) * t for x, t in moves.items() if x in e.free_symbols])


def _sum(a: Node | None, b: Node | None) -> Node | None:
    if a is None or b is None:
        return a if b is None else b
    x, y = sp.Dummy("x"), sp.Dummy("y")
    return map_(sp.Lambda((x, y), x + y), (a, b))


def jvp(outputs: tuple[Node, ...], tangents: dict[Input, Node]) -> tuple[Node | None, ...]:
    """Forward mode: the derivative of each output along ``tangents`` (an input -> its
    direction), None where it is 0. Each node gets at most two tangent nodes, and a map
    one differentiation of its body (``_directional``), so the tangents cost a small
    constant times the outputs. A maximum (``logsumexp``'s shift) has no tangent: the
    values it shifts do not depend on it."""
    made: dict[Node, Node | None] = {}
    for node in topological(list(outputs)):
        if isinstance(node, Input):
            made[node] = tangents.get(node)
        elif isinstance(node, Map):
            pairs = zip(node.fn.variables, node.args, strict=True)
            moving = [(x, made[a]) for x, a in pairs if made[a] is not None]
            if not moving:
                made[node] = None
                continue
            ts = [sp.Dummy(f"t{i}") for i in range(len(moving))]
            moves = {x: t for (x, _), t in zip(moving, ts, strict=True)}
            body = _directional(node.fn.expr, moves)
            fn = sp.Lambda((*node.fn.variables, *ts), body)
            made[node] = map_(fn, (*node.args, *(t for _, t in moving)), node.shape)
        elif isinstance(node, Reduce):
            arg = made[node.arg]
            made[node] = None if arg is None or node.op != "sum" else replace(node, arg=arg)
        elif isinstance(node, MatMul):
            ta, tb = made[node.a], made[node.b]
            left = MatMul(ta, node.b, node.shape) if ta is not None else None
            right = MatMul(node.a, tb, node.shape) if tb is not None else None
            made[node] = _sum(left, right)
        elif isinstance(node, Transpose):
            made[node] = None if made[node.arg] is None else transpose(made[node.arg])
        elif isinstance(node, Stored):
            made[node] = made[node.arg]
        elif isinstance(node, Gather):  # linear: the tangent's entries at the labels
            made[node] = None if made[node.arg] is None else replace(node, arg=made[node.arg])
        elif isinstance(node, ScatterAdd):  # linear in its base and its value
            base = None if node.base is None else made[node.base]
            value = made[node.value]
            made[node] = base if value is None else replace(node, base=base, value=value)
        elif isinstance(node, Entry):  # linear: the tangent's entry
            made[node] = None if made[node.arg] is None else replace(node, arg=made[node.arg])
        elif isinstance(node, PlaceAdd):  # linear in its base and its values
            base = None if node.base is None else made[node.base]
            moving = [(made[v], p) for v, p in zip(node.values, node.positions, strict=True)]
            moving = [(t, p) for t, p in moving if t is not None]
            values, positions = tuple(t for t, _ in moving), tuple(p for _, p in moving)
            made[node] = PlaceAdd(base, values, positions, node.shape) if moving else base
        else:  # constants and identities
            made[node] = None
    return tuple(made[o] for o in outputs)


def _hv(loss: Node, params: tuple[Input, ...], tangents: dict[Input, Node]):
    """``H v`` per parameter, ``v`` the ``tangents`` (0 for a parameter not in them):
    reverse over forward, the gradient of the loss's derivative along ``v``. Forward
    first keeps the graph small: the loss's derivative along v is one graph, whose
    subexpressions (``z'`` = X v, a residual's derivative) every part of the gradient
    shares, rather than one derivative per partial."""
    (along,) = jvp((loss,), tangents)
    return simplified(stable_second_order(gradients(along, params)))


def hvp(loss: Node, params: tuple[Input, ...], directions: tuple[Input, ...]):
    """The nodes of ``H v``, one per parameter, ``v`` the ``directions``."""
    return _hv(loss, params, dict(zip(params, directions, strict=True)))


# -- stable forms ---------------------------------------------------------------------


def _complements(expr: sp.Expr) -> sp.Expr:
    """``1 - sigmoid(z)`` → ``sigmoid(-z)`` (the derivative of ``sigmoid``, and of
    ``softplus`` twice): exact for large z, where the difference rounds to 0."""
    if not expr.has(sigmoid):
        return expr

    def subtracted(e: sp.Expr) -> sp.Expr | None:
        """``s`` when ``e`` is ``1 - s``."""
        return 1 - e if e.is_Add and len(e.args) == 2 and sp.S.One in e.args else None

    return expr.replace(
        lambda e: isinstance(subtracted(e), sigmoid),
        lambda e: sigmoid(-subtracted(e).args[0]),
    )


def _rebuild(outputs: tuple[Node, ...], change: Callable[[Node, tuple[Node, ...]], Node]):
    """``outputs`` rebuilt bottom up: ``change(node, new_operands)`` makes each node."""
    made: dict[Node, Node] = {}
    for node in topological(list(outputs)):
        made[node] = change(node, tuple(made[o] for o in node.operands))
    return tuple(made[o] for o in outputs)


def _with_operands(node: Node, operands: tuple[Node, ...]) -> Node:
    if operands == node.operands:
        return node
    if isinstance(node, Map):
        return Map(node.fn, operands, node.shape)
    if isinstance(node, Reduce):
        return replace(node, arg=operands[0])
    if isinstance(node, MatMul):
        return replace(node, a=operands[0], b=operands[1])
    if isinstance(node, (Transpose, Stored, Gather, Entry)):
        return replace(node, arg=operands[0])
    if isinstance(node, PlaceAdd):
        if node.base is None:
            return replace(node, values=operands)
        return replace(node, base=operands[0], values=operands[1:])
    if isinstance(node, ScatterAdd):
        if node.base is None:
            return replace(node, value=operands[0])
        return replace(node, base=operands[0], value=operands[1])
    raise TypeError(type(node).__name__)  # pragma: no cover - leaves have no operands


def _is_one(node: Node) -> bool:
    """A node of ones: an identity of size 1, the number 1 spread over (1, 1)."""
    return (isinstance(node, Eye) and node.shape[0] == 1) or _constant(node) == 1


def _simpler(node: Node, operands: tuple[Node, ...]) -> Node:
    """``node`` over ``operands`` without the work that multiplying by an identity or by a
    seed of ones would cost: ``X @ I`` is ``X``, ``1 * v`` is ``v``."""
    node = _with_operands(node, operands)
    if isinstance(node, Map):
        fn, args = _folded(node)
        return map_(fn, args, node.shape)
    if isinstance(node, MatMul):
        for one, other in ((node.a, node.b), (node.b, node.a)):
            if (isinstance(one, Eye) or _is_one(one)) and other.shape == node.shape:
                return other
    if isinstance(node, Transpose):
        if isinstance(node.arg, (Eye, Transpose)):
            return transpose(node.arg) if isinstance(node.arg, Transpose) else node.arg
        value = _constant(node.arg)
        if value is not None and value.is_Number:
            return Map(sp.Lambda((), value), (), node.shape)
    return node


def simplified(outputs: tuple[Node, ...]) -> tuple[Node, ...]:
    """``outputs`` rebuilt by ``_simpler``."""
    return _rebuild(outputs, _simpler)


def stable_second_order(outputs: tuple[Node, ...]) -> tuple[Node, ...]:
    """``outputs`` with ``_complements`` applied to every map's body."""

    def change(node: Node, operands: tuple[Node, ...]) -> Node:
        if isinstance(node, Map):
            body = _complements(node.fn.expr)
            if body != node.fn.expr or operands != node.args:
                return Map(sp.Lambda(node.fn.variables, body), operands, node.shape)
            return node
        return _with_operands(node, operands)

    return _rebuild(outputs, change)


# -- the dense Hessian: entries --------------------------------------------------------


def _entries(params: tuple[Input, ...], grads: tuple[Node, ...]):
    pairs, nodes = [], []
    for i, g in enumerate(grads):
        row = gradients(g, params)
        for j in range(i, len(params)):
            pairs.append((i, j))
            nodes.append(row[j])
    return tuple(pairs), simplified(stable_second_order(tuple(nodes)))


# -- the dense Hessian: blocks of vector parameters ------------------------------------


class NotBatched(Exception):
    """The graph has a node that ``_Batch`` cannot give an axis of directions."""


Layout = Literal["col", "row"]


def _natural(shape) -> Layout | None:
    """The layout a node of ``shape`` takes when batched: a column (a, 1) gains columns,
    a row (1, b) gains rows; a scalar or 1 x 1 either (None)."""
    if len(shape) != 2 and shape != ():
        raise NotBatched(f"a node of shape {shape}")
    if shape == () or (shape[0] == 1 and shape[1] == 1):
        return None
    if shape[1] == 1:
        return "col"
    if shape[0] == 1:
        return "row"
    raise NotBatched(f"a matrix of shape {shape} depends on the direction")


def _fits(shape, layout: Layout) -> bool:
    """Whether a node of ``shape`` that does not depend on the direction broadcasts along
    the axis of directions of ``layout``."""
    return shape == () or shape[1 if layout == "col" else 0] == 1


def _constant(node: Node) -> sp.Expr | None:
    """The value of a node that is a number everywhere (a constant, or a map of
    constants: a constant spread over a shape), else None."""
    if isinstance(node, Const):
        return node.value
    if isinstance(node, Transpose):
        return _constant(node.arg)
    if isinstance(node, Map):
        values = [_constant(a) for a in node.args]
        if all(v is not None for v in values):
            return node.fn.expr.xreplace(dict(zip(node.fn.variables, values, strict=True)))
    return None


def _folded(node: Map) -> tuple[sp.Lambda, tuple[Node, ...]]:
    """``node``'s body and operands with its constant operands put into the body (the
    adjoint seed ``1`` spread over a shape): ``1*v`` is then ``v`` itself."""
    values = {v: _constant(a) for v, a in zip(node.fn.variables, node.args, strict=True)}
    kept = [(v, a) for v, a in zip(node.fn.variables, node.args, strict=True) if values[v] is None]
    if len(kept) == len(node.args):
        return node.fn, node.args
    body = node.fn.expr.xreplace({v: c for v, c in values.items() if c is not None})
    return sp.Lambda(tuple(v for v, _ in kept), body), tuple(a for _, a in kept)


class _Batch:
    """Nodes evaluated along the ``n`` unit vectors of the direction ``v`` at once: ``v``
    is the identity matrix, and a node that depends on it, of shape (a, 1) (or (1, b)),
    becomes (a, n) (or (n, b)): its column (row) k is its value along unit vector k."""

    def __init__(self, v: Input, n) -> None:
        self.v, self.n = v, n
        self.made: dict[Node, tuple[Node, Layout]] = {}

    def _shape(self, shape, layout: Layout):
        if layout == "col":
            return (shape[0] if shape else sp.S.One, self.n)
        return (self.n, shape[1] if shape else sp.S.One)

    def _to(self, node: Node, made: tuple[Node, Layout], layout: Layout) -> Node:
        batched, have = made
        if have == layout:
            return batched
        if _natural(node.shape) is not None:
            raise NotBatched(f"a node of shape {node.shape} in both layouts")
        return transpose(batched)

    def __call__(self, outputs: tuple[Node, ...]) -> tuple[tuple[Node, Layout] | None, ...]:
        """Each output batched with its layout, or None when it does not depend on ``v``."""
        for node in topological(list(outputs)):
            if node == self.v:  # the identity; of size 1, the number 1
                eye = Eye((self.n, self.n)) if self.n != 1 else Map(sp.Lambda((), 1), (), (1, 1))
                self.made[node] = (eye, _natural(node.shape) or "col")
            elif any(o in self.made for o in node.operands):
                self.made[node] = self._node(node)
        return tuple(self.made.get(o) for o in outputs)

    def _node(self, node: Node) -> tuple[Node, Layout]:
        made = self.made
        if isinstance(node, Map):
            first = next(made[a][1] for a in node.args if a in made)
            layout = _natural(node.shape) or first
            fn, args = _folded(node)
            operands = []
            for a in args:
                if a in made:
                    operands.append(self._to(a, made[a], layout))
                elif _fits(a.shape, layout):
                    operands.append(a)
                else:
                    raise NotBatched(f"an operand of shape {a.shape}")
            return map_(fn, tuple(operands), self._shape(node.shape, layout)), layout
        if isinstance(node, Reduce):
            if node.op != "sum":
                raise NotBatched("a maximum of a direction")
            arg, layout = made[node.arg]
            axis = 0 if layout == "col" else 1
            if axis not in node.axes:  # the other axis has length 1: nothing to sum
                return arg, layout
            return Reduce(arg, (axis,), self._shape(node.shape, layout)), layout
        if isinstance(node, Transpose):
            arg, layout = made[node.arg]
            return transpose(arg), "row" if layout == "col" else "col"
        if isinstance(node, MatMul):
            return self._matmul(node)
        raise NotBatched(type(node).__name__)  # pragma: no cover - leaves are not batched

    def _matmul(self, node: MatMul) -> tuple[Node, Layout]:
        made, a, b = self.made, node.a, node.b
        if a in made and b in made:
            raise NotBatched("a product of two directions")
        m, c = node.shape
        if b in made:
            layout = made[b][1] if _natural(b.shape) else "col"
            right = self._to(b, made[b], layout)
            if layout == "col":
                if isinstance(right, Eye):
                    return a, "col"
                return MatMul(a, right, (m, self.n)), "col"
            if m == 1:  # (1, 1) @ (n, c): a scalar times rows
                return _product(a, right), "row"
            raise NotBatched("a column times a row of directions")
        layout = made[a][1] if _natural(a.shape) else "row"
        left = self._to(a, made[a], layout)
        if layout == "row":
            if isinstance(left, Eye):
                return b, "row"
            return MatMul(left, b, (self.n, c)), "row"
        if c == 1:  # a column of directions times (1, 1)
            return _product(left, b), "col"
        raise NotBatched("a column of directions times a row")


def _size(shape):
    return shape[0] if shape[1] == 1 else shape[1]


def _nonnegative(expr: sp.Expr) -> bool:
    """Whether ``expr`` is >= 0 for every real value of its symbols, by its form: numbers,
    squares, products and sums of what is, ``exp``, ``sigmoid``, ``softplus``, ``sqrt``."""
    if expr.is_number:
        return bool(expr >= 0)
    if isinstance(expr, (sp.exp, sigmoid, softplus, sp.Abs)):
        return True
    if expr.is_Pow:
        if expr.exp.is_even:
            return True
        return _nonnegative(expr.base) and expr.exp.is_real is True
    if expr.is_Mul or expr.is_Add:
        return all(_nonnegative(a) for a in expr.args)
    return expr.is_nonnegative is True


def weighted_product(node: Node) -> tuple[Node, Node, bool] | None:
    """``(A, c, c >= 0)`` when ``node`` is ``A.T @ (c ⊙ A)`` (the Hessian of a GLM:
    ``A.T @ diag(c) @ A``), the weight ``c`` a node of its own; else None."""
    if not (isinstance(node, MatMul) and isinstance(node.a, Transpose)):
        return None
    a, m = node.a.arg, node.b
    if not isinstance(m, Map) or a.shape != m.shape or a not in m.args:
        return None
    var = m.fn.variables[m.args.index(a)]
    weight = sp.cancel(m.fn.expr / var)
    if weight.has(var):
        return None
    return a, map_(sp.Lambda(m.fn.variables, weight), m.args), _nonnegative(weight)


def _logistic_pairs(c: sp.Expr) -> tuple[list[sp.Expr], list[sp.Expr]]:
    """The factors of a weight ``c``: ``|z|`` for each pair ``sigmoid(z)*sigmoid(-z)`` (the
    logistic weight, ``1/(4*cosh(z/2)**2)``), and the other factors."""
    factors = list(sp.Mul.make_args(c))
    magnitudes = []
    for f in factors[:]:
        if isinstance(f, sigmoid) and f in factors and sigmoid(-f.args[0]) in factors:
            factors.remove(f)
            factors.remove(sigmoid(-f.args[0]))
            magnitudes.append(sp.Abs(f.args[0]))
    return magnitudes, factors


def _square_root(c: sp.Expr) -> sp.Expr:
    """``sqrt(c)`` of a weight ``c >= 0``, factor by factor: a logistic pair
    ``sigmoid(z)*sigmoid(-z)`` has the root ``exp(-|z|/2)/(1 + exp(-|z|))``
    (``1/(2*cosh(z/2))`` without its overflow for large |z|); ``exp(z)`` has ``exp(z/2)``."""
    magnitudes, factors = _logistic_pairs(c)
    out = [sp.exp(-m / 2) / (1 + sp.exp(-m)) for m in magnitudes]
    for f in factors:
        out.append(sp.exp(f.args[0] / 2) if isinstance(f, sp.exp) else sp.sqrt(f))
    return sp.Mul(*out)


def _weight(c: sp.Expr) -> sp.Expr:
    """A weight ``c >= 0`` as computed once per row for ``A.T @ (c ⊙ A)``: a logistic pair
    ``sigmoid(z)*sigmoid(-z)`` from one exponential, ``exp(-|z|)/(1 + exp(-|z|))**2``
    (``_square_root``'s root squared; finite and exact for every z, where the two sigmoids
    would each select by the sign of z)."""
    magnitudes, factors = _logistic_pairs(c)
    out = [sp.exp(-m) / (1 + sp.exp(-m)) ** 2 for m in magnitudes]
    return sp.Mul(*out, *factors)


def _weighted(node: Node) -> Node:
    """``A.T @ (c ⊙ A)`` of ``_gram``'s kind (``c >= 0``) with its weight ``c`` (``_weight``)
    a column of its own (``Stored``), computed once per row: the product as an expert
    writes it, for the sizes where ``syrk`` and the root cost more than they save."""
    found = weighted_product(node)
    if found is None or not found[2]:
        return node
    a, weight, _ = found
    return MatMul(transpose(a), _rows_scaled(a, weight, _weight), node.shape)


def _gram(node: Node) -> Node:
    """``A.T @ (c ⊙ A)`` → ``B.T @ B`` with ``B = sqrt(c) ⊙ A`` when ``c >= 0``; a weight
    that varies is a column of its own (``Stored``), computed once per row."""
    found = weighted_product(node)
    if found is None or not found[2]:
        return node
    a, weight, _ = found
    b = _rows_scaled(a, weight, _square_root)
    return MatMul(transpose(b), b, node.shape)


def _rows_scaled(a: Node, weight: Node, scale) -> Node:
    """``s ⊙ A``: each row of ``A`` times ``s = scale(c)`` of the weight ``c``, a column of
    its own (``Stored``) when it varies, computed once per row."""
    column = map_(sp.Lambda(weight.fn.variables, scale(weight.fn.expr)), weight.args)
    if column.shape:
        column = Stored(column, column.shape)
    r, x = sp.Dummy("r"), sp.Dummy("x")
    return map_(sp.Lambda((r, x), r * x), (column, a), a.shape)


def _symmetric(node: Node) -> bool:
    """Whether ``node`` is exactly symmetric as computed: a symmetric product ``B.T @ B``,
    an identity, a constant, or an elementwise function that transposing its operands
    leaves unchanged (``A + A.T``: each element is ``a_ij + a_ji``, in either order)."""
    if all(d == 1 for d in node.shape):
        return True
    if isinstance(node, MatMul):
        return isinstance(node.a, Transpose) and node.a.arg == node.b
    if isinstance(node, (Eye, Const)):
        return True
    if isinstance(node, Transpose):
        return _symmetric(node.arg)
    if not isinstance(node, Map):
        return False
    swap = {}
    for var, arg in zip(node.fn.variables, node.args, strict=True):
        if not arg.shape or arg.shape == (1, 1) or _symmetric(arg):
            continue
        partner = transpose(arg)
        if partner not in node.args:
            return False
        swap[var] = node.fn.variables[node.args.index(partner)]
    return node.fn.expr.xreplace(swap) == node.fn.expr


def _blocks(loss, params, directions):
    """The blocks (p, q), p <= q, of vector parameters, simplified: ``(pairs, nodes)``."""
    pairs, nodes = [], []
    for q, v in enumerate(directions):
        column = _hv(loss, params, {params[q]: v})
        n = _size(v.shape)
        batched = _Batch(v, n)(column[: q + 1])
        for p, made in enumerate(batched):
            shape = (_size(params[p].shape), n)
            if made is None:  # H v of p does not depend on v_q: that block is 0
                block: Node = Const(sp.S.Zero, shape)
            else:
                block = made[0] if made[1] == "col" else transpose(made[0])
            pairs.append((p, q))
            nodes.append(block)
    return tuple(pairs), simplified(tuple(nodes))


def _products(pairs, nodes, products: Callable[[Node], Node] | None):
    """The blocks' form and nodes, each diagonal block ``A.T @ (c ⊙ A)`` rewritten by
    ``products`` (``_gram``, ``_weighted``; None: as they are)."""
    if products is not None:
        nodes = _rebuild(nodes, lambda n, ops: products(_with_operands(n, ops)))
    symmetric = tuple(p != q or _symmetric(n) for (p, q), n in zip(pairs, nodes, strict=True))
    return HessianForm("blocks", pairs, symmetric), nodes


def hvp_blocks(loss: Node, params: tuple[Input, ...], directions: tuple[Input, ...]):
    """For each pair p <= q, the node of block (p, q) of H applied to the direction of q:
    ``∂/∂p <grad_q, v_q>``."""
    out = {}
    for q, v in enumerate(directions):
        column = _hv(loss, params, {params[q]: v})
        for p in range(q + 1):
            out[p, q] = column[p]
    return out


def _is_vector(p: Input) -> bool:
    return len(p.shape) == 2 and (p.shape[0] == 1 or p.shape[1] == 1)


def hessian_nodes(
    lowered: Lowered, grads: tuple[Node, ...], directions: tuple[Input, ...], products=True
):
    """The Hessian's form and its output nodes (none for ``directions``); ``products``:
    with symmetric products where they can be (False: the form to read)."""
    form, nodes, _ = _hessian(lowered, grads, directions, _gram if products else None)
    return form, nodes


def _hessian(lowered, grads, directions, products):
    """``hessian_nodes``'s form and nodes, and for blocks that ``products`` rewrote, the
    form and nodes with ``_weighted`` products instead (else None)."""
    params = lowered.params
    if all(not p.shape for p in params) and len(params) <= ENTRY_LIMIT:
        pairs, nodes = _entries(params, grads)
        return HessianForm("entries", pairs, tuple(True for _ in pairs)), nodes, None
    if all(_is_vector(p) for p in params):
        try:
            pairs, plain = _blocks(lowered.loss, params, directions)
        except NotBatched:
            pass
        else:
            form, nodes = _products(pairs, plain, products)
            if products is None or all(a is b for a, b in zip(nodes, plain, strict=True)):
                return form, nodes, None
            return form, nodes, _products(pairs, plain, _weighted)
    return HessianForm("directions"), (), None


def second_order(
    lowered: Lowered, grads: tuple[Node, ...], namer: Callable[[Lowered], Namer]
) -> SecondOrder:
    """The hvp, Hessian and Newton programs of ``lowered`` (whose gradients are ``grads``);
    ``namer`` makes the namer of a program."""
    taken = namer(lowered)
    directions = tuple(
        Input(sym.name, p.shape, "data", sym)
        for p in lowered.params
        for sym in [taken.fresh(f"v_{p.name}")]
    )
    with_directions = replace(lowered, data=lowered.data + directions)
    hv = hvp(lowered.loss, lowered.params, directions)
    names = [f"hvp_{p.name}" for p in lowered.params]
    hvp_program = build_program(with_directions, list(hv), names, namer(with_directions))
    form, nodes, direct = _hessian(lowered, grads, directions, _gram)
    if form.kind == "directions":
        return SecondOrder(directions, hvp_program, form, None, None)
    params = lowered.params
    parts = [f"h_{params[p].name}_{params[q].name}" for p, q in form.pairs]
    hessian_program = build_program(lowered, list(nodes), parts, namer(lowered))
    grad_names = ["loss"] + [f"grad_{p.name}" for p in params]
    newton_program = build_program(
        lowered, [lowered.loss, *grads, *nodes], grad_names + parts, namer(lowered)
    )
    direct_program = direct_form = None
    if direct is not None:
        direct_form, direct_nodes = direct
        direct_program = build_program(lowered, list(direct_nodes), parts, namer(lowered))
    return SecondOrder(
        directions, hvp_program, form, hessian_program, newton_program, direct_program,
        direct_form,
    )  # fmt: skip
