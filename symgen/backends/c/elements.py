"""How a C loop (a CUDA kernel or a C backend pass) reaches the elements of its arrays.

Shared by ``cuda.py`` and ``native.py``: C names for user symbols, the index of an
element of a (possibly broadcast or transposed) operand, the operands an element's
statements load, and the line that adds an element into a reduction.
"""

from __future__ import annotations

from collections.abc import Iterable

import sympy as sp

from symgen.codegen.printers import C_RESERVED, CudaPrinter
from symgen.compiler.ir import Shape
from symgen.compiler.optimize import Stmt, transposed
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

    def dim(self, d: sp.Expr) -> str:
        d = sp.sympify(d)
        if d.is_Integer:
            return f"{int(d)}LL"
        return CudaPrinter("float64", {s.name: self.c(s.name) for s in d.free_symbols}).doprint(d)


def _index(s0, s1, row: str, col: str, names: CNames) -> str:
    """The index of element (row, col) in a C-ordered array of shape (s0, s1) that
    broadcasts along its axes of size 1."""
    row, col = ("0" if is_one(s0) else row), ("0" if is_one(s1) else col)
    if is_one(s1):
        return row
    if is_one(s0):
        return col
    return f"{row}*{names.dim(s1)} + {col}"


def element_index(shape: Shape, domain: Shape, flat: bool, names: CNames) -> str:
    """The index of element (_i, _j) (or _e) of an array of ``shape`` in ``domain``."""
    if len(domain) == 1:
        return "_e"
    s0, s1 = shape if len(shape) == 2 else (sp.S.One, *shape)
    if flat and (tuple(shape) == tuple(domain) or (not is_one(s0) and not is_one(s1))):
        return "_e"
    return _index(s0, s1, "_i", "_j", names)


def transposed_index(shape: Shape, names: CNames) -> str:
    """The index of element (_i, _j) of ``x.T`` in ``x`` of ``shape`` (a0, a1)."""
    return _index(*shape, "_j", "_i", names)


def store_guards(shape: Shape, domain: Shape) -> list[str]:
    """Conditions under which an element of a value of ``shape``, broadcast along an axis of
    a 2-D ``domain``, is written: only by the first element along that axis."""
    return [
        f"{var} == 0"
        for var, size, extent in zip(("_i", "_j"), shape, domain, strict=False)
        if len(domain) == 2 and is_one(size) and not is_one(extent)
    ]


def array_name(v: sp.Expr) -> str:
    return v.args[0].name if isinstance(v, transposed) else v.name


def operands(exprs, computed: set[str], shapes: dict) -> tuple[dict[sp.Expr, str], set[str]]:
    """The arrays ``exprs`` read from memory (plain or transposed), each with the register
    it is loaded into, and their other symbols (scalars and dimensions); names in
    ``computed`` are neither."""
    loads: dict[sp.Expr, str] = {}
    scalars: set[str] = set()
    for e in exprs:
        views = e.atoms(transposed)
        for v in sorted(views, key=str):
            loads.setdefault(v, f"_v_{v.args[0].name}_T")
        plain = e.xreplace({v: sp.S.Zero for v in views}).free_symbols
        for sym in sorted(plain, key=str):
            if sym.name in computed:
                continue
            if sym.name in shapes:
                loads.setdefault(sym, f"_v_{sym.name}")
            else:
                scalars.add(sym.name)
    return loads, scalars


def reduced(s: Stmt) -> sp.Expr:
    """The value a reduction statement adds up (or takes the maximum of), per element."""
    return sp.Mul(*s.exprs, evaluate=False) if s.kind == "dot" else s.exprs[0]


def accumulate(acc: str, s: Stmt, cprint) -> tuple[str, str, str]:
    """The line adding one element to accumulator ``acc``, its initial value, its op."""
    value = cprint(reduced(s))
    if s.kind == "max":
        return f"{acc} = sg_max({acc}, (double)({value}));", "-INFINITY", "max"
    return f"{acc} += (double)({value});", "0.0", "sum"
