"""Forward mode over the IR: the derivative of a node with respect to one parameter, along
all the parameter's elements at once (a block of a Jacobian).

Reverse mode (``autodiff``) gives the gradient of a scalar; a Jacobian of a vector of
residuals needs the derivative of every element, which forward mode gives one parameter at
a time: ``tangent(node, param)`` is a graph computing ``∂node/∂param``, built from the same
IR nodes, so it is fused and CSE'd like the gradient (``compiler.optimize``).

The IR is two-dimensional, so a block of directions takes one axis:

- A scalar parameter is one direction: its seed is 1, and a tangent has its node's shape
  (or a shape that broadcasts to it).
- A vector parameter, a column (D, 1) or a row (1, D), is D directions: its seed is the
  identity (D, D), and the tangent of a *vector-like* node (at most one extent that is not
  1, its length L: a column, a row or a scalar) is an (L, D) matrix whose row i holds the
  derivatives of element i. A node that is a matrix (two extents that are not 1) has no
  room for the directions: its tangent must be 0 (it does not depend on the parameter),
  else ``Unsupported``. So ``X*w - y``, ``exp(X*w) - y`` and ``X*w + b`` are covered, with
  the tangents an expert writes (``X``, ``exp(X*w) ⊙ X``, ones), not ``X @ I``.

Each rule is the chain rule of one kind of node: a ``Map`` adds ``∂f/∂xᵢ ⊙ ṫᵢ`` over its
operands (``∂f/∂xᵢ`` by ``autodiff.partial``, as reverse mode takes it), a sum sums the
tangent over the same elements, a product is ``ȧ @ b + a @ ḃ``; a ``max`` (the shift of a
``logsumexp``) has no tangent, as it has no adjoint. An entry ``X[i, j]`` is linear: the
tangent's entry (along a block, the tangent's row of that element: a unit row times it),
and so is a ``PlaceAdd`` (the values' tangents placed, along a block each a row put at its
element's row by a unit column).
"""

from __future__ import annotations

import sympy as sp

from symgen.compiler.autodiff import partial, transpose
from symgen.compiler.ir import (
    Const,
    Entry,
    Eye,
    Input,
    Map,
    MatMul,
    Node,
    PlaceAdd,
    Reduce,
    Shape,
    Transpose,
    map_,
    topological,
)


class Unsupported(Exception):
    """The derivative of this node along a block of directions does not fit the 2-D IR."""


def _length(shape: Shape) -> sp.Expr | None:
    """The length of a vector-like shape (1 for a scalar), or None for a matrix."""
    extents = [d for d in shape if d != 1]
    if len(extents) > 1:
        return None
    return extents[0] if extents else sp.S.One


def _spread(node: Node, shape: Shape) -> Node:
    """``node`` broadcast to ``shape`` (an identity map: the optimizer writes a fill)."""
    if node.shape == shape:
        return node
    u = sp.Dummy("u")
    return Map(sp.Lambda(u, u), (node,), shape)


def _times(a: Node, b: Node) -> Node:
    u, v = sp.Dummy("u"), sp.Dummy("v")
    return map_(sp.Lambda((u, v), u * v), (a, b))


def _plus(terms: list[Node]) -> Node | None:
    if len(terms) <= 1:
        return terms[0] if terms else None
    us = [sp.Dummy(f"t{i}") for i in range(len(terms))]
    return map_(sp.Lambda(tuple(us), sp.Add(*us)), tuple(terms))


def _position(shape: Shape, row: int, col: int) -> int:
    """The position of entry ``[row, col]`` among the elements of a vector of ``shape``."""
    return row if shape[1] == 1 else col


def _product(a: Node, b: Node, shape: Shape) -> Node:
    """``a @ b``, where a factor that is the seed (an identity) is left out."""
    if isinstance(b, Eye):
        return a
    if isinstance(a, Eye):
        return b
    return MatMul(a, b, shape)


class _Tangents:
    """The tangents of the nodes of one graph along the directions of one parameter."""

    def __init__(self, param: Input) -> None:
        self.param = param
        if param.shape == ():
            self.directions: sp.Expr = sp.S.One
        else:
            length = _length(param.shape)
            if length is None:
                raise Unsupported(
                    f"parameter {param.name!r} is a matrix {param.shape}: a Jacobian is made "
                    "for scalar and vector parameters"
                )
            self.directions = length
        self.block = param.shape != () and self.directions != 1
        self.of: dict[Node, Node | None] = {}

    def seed(self) -> Node:
        if not self.block:
            return Const(sp.S.One)
        return Eye((self.directions, self.directions))

    def stored(self, node: Node) -> Shape:
        """The shape of ``node``'s tangent when it is written out in full."""
        if not self.block:
            return node.shape
        length = _length(node.shape)
        if length is None:
            raise Unsupported(
                f"a {node.shape} matrix depends on {self.param.name!r}; a Jacobian along a "
                "vector parameter is made when every value that depends on it is a vector"
            )
        return (length, self.directions)

    def full(self, node: Node) -> Node:
        """The tangent of ``node`` (0 when none), broadcast to its stored shape."""
        t = self.of.get(node)
        return _spread(t if t is not None else Const(sp.S.Zero), self.stored(node))

    def visit(self, node: Node) -> Node | None:
        if isinstance(node, Input):
            return self.seed() if node == self.param else None
        if isinstance(node, (Const, Eye)):
            return None
        operands = [self.of.get(o) for o in node.operands]
        if all(t is None for t in operands):
            return None
        if isinstance(node, Map):
            return self.map(node)
        if isinstance(node, Reduce):
            return self.reduce(node)
        if isinstance(node, MatMul):
            return self.matmul(node)
        if isinstance(node, Transpose):
            return self.transpose(node)
        if isinstance(node, Entry):
            return self.entry(node)
        if isinstance(node, PlaceAdd):
            return self.place(node)
        raise Unsupported(f"no forward rule for {type(node).__name__}")

    def map(self, node: Map) -> Node | None:
        terms = []
        for var, arg in zip(node.fn.variables, node.args, strict=True):
            t = self.of.get(arg)
            if t is None:  # does not depend on the parameter: its partial is not needed
                continue
            d = partial(node.fn.expr, var)
            if d == 0:
                continue
            derivative = map_(sp.Lambda(node.fn.variables, d), node.args, node.shape)
            if self.block:
                self.stored(node)  # a vector, or Unsupported
                if node.shape and node.shape[0] == 1 and _length(node.shape) != 1:
                    derivative = transpose(derivative)  # a row: its elements down the rows
            terms.append(_times(derivative, t))
        return _plus(terms)

    def reduce(self, node: Reduce) -> Node | None:
        if node.op == "max":  # a stabilizing shift: the value does not depend on it
            return None
        arg = node.arg
        if not self.block:
            return Reduce(self.full(arg), node.axes, node.shape)
        length = self.stored(arg)[0]
        along = [a for a in node.axes if arg.shape[a] != 1]
        if length == 1 or not along:
            return self.of[arg]
        return Reduce(self.full(arg), (0,), (sp.S.One, self.directions))

    def matmul(self, node: MatMul) -> Node | None:
        a, b = node.a, node.b
        ta, tb = self.of.get(a), self.of.get(b)
        if not self.block:
            terms = []
            if ta is not None:
                terms.append(MatMul(self.full(a), b, node.shape))
            if tb is not None:
                terms.append(MatMul(a, self.full(b), node.shape))
            return _plus(terms)
        self.stored(node)  # the product is a vector, or Unsupported
        (m, k), (_, n) = a.shape, b.shape
        shape = (_length(node.shape), self.directions)
        terms = []
        if tb is not None:
            if n == 1:  # b a column (or 1 x 1): a @ ḃ
                terms.append(_product(a, self.full(b), shape))
            elif m == 1:  # a is 1 x 1, b a row: the row's tangent times a
                terms.append(_times(self.full(b), a))
            else:
                raise Unsupported(f"{node.shape} product of a matrix depends on the parameter")
        if ta is not None:
            if m == 1:  # a a row (or 1 x 1): the row of products is b.T @ ȧ
                terms.append(_product(transpose(b), self.full(a), shape))
            elif k == 1 and n == 1:  # a a column times a 1 x 1
                terms.append(_times(self.full(a), b))
            else:
                raise Unsupported(f"{node.shape} product of a matrix depends on the parameter")
        return _plus(terms)

    def entry(self, node: Entry) -> Node:
        if not self.block:
            return Entry(self.full(node.arg), node.row, node.col)
        length = self.stored(node.arg)[0]
        k = _position(node.arg.shape, node.row, node.col)
        unit = PlaceAdd(None, (Const(sp.S.One),), ((0, k),), (sp.S.One, length))
        return _product(unit, self.full(node.arg), (sp.S.One, self.directions))

    def place(self, node: PlaceAdd) -> Node | None:
        base = None if node.base is None or self.of.get(node.base) is None else node.base
        pairs = zip(node.values, node.positions, strict=True)
        moving = [(v, p) for v, p in pairs if self.of.get(v) is not None]
        if not self.block:
            values = tuple(self.full(v) for v, _ in moving)
            placed = PlaceAdd(None, values, tuple(p for _, p in moving), node.shape)
            return _plus([self.full(base), placed] if base is not None else [placed])
        shape = self.stored(node)
        terms = [self.full(base)] if base is not None else []
        for value, (row, col) in moving:
            k = _position(node.shape, row, col)
            unit = PlaceAdd(None, (Const(sp.S.One),), ((k, 0),), (shape[0], sp.S.One))
            terms.append(MatMul(unit, self.full(value), shape))
        return _plus(terms)

    def transpose(self, node: Transpose) -> Node | None:
        if not self.block:
            return transpose(self.full(node.arg))
        self.stored(node.arg)  # a vector keeps its tangent: its elements in the same order
        return self.of[node.arg]


def tangent(output: Node, param: Input) -> Node:
    """``∂output/∂param`` written out: the shape of ``output`` for a scalar parameter; for a
    vector parameter of D elements (``output`` a vector of L elements), (L, D). Raises
    ``Unsupported`` when it does not fit the 2-D IR."""
    tangents = _Tangents(param)
    for node in topological([output]):
        tangents.of[node] = tangents.visit(node)
    return tangents.full(output)


__all__ = ["Unsupported", "tangent"]
