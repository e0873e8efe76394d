"""IR graph → fused, CSE'd straight-line program.

Fusion: every ``Map`` is inlined into its consumers by substitution, so a
chain of elementwise maps is one scalar expression; a transposed map is the
map of transposed operands (views), so transposes are never materialized.
The computations that must happen (the outputs, the operands of matrix
products, and sums) are grouped into *kernels*: one per iteration domain and
dependency level. A ``Map`` followed by a ``Reduce`` is one pass: the
reduction is an output of the kernel that computes the map. Matrix products
are steps of their own (BLAS), taking transposed views as they are.

Integer labels: a ``Gather`` is no array of its own but an element expression,
``gathered(a, labels)`` (entry ``[r, labels[r]]`` of each array ``a`` of its operand's
value: elementwise functions commute with the gather), which the backends print as an
indexed load; a ``ScatterAdd`` is a step (``Scatter``), one added value per row, in place
when nothing else reads the array it adds into.

Entries at integer indices: an ``Entry`` is a scalar of its own, ``element(a, i, j)`` of
each array ``a`` its operand's value reads (elementwise functions commute with it),
computed with the scalar arithmetic; a ``PlaceAdd`` is a step (``Place``): its values,
scalars, added at their entries of its base (or of zeros).

Inside a kernel, ``sympy.cse`` runs once over all its outputs together (the
loss and every gradient), so each shared subexpression is computed once.
Subexpressions that do not depend on the arrays are hoisted out of the array
part and computed once on scalars (loop-invariant code motion), and factors
that do not depend on the samples are pulled out of sums:
``sum(c*f*g) = c * dot(f, g)``.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, fields, replace
from typing import Literal

import sympy as sp
from sympy.codegen.cfunctions import log1p

from symgen.compiler.frontend import Lowered
from symgen.compiler.guards import guard, total
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
    Shape,
    Stored,
    Transpose,
    broadcast_shapes,
)
from symgen.compiler.piecewise import pull_factors
from symgen.compiler.scalar_functions import sigmoid, sigmoid_from_exp, softplus


class transposed(sp.Function):  # noqa: N801 - printed as ``x.T``
    """The transpose of an array symbol: a view, never a copy."""

    nargs = 1

    @classmethod
    def eval(cls, x):
        if isinstance(x, transposed):
            return x.args[0]
        return None


class gathered(sp.Function):  # noqa: N801 - an indexed load
    """Entry ``[r, index[r]]`` of an array (a symbol or a ``transposed`` view) for each row
    ``r`` of ``index`` (class labels, shape (N, 1)): a column; an array of one row is read
    by every label."""

    nargs = 2


class element(sp.Function):  # noqa: N801 - an indexed load
    """Entry ``[row, col]`` (integers) of an array symbol: a scalar, read by the scalar
    arithmetic (never by a pass over an array's elements)."""

    nargs = 3


def _entries_hidden(e: sp.Expr) -> sp.Expr:
    """``e`` with its ``element`` loads (scalars) replaced by placeholders."""
    loads = e.atoms(element)
    return e.xreplace({x: sp.Dummy() for x in loads}) if loads else e


@dataclass(frozen=True)
class Stmt:
    """One statement of a program, defining ``target``. Its kinds are the subclasses:
    ``Assign`` (scalar arithmetic), ``Elementwise`` (a value per element of a pass),
    ``Fill``, the reductions ``Sum``, ``Max`` and ``Dot``, ``MatrixProduct``, ``Identity``."""

    target: sp.Symbol

    @property
    def inputs(self) -> tuple[sp.Expr, ...]:
        """The expressions the statement reads (their symbols are what it depends on)."""
        out: list[sp.Expr] = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "target" and isinstance(value, sp.Basic):
                out.append(value)
            elif isinstance(value, tuple) and all(isinstance(v, sp.Basic) for v in value):
                out.extend(value)
        return tuple(out)

    def substituted(self, mapping: dict) -> Stmt:
        """The statement reading ``mapping``'s values instead of its keys (target kept)."""
        changes = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "target" and isinstance(value, sp.Basic):
                changes[f.name] = value.xreplace(mapping)
            elif isinstance(value, tuple) and value and all(isinstance(v, sp.Basic) for v in value):
                changes[f.name] = tuple(v.xreplace(mapping) for v in value)
        return replace(self, **changes)


@dataclass(frozen=True)
class Assign(Stmt):
    """``target = value`` on scalars: arithmetic before or after a pass (a value that
    depends on the result of a reduction along an axis is an array of that result's
    shape)."""

    value: sp.Expr


@dataclass(frozen=True)
class Elementwise(Stmt):
    """``target = value`` for every element of the pass's domain."""

    value: sp.Expr


@dataclass(frozen=True)
class Fill(Stmt):
    """An array of ``shape`` filled with ``value`` (a scalar, or an array broadcast)."""

    value: sp.Expr
    shape: tuple[sp.Expr, ...]


class Reduction(Stmt):
    """A reduction over the pass's domain: over every axis when ``axes`` is empty (a
    scalar), else over ``axes``, keeping them as axes of length 1. ``op`` is ``sum`` or
    ``max``; ``summand`` is the value per element it reduces."""

    op: Literal["sum", "max"]
    axes: tuple[int, ...]

    @property
    def summand(self) -> sp.Expr:
        raise NotImplementedError


@dataclass(frozen=True)
class Sum(Reduction):
    """``sum(value)`` over ``axes``."""

    value: sp.Expr
    axes: tuple[int, ...] = ()
    op = "sum"

    @property
    def summand(self) -> sp.Expr:
        return self.value


@dataclass(frozen=True)
class Max(Reduction):
    """``max(value)`` over ``axes``."""

    value: sp.Expr
    axes: tuple[int, ...] = ()
    op = "max"

    @property
    def summand(self) -> sp.Expr:
        return self.value


@dataclass(frozen=True)
class Dot(Reduction):
    """``sum(left*right)`` over every element: a dot product."""

    left: sp.Expr
    right: sp.Expr
    op = "sum"
    axes = ()

    @property
    def summand(self) -> sp.Expr:
        return sp.Mul(self.left, self.right, evaluate=False)


@dataclass(frozen=True)
class MatrixProduct(Stmt):
    """``left @ right`` (either may be a ``transposed`` view)."""

    left: sp.Expr
    right: sp.Expr


@dataclass(frozen=True)
class Scatter(Stmt):
    """``target`` = ``base`` (an array of ``shape``, or 0: zeros) with ``value`` (a column
    of one value per row, or a scalar) added at ``[r, index[r]]`` for each row ``r``.
    ``in_place``: ``base`` is a temporary that nothing else reads, so the target may be it."""

    base: sp.Expr
    value: sp.Expr
    index: sp.Expr
    shape: tuple[sp.Expr, ...]
    in_place: bool = False


@dataclass(frozen=True)
class Place(Stmt):
    """``target`` = ``base`` (an array of ``shape``, or 0: zeros) with ``values[k]`` (scalars)
    added at entry ``positions[k]`` (constant ``(row, col)``, each once). ``in_place``:
    ``base`` is a temporary that nothing else reads, so the target may be it."""

    base: sp.Expr
    values: tuple[sp.Expr, ...]
    positions: tuple[tuple[int, int], ...]
    shape: tuple[sp.Expr, ...]
    in_place: bool = False


@dataclass(frozen=True)
class Identity(Stmt):
    """The identity matrix of size ``size``."""

    size: sp.Expr


@dataclass(frozen=True)
class Kernel:
    """One fused pass over ``domain`` (scalar prologue, array body, reductions, epilogue),
    or one matrix product."""

    domain: Shape
    stmts: tuple[Stmt, ...]

    @property
    def is_matmul(self) -> bool:
        return any(isinstance(s, MatrixProduct) for s in self.stmts)

    @property
    def is_step(self) -> bool:
        """A matrix product, an identity matrix, a scatter or values placed at entries: one
        step, not a fused pass."""
        return any(isinstance(s, (MatrixProduct, Identity, Scatter, Place)) for s in self.stmts)

    @property
    def is_scatter(self) -> bool:
        return any(isinstance(s, Scatter) for s in self.stmts)

    @property
    def is_place(self) -> bool:
        return any(isinstance(s, Place) for s in self.stmts)


@dataclass(frozen=True)
class Program:
    kernels: tuple[Kernel, ...]
    #: The symbol holding each requested output, in the order requested.
    outputs: tuple[sp.Symbol, ...]
    #: Names of the array symbols (array inputs and array temporaries).
    arrays: frozenset[str]
    #: The shape of each array symbol, by name (what a kernel needs to index it).
    shapes: tuple[tuple[str, Shape], ...] = ()

    @property
    def stmts(self) -> tuple[Stmt, ...]:
        return tuple(s for k in self.kernels for s in k.stmts)

    def reads(self) -> list[set[str]]:
        """For each kernel, the names its statements read."""
        return [
            {x.name for s in k.stmts for e in s.inputs for x in e.free_symbols}
            for k in self.kernels
        ]

    def used_elsewhere(self) -> list[set[str]]:
        """For each kernel, the names it defines that another kernel or the outputs read."""
        outputs = {s.name for s in self.outputs}
        reads = self.reads()
        out = []
        for n, k in enumerate(self.kernels):
            elsewhere = outputs.union(*(r for m, r in enumerate(reads) if m != n))
            out.append({s.target.name for s in k.stmts} & elsewhere)
        return out

    def array_shapes(self) -> dict[str, Shape]:
        """The shape of every array symbol, results of reductions along an axis (which keep
        that axis, as a row or a column) included."""
        shapes = dict(self.shapes)
        for k in self.kernels:
            for s in k.stmts:
                if isinstance(s, Reduction) and s.axes:
                    shapes[s.target.name] = tuple(
                        sp.S.One if a in s.axes else d for a, d in enumerate(k.domain)
                    )
        return shapes


class Namer:
    """Fresh, readable names that never collide with the user's."""

    def __init__(self, taken: set[str]) -> None:
        self.taken = set(taken)
        self._counter = itertools.count()
        self._temps: set[str] = set()

    def fresh(self, base: str) -> sp.Symbol:
        name, i = base, 1
        while name in self.taken:
            name, i = f"{base}_{i}", i + 1
        self.taken.add(name)
        return sp.Symbol(name, real=True)

    def temporaries(self) -> Iterator[sp.Symbol]:
        while True:
            name = f"x{next(self._counter)}"
            if name not in self.taken:
                self.taken.add(name)
                self._temps.add(name)
                yield sp.Symbol(name, real=True)

    def renumber(self, kernels: list[Kernel]) -> tuple[dict, list[Kernel]]:
        """Rename temporaries x0, x1, ... in the order the program defines them."""
        order = [s.target for k in kernels for s in k.stmts if s.target.name in self._temps]
        fresh = Namer(self.taken - self._temps).temporaries()
        mapping = {old: next(fresh) for old in order}

        def rename(s: Stmt) -> Stmt:
            return replace(s.substituted(mapping), target=mapping.get(s.target, s.target))

        return mapping, [Kernel(k.domain, tuple(rename(s) for s in k.stmts)) for k in kernels]


@dataclass
class _Target:
    """Something the program must produce: an elementwise value, a reduction of one, or a
    matrix product."""

    symbol: sp.Symbol
    expr: sp.Expr
    domain: Shape
    reduce_axes: tuple[int, ...] | None = None  # None: no reduction
    op: str = "sum"  # or "max"; "matmul" for a product of exprs
    operands: tuple[sp.Expr, ...] = ()
    #: The entries a ``place`` step adds its values at.
    positions: tuple[tuple[int, int], ...] = ()


def _most_shared(factors: list[sp.Expr], use: dict[sp.Expr, int]) -> sp.Expr:
    """The factor a dot product shares: the most used, then the one of most operations,
    then the last in SymPy's order (the maximum of that key, with ``count_ops`` taken only
    among the most used: it is the slow part on large factors)."""
    most = max(use[f] for f in factors)
    candidates = [f for f in factors if use[f] == most]
    if len(candidates) == 1:
        return candidates[0]
    return max(candidates, key=lambda f: (sp.count_ops(f), sp.default_sort_key(f)))


def _expand_factors(expr: sp.Expr) -> list[sp.Expr]:
    """Multiplicative factors, with small positive integer powers spelled out."""
    out: list[sp.Expr] = []
    for f in sp.Mul.make_args(expr):
        base, exp = f.as_base_exp()
        if exp.is_Integer and 1 < exp <= 4:
            out.extend([base] * int(exp))
        else:
            out.append(f)
    return out


class _Builder:
    def __init__(self, lowered: Lowered, namer: Namer) -> None:
        self.namer = namer
        self.temps = namer.temporaries()
        self.leaf: dict[Node, sp.Expr] = {}
        self.inline: dict[Node, sp.Expr] = {}
        self.level: dict[sp.Symbol, int] = {}
        self.shapes: dict[sp.Symbol, Shape] = {}
        self.targets: list[_Target] = []
        for node in (*lowered.params, *lowered.data):
            self.leaf[node] = node.symbol
            self.level[node.symbol] = 0
            if node.shape:
                self.shapes[node.symbol] = node.shape

    # -- shapes of element expressions ---------------------------------------
    @property
    def arrays(self) -> set[sp.Symbol]:
        return set(self.shapes)

    def is_array(self, e: sp.Expr) -> bool:
        return any(s in self.shapes for s in _entries_hidden(e).free_symbols)

    def shape_of(self, e: sp.Expr) -> Shape:
        e = _entries_hidden(e)  # an entry is a scalar
        loads = e.atoms(gathered)  # a gathered load is a column, one entry per label
        shapes = [self.shapes[g.args[1]] for g in loads]
        if loads:
            e = e.xreplace({g: sp.Dummy() for g in loads})
        views = e.atoms(transposed)  # a transposed view has the reversed shape
        plain = e.xreplace({v: sp.Dummy() for v in views}).free_symbols
        shapes += [self.shapes[s] for s in plain if s in self.shapes]
        shapes += [tuple(reversed(self.shapes[v.args[0]])) for v in views]
        return broadcast_shapes(*shapes) if shapes else ()

    # -- element expressions of nodes ----------------------------------------
    def value(self, node: Node) -> sp.Expr:
        """The scalar expression of ``node``'s elements, in terms of leaf symbols."""
        if node in self.leaf:
            return self.leaf[node]
        if node in self.inline:
            return self.inline[node]
        if isinstance(node, Const):
            return node.value
        if isinstance(node, Map):
            args = {v: self.value(a) for v, a in zip(node.fn.variables, node.args, strict=True)}
            expr = self.inline[node] = node.fn.expr.xreplace(args)
            return expr
        if isinstance(node, Gather):
            expr = self.inline[node] = self._gather(node)
            return expr
        if isinstance(node, Stored):
            sym = self.leaf[node] = self.materialized(node.arg)
            return sym
        if isinstance(node, Entry):  # a scalar of its own, computed with the scalars
            sym = self.leaf[node] = next(self.temps)
            self._add_target(_Target(sym, self._entry(node), ()))
            return sym
        if isinstance(node, Transpose):
            inner = self.value(node.arg)
            if inner.has(gathered):  # a column of loads, transposed: made an array first
                expr = self.inline[node] = transposed(self.materialized(node.arg))
                return expr
            expr = self.inline[node] = inner.xreplace(
                {s: transposed(s) for s in inner.free_symbols if s in self.shapes}
            )
            return expr
        sym = self.leaf[node] = next(self.temps)
        self._add(sym, node)
        return sym

    def _gather(self, node: Gather) -> sp.Expr:
        """The element expression of ``node``: its operand's, with each array that spans
        the indexed columns read at the labels (``gathered``)."""
        inner = self.value(node.arg)
        columns = node.arg.shape[1]
        if columns == 1:
            return inner
        index = self.leaf[node.index]
        loads = {}
        hidden = inner.xreplace({g: sp.Dummy() for g in inner.atoms(gathered)})
        for v in hidden.atoms(transposed):
            if self.shapes[v.args[0]][0] == columns:
                loads[v] = gathered(v, index)
        plain = hidden.xreplace({v: sp.Dummy() for v in hidden.atoms(transposed)})
        for sym in plain.free_symbols:
            if sym in self.shapes and self.shapes[sym][-1] == columns:
                loads[sym] = gathered(sym, index)
        return inner.xreplace(loads)

    def _entry(self, node: Entry) -> sp.Expr:
        """The value of ``node``: its operand's element expression with each array it reads
        loaded at the entry (``element``; at 0 along an axis the array is broadcast along,
        at the swapped indices of a transposed view)."""
        inner = self.value(node.arg)
        if inner.has(gathered):  # a column of loads at labels: made an array first
            inner = self.materialized(node.arg)

        def at(symbol: sp.Symbol, row: int, col: int) -> element:
            rows, cols = self.shapes[symbol]
            return element(symbol, 0 if rows == 1 else row, 0 if cols == 1 else col)

        views = inner.atoms(transposed)
        loads = {v: at(v.args[0], node.col, node.row) for v in views}
        plain = inner.xreplace({v: sp.Dummy() for v in views}).free_symbols
        loads |= {s: at(s, node.row, node.col) for s in plain if s in self.shapes}
        return inner.xreplace(loads)

    def _scalar(self, node: Node) -> sp.Expr:
        """A number or a scalar symbol holding ``node`` (of shape ())."""
        expr = self.value(node)
        if expr.is_Symbol or expr.is_Number:
            return expr
        sym = self.leaf[node] = next(self.temps)
        self._add_target(_Target(sym, expr, ()))
        return sym

    def _plain(self, node: Node) -> sp.Symbol:
        """An array symbol holding ``node`` (a copy of a transposed view)."""
        expr = self.materialized(node)
        if expr.is_Symbol:
            return expr
        sym = next(self.temps)
        self._add_target(_Target(sym, expr, node.shape))
        self.shapes[sym] = node.shape
        return sym

    def _add(self, sym: sp.Symbol, node: Node) -> None:
        if isinstance(node, ScatterAdd):
            base = sp.S.Zero if node.base is None else self._plain(node.base)
            operands = (base, self.leaf[node.index])
            value = self.value(node.value)
            self._add_target(_Target(sym, value, node.shape, op="scatter", operands=operands))
        elif isinstance(node, PlaceAdd):
            base = sp.S.Zero if node.base is None else self._plain(node.base)
            values = tuple(self._scalar(v) for v in node.values)
            self._add_target(
                _Target(
                    sym,
                    sp.S.Zero,
                    node.shape,
                    op="place",
                    operands=(base, *values),
                    positions=node.positions,
                )
            )
        elif isinstance(node, Reduce):
            self._add_target(_Target(sym, self.value(node.arg), node.arg.shape, node.axes, node.op))
        elif isinstance(node, MatMul):
            operands = (self.materialized(node.a), self.materialized(node.b))
            self._add_target(_Target(sym, sp.S.Zero, node.shape, op="matmul", operands=operands))
        elif isinstance(node, Eye):
            size = sp.sympify(node.shape[0])
            self._add_target(_Target(sym, sp.S.Zero, node.shape, op="eye", operands=(size,)))
        else:
            raise NotImplementedError(f"{type(node).__name__} nodes are not supported")
        if node.shape:
            self.shapes[sym] = node.shape

    def materialized(self, node: Node) -> sp.Expr:
        """An array symbol (or a transposed view of one) holding ``node``."""
        expr = self.value(node)
        # a scalar spread over an array (the adjoint of a sum) is filled into one below
        spread = expr.is_Symbol and node.shape and expr not in self.shapes
        if not spread and (
            expr.is_Symbol or (isinstance(expr, transposed) and expr.args[0].is_Symbol)
        ):
            return expr
        if isinstance(node, Transpose):
            return transposed(self.materialized(node.arg))
        sym = self.leaf[node] = next(self.temps)
        self._add_target(_Target(sym, expr, node.shape))
        self.shapes[sym] = node.shape
        return sym

    def _add_target(self, target: _Target) -> None:
        used = target.expr.free_symbols.union(*(o.free_symbols for o in target.operands))
        self.level[target.symbol] = 1 + max((self.level.get(s, 0) for s in used), default=0)
        self.targets.append(target)

    def output(self, node: Node, sym: sp.Symbol) -> None:
        if isinstance(node, (Reduce, MatMul, ScatterAdd, PlaceAdd)) and node not in self.leaf:
            self.leaf[node] = sym  # the result lands in the output variable directly
            self._add(sym, node)
            return
        self._add_target(_Target(sym, self.value(node), node.shape))
        if node.shape:
            self.shapes[sym] = node.shape

    # -- kernels --------------------------------------------------------------
    def kernels(self) -> list[Kernel]:
        groups: dict[tuple, list[_Target]] = defaultdict(list)
        for t in self.targets:
            groups[(self.level[t.symbol], t.op in STEPS, t.domain)].append(t)
        ordered = sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], str(kv[0][2])))
        out = []
        for (_, is_step, domain), targets in ordered:
            if is_step:
                out.extend(Kernel(domain, (_step(t),)) for t in targets)
            else:
                out.append(self._kernel(domain, targets))
        return out

    def _unbroadcast(self, t: _Target, domain: Shape) -> _Target:
        """A sum over axes along which the summand is broadcast is a multiplication."""
        if t.reduce_axes is None or t.op != "sum" or not self.is_array(t.expr):
            return t
        shape = self.shape_of(t.expr)
        shape = (sp.S.One,) * (len(domain) - len(shape)) + tuple(shape)
        spread = [a for a in t.reduce_axes if shape[a] == 1 and domain[a] != 1]
        if not spread:
            return t
        extent = sp.Mul(*[domain[a] for a in spread])
        if len(t.reduce_axes) == len(domain):  # a whole sum stays whole
            return _Target(t.symbol, t.expr * extent, t.domain, t.reduce_axes, t.op)
        axes = tuple(a for a in t.reduce_axes if a not in spread)
        return _Target(t.symbol, t.expr * extent, t.domain, axes or None, t.op)

    def _kernel(self, domain: Shape, targets: list[_Target]) -> Kernel:
        is_array = self.is_array
        arrays = sorted(self.arrays, key=str)
        full = len(domain)

        # Split every sum into scalar work and one sum (or dot) over array factors:
        # sum(c*(k + f*g)) = c*(k*size + dot(f, g)), with c and k sample-independent.
        factor_use: dict[sp.Expr, int] = defaultdict(int)
        split = {}
        targets = [self._unbroadcast(t, domain) for t in targets]
        shared = _share_logistic_exp([pull_factors(t.expr) for t in targets])
        targets = [replace(t, expr=e) for t, e in zip(targets, shared, strict=True)]
        for t in targets:
            if t.reduce_axes is not None and t.op == "sum" and is_array(t.expr):
                coeff, rest = sp.factor_terms(t.expr).as_independent(*arrays, as_Add=False)
                split[t.symbol] = (coeff, rest)
                for f in set(_expand_factors(rest)):
                    factor_use[f] += 1

        exprs: list[sp.Expr] = []
        slots = []  # (target, kind, final, [indices into exprs])
        sums = []  # (target, final, factors, whole-domain dot possible)
        for t in targets:
            if t.op == "max":
                slots.append((t, "max", None, [len(exprs)]))
                exprs.append(t.expr)
                continue
            if t.symbol not in split:
                expr = sp.factor_terms(t.expr)  # 2*a + 2*b -> 2*(a + b): fewer operations
                if t.reduce_axes is not None:  # a sum of an array-independent value
                    expr = expr * sp.Mul(*[domain[a] for a in t.reduce_axes])
                slots.append((t, "value", None, [len(exprs)]))
                exprs.append(expr)
                continue
            coeff, rest = split[t.symbol]
            const, inner = sp.S.Zero, sp.S.One
            if rest.is_Add and factor_use[rest] == 1:  # not shared: sum the constant on scalars
                const, rest = rest.as_independent(*arrays, as_Add=True)
                inner, rest = sp.factor_terms(rest).as_independent(*arrays, as_Add=False)
            factors = _expand_factors(rest)
            final = None  # None: the sum lands in the target directly
            if const != 0 or coeff * inner != 1:
                partial = next(self.temps)
                extent = sp.Mul(*[domain[a] for a in t.reduce_axes])
                final = (partial, coeff * (const * extent + inner * partial))
                if len(t.reduce_axes) < full:  # a sum along an axis keeps its dimensions
                    self.shapes[partial] = tuple(
                        sp.S.One if a in t.reduce_axes else d for a, d in enumerate(domain)
                    )
            whole = len(t.reduce_axes) == full
            dot = whole and len(factors) >= 2 and all(self.shape_of(f) == domain for f in factors)
            sums.append((t, final, factors, dot))

        # A pair of factors that several dot products share is multiplied once:
        # dot(t*r, e) and dot(t*r, c) instead of dot(t*e, r) and dot(t*c, r).
        lists = [factors for _, _, factors, dot in sums if dot]
        while True:
            pairs: dict[tuple, int] = defaultdict(int)
            for factors in lists:
                if len(factors) >= 3:
                    for pair in {
                        tuple(sorted(p, key=sp.default_sort_key))
                        for p in itertools.combinations(factors, 2)
                    }:
                        pairs[pair] += 1
            best = max(
                pairs.items(), key=lambda kv: (kv[1], sp.default_sort_key(kv[0])), default=None
            )
            if best is None or best[1] < 2:
                break
            (f1, f2), _ = best
            for factors in lists:
                has_pair = factors.count(f1) >= 2 if f1 == f2 else f1 in factors and f2 in factors
                if len(factors) >= 3 and has_pair:
                    factors.remove(f1)
                    factors.remove(f2)
                    factors.append(sp.Mul(f1, f2, evaluate=False))
        use: dict[sp.Expr, int] = defaultdict(int)
        for factors in lists:
            for f in set(factors):
                use[f] += 1
        for t, final, factors, dot in sums:
            if dot:
                shared = _most_shared(factors, use)
                rest_factors = list(factors)
                rest_factors.remove(shared)
                slots.append((t, "dot", final, [len(exprs), len(exprs) + 1]))
                exprs.extend([sp.Mul(*rest_factors), shared])
            else:
                slots.append((t, "sum", final, [len(exprs)]))
                exprs.append(sp.Mul(*factors))
        final_start = len(exprs)
        exprs.extend(f[1] for _, _, f, _ in slots if f is not None)

        replacements, reduced = sp.cse(exprs, symbols=self.temps, order="canonical")
        if not domain:  # Python floats: every operation counts
            replacements, reduced = _name_squared_bases(replacements, reduced, self.temps)
            replacements = [(sym, _collected(e)) for sym, e in replacements]
            reduced = [_collected(e) for e in reduced]
        # what only a Piecewise branch needs is computed only where it holds
        replacements, reduced = guard(replacements, reduced, leaves=(transposed, element))
        prologue, body = [], []
        hoisted: dict[sp.Expr, sp.Symbol] = {}

        def hoist(e: sp.Expr, branch: bool = False) -> sp.Expr:
            """Move array-independent subexpressions of an array expression to the prologue
            (inside a ``Piecewise`` branch, only those that are safe to compute anyway)."""
            if not is_array(e):
                if e.is_Atom or (e.is_Mul and len(e.args) == 2 and e.args[0] == -1):
                    return e
                if branch and not total(e):
                    return e
                if e not in hoisted:
                    hoisted[e] = next(self.temps)
                    prologue.append(Assign(hoisted[e], e))
                return hoisted[e]
            if isinstance(e, transposed):
                return e
            if isinstance(e, sp.Piecewise):
                return e.func(
                    *[
                        (hoist(value, True), hoist(cond, branch or i > 0))
                        for i, (value, cond) in enumerate(e.args)
                    ]
                )
            return e.func(*[hoist(a, branch) for a in e.args]) if e.args else e

        for sym, e in replacements:
            if is_array(e):
                self.shapes[sym] = self.shape_of(e)
                body.append(Elementwise(sym, hoist(e)))
            else:
                prologue.append(Assign(sym, e))

        reductions, epilogue = [], []
        finals = iter(reduced[final_start:])
        computed: dict[tuple, sp.Symbol] = {}  # the same reduction is computed once
        for t, kind, final, idx in slots:
            parts = tuple(hoist(reduced[i]) if is_array(reduced[i]) else reduced[i] for i in idx)
            if kind == "value":
                shape = self.shapes.get(t.symbol, ())
                filled = tuple(map(sp.sympify, shape))
                if is_array(parts[0]) and self.shape_of(parts[0]) != shape:  # broadcast it
                    body.append(Fill(t.symbol, parts[0], filled))
                elif is_array(parts[0]):
                    body.append(Elementwise(t.symbol, parts[0]))
                elif shape:
                    epilogue.append(Fill(t.symbol, parts[0], filled))
                else:
                    epilogue.append(Assign(t.symbol, parts[0]))
                continue
            axes = () if len(t.reduce_axes) == full else t.reduce_axes
            key = (kind, tuple(sorted(parts, key=sp.default_sort_key)), axes)
            target = t.symbol if final is None else final[0]
            alias = {}
            if key not in computed:
                computed[key] = target
                reductions.append(_reduction(kind, target, parts, axes))
            elif final is None:
                epilogue.append(Assign(target, computed[key]))
            else:
                alias = {target: computed[key]}
            if final is not None:
                epilogue.append(Assign(t.symbol, next(finals).xreplace(alias)))
        return Kernel(domain, tuple(prologue + body + reductions + epilogue))


#: The targets that are steps of their own, not parts of a fused pass.
STEPS = ("matmul", "eye", "scatter", "place")


def _step(t: _Target) -> Stmt:
    """The one statement of a step: a matrix product, an identity matrix, a scatter or
    values placed at entries."""
    if t.op == "matmul":
        return MatrixProduct(t.symbol, *t.operands)
    if t.op == "scatter":
        base, index = t.operands
        return Scatter(t.symbol, base, t.expr, index, tuple(map(sp.sympify, t.domain)))
    if t.op == "place":
        base, *values = t.operands
        shape = tuple(map(sp.sympify, t.domain))
        return Place(t.symbol, base, tuple(values), t.positions, shape)
    return Identity(t.symbol, *t.operands)


def _scatter_in_place(kernels: list[Kernel], outputs: set[str]) -> list[Kernel]:
    """Scatters (and places) whose base is a temporary read by nothing else add into it."""
    defined = {s.target.name for k in kernels for s in k.stmts}
    reads: dict[str, int] = defaultdict(int)
    for k in kernels:
        for s in k.stmts:
            for name in {x.name for e in s.inputs for x in e.free_symbols}:
                reads[name] += 1
    out = []
    for k in kernels:
        stmts = tuple(
            replace(s, in_place=True)
            if isinstance(s, (Scatter, Place))
            and s.base.is_Symbol
            and s.base.name in defined
            and s.base.name not in outputs
            and reads[s.base.name] == 1
            else s
            for s in k.stmts
        )
        out.append(Kernel(k.domain, stmts))
    return out


def _reduction(kind: str, target: sp.Symbol, parts: tuple, axes: tuple[int, ...]) -> Reduction:
    if kind == "dot":
        return Dot(target, *parts)
    if kind == "max":
        return Max(target, parts[0], axes)
    return Sum(target, parts[0], axes)


def _share_logistic_exp(exprs: list[sp.Expr]) -> list[sp.Expr]:
    """sigmoid and softplus of the same z (or -z) in one kernel share e = exp(-|z|):
    ``sigmoid(z) = (1 if z >= 0 else e)/(1 + e)``, ``softplus(z) = max(z, 0) + log1p(e)``.

    One exp and one log1p replace a tanh and a logaddexp (a third less time per element
    in NumPy, measured on the logistic loss); both forms are exact for every z. A lone
    sigmoid or softplus keeps its own spelling."""
    calls: dict[sp.Expr, set[sp.Expr]] = defaultdict(set)
    for expr in exprs:
        for f in expr.atoms(sigmoid, softplus):
            calls[sp.Abs(f.args[0])].add(f)
    rewrite = {}
    for magnitude, fs in calls.items():
        if len(fs) < 2:
            continue
        e = sp.exp(-magnitude)
        for f in fs:
            z = f.args[0]
            rewrite[f] = (
                sigmoid_from_exp(z, e) if isinstance(f, sigmoid) else sp.Max(z, 0) + log1p(e)
            )
    return [expr.xreplace(rewrite) for expr in exprs] if rewrite else exprs


def _collected(expr: sp.Expr) -> sp.Expr:
    """A sum with a symbol taken out of the terms that share it, when that saves operations:
    ``2*x - 400*x*x0 - 2`` becomes ``x*(2 - 400*x0) - 2`` (one multiply fewer)."""
    if not expr.is_Add:
        return expr
    best, cost = expr, sp.count_ops(expr)
    for symbol in sorted(expr.free_symbols, key=sp.default_sort_key):
        candidate = sp.collect(best, symbol)
        candidate_cost = sp.count_ops(candidate)
        if candidate_cost < cost:
            best, cost = candidate, candidate_cost
    return best


def _name_squared_bases(replacements, reduced, temps):
    """``(1 - x)**2`` costs a pow() on floats; ``u = 1 - x`` then ``u*u`` two cheap operations.

    Compound bases of squares become temporaries (inner ones first), defined just before
    the first statement that uses them."""
    named: dict[sp.Expr, sp.Symbol] = {}
    pending: list[tuple[sp.Symbol, sp.Expr]] = []

    def name(base: sp.Expr) -> sp.Symbol:
        if base not in named:
            named[base] = next(temps)
            pending.append((named[base], base))
        return named[base]

    def rewrite(e: sp.Expr) -> sp.Expr:
        return e.replace(
            lambda x: x.is_Pow and x.exp == 2 and not x.base.is_Atom,
            lambda x: sp.Pow(name(x.base), 2),
        )

    out = []
    for sym, e in replacements:
        e = rewrite(e)
        out.extend(pending)
        pending.clear()
        out.append((sym, e))
    reduced = [rewrite(e) for e in reduced]
    out.extend(pending)
    return out, reduced


def build_program(lowered: Lowered, outputs: list[Node], names: list[str], namer: Namer) -> Program:
    """A straight-line program computing ``outputs`` into variables named after ``names``."""
    builder = _Builder(lowered, namer)
    symbols = []
    for node, name in zip(outputs, names, strict=True):
        sym = namer.fresh(name)
        builder.output(node, sym)
        symbols.append(sym)
    mapping, kernels = namer.renumber(builder.kernels())
    kernels = _scatter_in_place(kernels, {s.name for s in symbols})
    shapes = {mapping.get(s, s).name: shape for s, shape in builder.shapes.items()}
    return Program(tuple(kernels), tuple(symbols), frozenset(shapes), tuple(sorted(shapes.items())))


__all__ = [
    "Assign",
    "Dot",
    "Elementwise",
    "Fill",
    "Identity",
    "Input",
    "Kernel",
    "MatrixProduct",
    "Max",
    "Namer",
    "Place",
    "Program",
    "Reduction",
    "Scatter",
    "Stmt",
    "Sum",
    "build_program",
    "element",
    "gathered",
    "transposed",
]
