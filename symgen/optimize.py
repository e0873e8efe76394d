"""IR graph → fused, CSE'd straight-line program.

Fusion: every ``Map`` is inlined into its consumers by substitution, so a
chain of elementwise maps is one scalar expression. The computations that
must happen (the outputs, and the sums over samples) are grouped into
*kernels*: one kernel per iteration domain and dependency level. A ``Map``
followed by a ``Reduce`` is one pass: the reduction is an output of the kernel
that computes the map.

Inside a kernel, ``sympy.cse`` runs once over all its outputs together (the
loss and every gradient), so each shared subexpression is computed once.
Subexpressions that do not depend on the per-sample arrays are hoisted out of
the array part and computed once on scalars (loop-invariant code motion), and
factors that do not depend on the samples are pulled out of sums:
``sum(c*f*g) = c * dot(f, g)``.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import sympy as sp

from .frontend import Lowered
from .ir import Const, Map, Node, Reduce, Shape

StmtKind = Literal["scalar", "array", "sum", "dot"]


@dataclass(frozen=True)
class Stmt:
    """``target = expr`` (scalar or array), ``target = sum(expr)`` or ``target = dot(a, b)``."""

    target: sp.Symbol
    kind: StmtKind
    exprs: tuple[sp.Expr, ...]
    axes: tuple[int, ...] = ()


@dataclass(frozen=True)
class Kernel:
    """One fused pass over ``domain``: scalar prologue, array body, reductions, epilogue."""

    domain: Shape
    stmts: tuple[Stmt, ...]


@dataclass(frozen=True)
class Program:
    kernels: tuple[Kernel, ...]
    #: The symbol holding each requested output, in the order requested.
    outputs: tuple[sp.Symbol, ...]
    #: Names of the array symbols (data inputs and array temporaries).
    arrays: frozenset[str]

    @property
    def stmts(self) -> tuple[Stmt, ...]:
        return tuple(s for k in self.kernels for s in k.stmts)


class Namer:
    """Fresh, readable names that never collide with the user's."""

    def __init__(self, taken: set[str]) -> None:
        self.taken = set(taken)
        self._counter = itertools.count()

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
                yield sp.Symbol(name, real=True)


@dataclass
class _Target:
    """Something a kernel must produce: an elementwise value, or a sum of one."""

    symbol: sp.Symbol
    expr: sp.Expr
    domain: Shape
    reduce_axes: tuple[int, ...] | None  # None: no reduction


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
        self.arrays: set[sp.Symbol] = set()
        self.targets: list[_Target] = []
        for node in (*lowered.params, *lowered.data):
            self.leaf[node] = node.symbol
            self.level[node.symbol] = 0
            if node.shape:
                self.arrays.add(node.symbol)

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
        if isinstance(node, Reduce):
            sym = self.leaf[node] = next(self.temps)
            self._add_target(sym, self.value(node.arg), node.arg.shape, node.axes)
            if node.shape:
                self.arrays.add(sym)
            return sym
        raise NotImplementedError(f"{type(node).__name__} nodes are not supported yet")

    def _add_target(self, sym: sp.Symbol, expr: sp.Expr, domain: Shape, axes) -> None:
        deps = [self.level.get(s, 0) for s in expr.free_symbols]
        self.level[sym] = 1 + max(deps, default=0)
        self.targets.append(_Target(sym, expr, domain, axes))

    def output(self, node: Node, sym: sp.Symbol) -> None:
        if isinstance(node, Reduce) and node not in self.leaf:
            self.leaf[node] = sym  # the sum lands in the output variable directly
            self._add_target(sym, self.value(node.arg), node.arg.shape, node.axes)
        else:
            self._add_target(sym, self.value(node), node.shape, None)
        if node.shape:
            self.arrays.add(sym)

    def kernels(self) -> list[Kernel]:
        groups: dict[tuple[int, Shape], list[_Target]] = defaultdict(list)
        for t in self.targets:
            groups[(self.level[t.symbol], t.domain)].append(t)
        ordered = sorted(groups.items(), key=lambda kv: (kv[0][0], len(kv[0][1]), str(kv[0][1])))
        return [self._kernel(domain, targets) for (_, domain), targets in ordered]

    def _kernel(self, domain: Shape, targets: list[_Target]) -> Kernel:
        arrays = self.arrays

        def is_array(e: sp.Expr) -> bool:
            return bool(e.free_symbols & arrays)

        # Split every sum into (scalar coefficient) * sum(array factors).
        plans = []
        factor_use: dict[sp.Expr, int] = defaultdict(int)
        for t in targets:
            if t.reduce_axes is None or not is_array(t.expr):
                plans.append((t, None, None))
                continue
            summand = sp.factor_terms(t.expr)
            coeff, rest = summand.as_independent(*sorted(arrays, key=str), as_Add=False)
            factors = _expand_factors(rest) if len(domain) == 1 else [rest]
            for f in set(factors):
                factor_use[f] += 1
            plans.append((t, coeff, factors))

        exprs: list[sp.Expr] = []
        slots = []  # (target, kind, coeff, [indices into exprs])
        for t, coeff, factors in plans:
            if factors is None:
                expr = sp.factor_terms(t.expr)  # 2*a + 2*b -> 2*(a + b): fewer operations
                if t.reduce_axes is not None:  # a sum of a sample-independent value
                    expr = expr * sp.Mul(*[domain[a] for a in t.reduce_axes])
                slots.append((t, "value", None, [len(exprs)]))
                exprs.append(expr)
                continue
            if len(factors) == 1:
                slots.append((t, "sum", coeff, [len(exprs)]))
                exprs.append(factors[0])
                continue
            shared = max(
                factors, key=lambda f: (factor_use[f], sp.count_ops(f), sp.default_sort_key(f))
            )
            rest_factors = list(factors)
            rest_factors.remove(shared)
            slots.append((t, "dot", coeff, [len(exprs), len(exprs) + 1]))
            exprs.extend([sp.Mul(*rest_factors), shared])
        coeff_start = len(exprs)
        exprs.extend(c for _, _, c, _ in slots if c is not None)

        replacements, reduced = sp.cse(exprs, symbols=self.temps, order="canonical")
        prologue, body = [], []
        for sym, e in replacements:
            if is_array(e):
                arrays.add(sym)
                body.append(Stmt(sym, "array", (e,)))
            else:
                prologue.append(Stmt(sym, "scalar", (e,)))

        reductions, epilogue = [], []
        coeffs = iter(reduced[coeff_start:])
        for t, kind, _, idx in slots:
            parts = tuple(reduced[i] for i in idx)
            if kind == "value":
                stmt_kind = "array" if is_array(parts[0]) else "scalar"
                (body if stmt_kind == "array" else epilogue).append(
                    Stmt(t.symbol, stmt_kind, parts)
                )
                continue
            c = next(coeffs)
            axes = t.reduce_axes or ()
            if c == 1:
                reductions.append(Stmt(t.symbol, kind, parts, axes))
                continue
            partial = next(self.temps)
            reductions.append(Stmt(partial, kind, parts, axes))
            epilogue.append(Stmt(t.symbol, "scalar", (c * partial,)))
        return Kernel(domain, tuple(prologue + body + reductions + epilogue))


def build_program(lowered: Lowered, outputs: list[Node], names: list[str], namer: Namer) -> Program:
    """A straight-line program computing ``outputs`` into variables named after ``names``."""
    builder = _Builder(lowered, namer)
    symbols = []
    for node, name in zip(outputs, names, strict=True):
        sym = namer.fresh(name)
        builder.output(node, sym)
        symbols.append(sym)
    kernels = builder.kernels()
    return Program(tuple(kernels), tuple(symbols), frozenset(s.name for s in builder.arrays))
