"""The intermediate representation: a small graph of frozen dataclasses.

Every node has a ``shape`` (a tuple of SymPy dimension expressions, ``()`` for a
scalar). Nodes are frozen dataclasses, so two structurally equal subgraphs
compare and hash equal: a subgraph built twice is one node wherever nodes
are keys (structural hashing); the hash is computed once per node.

Kinds:
- ``Input``: a parameter or a data array, by name.
- ``Const``: a SymPy number (scalar).
- ``Eye``: the n x n identity matrix (``Trace`` of a lone matrix, ``A + Identity(n)``).
- ``Map``: an elementwise ``sympy.Lambda`` over k operands, broadcast against
  each other to ``shape`` (a ``Map`` may also broadcast to a larger ``shape``
  than its operands: that is how a ``Reduce`` adjoint spreads a gradient).
- ``Reduce``: a sum over ``axes``.
- ``MatMul``, ``Transpose``: matrix product and transpose of 2-D operands.
- ``Gather``: one entry per row of a matrix, at the column an integer data array (class
  labels) gives; ``ScatterAdd``, its adjoint: a matrix with a value added at those
  entries. No one-hot matrix is ever formed.
- ``Stored``: its operand, kept in an array of its own rather than inlined into each
  consumer (a weight column of an (N, D) pass is computed once per row, not per element).
- ``Entry``: the entry ``[row, col]`` of a matrix at constant (integer) indices, a scalar
  (``X[0, 1]``: SymPy writes ``(r.T*r)[0, 0]`` of integer dimensions out entry by entry);
  ``PlaceAdd``, its adjoint: a matrix with scalar values added at constant entries.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Literal

import sympy as sp

Shape = tuple[sp.Expr, ...]


@dataclass(frozen=True, eq=False)
class Node:
    """Base class of IR nodes: structural equality, hash computed once."""

    def _key(self) -> tuple:
        return tuple(getattr(self, f.name) for f in fields(self) if f.compare)

    def __hash__(self) -> int:
        h = self.__dict__.get("_hash")
        if h is None:
            h = hash((type(self).__name__, self._key()))
            object.__setattr__(self, "_hash", h)
        return h

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        return (
            type(self) is type(other) and hash(self) == hash(other) and self._key() == other._key()  # type: ignore[attr-defined]
        )

    @property
    def operands(self) -> tuple[Node, ...]:
        return ()


@dataclass(frozen=True, eq=False)
class Input(Node):
    name: str
    shape: Shape
    role: Literal["param", "data"]
    symbol: sp.Basic = field(compare=False, hash=False, repr=False, default=None)


@dataclass(frozen=True, eq=False)
class Const(Node):
    value: sp.Expr
    shape: Shape = ()


@dataclass(frozen=True, eq=False)
class Eye(Node):
    """The identity matrix of ``shape`` (n, n): a leaf with no adjoint, like ``Const``."""

    shape: Shape


@dataclass(frozen=True, eq=False)
class Map(Node):
    fn: sp.Lambda
    args: tuple[Node, ...]
    shape: Shape

    @property
    def operands(self) -> tuple[Node, ...]:
        return self.args


@dataclass(frozen=True, eq=False)
class Reduce(Node):
    """A sum over ``axes`` (``op="sum"``); ``op="max"`` is a maximum used only as a
    stabilizing shift (``logsumexp``): no gradient flows through it."""

    arg: Node
    axes: tuple[int, ...]
    shape: Shape
    op: str = "sum"

    @property
    def operands(self) -> tuple[Node, ...]:
        return (self.arg,)


@dataclass(frozen=True, eq=False)
class MatMul(Node):
    a: Node
    b: Node
    shape: Shape

    @property
    def operands(self) -> tuple[Node, ...]:
        return (self.a, self.b)


@dataclass(frozen=True, eq=False)
class Transpose(Node):
    arg: Node
    shape: Shape

    @property
    def operands(self) -> tuple[Node, ...]:
        return (self.arg,)


@dataclass(frozen=True, eq=False)
class Gather(Node):
    """``arg[r, index[r]]`` for each row ``r`` of ``index`` (an (N, 1) integer data input,
    class labels): shape (N, 1). ``arg`` has N rows, or one row that every label reads."""

    arg: Node
    index: Input
    shape: Shape

    @property
    def operands(self) -> tuple[Node, ...]:
        return (self.arg,)


@dataclass(frozen=True, eq=False)
class Stored(Node):
    """``arg``'s value, computed in a pass of its own and stored: the optimizer does not
    inline it into its consumers."""

    arg: Node
    shape: Shape

    @property
    def operands(self) -> tuple[Node, ...]:
        return (self.arg,)


@dataclass(frozen=True, eq=False)
class ScatterAdd(Node):
    """``base`` (zeros when None) with ``value[r]`` added at ``[r, index[r]]`` for each
    row ``r``: the adjoint of ``Gather``, of ``shape`` (N, K). ``value`` has shape (N, 1)
    or is a scalar."""

    base: Node | None
    value: Node
    index: Input
    shape: Shape

    @property
    def operands(self) -> tuple[Node, ...]:
        return (self.value,) if self.base is None else (self.base, self.value)


@dataclass(frozen=True, eq=False)
class Entry(Node):
    """Entry ``[row, col]`` of ``arg`` (a matrix of integer extents along both axes), a
    scalar."""

    arg: Node
    row: int
    col: int
    shape: Shape = ()

    @property
    def operands(self) -> tuple[Node, ...]:
        return (self.arg,)


@dataclass(frozen=True, eq=False)
class PlaceAdd(Node):
    """``base`` (zeros when None) with ``values[k]`` (scalars) added at ``positions[k]``
    (constant ``(row, col)`` pairs, each once): the adjoint of ``Entry``, of ``shape``. The
    adjoints of all the entries read from one matrix add into one ``PlaceAdd``."""

    base: Node | None
    values: tuple[Node, ...]
    positions: tuple[tuple[int, int], ...]
    shape: Shape

    @property
    def operands(self) -> tuple[Node, ...]:
        return self.values if self.base is None else (self.base, *self.values)


def broadcast_shapes(*shapes: Shape) -> Shape:
    """NumPy broadcasting of symbolic shapes (aligned on the right)."""
    ndim = max((len(s) for s in shapes), default=0)
    out: list[sp.Expr] = []
    for i in range(ndim):
        dims = {s[len(s) - ndim + i] for s in shapes if len(s) - ndim + i >= 0}
        dims.discard(sp.S.One)
        if len(dims) > 1:
            raise ValueError(f"shapes {shapes} do not broadcast")
        out.append(dims.pop() if dims else sp.S.One)
    return tuple(out)


def map_(fn: sp.Lambda, args: tuple[Node, ...], shape: Shape | None = None) -> Node:
    """A ``Map`` node, simplified where that is free.

    An identity map of one operand of the same shape is the operand; a map with
    no symbols in its body is a ``Const``-valued map.
    """
    if shape is None:
        shape = broadcast_shapes(*(a.shape for a in args))
    body, params = fn.expr, fn.variables
    if len(args) == 1 and body == params[0] and args[0].shape == shape:
        return args[0]
    # Drop operands the body does not use.
    used = body.free_symbols
    keep = [i for i, p in enumerate(params) if p in used]
    if len(keep) != len(params):
        fn = sp.Lambda(tuple(params[i] for i in keep), body)
        args = tuple(args[i] for i in keep)
    if not args and shape == () and body.is_Number:
        return Const(body)
    return Map(fn, args, shape)


def topological(outputs: list[Node]) -> list[Node]:
    """Nodes reachable from ``outputs``, operands before users."""
    order: list[Node] = []
    seen: set[Node] = set()
    stack: list[tuple[Node, bool]] = [(o, False) for o in reversed(outputs)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            if node not in seen:
                seen.add(node)
                order.append(node)
            continue
        if node in seen:
            continue
        stack.append((node, True))
        for op in reversed(node.operands):
            if op not in seen:
                stack.append((op, False))
    return order
