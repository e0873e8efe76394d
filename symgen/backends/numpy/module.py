"""The NumPy backend: program → plan (plain data) → ``numpy_module.py.j2``.

Scalar problems compute on Python floats with ``math`` (a Rosenbrock step is a
few microseconds); per-sample problems compute on NumPy arrays, one pass over
the samples for the loss and all partials, with sums written as ``np.dot``
where a product is summed; matrix problems call ``@`` (BLAS) for products,
with transposes passed as views, and fused NumPy expressions around them.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Protocol

import sympy as sp

from symgen.backends.numpy import chains, row_groups, row_reductions, sums, tall_products
from symgen.backends.numpy import gram as grams
from symgen.backends.numpy.inplace import InPlace
from symgen.backends.numpy.masked import MaskedPieces
from symgen.backends.numpy.steps import Update, updates
from symgen.codegen import second_order
from symgen.codegen.optimizers import Baked
from symgen.codegen.plan import Arg, ModulePlan, least_squares_plan, module_fields
from symgen.codegen.plan import shape_text as _shape_text
from symgen.codegen.printers import ArrayPrinter, ScalarPrinter, python_helpers
from symgen.codegen.templating import render
from symgen.compiler.optimize import (
    Assign,
    Dot,
    Elementwise,
    Fill,
    Identity,
    Kernel,
    MatrixProduct,
    Max,
    Place,
    Program,
    Reduction,
    Scatter,
    Stmt,
    Sum,
    transposed,
)
from symgen.compiler.pipeline import Compiled

TEMPLATES = (Path(__file__).parent / "templates",)


class CompiledPasses(Protocol):
    """What a module whose passes run as compiled code carries (``backends.c``)."""

    source: str
    kernels: tuple
    accumulators: tuple[int, ...]


class PassCompiler(Protocol):
    """A backend that runs some passes of the NumPy module as compiled code (``backends.c``):
    it is handed each pass while the module is planned, and says which it takes."""

    def fused_products(self, program: Program, shapes: dict[str, tuple]) -> dict: ...

    def pass_lines(
        self, kernel, prefix, shapes, stored, scalar_line, products=None, columns=None, placed=None
    ): ...

    def choose(self, products, fused: list[str], apart: list[str]) -> list[str]: ...

    def choose_gram(self, products, fused: list[str], apart: list[str]) -> list[str]: ...

    def module(self, name: str) -> CompiledPasses | None: ...

    def product(self, left: str, right: str) -> str:
        """How the module spells the matrix product ``left @ right`` (``backends.c``: a
        call that chooses BLAS's thread count)."""
        ...


@dataclass(frozen=True)
class Column:
    """Where a pass writes a per-sample value (N,) that a function returns as a column:
    column ``index`` of the C-ordered (N, ``width``) array ``matrix`` (the Jacobian), so
    that no copy puts it there afterwards."""

    matrix: str
    index: int
    width: int

    def view(self) -> str:
        return f"{self.matrix}[:, {self.index}]"


@dataclass(frozen=True)
class Body:
    """Statements of one function, grouped by kernel, each group with a comment."""

    groups: tuple[tuple[str, tuple[str, ...]], ...]
    results: tuple[str, ...]
    #: The module's helper functions (``_safelog``, ``_logaddexp``) and the modules
    #: (``math``) that the lines use, as their printers recorded them.
    helpers: frozenset[str] = frozenset()
    modules: frozenset[str] = frozenset()
    #: The results its passes wrote into their ``Column`` (the others are copied there).
    placed: frozenset[str] = frozenset()


@dataclass(frozen=True, kw_only=True)
class NumpyPlan(ModulePlan):
    """A NumPy module: the bodies as lines of Python grouped by pass, in the versions of
    the helpers that take arrays too; the C backend's compiled passes, if any."""

    loss_body: Body
    grad_body: Body
    #: The optimizer steps (sgd_step, momentum_step, adam_step) and their states.
    updates: tuple[Update, ...]
    #: The C backend's compiled passes (their C source and signatures), or None.
    native: CompiledPasses | None = None


class _StatementPrinter:
    """Python lines of statements: ``ScalarPrinter`` for scalar arithmetic, ``ArrayPrinter``
    for array work; both record the helpers and modules their text uses."""

    def __init__(
        self,
        arrays: frozenset[str],
        dtype: str,
        shapes: dict | None = None,
        product: Callable[[str, str], str] | None = None,
    ) -> None:
        self.scalar = ScalarPrinter()
        #: How a product that is not a tall one is spelled, from its operands' text (the C
        #: module's ``_product``; None: ``left @ right``).
        self.whole_product = product
        self.array = ArrayPrinter(arrays)
        self.dtype = dtype
        self.shapes = dict(shapes or {})
        #: The ``Piecewise`` that ``np.where`` must not compute (``shapes``: of each array).
        self.masked = MaskedPieces(self.array, self.shapes)
        #: The row reductions' and tall products' helpers the printed lines call
        #: (``row_reductions``, ``tall_products``).
        self.row_helpers: set[str] = set()

    def value(self, stmt: Stmt, kernel: Kernel, accumulator: bool = False) -> str:
        """The expression ``stmt`` assigns to its target (a reduction over the whole domain:
        a float); ``accumulator``: a sum over axes added into an accumulator (``sums``)."""
        a = self.array.doprint
        match stmt:
            case Assign(value=e):
                return repr(float(e)) if e.is_Number else self.scalar.doprint(e)
            case Elementwise(value=e):  # never hand out an argument (or a view of one)
                copy = e.is_Symbol or (isinstance(e, transposed) and e.args[0].is_Symbol)
                return f"np.array({a(e)})" if copy else a(e)
            case Fill(value=e, shape=shape):
                if self.array._is_array(e):
                    return f"np.broadcast_to({a(e)}, {_shape_text(shape)}).copy()"
                return f"np.full({_shape_text(shape)}, {a(e)}, dtype=DTYPE)"
            case MatrixProduct(left=left, right=right):
                return self.product(left, right)
            case Identity(size=size):  # an extent as written: 3 or D (not 3.0)
                return f"np.eye({size}, dtype=DTYPE)"
            case Dot(left=left, right=right):
                return sums.whole_dot(a(left), a(right), self.dtype, len(kernel.domain) == 1)
            case Sum(value=e) if not stmt.axes:
                return sums.whole_sum(a(e), self.dtype)
            case Sum(value=e):
                short_rows = stmt.axes == (1,) and len(kernel.domain) == 2
                if short_rows and not accumulator and not sums.widened(self.dtype):
                    self.row_helpers.add("_row_sums")  # along short rows: faster
                    return f"_row_sums({a(e)})"
                short_columns = stmt.axes == (0,) and len(kernel.domain) == 2
                if short_columns and sp.sympify(kernel.domain[1]) == 1:
                    short_columns = False  # one column: NumPy's sum runs down it
                if short_columns and not sums.widened(self.dtype):
                    self.row_helpers.add("_column_sums")  # down short rows: faster
                    return f"_column_sums({a(e)})"
                return sums.axis_sum(a(e), stmt.axes, self.dtype, accumulator)
            case Max(value=e):
                if not stmt.axes:  # np.max's method, without its dispatch (as ``sums``)
                    return f"float(np.maximum.reduce({a(e)}, axis=None))"
                if stmt.axes == (1,) and len(kernel.domain) == 2:  # along short rows: faster
                    self.row_helpers.add("_row_maxima")
                    return f"_row_maxima({a(e)})"
                axes = sums.axes_text(stmt.axes)
                return f"np.maximum.reduce({a(e)}, axis={axes}, keepdims=True)"
        raise TypeError(f"no Python spelling for {type(stmt).__name__}")

    def product(self, left: sp.Expr, right: sp.Expr) -> str:
        """``left @ right``, by BLAS; a tall product (``tall_products``) through its helper
        (its blocks run in OpenBLAS's small-matrix kernels, on the calling thread), any
        other as the pass compiler spells it (the C module: a thin one on one BLAS
        thread)."""
        a = self.array.doprint
        name = self._tall(left, right)
        if name is not None:
            self.row_helpers.add(name)
            flipped = isinstance(left, transposed)
            return f"{name}({a(left.args[0] if flipped else left)}, {a(right)})"
        if self.whole_product is not None:
            return self.whole_product(a(left), a(right))
        return f"{a(left)} @ {a(right)}"

    def _tall(self, left: sp.Expr, right: sp.Expr) -> str | None:
        """The ``tall_products`` helper of ``left @ right``, or None (not a tall product)."""
        shapes = [self._shape(x) for x in (left, right)]
        if None in shapes:
            return None
        (rows, inner), (_, cols) = shapes
        flipped = isinstance(left, transposed)
        if flipped and left.args[0] == right:  # a Gram product: BLAS's syrk, whole
            return None
        if flipped:
            rows, inner = inner, rows
        return tall_products.helper(rows, inner, cols, flipped)

    def _shape(self, x: sp.Expr) -> tuple | None:
        """The (symbolic) shape of the array ``x``, a name or a transposed name; None if
        unknown."""
        if isinstance(x, transposed):
            shape = self._shape(x.args[0])
            return None if shape is None else tuple(reversed(shape))
        shape = self.shapes.get(x.name) if x.is_Symbol else None
        if shape is None or len(shape) != 2:
            return None
        return tuple(sp.sympify(d) for d in shape)

    def scatter_lines(self, stmt: Scatter) -> list[str]:
        """The target made from its base (itself when ``in_place``, else a copy, or zeros),
        then the value added at one entry per row: gathered, added, put back."""
        a = self.array.doprint
        target, index = stmt.target.name, a(stmt.index)
        if stmt.base == 0:
            start = f"np.zeros({_shape_text(stmt.shape)}, dtype=DTYPE)"
        else:
            start = a(stmt.base) if stmt.in_place else f"{a(stmt.base)}.copy()"
        value = stmt.value
        value = a(value) if self.array._is_array(value) else self.scalar.doprint(value)
        return [
            f"{target} = {start}",
            f"np.put_along_axis({target}, {index}, np.take_along_axis({target}, {index}, 1)"
            f" + {value}, 1)",
        ]

    def place_lines(self, stmt: Place) -> list[str]:
        """The target made from its base (itself when ``in_place``, else a copy, or zeros),
        then the values added at their entries, in one assignment."""
        target = stmt.target.name
        if stmt.base == 0:
            start = f"np.zeros({_shape_text(stmt.shape)}, dtype=DTYPE)"
        else:
            base = self.array.doprint(stmt.base)
            start = base if stmt.in_place else f"{base}.copy()"
        return [f"{target} = {start}", placed(stmt, target, self.scalar)]

    def line(self, stmt: Stmt, kernel: Kernel, op: str = "=") -> str:
        """``target = value``; ``op="+="``: the value added into the target (a sum across
        blocks)."""
        return f"{stmt.target.name} {op} {self.value(stmt, kernel, op == '+=')}"

    def lines(self, stmt: Stmt, kernel: Kernel, op: str = "=") -> list[str]:
        """``line``, after the lines computing its ``Piecewise`` whose branches are computed
        only where they hold (``masked``)."""
        before, rest = self.masked.split(stmt)
        lines = before if rest is None else [*before, self.line(rest, kernel, op)]
        self.masked.release()
        return lines

    @property
    def helpers(self) -> set[str]:
        """The module's helper functions the printed lines call (``_safelog``, ...)."""
        return self.scalar.helpers | self.array.helpers | self.row_helpers

    @property
    def modules(self) -> set[str]:
        """The modules the printed lines use (``math``; ``np`` is always imported)."""
        return set(self.scalar.module_imports) | set(self.array.module_imports)


def placed(stmt: Place, target: str, scalar: ScalarPrinter) -> str:
    """``target[rows, cols] = values`` (``+=`` onto a base): the values of ``stmt`` at their
    entries of ``target``, an array of NumPy or CuPy."""
    op = "=" if stmt.base == 0 else "+="
    values = [scalar.doprint(v) for v in stmt.values]
    if len(values) == 1:
        ((row, col),) = stmt.positions
        return f"{target}[{row}, {col}] {op} {values[0]}"
    rows = ", ".join(str(r) for r, _ in stmt.positions)
    cols = ", ".join(str(c) for _, c in stmt.positions)
    return f"{target}[[{rows}], [{cols}]] {op} ({', '.join(values)})"


def _describe(kernel: Kernel) -> str:
    if kernel.is_matmul:
        return "matrix product (BLAS)"
    if kernel.is_scatter:
        return "one value added per row, at its label (no one-hot matrix)"
    if kernel.is_place:
        n = sum(len(s.positions) for s in kernel.stmts if isinstance(s, Place))
        return "1 value added at its entry" if n == 1 else f"{n} values added at their entries"
    if kernel.is_step:
        return "identity matrix"
    if not kernel.domain:
        return "scalar arithmetic"
    reductions = sum(isinstance(s, Reduction) for s in kernel.stmts)
    what = "the samples" if len(kernel.domain) == 1 else "the elements"
    sums = f", {reductions} reduction{'s' if reductions != 1 else ''}" if reductions else ""
    return f"one pass over {what} {_shape_text(kernel.domain)}{sums}"


#: The array ``jacobian`` of a per-sample loss returns, its passes writing its columns.
JACOBIAN = "_jacobian"

#: Samples per block in a pass over per-sample data: 8192 float64 values are 64 KiB,
#: so the pass's temporaries stay in cache and come from the allocator's free
#: lists (below glibc's 128 KiB mmap threshold: no page faults on every call).
BLOCK = 8192


def _blocked(
    kernel: Kernel,
    printer: _StatementPrinter,
    data: dict[str, str],
    stored: set[str] = frozenset(),
    columns: dict[str, Column] | None = None,
    placed: set[str] | None = None,
) -> list[str]:
    """A per-sample pass evaluated block by block, the sums accumulated across blocks.

    The statements are scalar set-up, then array work and sums, then scalar
    results (and fills); only the middle runs per block, on views of the data arrays.
    Values in ``stored`` (what other passes or the function's results read: residuals,
    the columns of a Jacobian) are written block by block into arrays of N samples, or
    into their ``columns`` (their names then go into ``placed``).
    """
    stmts = list(kernel.stmts)
    inner = [i for i, s in enumerate(stmts) if isinstance(s, (Elementwise, Reduction))]
    if not inner or any(isinstance(s, Fill) for s in stmts[: inner[0]]):
        return [line for s in stmts for line in printer.lines(s, kernel)]
    first, last = inner[0], inner[-1]
    middle = stmts[first : last + 1]
    if any(not isinstance(s, (Elementwise, Sum, Dot)) for s in middle):
        return [line for s in stmts for line in printer.lines(s, kernel)]
    n = str(kernel.domain[0])
    views = {sp.Symbol(name, real=True): sp.Symbol(view, real=True) for name, view in data.items()}
    kept = [s.target for s in middle if isinstance(s, Elementwise) and s.target.name in stored]
    views |= {t: sp.Symbol(f"_{t.name}", real=True) for t in kept}
    sums = [s.target.name for s in middle if isinstance(s, Reduction)]
    renamed = [replace(s.substituted(views), target=views.get(s.target, s.target)) for s in middle]
    inplace = InPlace(printer.array.arrays, renamed, printer.scalar, printer.dtype)
    body = []
    for position, s in enumerate(renamed):
        stored_value = middle[position].target in kept
        if stored_value and s.value.is_Symbol:  # a value computed before: no copy
            written = [f"{s.target.name} = {s.value.name}"]
        else:
            written = inplace.lines(s, position)
        if written is None:  # a sum adds this block's part
            written = printer.lines(s, kernel, "+=" if isinstance(s, Reduction) else "=")
        if stored_value:
            name = middle[position].target.name
            written = [*written, f"{name}[_start:_start + {BLOCK}] = {s.target.name}"]
        body += [f"    {line}" for line in written]
        inplace.release_after(position)
    lines = [printer.line(s, kernel) for s in stmts[:first]]
    if sums:
        lines.append(" = ".join([*sums, "0.0"]))
    columns = columns or {}
    for t in kept:
        if t.name in columns:
            lines.append(f"{t.name} = {columns[t.name].view()}")
            if placed is not None:
                placed.add(t.name)
        else:
            lines.append(f"{t.name} = np.empty(({n},), dtype=DTYPE)")
    if inplace.count:  # the buffers every block writes into (the last block: a prefix)
        lines.append(f"_work = np.empty(({inplace.count}, min({n}, {BLOCK})), dtype=DTYPE)")
    lines.append(f"for _start in range(0, {n}, {BLOCK}):")
    lines += [f"    {view} = {name}[_start:_start + {BLOCK}]" for name, view in data.items()]
    if inplace.count:
        names = ", ".join(InPlace.buffer(i) for i in range(inplace.count))
        comma = "," if inplace.count == 1 else ""
        lines.append(f"    {names}{comma} = _work[:, :{n} - _start]")
    lines += body
    for s in stmts[last + 1 :]:
        if isinstance(s, Fill) and s.target.name in columns:  # a constant column, in place
            lines += [
                f"{s.target.name} = {columns[s.target.name].view()}",
                f"{s.target.name}[...] = {printer.array.doprint(s.value)}",
            ]
            if placed is not None:
                placed.add(s.target.name)
        else:
            lines.append(printer.line(s, kernel))
    return lines


def _row_blocked(
    kernel: Kernel, printer: _StatementPrinter, shapes: dict[str, tuple], stored: set[str]
) -> list[str] | None:
    """A pass over the elements of a matrix (M, K) evaluated in blocks of rows, so that its
    temporaries stay in cache (and below the allocator's mmap threshold): arrays with M rows
    are read through row views, values that other steps read are written into preallocated
    arrays block by block, whole sums accumulate, and column sums (axis 0) add up across
    blocks. None when the pass does not have that form (then it runs whole)."""
    stmts = list(kernel.stmts)
    rows = kernel.domain[0]
    device = [i for i, s in enumerate(stmts) if isinstance(s, (Elementwise, Reduction))]
    if not device or any(isinstance(s, Fill) for s in stmts):
        return None
    first, last = device[0], device[-1]
    middle = stmts[first : last + 1]
    if any(isinstance(s, Assign) for s in middle) or sp.sympify(rows) == 1:
        return None
    if any(isinstance(s, Max) and s.axes == (0,) for s in middle):
        return None
    inside = {s.target.name for s in middle}
    views: dict[sp.Expr, sp.Symbol] = {}
    for s in middle:
        for e in s.inputs:
            for v in sorted(e.atoms(transposed), key=str):
                shape = tuple(reversed(shapes[v.args[0].name]))
                if shape[0] == rows:
                    views.setdefault(v, sp.Symbol(f"_{v.args[0].name}_T", real=True))
            plain = e.xreplace({v: sp.S.Zero for v in e.atoms(transposed)}).free_symbols
            for sym in sorted(plain, key=str):
                if sym.name in inside or sym.name not in shapes:
                    continue
                if shapes[sym.name][0] == rows:
                    views.setdefault(sym, sp.Symbol(f"_{sym.name}", real=True))
    whole, column, row = [], [], []
    for s in middle:
        if isinstance(s, Reduction):
            (whole if not s.axes else column if s.axes == (0,) else row).append(s)
    keep = [s for s in middle if isinstance(s, Elementwise) and s.target.name in stored] + row
    if any(
        shapes.get(s.target.name, (rows,))[0] != rows for s in keep if isinstance(s, Elementwise)
    ):
        return None
    # Worth it when the pass reduces, or makes several temporaries per value it keeps
    # (measured: a lone mask product such as W3's x8*(x0 > 0) runs as fast whole); not
    # when it only reduces arrays it reads (no temporary to keep in cache: the loop would
    # only add its own cost, ~1-3 us a pass at small sizes).
    work = sum(sp.count_ops(e) for s in middle for e in s.inputs)
    if work == 0 or (not (whole or column or row) and work < 3 * max(1, len(keep))):
        return None
    names = {
        v: f"_{v.args[0].name}_T" if isinstance(v, transposed) else f"_{v.name}" for v in views
    }
    lines = [printer.line(s, kernel) for s in stmts[:first]]
    k = str(kernel.domain[1])
    lines.append(f"_rows = max(1, {BLOCK}//max({k}, 1))")
    blocked = []
    for s in keep:
        shape = _shape_text(tuple(shapes[s.target.name]))
        blocked.append(f"{s.target.name} = np.empty({shape}, dtype=DTYPE)")
    for s in whole:
        blocked.append(f"{s.target.name} = {'-np.inf' if isinstance(s, Max) else '0.0'}")
    for s in column:
        blocked.append(f"{s.target.name} = {sums.accumulator_zeros(f'(1, {k})', printer.dtype)}")
    blocked.append(f"for _start in range(0, {rows}, _rows):")
    for v, name in names.items():
        blocked.append(f"    {name} = {printer.array.doprint(v)}[_start:_start + _rows]")
    in_block = _block_lines(middle, names, keep, whole, column, printer, kernel)
    blocked += [f"    {line}" for line in in_block]
    for s in column:
        if (line := sums.accumulator_result(s.target.name, printer.dtype)) is not None:
            blocked.append(line)
    if any(isinstance(s, Max) for s in whole):  # max() keeps the loop's NaN handling
        lines += blocked
    else:
        one = [f"{name} = {printer.array.doprint(v)}" for v, name in names.items()]
        one += _block_lines(middle, names, keep, whole, column, printer, kernel, whole_arrays=True)
        lines += row_groups.whole_or_blocks(rows, one, blocked)
    lines += [printer.line(s, kernel) for s in stmts[last + 1 :]]
    return lines


def _block_lines(middle, names, keep, whole, column, printer, kernel, whole_arrays=False):
    """The statements of a pass on one block of rows (the views ``names``); ``whole_arrays``:
    the block is the whole arrays, so kept values are the arrays themselves and sums are
    assigned, not added."""
    local = {v: sp.Symbol(n, real=True) for v, n in names.items()}
    kept = {s.target.name for s in keep}
    lines = []
    for s in middle:
        block = s.substituted(local)
        if s.target.name in kept:
            block = replace(block, target=sp.Symbol(f"_{s.target.name}", real=True))
            local[s.target] = block.target
        if s in whole and isinstance(s, Max):
            before, block = printer.masked.split(block)
            value = printer.value(block, kernel)
            printer.masked.release()
            written = [*before, f"{s.target.name} = max({s.target.name}, {value})"]
        else:  # whole and column sums add this block's part
            added = (s in whole or s in column) and not whole_arrays
            written = printer.lines(block, kernel, "+=" if added else "=")
        lines += written
        if s.target.name in kept:
            if whole_arrays:
                lines.append(f"{s.target.name} = {block.target.name}")
            else:
                lines.append(f"{s.target.name}[_start:_start + _rows] = {block.target.name}")
    return lines


def _cut(runs: list[tuple[int, int]], at: set[int]) -> list[tuple[int, int]]:
    """``runs`` of kernels (first, last) without the kernels ``at``: each cut in two where
    it holds one, the parts of two kernels or more kept."""
    out = []
    for first, last in runs:
        start = first
        for n in sorted(k for k in at if first <= k <= last):
            out += [(start, n - 1)] if n - 1 > start else []
            start = n + 1
        out += [(start, last)] if last > start else []
    return out


def _body(
    program: Program,
    dtype: str,
    data: tuple[str, ...],
    kind: str,
    native: PassCompiler | None = None,
    prefix: str = "",
    columns: dict[str, Column] | None = None,
) -> Body:
    """The lines of one function; ``native`` (the C backend) takes the passes it can run,
    and the matrix-vector products it fuses into them; ``columns``: the per-sample results
    that passes write straight into a column of the array returned (``Column``)."""
    placed: set[str] = set()
    per_sample = kind == "per_sample"
    views = {name: f"_{name}" for name in data}
    shapes = dict(program.shapes)
    local = {f"_{n}" for n in shapes} | {f"_{n}_T" for n in shapes}
    all_shapes = program.array_shapes()
    views_shapes = {  # the blocks of rows or samples that passes read (same symbolic shape)
        **{f"_{n}": shape for n, shape in all_shapes.items()},
        **{f"_{n}_T": tuple(reversed(shape)) for n, shape in all_shapes.items()},
    }
    printer = _StatementPrinter(
        program.arrays | frozenset(views.values()) | local,
        dtype,
        {**views_shapes, **all_shapes},
        native.product if native is not None else None,
    )
    stored = program.used_elsewhere()
    fused = native.fused_products(program, all_shapes) if native is not None else {}
    absorbed = {i for products in fused.values() for i in products.taken}
    # NumPy runs consecutive passes over the same rows in one loop (row_groups)
    grouped = (
        row_groups.groups(list(program.kernels)) if kind == "matrix" and native is None else []
    )
    # a Gram product B.T @ B, B formed a block of rows at a time (the C backend sums it in
    # its pass over the rows, or runs these kernels as they stand)
    gram_at = {g.absorbed[0]: g for g in grams.products(program)} if native is None else {}
    # a product, a pass over its rows and a product of the pass's value, in blocks of rows
    chain_at = {c.last: c for c in chains.chains(program)} if kind == "matrix" else {}
    grouped = _cut(grouped, set(gram_at) | {c.middle for c in chain_at.values()})
    absorbed |= {g.absorbed[1] for g in gram_at.values()}
    absorbed |= {n for c in chain_at.values() for n in (c.first, c.middle)}
    group_at = {first: last for first, last in grouped}
    in_group = {n for first, last in grouped for n in range(first + 1, last + 1)}
    groups = []
    for n, k in enumerate(program.kernels):
        if n in absorbed:  # a matrix product the C pass over its rows computes
            continue
        if n in chain_at:
            c = chain_at[n]
            (product,) = k.stmts
            right = printer.array.doprint(product.right)
            comment = (
                f"{product.target.name} = (a pass over a product) @ {right}, by blocks of rows"
            )
            groups.append((comment, tuple(chains.lines(c, program, printer, all_shapes))))
            continue
        if n in gram_at:
            g = gram_at[n]
            comment = f"{g.target} = B.T @ B, B = {g.matrix} * {g.root} a block of rows at a time"
            groups.append((comment, tuple(grams.lines(g, all_shapes))))
            continue
        if n in group_at:
            run = list(program.kernels[n : group_at[n] + 1])
            reads = program.reads()
            others = [r for m, r in enumerate(reads) if not n <= m <= group_at[n]]
            outside = set().union(*others) | {s.name for s in program.outputs}
            lines = row_groups.lines(run, printer, all_shapes, outside, row_groups.BLOCK)
            comment = (
                f"{len(run)} passes over the rows of {_shape_text(k.domain)}"
                f" in one loop, in blocks of rows ({row_groups.BLOCK} elements)"
            )
            groups.append((comment, tuple(lines)))
            continue
        if n in in_group:
            continue
        lines = None
        if native is not None:  # None for what is not a pass it runs
            products = fused.get(n)
            keep = stored[n] - ({products.value} if products else set())
            scalar_line = partial(printer.line, kernel=k)
            gram = products.gram if products is not None else None
            summed = keep - {gram.root} if gram is not None else keep  # the root stays in C
            if products is None:
                lines = native.pass_lines(
                    k, prefix, all_shapes, summed, scalar_line, None, columns, placed
                )
            else:
                lines = native.pass_lines(k, prefix, all_shapes, summed, scalar_line, products)
            comment = f"{_describe(k)}, compiled C (_SOURCE)"
            if products is not None:  # or the products by BLAS and the pass: chosen by size
                comment += f", with the products by {products.matrix} (or BLAS)"
                if gram is not None:
                    comment += f" and {gram.target} = B.T @ B summed in it (or BLAS syrk)"
                kernels = program.kernels
                apart = [printer.line(kernels[i].stmts[0], kernels[i]) for i in products.absorbed]
                plain = native.pass_lines(k, prefix, all_shapes, stored[n], scalar_line)
                apart[1:1] = plain
                if gram is None:
                    lines = native.choose(products, lines, apart)
                else:  # or B written out, and its product by BLAS
                    alone = replace(products, gram=None)
                    without = native.pass_lines(k, prefix, all_shapes, keep, scalar_line, alone)
                    separate = native.choose(alone, without, apart)
                    for i in gram.absorbed:
                        ki = kernels[i]
                        separate += native.pass_lines(
                            ki, prefix, all_shapes, stored[i], partial(printer.line, kernel=ki)
                        ) or [line for s in ki.stmts for line in printer.lines(s, ki)]
                    lines = native.choose_gram(products, lines, separate)
        if lines is None:
            if (
                per_sample
                and len(k.domain) == 1
                and any(not isinstance(s, Assign) for s in k.stmts)
            ):
                lines = _blocked(k, printer, views, stored[n], columns, placed)
                comment = f"{_describe(k)}, in blocks of {BLOCK}"
            elif kind == "matrix" and len(k.domain) == 2 and not k.is_step:
                lines = _row_blocked(k, printer, shapes, stored[n])
                comment = f"{_describe(k)}, in blocks of rows ({BLOCK} elements)"
        if lines is None and k.is_scatter:
            (stmt,) = k.stmts
            lines, comment = printer.scatter_lines(stmt), _describe(k)
        if lines is None and k.is_place:
            (stmt,) = k.stmts
            lines, comment = printer.place_lines(stmt), _describe(k)
        if lines is None:
            lines = [line for s in k.stmts for line in printer.lines(s, k)]
            comment = _describe(k)
        groups.append((comment, tuple(lines)))
    return Body(
        tuple(groups),
        tuple(s.name for s in program.outputs),
        frozenset(printer.helpers),
        frozenset(printer.modules),
        frozenset(placed),
    )


def _modules_called(source: str) -> set[str]:
    """The standard-library modules whose functions ``source`` (a helper's definition)
    calls as ``module.name``, read from its syntax tree."""
    tree = ast.parse(source)
    bases = {
        node.value.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
    }
    return bases & set(sys.stdlib_module_names)


def imports(params: tuple[Arg, ...], helpers: tuple[str, ...], modules: set[str]) -> frozenset[str]:
    """The modules a module imports besides NumPy: ``modules`` (those its statements use),
    those its ``helpers`` (their sources, as the module defines them) call, and ``math``
    when a parameter is a float (the Adam step of a float calls ``math.sqrt``)."""
    out = set(modules).union(*(_modules_called(h) for h in helpers))
    if any(p.kind == "scalar" for p in params):
        out.add("math")
    return frozenset(out - {"np"})  # NumPy is always imported, as np


def plan(
    compiled: Compiled,
    source: str | None,
    baked: Baked | None = None,
    native: PassCompiler | None = None,
) -> NumpyPlan:
    """The NumPy module's plan; ``native`` (the C backend) takes the passes it compiles."""
    problem = compiled.problem
    fields = module_fields(compiled, source, baked)
    params = fields["params"]
    names = tuple(d.name for d in compiled.lowered.data)
    loss_body = _body(compiled.loss_program, problem.dtype, names, problem.kind, native, "loss")
    grad_body = _body(
        compiled.grad_program, problem.dtype, names, problem.kind, native, "loss_and_grad"
    )
    bodies = [loss_body, grad_body]
    least_squares = None
    if compiled.residuals is not None:
        found = compiled.residuals
        residual_body = _body(
            found.residual_program, problem.dtype, names, problem.kind, native, "residuals"
        )
        columns = None
        if problem.kind == "per_sample":  # every column (N,): written where it is returned
            outputs = found.jacobian_program.outputs[:-1]  # the last: the residuals again
            columns = {o.name: Column(JACOBIAN, i, len(outputs)) for i, o in enumerate(outputs)}
        jacobian_body = _body(
            found.jacobian_program, problem.dtype, names, problem.kind, native, "jacobian", columns
        )
        least_squares = least_squares_plan(
            compiled, residual_body, jacobian_body, JACOBIAN if columns else None
        )
        bodies += [residual_body, jacobian_body]
    second = compiled.second_order
    hvp_body = _body(second.hvp_program, problem.dtype, names, problem.kind, native, "hvp")
    bodies.append(hvp_body)
    hessian_body = newton_body = None
    if second.hessian_program is not None:
        hessian_body = _body(
            second.hessian_program, problem.dtype, names, problem.kind, native, "hessian"
        )
        newton_body = _body(
            second.newton_program, problem.dtype, names, problem.kind, native, "newton"
        )
        bodies += [hessian_body, newton_body]
    direct_body = direct_when = None
    if second.direct_program is not None and native is None:  # the C pass sums its own
        direct_when = grams.direct_when(second.hessian_program)
        direct_body = _body(
            second.direct_program, problem.dtype, names, problem.kind, native, "hessian"
        )
        bodies.append(direct_body)
    steps = updates(
        tuple(p.name for p in params),
        tuple(p.kind != "scalar" for p in params),
        grad_body.results[1:],
        grad_body.results[0],
        baked,
    )
    used = frozenset().union(*(b.helpers for b in bodies))
    helpers = tuple(h.array_source or h.source for h in python_helpers(used)) + tuple(
        source
        for name, source in {**row_reductions.HELPERS, **tall_products.HELPERS}.items()
        if name in used
    )
    return NumpyPlan(
        **fields,
        loss_body=loss_body,
        grad_body=grad_body,
        updates=steps,
        helpers=helpers,
        imports=imports(params, helpers, frozenset().union(*(b.modules for b in bodies))),
        native=native.module(problem.name) if native is not None else None,
        least_squares=least_squares,
        second=second_order.plan(
            compiled,
            hvp_body,
            True,
            hessian_body,
            newton_body,
            direct_body,
            direct_when,
            grams.DIRECT_AT_MOST,
        ),  # fmt: skip
    )


def generate(compiled: Compiled, source: str | None = None, baked: Baked | None = None) -> str:
    """The module's source; ``baked``: the optimizer whose hyperparameters are built in."""
    return render_module(plan(compiled, source, baked))


def render_module(module_plan: NumpyPlan) -> str:
    """The source of the NumPy module ``module_plan`` describes."""
    return render(TEMPLATES, "numpy_module.py.j2", plan=module_plan)
