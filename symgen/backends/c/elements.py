"""How a C loop (a CUDA kernel or a C backend pass) reaches the elements of its arrays.

Shared by the CUDA and C backends: C names for user symbols, the index of an element of
a (possibly broadcast or transposed) operand as a ``c_ast`` expression, the operands an
element's statements load, and the statement that adds an element into a reduction.
"""

from __future__ import annotations

from collections.abc import Iterable

import sympy as sp

from symgen.codegen import c_ast as c
from symgen.codegen.printers import C_RESERVED
from symgen.compiler.ir import Shape
from symgen.compiler.optimize import Reduction, gathered, transposed
from symgen.errors import SpecError


def is_one(d: sp.Expr) -> bool:
    return sp.sympify(d) == 1


#: Prefixes of the names the generated C code declares (registers, outputs, accumulators,
#: helper functions). Problem refuses user names with a leading underscore already.
RESERVED_PREFIXES = ("_v_", "_w_", "_acc", "_line", "sg_")


def refuse_reserved(names: Iterable[str], backend: str) -> None:
    """A SpecError when a user's name starts like a name the generated C code declares."""
    clash = sorted(n for n in names if n.startswith(RESERVED_PREFIXES))
    if clash:
        raise SpecError(
            f"the {backend} backend reserves the name prefix of {clash[0]!r}; rename it"
        )


class CNames:
    """C names: user names that C reserves get a trailing underscore."""

    def __init__(self, taken: Iterable[str] = ()) -> None:
        self.taken = set(taken)

    def c(self, name: str) -> str:
        return f"{name}_" if name in C_RESERVED else name

    def dim(self, d: sp.Expr) -> c.Expr:
        """A dimension (an integer expression of dimension variables) as a ``long long``."""
        d = sp.sympify(d)
        if d.is_Integer:
            return c.Literal(f"{int(d)}LL")
        if d.is_Symbol:
            return c.Var(self.c(d.name))
        if d.is_Add or d.is_Mul:
            parts = [self.dim(a) for a in d.as_ordered_terms()] if d.is_Add else None
            if parts is None:
                parts = [self.dim(a) for a in d.as_ordered_factors()]
            return c.add(*parts) if d.is_Add else c.mul(*parts)
        raise SpecError(f"the dimension {d} is not a sum or product of dimension variables")


ROW, COL, FLAT = c.Var("_i"), c.Var("_j"), c.Var("_e")


def _index(s0, s1, row: c.Expr, col: c.Expr, names: CNames) -> c.Expr:
    """The index of element (row, col) in a C-ordered array of shape (s0, s1) that
    broadcasts along its axes of size 1."""
    zero = c.Literal("0")
    row, col = (zero if is_one(s0) else row), (zero if is_one(s1) else col)
    if is_one(s1):
        return row
    if is_one(s0):
        return col
    return c.add(c.mul(row, names.dim(s1)), col)


def element_index(shape: Shape, domain: Shape, flat: bool, names: CNames) -> c.Expr:
    """The index of element (_i, _j) (or _e) of an array of ``shape`` in ``domain``."""
    if len(domain) == 1:
        return FLAT
    s0, s1 = shape if len(shape) == 2 else (sp.S.One, *shape)
    if flat and (tuple(shape) == tuple(domain) or (not is_one(s0) and not is_one(s1))):
        return FLAT
    return _index(s0, s1, ROW, COL, names)


def transposed_index(shape: Shape, names: CNames) -> c.Expr:
    """The index of element (_i, _j) of ``x.T`` in ``x`` of ``shape`` (a0, a1)."""
    return _index(*shape, COL, ROW, names)


def store_guard(shape: Shape, domain: Shape) -> c.Expr | None:
    """The condition under which an element of a value of ``shape``, broadcast along an
    axis of a 2-D ``domain``, is written: only by the first element along that axis (None:
    every element is written)."""
    guards = [
        c.BinOp("==", var, c.Literal("0"))
        for var, size, extent in zip((ROW, COL), shape, domain, strict=False)
        if len(domain) == 2 and is_one(size) and not is_one(extent)
    ]
    if not guards:
        return None
    out = guards[0]
    for g in guards[1:]:
        out = c.BinOp("&&", out, g)
    return out


def store(target: c.Expr, value: c.Expr, shape: Shape, domain: Shape) -> c.Stmt:
    """``target = value``, guarded by ``store_guard``."""
    write = c.Assign(target, value)
    guard = store_guard(shape, domain)
    return write if guard is None else c.If(guard, (write,))


def array_name(v: sp.Expr) -> str:
    if isinstance(v, gathered):
        return array_name(v.args[0])
    return v.args[0].name if isinstance(v, transposed) else v.name


def label_index(shape: Shape, index: str, names: CNames) -> c.Expr:
    """The index of entry ``[_i, index[_i]]`` of an array of ``shape`` (N, K) (or (1, K):
    every row reads the one row), in a loop whose rows are ``_i``."""
    return _index(*shape, ROW, c.Index(c.Var(names.c(index)), ROW), names)


def gathered_index(load: gathered, shapes: dict, names: CNames) -> c.Expr:
    """The index of the entry that ``load`` reads (``label_index``; a view ``x.T`` reads
    ``x[index[_i], _i]``), in a loop whose rows are ``_i``."""
    array, index = load.args
    if isinstance(array, transposed):
        label = c.Index(c.Var(names.c(index.name)), ROW)
        return _index(*shapes[array.args[0].name], label, ROW, names)
    return label_index(shapes[array.name], index.name, names)


def label_arrays(loads) -> list[str]:
    """The integer arrays (class labels) that the gathered loads among ``loads`` index by."""
    return sorted({v.args[1].name for v in loads if isinstance(v, gathered)})


def operands(exprs, computed: set[str], shapes: dict) -> tuple[dict[sp.Expr, str], set[str]]:
    """The arrays ``exprs`` read from memory (plain, transposed or at labels), each with the
    register it is loaded into, and their other symbols (scalars and dimensions); names in
    ``computed`` are neither."""
    loads: dict[sp.Expr, str] = {}
    scalars: set[str] = set()
    for e in exprs:
        gathers = e.atoms(gathered)
        for g in sorted(gathers, key=str):
            array, index = g.args
            view = "_T" if isinstance(array, transposed) else ""
            loads.setdefault(g, f"_v_{array_name(array)}{view}_at_{index.name}")
        e = e.xreplace({g: sp.Dummy() for g in gathers})  # not 0: x*0 would drop x
        views = e.atoms(transposed)
        for v in sorted(views, key=str):
            loads.setdefault(v, f"_v_{v.args[0].name}_T")
        plain = e.xreplace({v: sp.Dummy() for v in views}).free_symbols
        for sym in sorted(plain, key=str):
            if isinstance(sym, sp.Dummy):
                continue
            if sym.name in computed:
                continue
            if sym.name in shapes:
                loads.setdefault(sym, f"_v_{sym.name}")
            else:
                scalars.add(sym.name)
    return loads, scalars


#: The initial value of an accumulator of each reduction.
INITIAL = {"sum": c.Literal("0.0"), "max": c.Literal("-INFINITY")}


def accumulate(acc: c.Expr, s: Reduction, value: sp.Expr | None = None) -> c.Stmt:
    """The statement adding one element (``value``, by default ``s.summand``) to the
    accumulator ``acc`` (a ``double``) of the reduction ``s``."""
    term = c.Cast("double", s.summand if value is None else value)
    if s.op == "max":
        return c.Assign(acc, c.Call("sg_max", (acc, term)))
    return c.Assign(acc, term, "+=")
