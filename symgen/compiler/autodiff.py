"""Reverse mode over the IR: symbolic backprop.

One table of adjoint rules, one walk. Each rule takes a node, the adjoint ``g`` of its
output and the nodes whose adjoints are needed (those with an input to differentiate
with respect to below them), and returns ``(operand, contribution)`` pairs. A
contribution whose shape is larger than its operand's (broadcasting) is summed
back by ``unbroadcast``; the contributions to a node used several times are
added. ``Map`` is where symbolic differentiation happens: its contribution to
operand ``i`` is the elementwise ``g * ∂f/∂x_i``, with ``∂f/∂x_i`` from
``sympy.diff`` of the scalar body.

The gradient of a node costs a small constant times its forward cost: each
rule emits a fixed number of nodes per forward node.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import sympy as sp

from symgen.compiler.ir import (
    Const,
    Entry,
    Gather,
    Input,
    Map,
    MatMul,
    Node,
    PlaceAdd,
    Reduce,
    ScatterAdd,
    Shape,
    Stored,
    Transpose,
    map_,
    topological,
)
from symgen.compiler.stable import simplify_derivative

Contribution = Iterator[tuple[Node, Node]]


def _diff(body: sp.Expr, var: sp.Symbol) -> sp.Expr:
    d = simplify_derivative(sp.diff(body, var))
    # Step functions are differentiated almost everywhere: their delta is 0.
    return d.replace(sp.DiracDelta, lambda *args: sp.S.Zero) if d.has(sp.DiracDelta) else d


def partial(body: sp.Expr, var: sp.Symbol) -> sp.Expr:
    """``∂body/∂var`` as reverse mode takes it (forward mode, ``compiler.forward``, too)."""
    return _diff(body, var)


def _map_rule(node: Map, g: Node, needed: set[Node]) -> Contribution:
    gv = sp.Dummy("g")
    for var, arg in zip(node.fn.variables, node.args, strict=True):
        if arg not in needed:  # no parameter below it: its partial is never used
            continue
        d = _diff(node.fn.expr, var)
        if d == 0:
            continue
        yield arg, map_(sp.Lambda((gv, *node.fn.variables), gv * d), (g, *node.args), node.shape)


def _reduce_rule(node: Reduce, g: Node, needed: set[Node]) -> Contribution:
    if node.op == "max":  # a stabilizing shift: the value does not depend on it
        return
    u = sp.Dummy("u")
    yield node.arg, map_(sp.Lambda(u, u), (g,), node.arg.shape)


def _matmul_rule(node: MatMul, g: Node, needed: set[Node]) -> Contribution:
    a, b = node.a, node.b
    yield a, MatMul(g, transpose(b), a.shape)
    yield b, MatMul(transpose(a), g, b.shape)


def _transpose_rule(node: Transpose, g: Node, needed: set[Node]) -> Contribution:
    yield node.arg, transpose(g)


def _gather_rule(node: Gather, g: Node, needed: set[Node]) -> Contribution:
    """The gradient goes to the one entry per row that was read: a scatter, not a one-hot
    product (an argument with one row gets the scattered rows summed by ``unbroadcast``)."""
    shape = (node.shape[0], node.arg.shape[1])
    yield node.arg, ScatterAdd(None, g, node.index, shape)


def _scatter_rule(node: ScatterAdd, g: Node, needed: set[Node]) -> Contribution:
    if node.base is not None:
        yield node.base, g
    yield node.value, Gather(g, node.index, node.index.shape)


def _entry_rule(node: Entry, g: Node, needed: set[Node]) -> Contribution:
    """The gradient goes to the one entry that was read (``_add`` puts the entries of one
    matrix into one ``PlaceAdd``)."""
    yield node.arg, PlaceAdd(None, (g,), ((node.row, node.col),), node.arg.shape)


def _place_rule(node: PlaceAdd, g: Node, needed: set[Node]) -> Contribution:
    if node.base is not None:
        yield node.base, g
    for value, (row, col) in zip(node.values, node.positions, strict=True):
        yield value, Entry(g, row, col)


def _stored_rule(node: Stored, g: Node, needed: set[Node]) -> Contribution:
    yield node.arg, g


RULES: dict[type, Callable[[Node, Node, set[Node]], Contribution]] = {
    Map: _map_rule,
    Reduce: _reduce_rule,
    MatMul: _matmul_rule,
    Transpose: _transpose_rule,
    Gather: _gather_rule,
    ScatterAdd: _scatter_rule,
    Stored: _stored_rule,
    Entry: _entry_rule,
    PlaceAdd: _place_rule,
}


def transpose(node: Node) -> Node:
    if isinstance(node, Transpose):
        return node.arg
    return Transpose(node, tuple(reversed(node.shape)))


def unbroadcast(node: Node, shape: Shape) -> Node:
    """Sum ``node`` down to ``shape``, undoing NumPy broadcasting."""
    if node.shape == shape:
        return node
    if shape == ():
        return Reduce(node, tuple(range(len(node.shape))), ())
    lead = len(node.shape) - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, d in enumerate(shape) if d == 1 and node.shape[lead + i] != 1
    )
    if lead:
        raise ValueError(f"cannot sum shape {node.shape} down to {shape}")
    return Reduce(node, axes, tuple(1 if i in axes else d for i, d in enumerate(node.shape)))


def _add(nodes: list[Node]) -> Node:
    if len(nodes) == 1:
        return nodes[0]
    placed = [n for n in nodes if isinstance(n, PlaceAdd) and n.base is None]
    if placed:  # the entries add into the sum of the rest, all in one PlaceAdd: no zeros
        rest = [n for n in nodes if not (isinstance(n, PlaceAdd) and n.base is None)]
        at: dict[tuple[int, int], list[Node]] = {}
        for n in placed:
            for value, position in zip(n.values, n.positions, strict=True):
                at.setdefault(position, []).append(value)
        positions = tuple(sorted(at))
        values = tuple(_add(at[p]) for p in positions)
        return PlaceAdd(_add(rest) if rest else None, values, positions, placed[0].shape)
    scattered = [n for n in nodes if isinstance(n, ScatterAdd) and n.base is None]
    if scattered:  # the scatters add into the sum of the rest: no zeros, no one-hot
        rest = [n for n in nodes if not (isinstance(n, ScatterAdd) and n.base is None)]
        out = _add(rest) if rest else None
        values: dict[Input, list[Node]] = {}
        for n in scattered:
            values.setdefault(n.index, []).append(n.value)
        for index, vs in values.items():
            out = ScatterAdd(out, _add(vs), index, scattered[0].shape)
        return out
    vs = [sp.Dummy(f"a{i}") for i in range(len(nodes))]
    return map_(sp.Lambda(tuple(vs), sp.Add(*vs)), tuple(nodes))


def gradients(output: Node, wrt: tuple[Input, ...]) -> tuple[Node, ...]:
    """Adjoint nodes of ``output`` (a scalar) with respect to each input in ``wrt``."""
    if output.shape != ():
        raise ValueError("gradients() needs a scalar output")
    pending: dict[Node, list[Node]] = {output: [Const(sp.S.One)]}
    adjoint: dict[Node, Node] = {}
    order = topological([output])
    # The nodes with an input of ``wrt`` below them: only their adjoints are needed.
    needed: set[Node] = set(wrt)
    for node in order:
        if any(o in needed for o in node.operands):
            needed.add(node)
    for node in reversed(order):
        contributions = pending.pop(node, None)
        if contributions is None:
            continue
        g = adjoint[node] = _add(contributions)
        rule = RULES.get(type(node))
        if rule is None:
            continue
        for operand, contribution in rule(node, g, needed):
            if operand in needed:
                pending.setdefault(operand, []).append(unbroadcast(contribution, operand.shape))
    return tuple(adjoint.get(w, Const(sp.S.Zero, w.shape)) for w in wrt)
