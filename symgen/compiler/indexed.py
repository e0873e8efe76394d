"""Index notation: a loss written with ``IndexedBase`` arrays and ``Sum``s, translated into the
spelling symgen compiles, so that it compiles to the same program as that spelling.

Two translations, tried in this order:

- **per sample**: every array is 1-D data indexed by its sum's index, the parameters are
  symbols, and the loss is a sum over samples, ``Sum(f(x[i], y[i]), (i, 0, n - 1))``
  (several such sums, constant terms ``n*g`` and a division by ``n``, a mean, allowed). It
  becomes the per-sample problem ``f(x, y)`` over data symbols ``x, y``, reduced by ``sum``
  (``mean`` when divided by ``n``). ``n`` is a symbol: with a literal length the problem is a
  matrix problem, whose module checks the length.
- **matrices**: otherwise each array is a ``MatrixSymbol`` (a 1-D array of length ``d`` a
  ``d x 1`` column) and each expression with free indices a matrix expression: entries
  ``X[i, j]`` are ``X`` (``X.T`` when the indices come the other way round), operations on
  entries are elementwise (``symgen.elementwise``, operands broadcast: ``x[i]*w[j]`` is
  an outer product), a sum over an index that two factors share and that leaves a free index
  is a matrix product (``Sum(X[i, k]*W[k, j], k)`` is ``X*W``), other sums are
  ``symgen.sum`` (over an axis, or over everything), ``log(Sum(exp(f), k))`` is the stable
  ``symgen.logsumexp``, and an entry at a label, ``Z[i, y[i]]`` with ``y`` an integer data
  array, is ``symgen.take(Z, y)``.

A sum runs over a whole axis: ``(i, 0, n - 1)`` (or an ``Idx`` with that range), ``n`` the
length of the arrays it indexes.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp
from sympy.matrices.expressions import MatrixExpr
from sympy.matrices.expressions.matexpr import MatrixElement

from symgen.compiler import functions
from symgen.errors import SpecError


@dataclass(frozen=True)
class Translated:
    """A loss in index notation, as the problem symgen compiles."""

    loss: sp.Basic
    params: tuple[sp.Basic, ...]
    data: tuple[sp.Basic, ...]
    reduce: str


def is_index_notation(loss: sp.Basic, symbols: tuple) -> bool:
    """Whether ``loss`` is written in index notation: over ``IndexedBase`` arrays, or with a
    ``Sum`` over an index of the user's (SymPy's own expansions of matrix entries sum over
    dummies)."""
    if any(isinstance(s, sp.IndexedBase) for s in symbols) or loss.has(sp.Indexed):
        return True
    return any(not isinstance(limit[0], sp.Dummy) for s in loss.atoms(sp.Sum) for limit in s.limits)


def entry_of_product(expr: sp.Sum) -> sp.Basic:
    """The entry ``(A*B)[0, 0]`` that SymPy wrote out as ``expr``, a ``Sum`` over dummy
    indices; a sum of such entries when SymPy turns back only the terms of the expanded
    ``expr`` (``(w.T*(X.T*X + 2*Identity(D))*w)[0, 0]``, whose identity is a
    ``KroneckerDelta`` beside a sum: ``(2*w.T*w)[0, 0] + (w.T*X.T*X*w)[0, 0]``); or ``expr``
    itself when SymPy cannot turn it back (``Sum(w[i, 0]**2, ...)``: ``summed_entries``
    reads that)."""
    try:
        return MatrixExpr.from_index_summation(expr)
    except _SYMPY_FAILURES:
        pass
    terms = sp.Add.make_args(sp.expand(expr))
    if len(terms) == 1:
        return expr
    try:
        return sp.Add(
            *(MatrixExpr.from_index_summation(t) if isinstance(t, sp.Sum) else t for t in terms)
        )
    except _SYMPY_FAILURES:
        return expr


#: What ``MatrixExpr.from_index_summation`` raises on a sum it cannot turn back.
_SYMPY_FAILURES = (ValueError, TypeError, NotImplementedError, IndexError)


def summed_entries(expr: sp.Sum, params: tuple, data: tuple) -> sp.Expr | None:
    """A ``Sum`` that SymPy made of an entry of a product over a symbolic dimension, read as
    index notation over the matrices' entries; None when index notation does not read it.

    SymPy writes ``(w.T*w)[0, 0]``, ``w`` of ``D`` rows, as ``Sum(w[i, 0]**2, (i, 0,
    D - 1))`` over a dummy index before symgen sees it: that is
    ``symgen.sum(symgen.square(w))``. (The matrix frontend first asks SymPy for the 1 x 1
    product back, which works for ``(r.T*r)[0, 0]`` but not for a power of entries.) None
    for a sum that index notation does not read either (an entry at an integer index
    beside a symbolic dimension): the frontend then says what to write."""
    try:
        return _Matrices(_Arrays(params, data)).translate(expr).loss
    except SpecError:
        return None


def translate(loss: sp.Basic, params: tuple, data: tuple, reduce: str) -> Translated:
    if reduce != "sum":
        raise SpecError(
            "reduce= does not apply to a loss in index notation: its Sum says how samples "
            "add up (divide the Sum by n for a mean)"
        )
    for s in (*params, *data):
        if not isinstance(s, (sp.IndexedBase, sp.Symbol, sp.MatrixSymbol)):
            raise SpecError(
                f"{s!r}: params and data of a loss in index notation are IndexedBase arrays, "
                "symbols or MatrixSymbols"
            )
    arrays = _Arrays(params, data)
    per_sample = _per_sample(loss, params, data, arrays)
    if per_sample is not None:
        return per_sample
    return _Matrices(arrays).translate(loss)


# -- the index ranges and the arrays ---------------------------------------------------


def _extent(limit: tuple) -> sp.Expr:
    """The length of the axis a sum's limit ``(i, 0, n - 1)`` runs over: ``n``."""
    index, low, high = limit
    if low != 0:
        raise SpecError(
            f"the sum over {index} starts at {low}; a sum runs over a whole axis, "
            f"({index}, 0, n - 1)"
        )
    extent = sp.sympify(high + 1)
    if not (extent.is_Symbol or (extent.is_Integer and extent > 0)):
        raise SpecError(
            f"the sum over {index} ends at {high}; a sum runs over a whole axis, "
            f"({index}, 0, n - 1) with n a symbol (the length of the arrays) or a positive integer"
        )
    return extent


class _Arrays:
    """The user's arrays by name, and the extent of each of their axes (from the sums whose
    indices they are read at, or a declared ``IndexedBase(..., shape=...)``)."""

    def __init__(self, params: tuple, data: tuple) -> None:
        self.role = {_name(s): "param" for s in params} | {_name(s): "data" for s in data}
        self.declared = {_name(s): s for s in (*params, *data)}
        self.extents: dict[tuple[str, int], sp.Expr] = {}
        for s in (*params, *data):
            shape = getattr(s, "shape", None)
            if shape is not None:
                for axis, d in enumerate(shape):
                    self.extents[(_name(s), axis)] = sp.sympify(d)

    def base(self, entry: sp.Basic) -> tuple[str, tuple]:
        """The array an entry reads and its indices; a ``SpecError`` for one that is not a
        param or data."""
        if isinstance(entry, sp.Indexed):
            name, indices = entry.base.label.name, entry.indices
        else:
            name, indices = entry.parent.name, (entry.i, entry.j)
        if name not in self.role:
            raise SpecError(
                f"the loss reads {entry}, but {name} is neither a param nor data; add it to "
                "params or data"
            )
        declared = self.declared[name]
        if isinstance(declared, sp.Symbol):
            raise SpecError(
                f"{name} is a Symbol but the loss indexes it ({entry}): make it an IndexedBase"
            )
        ndim = len(indices)
        if isinstance(declared, sp.IndexedBase) and declared.shape is not None:
            if len(declared.shape) != ndim:
                raise SpecError(f"{entry}: {name} has {len(declared.shape)} axes")
        if ndim > 2:
            raise SpecError(f"{entry}: arrays of more than two axes are not supported")
        return name, indices

    def record(self, name: str, axis: int, extent: sp.Expr, where: sp.Basic) -> None:
        known = self.extents.setdefault((name, axis), extent)
        if known != extent:
            raise SpecError(
                f"{where}: axis {axis} of {name} has length {known} elsewhere but is summed "
                f"over here with length {extent}"
            )

    def extent(self, name: str, axis: int, where: sp.Basic) -> sp.Expr:
        extent = self.extents.get((name, axis))
        if extent is None:
            raise SpecError(
                f"{where}: the length of axis {axis} of {name} is unknown (it is only read at "
                f"labels); declare it: IndexedBase({name!r}, shape=(...))"
            )
        return extent


def _name(s: sp.Basic) -> str:
    return s.label.name if isinstance(s, sp.IndexedBase) else s.name


def _entries(expr: sp.Basic) -> list[sp.Basic]:
    return sorted(
        {e for e in sp.preorder_traversal(expr) if isinstance(e, (sp.Indexed, MatrixElement))},
        key=sp.default_sort_key,
    )


# -- per-sample problems -----------------------------------------------------------------


def _per_sample(loss, params, data, arrays: _Arrays) -> Translated | None:
    """The per-sample problem ``loss`` is, or None when it is not one (see the module)."""
    if not all(isinstance(p, sp.Symbol) for p in params):
        return None
    if not data or not all(isinstance(d, sp.IndexedBase) for d in data):
        return None
    sums = sorted(loss.atoms(sp.Sum), key=sp.default_sort_key)
    if not sums or any(len(s.limits) != 1 for s in sums):
        return None
    extents = {_extent(s.limits[0]) for s in sums}
    if len(extents) != 1 or not next(iter(extents)).is_Symbol:  # a literal length: checked
        return None
    (n,) = extents
    symbols = {_name(d): sp.Symbol(_name(d)) for d in data}
    bodies = []
    for s in sums:
        index = s.limits[0][0]
        body = s.function
        if body.has(sp.Sum) or body.has(MatrixElement):
            return None
        entries = _entries(body)
        if any(len(e.indices) != 1 or e.indices[0] != index for e in entries):
            return None
        for e in entries:
            arrays.base(e)  # a param or data, else a SpecError
            if arrays.role[e.base.label.name] != "data":
                return None
        if body.xreplace({e: symbols[e.base.label.name] for e in entries}).has(index):
            return None
        bodies.append(body.xreplace({e: symbols[e.base.label.name] for e in entries}))
    outside = loss.xreplace({s: sp.Dummy() for s in sums})
    if outside.has(sp.Indexed):
        return None
    terms = _terms(loss, dict(zip(sums, bodies, strict=True)), n)
    if terms is None:
        return None
    body, mean = terms
    used = {d for d in data if symbols[_name(d)] in body.free_symbols}
    if len(used) != len(data):
        return None  # the Problem says which data do not appear
    return Translated(
        body, tuple(params), tuple(symbols[_name(d)] for d in data), "mean" if mean else "sum"
    )


def _terms(loss: sp.Expr, bodies: dict, n: sp.Expr) -> tuple[sp.Expr, bool] | None:
    """The per-sample term and whether it is a mean, when ``loss`` is a sum of terms
    ``c*Sum(f)`` and ``n*g`` (a sum over samples), or of ``c*Sum(f)/n`` and ``g`` (a mean);
    ``c`` and ``g`` constant over the samples. None otherwise."""
    parts: dict[int, list[sp.Expr]] = {0: [], -1: []}  # power of n: the per-sample parts
    for term in sp.Add.make_args(sp.expand_mul(loss, deep=False)):
        found = [f for f in sp.Mul.make_args(term) if isinstance(f, sp.Sum)]
        if len(found) > 1:
            return None
        rest = term / found[0] if found else term
        if rest.has(sp.Sum):
            return None
        coeff, power = rest.as_independent(n, as_Add=False)
        exponent = {sp.S.One: 0, 1 / n: -1, n: 1}.get(power)
        if exponent is None:
            return None
        if found:
            parts.setdefault(exponent, []).append(coeff * bodies[found[0]])
        else:  # a constant term: n*g is g per sample; g is g/n, a mean's term
            parts.setdefault(exponent - 1, []).append(coeff)
    if set(parts) - {0, -1} or (parts[0] and parts[-1]):
        return None
    mean = bool(parts[-1])
    return sp.Add(*parts[-1 if mean else 0]), mean


# -- matrix problems ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Term:
    """A translated expression: a matrix expression whose rows (columns) run over the free
    index ``rows`` (``cols``), None for an axis of length 1; or a scalar expression."""

    expr: sp.Basic
    rows: sp.Basic | None = None
    cols: sp.Basic | None = None

    @property
    def indices(self) -> tuple:
        return tuple(x for x in (self.rows, self.cols) if x is not None)


class _Matrices:
    """The matrix translation (see the module)."""

    def __init__(self, arrays: _Arrays) -> None:
        self.arrays = arrays
        self.extents: dict[sp.Basic, sp.Expr] = {}  # bound index -> its axis length
        #: An index for each label read ``y[i]``: (labels' name, the index they are read at).
        self.labels: dict[sp.Basic, tuple[str, sp.Basic]] = {}
        self.label_names: set[str] = set()
        self.numbers: set[str] = set()
        self.symbols: dict[str, sp.Basic] = {}

    def translate(self, loss: sp.Basic) -> Translated:
        self._record(loss)
        term = self._take(self.term(loss))
        if term.indices:
            free = ", ".join(str(x) for x in term.indices)
            raise SpecError(f"the loss has the free index {free}: sum over it")
        for name, role in self.arrays.role.items():
            if name not in self.numbers | self.label_names and name not in self.symbols:
                if isinstance(self.arrays.declared[name], sp.IndexedBase):
                    raise SpecError(f"{role} '{name}' does not appear in the loss {loss}")
        both = sorted(self.numbers & self.label_names)
        if both:
            raise SpecError(
                f"{both[0]} is read at labels and also used as numbers; labels can only index"
            )
        params = tuple(self.symbol(_name(p)) for p in self._declared("param"))
        data = tuple(self.symbol(_name(d)) for d in self._declared("data"))
        return Translated(sp.sympify(term.expr), params, data, "sum")

    def _declared(self, role: str) -> list:
        return [s for name, s in self.arrays.declared.items() if self.arrays.role[name] == role]

    def symbol(self, name: str) -> sp.Basic:
        """The MatrixSymbol (or symbol) standing for the user's array ``name``."""
        if name not in self.symbols:
            declared = self.arrays.declared[name]
            if isinstance(declared, sp.IndexedBase):
                ndim = 2 if (name, 1) in self.arrays.extents else 1
                if declared.shape is not None:
                    ndim = len(declared.shape)
                rows = self.arrays.extent(name, 0, declared)
                cols = self.arrays.extent(name, 1, declared) if ndim == 2 else sp.S.One
                self.symbols[name] = sp.MatrixSymbol(name, rows, cols)
            else:
                self.symbols[name] = declared
        return self.symbols[name]

    # -- the lengths of the arrays' axes, from the sums that index them ---------------------
    def _record(self, expr: sp.Basic, bound: dict | None = None) -> None:
        bound = dict(bound or {})
        if isinstance(expr, sp.Sum):
            for limit in expr.limits:
                bound[limit[0]] = _extent(limit)
            self._record(expr.function, bound)
            return
        if isinstance(expr, sp.Indexed) or (
            isinstance(expr, MatrixElement) and isinstance(expr.parent, sp.MatrixSymbol)
        ):
            name, indices = self.arrays.base(expr)
            for axis, index in enumerate(indices):
                if index in bound:
                    self.arrays.record(name, axis, bound[index], expr)
                elif isinstance(index, sp.Indexed):  # labels read at a bound index
                    self._record(index, bound)
            return
        for arg in expr.args:
            self._record(arg, bound)

    # -- expressions ----------------------------------------------------------------------
    def term(self, expr: sp.Basic) -> _Term:
        if isinstance(expr, (sp.Indexed, MatrixElement)):
            return self._entry(expr)
        if isinstance(expr, sp.Sum):
            return self._sum(expr, "sum")
        if _is_logsumexp(expr):  # log(Sum(exp(f))): the stable logsumexp
            inner = expr.args[0]
            return self._sum(sp.Sum(inner.function.args[0], *inner.limits), "logsumexp")
        if isinstance(expr, MatrixExpr):
            raise SpecError(
                f"{expr} is a matrix in a loss in index notation; read its entries, {expr}[i, j]"
            )
        if not _indexed(expr):
            return _Term(expr)
        return self._elementwise(expr)

    def _entry(self, entry: sp.Basic) -> _Term:
        if isinstance(entry, MatrixElement) and not isinstance(entry.parent, sp.MatrixSymbol):
            raise SpecError(f"unsupported entry {entry} of a matrix expression")
        name, indices = self.arrays.base(entry)
        self.numbers.add(name)
        axes: list[sp.Basic | None] = []
        for axis, index in enumerate(indices):
            if index in self.extents:
                axes.append(index)
            elif isinstance(index, sp.Indexed):
                axes.append(self._label(index, name, axis, entry))
            elif index == 0 and self.arrays.extents.get((name, axis)) == 1:
                axes.append(None)  # the one entry of an axis of length 1
            else:
                raise SpecError(
                    f"{entry}: index {index} is neither the index of an enclosing Sum nor a "
                    "label; index notation reads whole axes"
                )
        if len(axes) == 2 and axes[0] is not None and axes[0] == axes[1]:
            raise SpecError(f"{entry}: a diagonal (the same index twice) is not supported")
        return _Term(self.symbol(name), axes[0], axes[1] if len(axes) == 2 else None)

    def _label(self, read: sp.Indexed, array: str, axis: int, entry: sp.Basic) -> sp.Basic:
        """The index standing for the labels ``read`` (``y[i]``) as an index of ``array``."""
        name, indices = self.arrays.base(read)
        if len(indices) != 1 or indices[0] not in self.extents:
            raise SpecError(f"{entry}: labels are read at the index of an enclosing Sum, y[i]")
        if self.arrays.role[name] != "data":
            raise SpecError(f"{entry}: labels {name} must be data (class indices)")
        key = (name, indices[0])
        index = next((k for k, v in self.labels.items() if v == key), None)
        if index is None:
            index = sp.Dummy(f"{name}_{indices[0]}")
            self.labels[index] = key
        extent = self.arrays.extent(array, axis, entry)
        known = self.extents.setdefault(index, extent)
        if known != extent:
            raise SpecError(f"{entry}: labels {name} index axes of lengths {known} and {extent}")
        self.label_names.add(name)
        return index

    def _take(self, term: _Term) -> _Term:
        """``term`` read at its labels (``symgen.take``) where its only other index is the one
        the labels are read at; as it is otherwise."""
        for index, (name, at) in self.labels.items():
            if index in term.indices and set(term.indices) <= {index, at}:
                matrix = _oriented(term, (at if at in term.indices else None, index))
                term = _Term(functions.take(matrix, self.symbol(name)), at, None)
        return term

    def _labelled(self, term: _Term) -> bool:
        return any(i in self.labels for i in term.indices)

    def _elementwise(self, expr: sp.Basic) -> _Term:
        """An expression over entries: ``symgen.elementwise`` of a function of them."""
        parts: dict[sp.Symbol, _Term] = {}

        def split(e: sp.Basic) -> sp.Basic:
            if isinstance(e, (sp.Indexed, MatrixElement, sp.Sum)) or _is_logsumexp(e):
                u = sp.Dummy(f"u{len(parts)}", real=True)
                parts[u] = self.term(e)
                return u
            if not _indexed(e):
                return e
            return e.func(*[split(a) for a in e.args])

        return self._combine(split(expr), parts)

    def _combine(self, body: sp.Expr, parts: dict) -> _Term:
        """``body`` (over the dummies of ``parts``) applied elementwise to the parts.

        Entries at labels are read as late as a sum allows and as early as anything else
        does: ``Z[i, y[i]]`` is ``take(Z, y)``, and in ``f - (Sum(X[i, c]*W[c, y[i]], c) +
        b[y[i]])`` the labelled terms are taken together, ``take(X*W + b.T, y)``: the
        logits that a ``logsumexp`` reads too (one node, one gradient)."""
        labelled = {u for u, t in parts.items() if self._labelled(t)}
        if labelled:
            grouped = self._group(body, parts, labelled)
            if grouped is not None:
                return self._combine(*grouped)
            linear = all(not (sp.diff(body, u).free_symbols & set(parts)) for u in parts)
            if not (labelled == set(parts) and linear):
                parts = {u: self._take(t) for u, t in parts.items()}
        indices = list(dict.fromkeys(x for t in parts.values() for x in t.indices))
        if not indices:
            return _Term(body.xreplace({u: t.expr for u, t in parts.items()}))
        # Scalars go into the body; a sum over everything, as a 1 x 1 matrix operand.
        reductions: dict[sp.Symbol, _Term] = {}
        for u, t in list(parts.items()):
            if t.indices:
                continue
            found = sorted(t.expr.atoms(functions.FullReduce), key=sp.default_sort_key)
            names = {f: sp.Dummy("r", real=True) for f in found}
            reductions.update({v: _Term(_one_by_one(f)) for f, v in names.items()})
            body = body.xreplace({u: t.expr.xreplace(names)})
            del parts[u]
        parts.update(reductions)
        if len(indices) > 2:
            raise SpecError(
                f"more than two free indices ({', '.join(map(str, indices))}) in one "
                "expression; index notation here writes matrices"
            )
        target = _target(list(parts.values()), sorted(indices, key=self._rank))
        operands = {u: _oriented(t, target) for u, t in parts.items()}
        if len(operands) == 1 and body in operands:
            return _Term(operands[body], *target)
        # The operands in a canonical order, named by position: the same expression built
        # twice is the same matrix expression (one node of the IR).
        # An operand read twice (SymPy's two dummy-indexed copies of one product in
        # ``(r.T*r)[0, 0]``) is one operand: ``(u0 - u1)*(u0 - u1)`` is ``(u0 - u1)**2``.
        distinct = sorted(set(operands.values()), key=sp.default_sort_key)
        position = {operand: k for k, operand in enumerate(distinct)}
        names = {u: sp.Symbol(f"_u{position[operands[u]]}", real=True) for u in operands}
        arguments = tuple(sp.Symbol(f"_u{k}", real=True) for k in range(len(distinct)))
        fn = sp.Lambda(arguments, body.xreplace(names))
        return _Term(functions.elementwise(fn, *distinct), *target)

    def _group(self, body: sp.Expr, parts: dict, labelled: set) -> tuple | None:
        """``body`` with the terms of its sum that read labelled parts taken together (one
        ``take`` of their sum), when other terms do not read them; None otherwise."""
        terms = sp.Add.make_args(body)
        inside = [t for t in terms if t.free_symbols & labelled]
        outside = [t for t in terms if not t.free_symbols & labelled]
        if (
            not inside
            or not outside
            or any(t.free_symbols & (set(parts) - labelled) for t in inside)
        ):
            return None
        coeff, inner = sp.factor_terms(sp.Add(*inside)).as_coeff_Mul()
        used = {u: parts[u] for u in parts if u in inner.free_symbols}
        taken = self._take(self._combine(inner, used))
        if self._labelled(taken):
            return None
        v = sp.Dummy("t", real=True)
        rest = {u: t for u, t in parts.items() if u not in labelled}
        return coeff * v + sp.Add(*outside), {**rest, v: taken}

    def _rank(self, index: sp.Basic | None) -> int:
        """Indices bound by outer sums first, labels last; None (no index) after all."""
        order = list(self.extents)
        return order.index(index) if index in self.extents else len(order)

    def _sum(self, expr: sp.Sum, kind: str) -> _Term:
        summed = []
        for limit in reversed(expr.limits):  # the outer sums' indices first: rows first
            index = limit[0]
            if index in self.extents:
                raise SpecError(f"{expr}: the index {index} is summed over twice")
            self.extents[index] = _extent(limit)
            summed.append(index)
        summed.reverse()
        try:
            term = None
            if kind == "sum":
                term = self._product(expr.function, summed[0])
                if term is not None:
                    summed = summed[1:]
            if term is None:
                term = self.term(expr.function)
            for index in [i for i in summed if i not in term.indices]:
                term = self._reduce(term, index, kind)
            summed = [i for i in summed if i in term.indices]
            if summed and set(term.indices) <= set(summed):  # over every entry
                term = self._take(term)
                reduce = functions.sum if kind == "sum" else functions.logsumexp
                return _Term(reduce(term.expr))
            for index in summed:
                term = self._reduce(term, index, kind)
            return term
        finally:
            for index in (limit[0] for limit in expr.limits):
                self.extents.pop(index, None)

    def _product(self, body: sp.Expr, index: sp.Basic) -> _Term | None:
        """``Sum(A*B*c, index)`` as the matrix product of ``A`` and ``B`` (times ``c``), when
        ``A`` and ``B`` are the only factors that hold ``index`` and the product keeps a free
        index; None otherwise."""
        factors = sp.Mul.make_args(body)
        held = [f for f in factors if f.has(index)]
        if len(held) != 2:
            return None
        a, b = (self.term(f) for f in held)
        if index not in a.indices or index not in b.indices:
            return None
        x = next((i for i in a.indices if i != index), None)
        y = next((i for i in b.indices if i != index), None)
        if (x is None and y is None) or x == y:
            return None
        if self._rank(x) > self._rank(y):  # the outer index runs over the rows: X*w, not w.T*X.T
            a, b, x, y = b, a, y, x
        product = _Term(_oriented(a, (x, index)) * _oriented(b, (index, y)), x, y)
        rest = sp.Mul(*[f for f in factors if f not in held])
        if rest == 1:
            return product
        u = sp.Dummy("p", real=True)
        return self._elementwise_with(rest * u, {u: product})

    def _elementwise_with(self, expr: sp.Expr, parts: dict) -> _Term:
        """``expr`` elementwise over its entries and over ``parts`` (dummies in it)."""
        known = dict(parts)

        def split(e: sp.Basic) -> sp.Basic:
            if isinstance(e, (sp.Indexed, MatrixElement, sp.Sum)) or _is_logsumexp(e):
                u = sp.Dummy("u", real=True)
                known[u] = self.term(e)
                return u
            if not _indexed(e):
                return e
            return e.func(*[split(a) for a in e.args])

        return self._combine(split(expr), known)

    def _reduce(self, term: _Term, index: sp.Basic, kind: str) -> _Term:
        """``term`` summed (or log-sum-exp'd) over ``index``."""
        extent = self.extents[index]
        if index not in term.indices:  # constant along the index
            u = sp.Dummy("s", real=True)
            body = u * extent if kind == "sum" else u + sp.log(extent)
            return self._combine(body, {u: term})
        term = self._take(term)  # the labels are read at this index: before it is summed
        if index not in term.indices:
            raise SpecError(f"the sum over {index} sums entries read at labels read at {index}")
        reduce = functions.sum if kind == "sum" else functions.logsumexp
        if len(term.indices) == 1:
            return _Term(reduce(term.expr))
        axis = 0 if term.rows == index else 1
        rows, cols = (None, term.cols) if axis == 0 else (term.rows, None)
        return _Term(reduce(term.expr, axis=axis), rows, cols)


def _indexed(expr: sp.Basic) -> bool:
    """Whether ``expr`` holds entries of arrays (or sums)."""
    return expr.has(sp.Indexed, MatrixElement, sp.Sum)


def _target(terms: list[_Term], indices: list) -> tuple:
    """The (rows, cols) indices of an elementwise result over ``terms``: those of an array
    with both (one of the user's first: no input is transposed), else ``indices`` (outer
    first) down the rows and along the columns; one index stays on its axis."""
    both = [t for t in terms if t.rows is not None and t.cols is not None]
    both.sort(key=lambda t: not isinstance(t.expr, sp.MatrixSymbol))
    if both:
        return (both[0].rows, both[0].cols)
    if len(indices) == 1:
        first = next(t for t in terms if t.indices)
        return (indices[0], None) if first.rows is not None else (None, indices[0])
    return (indices[0], indices[1])


def _is_logsumexp(expr: sp.Basic) -> bool:
    """``log(Sum(exp(f), ...))``."""
    return (
        isinstance(expr, sp.log)
        and isinstance(expr.args[0], sp.Sum)
        and isinstance(expr.args[0].function, sp.exp)
    )


def _one_by_one(reduction: functions.FullReduce) -> sp.Basic:
    """A sum (or logsumexp) over every entry, as a 1 x 1 matrix: over the rows of each
    column's."""
    kind = functions.sum if reduction.kind == "sum" else functions.logsumexp
    return kind(kind(reduction.arg, axis=1), axis=0)


def _oriented(term: _Term, target: tuple) -> sp.Basic:
    """``term``'s matrix with its indices on the axes of ``target`` (transposed if needed)."""
    rows, cols = target
    if not term.indices or (term.rows in (None, rows) and term.cols in (None, cols)):
        return term.expr
    return term.expr.T
