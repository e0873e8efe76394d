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

    def renumber(self, kernels: list[Kernel]) -> tuple[dict, list[Kernel]]:
        """Rename temporaries x0, x1, ... in the order the program defines them."""
        temps = {s for s in self.taken if s.startswith("x") and s[1:].isdigit()}
        order = [s.target for k in kernels for s in k.stmts if s.target.name in temps]
        fresh = Namer(self.taken - temps).temporaries()
        mapping = {old: next(fresh) for old in order}
        return mapping, [
            Kernel(
                k.domain,
                tuple(
                    Stmt(
                        mapping.get(s.target, s.target),
                        s.kind,
                        tuple(e.xreplace(mapping) for e in s.exprs),
                        s.axes,
                    )
                    for s in k.stmts
                ),
            )
            for k in kernels
        ]


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

        # Split every sum into scalar work and one sum (or dot) over array factors:
        # sum(c*(k + f*g)) = c*(k*size + dot(f, g)), with c and k sample-independent.
        factor_use: dict[sp.Expr, int] = defaultdict(int)
        split = {}
        for t in targets:
            if t.reduce_axes is not None and is_array(t.expr):
                coeff, rest = sp.factor_terms(t.expr).as_independent(*arrays, as_Add=False)
                split[t.symbol] = (coeff, rest)
                for f in set(_expand_factors(rest)):
                    factor_use[f] += 1
        plans = []
        for t in targets:
            if t.symbol not in split:
                plans.append((t, None, None))
                continue
            coeff, rest = split[t.symbol]
            const, inner = sp.S.Zero, sp.S.One
            if rest.is_Add and factor_use[rest] == 1:  # not shared: sum the constant on scalars
                const, rest = rest.as_independent(*arrays, as_Add=True)
                inner, rest = sp.factor_terms(rest).as_independent(*arrays, as_Add=False)
            factors = _expand_factors(rest) if len(domain) == 1 else [rest]
            if const == 0 and coeff * inner == 1:
                final = None  # the sum lands in the target directly
            else:
                partial = next(self.temps)
                extent = sp.Mul(*[domain[a] for a in t.reduce_axes])
                final = (partial, coeff * (const * extent + inner * partial))
            plans.append((t, final, factors))

        exprs: list[sp.Expr] = []
        slots = []  # (target, kind, final, [indices into exprs])
        for t, final, factors in plans:
            if factors is None:
                expr = sp.factor_terms(t.expr)  # 2*a + 2*b -> 2*(a + b): fewer operations
                if t.reduce_axes is not None:  # a sum of a sample-independent value
                    expr = expr * sp.Mul(*[domain[a] for a in t.reduce_axes])
                slots.append((t, "value", None, [len(exprs)]))
                exprs.append(expr)
                continue
            if len(factors) == 1:
                slots.append((t, "sum", final, [len(exprs)]))
                exprs.append(factors[0])
                continue
            shared = max(
                factors, key=lambda f: (factor_use[f], sp.count_ops(f), sp.default_sort_key(f))
            )
            rest_factors = list(factors)
            rest_factors.remove(shared)
            slots.append((t, "dot", final, [len(exprs), len(exprs) + 1]))
            exprs.extend([sp.Mul(*rest_factors), shared])
        final_start = len(exprs)
        exprs.extend(f[1] for _, _, f, _ in slots if f is not None)

        replacements, reduced = sp.cse(exprs, symbols=self.temps, order="canonical")
        prologue, body = [], []
        hoisted: dict[sp.Expr, sp.Symbol] = {}

        def hoist(e: sp.Expr) -> sp.Expr:
            """Move sample-independent subexpressions of an array expression to the prologue."""
            if not is_array(e):
                if e.is_Atom or (e.is_Mul and len(e.args) == 2 and e.args[0] == -1):
                    return e
                if e not in hoisted:
                    hoisted[e] = next(self.temps)
                    prologue.append(Stmt(hoisted[e], "scalar", (e,)))
                return hoisted[e]
            if e.is_Add or e.is_Mul:  # the printer puts their scalar terms first
                return e.func(*[hoist(a) for a in e.args])
            return e.func(*[hoist(a) for a in e.args]) if e.args else e

        for sym, e in replacements:
            if is_array(e):
                arrays.add(sym)
                body.append(Stmt(sym, "array", (hoist(e),)))
            else:
                prologue.append(Stmt(sym, "scalar", (e,)))

        reductions, epilogue = [], []
        finals = iter(reduced[final_start:])
        computed: dict[tuple, sp.Symbol] = {}  # the same sum is computed once
        for t, kind, final, idx in slots:
            parts = tuple(hoist(reduced[i]) if is_array(reduced[i]) else reduced[i] for i in idx)
            if kind == "value":
                stmt_kind = "array" if is_array(parts[0]) else "scalar"
                (body if stmt_kind == "array" else epilogue).append(
                    Stmt(t.symbol, stmt_kind, parts)
                )
                continue
            axes = t.reduce_axes or ()
            key = (kind, tuple(sorted(parts, key=sp.default_sort_key)), axes)
            target = t.symbol if final is None else final[0]
            alias = {}
            if key not in computed:
                computed[key] = target
                reductions.append(Stmt(target, kind, parts, axes))
            elif final is None:
                epilogue.append(Stmt(target, "scalar", (computed[key],)))
            else:
                alias = {target: computed[key]}
            if final is not None:
                epilogue.append(Stmt(t.symbol, "scalar", (next(finals).xreplace(alias),)))
        return Kernel(domain, tuple(prologue + body + reductions + epilogue))


def build_program(lowered: Lowered, outputs: list[Node], names: list[str], namer: Namer) -> Program:
    """A straight-line program computing ``outputs`` into variables named after ``names``."""
    builder = _Builder(lowered, namer)
    symbols = []
    for node, name in zip(outputs, names, strict=True):
        sym = namer.fresh(name)
        builder.output(node, sym)
        symbols.append(sym)
    mapping, kernels = namer.renumber(builder.kernels())
    arrays = {mapping.get(s, s).name for s in builder.arrays}
    return Program(tuple(kernels), tuple(symbols), frozenset(arrays))
