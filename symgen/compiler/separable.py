"""Which losses split over the rows of their data, and how the parts combine.

``symgen.distributed`` evaluates a loss on chunks of rows and adds the parts.
That is right when the loss is ``M**-p * (sum over rows of a per-row term)``
for the row count ``M`` (``p = 0``: a sum over rows; ``p = 1``: a mean):
then, for chunks of ``m_j`` rows, ``L = sum_j (m_j/M)**p * L_j``, and the same
for every gradient. ``row_split(problem)`` decides this from the problem's IR
(``symgen.frontend.lower``), structurally, and raises ``SpecError`` saying why
not. Every node is classified as

- ``const``: no data rows in it (parameters, constants, data without rows);
- ``rows``: the row axis first, row ``i`` computed from row ``i`` of the data
  only (elementwise maps, reductions along other axes, ``rows @ const``);
- ``rows_t``: the transpose of such a node (the row axis last);
- ``sum``: additive over chunks of rows: a sum over the row axis of a ``rows``
  node (``rows_t @ rows`` too), or a linear map of such sums;

and carries the power ``e`` of ``M`` it scales with (``/ M`` is ``e = -1``).
The loss must be a scalar ``sum`` node; its ``p`` is ``-e``.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from symgen.compiler.frontend import lower, sample_dim
from symgen.compiler.ir import Const, Eye, Input, Map, MatMul, Node, Reduce, Transpose, topological
from symgen.errors import SpecError

CONST, ROWS, ROWS_T, SUM = "const", "rows", "rows_t", "sum"


@dataclass(frozen=True)
class RowSplit:
    """How a problem's loss splits over the rows of its data."""

    #: The row count: ``N`` for per-sample problems, else the first dimension of the data.
    dim: sp.Symbol
    #: ``p`` in ``loss = dim**-p * (sum over rows)``: 0 for a sum, 1 for a mean.
    power: sp.Rational
    #: Data split along their first axis, in the problem's order.
    rows: tuple[str, ...]
    #: Data given whole to every chunk (single numbers).
    whole: tuple[str, ...]

    @property
    def reduction(self) -> str:
        if self.power == 0:
            return "a sum over rows"
        if self.power == 1:
            return "a mean over rows"
        return f"a sum over rows divided by {self.dim}**{self.power}"


class _NotSplit(Exception):
    """Why a loss does not split over rows (the message of the ``SpecError``)."""


@dataclass(frozen=True)
class _Kind:
    kind: str
    #: The power of the row count the node's value scales with.
    power: sp.Rational = sp.S.Zero


def row_split(problem) -> RowSplit:
    """How ``problem``'s loss splits over the rows of its data; ``SpecError`` if it does not."""
    if problem.kind == "scalar":
        raise SpecError(f"{problem.name}: the problem has no data to split over rows")
    lowered = lower(problem)
    if problem.kind == "per_sample":
        dim = sample_dim(problem)
    else:
        dim = _row_dim(problem.name, lowered.data)
    try:
        kinds = _classify(lowered.loss, dim)
        loss = kinds[lowered.loss]
        if loss.kind != SUM:
            raise _NotSplit("the loss does not sum over the rows of any data array")
    except _NotSplit as exc:
        raise SpecError(
            f"{problem.name}: the loss does not split over the rows {dim} of its data, so "
            f"chunks of rows cannot be evaluated apart and added: {exc}. A loss splits when it "
            f"is a sum over rows of a per-row term, or such a sum divided by {dim}"
        ) from None
    rows = tuple(i.name for i in lowered.data if i.shape)
    whole = tuple(i.name for i in lowered.data if not i.shape)
    return RowSplit(dim, -loss.power, rows, whole)


def _row_dim(name: str, data: tuple[Input, ...]) -> sp.Symbol:
    arrays = [i for i in data if i.shape]
    if not arrays:
        raise SpecError(f"{name}: no data array has rows to split (all data are single numbers)")
    first = arrays[0].shape[0]
    for inp in arrays:
        dim = inp.shape[0]
        if not isinstance(dim, sp.Symbol):
            raise SpecError(
                f"{name}: data {inp.name!r} has a fixed number of rows ({dim}); rows are split "
                "over chunks only along a symbolic first dimension"
            )
        if dim != first:
            raise SpecError(
                f"{name}: data {inp.name!r} has shape {_text(inp.shape)} but {arrays[0].name!r} "
                f"has {_text(arrays[0].shape)}; every data array needs the same rows "
                f"({first}) as its first axis to be split into chunks of rows"
            )
    return first


def _text(shape: tuple) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _classify(loss: Node, dim: sp.Symbol) -> dict[Node, _Kind]:
    kinds: dict[Node, _Kind] = {}
    for node in topological([loss]):
        kinds[node] = _kind(node, [kinds[op] for op in node.operands], dim)
    return kinds


def _has_dim(shape: tuple, dim: sp.Symbol) -> bool:
    return any(d == dim for d in shape)


def _kind(node: Node, ops: list[_Kind], dim: sp.Symbol) -> _Kind:
    if isinstance(node, Input):
        return _input(node, dim)
    if isinstance(node, Const):
        return _Kind(CONST)
    if isinstance(node, Eye):
        if _has_dim(node.shape, dim):
            raise _NotSplit(f"it uses an identity matrix of size {dim}, the number of rows")
        return _Kind(CONST)
    if isinstance(node, Map):
        return _map(node, ops, dim)
    if isinstance(node, Reduce):
        return _reduce(node, ops[0], dim)
    if isinstance(node, MatMul):
        return _matmul(node, ops[0], ops[1])
    if isinstance(node, Transpose):
        flip = {ROWS: ROWS_T, ROWS_T: ROWS}
        return _Kind(flip.get(ops[0].kind, ops[0].kind), ops[0].power)
    raise _NotSplit(f"it uses a {type(node).__name__} node")  # pragma: no cover


def _input(node: Input, dim: sp.Symbol) -> _Kind:
    shape = node.shape
    if node.role == "param":
        if _has_dim(shape, dim):
            raise _NotSplit(
                f"parameter {node.name!r} has shape {_text(shape)}, which grows with the "
                f"rows {dim}; parameters must not depend on how many rows there are"
            )
        return _Kind(CONST)
    if not shape:
        return _Kind(CONST)
    if shape[0] != dim or _has_dim(shape[1:], dim):
        raise _NotSplit(
            f"data {node.name!r} has shape {_text(shape)}; every data array needs the rows "
            f"{dim} as its first axis, and only there"
        )
    return _Kind(ROWS)


def _map(node: Map, ops: list[_Kind], dim: sp.Symbol) -> _Kind:
    kinds = {op.kind for op in ops}
    shape = node.shape
    if SUM in kinds:
        if kinds & {ROWS, ROWS_T} or _has_dim(shape, dim):
            raise _NotSplit(
                "it combines a sum over the rows with values of single rows (as in centering "
                "by a mean over rows)"
            )
        _check_linear(node, ops)
        return _Kind(SUM, _map_power(node, ops, dim))
    if kinds <= {CONST} and not _has_dim(shape, dim):
        return _Kind(CONST, _map_power(node, ops, dim))
    if shape and shape[0] == dim and not _has_dim(shape[1:], dim) and kinds <= {CONST, ROWS}:
        # (constants spread over the rows are rows too: every row the same)
        return _Kind(ROWS, _map_power(node, ops, dim))
    if len(shape) == 2 and shape[1] == dim and shape[0] != dim and kinds <= {CONST, ROWS_T}:
        return _Kind(ROWS_T, _map_power(node, ops, dim))
    raise _NotSplit(f"an elementwise operation of shape {_text(shape)} pairs rows with rows")


def _reduce(node: Reduce, op: _Kind, dim: sp.Symbol) -> _Kind:
    if op.kind == CONST:
        return op
    if op.kind == SUM:
        if node.op != "sum":
            raise _NotSplit("it takes a maximum of a sum over rows")
        return op
    row_axis = 0 if op.kind == ROWS else len(node.arg.shape) - 1
    if row_axis not in node.axes:
        return op
    if node.op != "sum":
        raise _NotSplit(
            f"it takes a maximum over the rows {dim} (a logsumexp or max along the row axis), "
            "which mixes rows and is not a sum of parts"
        )
    return _Kind(SUM, op.power)


def _matmul(node: MatMul, a: _Kind, b: _Kind) -> _Kind:
    power = a.power + b.power
    pair = (a.kind, b.kind)
    if pair == (CONST, CONST):
        return _Kind(CONST, power)
    if pair == (ROWS, CONST):
        return _Kind(ROWS, power)
    if pair == (CONST, ROWS_T):
        return _Kind(ROWS_T, power)
    if pair in ((ROWS_T, ROWS), (SUM, CONST), (CONST, SUM)):
        return _Kind(SUM, power)
    if pair == (ROWS, ROWS_T):
        raise _NotSplit("it forms a matrix of all pairs of rows (a product like X X^T)")
    if pair == (SUM, SUM):
        raise _NotSplit("it multiplies two sums over rows")
    raise _NotSplit(f"it forms a matrix product of shapes {_text(node.a.shape)} and "
                    f"{_text(node.b.shape)} that mixes rows")  # fmt: skip


def _map_power(node: Map, ops: list[_Kind], dim: sp.Symbol) -> sp.Rational:
    """The power ``e`` with ``node = dim**e * (something free of dim)``, given its operands'."""
    body = node.fn.expr
    named = {s for s in body.free_symbols if isinstance(s, sp.Symbol) and s.name == dim.name}
    body = body.xreplace({s: dim for s in named})
    scaled = {
        v: dim**op.power * v for v, op in zip(node.fn.variables, ops, strict=True) if op.power
    }
    expr = body.xreplace(scaled) if scaled else body
    if dim not in expr.free_symbols:
        return sp.S.Zero
    if expr.is_zero:
        return sp.S.Zero
    ratio = sp.simplify(expr.xreplace({dim: 2 * dim}) / expr)
    if ratio.is_Number and ratio.is_positive:
        power = sp.nsimplify(sp.simplify(sp.log(ratio, 2)))
        if power.is_Rational:
            return power
    raise _NotSplit(f"it uses the row count {dim} in {_show(node, ops)}, not as a factor {dim}**k")


def _check_linear(node: Map, ops: list[_Kind]) -> None:
    """Raise unless ``node``'s body is linear (no constant term) in its sum-over-rows operands."""
    body = node.fn.expr
    sums = [v for v, op in zip(node.fn.variables, ops, strict=True) if op.kind == SUM]
    slopes = [sp.diff(body, u) for u in sums]
    rest = sp.simplify(body - sp.Add(*[u * s for u, s in zip(sums, slopes, strict=True)]))
    curved = any(sp.simplify(sp.diff(s, u)) != 0 for s in slopes for u in sums)
    if curved:
        raise _NotSplit(
            f"it computes {_show(node, ops)}, where S is a sum over rows; only constant "
            "multiples and sums of sums over rows can be added up chunk by chunk"
        )
    if rest != 0:
        raise _NotSplit(
            f"it computes {_show(node, ops)}, which adds a term that is not a sum over rows "
            "(S are sums over rows): it would be counted once per chunk"
        )


def _show(node: Map, ops: list[_Kind]) -> str:
    """A map's body with its operands named for what they are: S a sum over rows, x a value
    of a row, c a constant."""
    letters = {SUM: "S", ROWS: "x", ROWS_T: "x", CONST: "c"}
    counts: dict[str, int] = {}
    names = {}
    for v, op in zip(node.fn.variables, ops, strict=True):
        letter = letters[op.kind]
        counts[letter] = counts.get(letter, 0) + 1
        names[v] = letter
    seen: dict[str, int] = {}
    for v in node.fn.variables:
        letter = names[v]
        if counts[letter] > 1:
            seen[letter] = seen.get(letter, 0) + 1
            names[v] = f"{letter}{seen[letter]}"
    return str(node.fn.expr.xreplace({v: sp.Symbol(n) for v, n in names.items()}))
