"""Consecutive passes over the rows of one matrix, run as one loop over blocks of rows.

A matrix loss's passes are split wherever one needs a reduction of another: softmax's row
maxima, then the row sums of ``exp(z - max)``, then the loss and gradient that use both.
Each row's maximum and sum are complete once a block of rows has been through the earlier
statements, so passes over the same rows can share one loop over row blocks: a block is
read into cache once, the values several passes compute are computed once (``exp(z -
max)`` by the sums and by the gradient: the optimizer's passes each recompute it), and
values that no statement outside the group reads never leave the block. This is how an
expert writes softmax in NumPy, with the block keeping the temporaries in cache.

A pass joins the group before it unless it reads something complete only after the loop
(a whole or column sum of an earlier pass, or the scalar work after one). Gathered loads
(``symgen.take``'s entry at each row's label) read the block's rows of the labels, so a
loss with integer labels computes ``exp(z - max)`` once too. A sum whose first terms (in
the order its spelling adds them) were computed already reads them by name: ``z + b -
max`` is ``(z + b) - max``, and ``z + b`` was the maxima's argument. A row (1, K), such
as a bias, is tiled to a block's shape once (NumPy broadcasts a row over short rows one
row at a time). Values per element are written in place when their spelling ends in one
ufunc: a value another pass reads straight into its rows of the whole array, others
into the block of a value nothing reads after them (``out=``: the same operations).
"""

from __future__ import annotations

from dataclasses import fields, replace

import sympy as sp

from symgen.backends.numpy import sums
from symgen.backends.numpy.inplace import UFUNCS
from symgen.codegen.printers import DIFFERENCES
from symgen.compiler.optimize import (
    Assign,
    Elementwise,
    Kernel,
    Max,
    Reduction,
    Stmt,
    gathered,
    transposed,
)

#: Functions whose NumPy spelling takes ``f(a) - f(b)`` as one pair: sums holding them are
#: printed pair by pair, not term by term.
_PAIRED = tuple(DIFFERENCES)

#: Values per block of a group: rows of a softmax's few classes make many small array
#: operations per block (its row sums and maxima go column by column, ``row_reductions``),
#: so the blocks are larger than a single pass's (measured at N = 1e5, K = 10: 8,192
#: values 9.5 ms, 16,384 8.1 ms, 32,768 7.0 ms for the multinomial loss and gradient).
BLOCK = 32768


def parts(kernel: Kernel) -> tuple[list[Stmt], list[Stmt], list[Stmt]] | None:
    """``kernel``'s scalar set-up, array statements and scalar results; None when it is not
    a pass over rows that a row block can run (a fill, a maximum down the columns)."""
    if len(kernel.domain) != 2 or kernel.is_step or sp.sympify(kernel.domain[0]) == 1:
        return None
    stmts = list(kernel.stmts)
    inner = [i for i, s in enumerate(stmts) if not isinstance(s, Assign)]
    if not inner:
        return None
    middle = stmts[inner[0] : inner[-1] + 1]
    if any(not isinstance(s, (Elementwise, Reduction)) for s in middle):
        return None
    if any(isinstance(s, Max) and s.axes == (0,) for s in middle):
        return None
    if any(e.has(sp.Piecewise) for s in middle for e in s.inputs):
        return None  # a Piecewise's pieces are printed as they stand (``masked``)
    return stmts[: inner[0]], middle, stmts[inner[-1] + 1 :]


def groups(kernels: list[Kernel]) -> list[tuple[int, int]]:
    """Runs ``(first, last)`` of two or more consecutive kernels (indices into ``kernels``)
    that one loop over row blocks can run together."""
    out: list[tuple[int, int]] = []
    start = None
    late: set[str] = set()  # what the group completes only after its loop
    inside: set[str] = set()  # what its loop computes block by block
    for n, k in enumerate(kernels):
        split = parts(k)
        joins = (
            start is not None
            and split is not None
            and k.domain[0] == kernels[start].domain[0]
            and not _reads(split[0]) & (late | inside)  # its set-up runs before the loop
            and not _reads(split[1]) & late
        )
        if not joins:
            if start is not None and n - start >= 2:
                out.append((start, n - 1))
            start, late, inside = (n if split is not None else None), set(), set()
        if split is not None:
            late |= _completed_after(split)
            inside |= {s.target.name for s in split[1]}
    if start is not None and len(kernels) - start >= 2:
        out.append((start, len(kernels) - 1))
    return out


def _width(v: sp.Expr, shapes: dict) -> str:
    """The number of columns of the array ``v`` (a symbol or a transposed view), as text."""
    if isinstance(v, transposed):
        return str(shapes[v.args[0].name][0])
    return str(shapes[v.name][1])


def _reads(stmts: list[Stmt]) -> set[str]:
    return {s.name for st in stmts for e in st.inputs for s in e.free_symbols}


def _completed_after(split) -> set[str]:
    _, middle, after = split
    whole = {s.target.name for s in middle if isinstance(s, Reduction) and s.axes != (1,)}
    return whole | {s.target.name for s in after}


def _places(e: sp.Expr) -> list[tuple[sp.Expr, str]]:
    """``e``'s arguments, each with where it stands: "whole" (a function's argument, the
    base of a power: a name may stand for it), "swap" (a factor or term of a product or
    sum of two, printed in either order with the same result: a name may stand for a
    function's value there) or "fixed" (elsewhere: a name would move it, and change the
    order in which a product or sum of three or more is computed, or turn a division
    into a product by a reciprocal)."""
    if e.is_Function:
        return [(x, "whole") for x in e.args]
    if e.is_Pow:
        return [(e.base, "whole"), (e.exp, "fixed")]
    if e.is_Mul:
        numerator = [x for x in e.args if x not in (sp.S.One, sp.S.NegativeOne)]
        numerator = [x for x in numerator if not (x.is_Pow and x.exp.is_negative)]
        return [(x, "swap" if len(numerator) <= 2 and x in numerator else "fixed") for x in e.args]
    if e.is_Add:
        return [(x, "swap" if len(e.args) <= 2 else "fixed") for x in e.args]
    return [(x, "fixed") for x in e.args]


def _printed_terms(e: sp.Expr, printer) -> list[sp.Expr]:
    """The terms of the sum ``e`` in the order its NumPy spelling adds them (positive terms
    first, then the negative ones subtracted: ``printers._print_add_subtracting``)."""
    terms = printer._as_ordered_terms(e)
    positive = [t for t in terms if not t.could_extract_minus_sign()]
    negative = [t for t in terms if t.could_extract_minus_sign()]
    return positive + negative if positive and negative else terms


def _head(e: sp.Expr, printer) -> sp.Expr | None:
    """The sum of all terms but the last of a sum of three or more, in the order its
    spelling adds them: ``a + b - c`` adds ``a + b`` first, so a name holding ``a + b``
    may stand for it (``name - c`` computes the same numbers; a sum of two is the same
    either way round). None for anything else, or a sum whose spelling pairs terms
    (``printers._DIFFERENCES``)."""
    if not e.is_Add or len(e.args) < 3 or any(isinstance(t, _PAIRED) for t in e.args):
        return None
    if any(isinstance(-t, _PAIRED) for t in e.args):
        return None
    return sp.Add(*_printed_terms(e, printer)[:-1])


def _operation(e: sp.Expr, printer) -> tuple[str, tuple[sp.Expr, ...]] | None:
    """The last operation of ``e``'s NumPy spelling, as an ``out=`` template (``{0}``,
    ``{1}``: its operands, ``{out}``) and its operands; None when the spelling is not one
    such operation on operands printed on their own (then ``e`` is printed as it stands).
    ``a + b``, ``a - b``, ``s*(a*b)`` (scalars times arrays: ``ArrayPrinter._print_Mul``),
    ``a*b``, ``a*b/c`` and a function of one array that is one ufunc."""
    if e.is_Add:
        if len(e.args) != 2 or any(isinstance(t, _PAIRED) for t in (*e.args, *(-e).args)):
            return None
        first, second = _printed_terms(e, printer)
        if second.could_extract_minus_sign():
            return "np.subtract({0}, {1}, out={out})", (first, -second)
        return "np.add({0}, {1}, out={out})", (first, second)
    if e.is_Mul:
        if any(isinstance(f, sp.Heaviside) for f in e.args):
            return None
        scalars = [f for f in e.args if not printer._is_array(f)]
        arrays = [f for f in e.args if printer._is_array(f)]
        if arrays and scalars and not all(f.is_Number for f in scalars):
            return "np.multiply({0}, {1}, out={out})", (sp.Mul(*scalars), sp.Mul(*arrays))
        if any(f.is_Number or (f.is_Pow and f.exp.is_negative and f.exp != -1) for f in e.args):
            return None
        over = [f for f in e.args if f.is_Pow and f.exp == -1]
        if not over and len(e.args) == 2:
            return "np.multiply({0}, {1}, out={out})", e.args
        if len(over) == 1:
            numerator = sp.Mul(*[f for f in e.args if f is not over[0]])
            return "np.divide({0}, {1}, out={out})", (numerator, over[0].base)
        return None
    if type(e) in UFUNCS and len(e.args) == 1 and printer._is_array(e.args[0]):
        return UFUNCS[type(e)], e.args
    return None


def _wide(e: sp.Expr, wide: set[str]) -> bool:
    """Whether ``e`` has a value per element of a block (not one per row): it reads a
    name in ``wide`` outside a gathered load (a column)."""
    plain = e.xreplace({g: sp.S.Zero for g in e.atoms(gathered)})
    return any(s.name in wide for s in plain.free_symbols)


def _with_inputs(stmt: Stmt, values: list[sp.Expr]) -> Stmt:
    """``stmt`` reading ``values`` (in the order of ``stmt.inputs``)."""
    changes, values = {}, list(values)
    for f in fields(stmt):
        value = getattr(stmt, f.name)
        if f.name != "target" and isinstance(value, sp.Basic):
            changes[f.name] = values.pop(0)
    return replace(stmt, **changes)


def lines(kernels: list[Kernel], printer, shapes: dict, stored: set[str], size: int) -> list[str]:
    """The lines running ``kernels`` (a run of ``groups``) in one loop over blocks of rows.

    ``stored``: the names that statements outside the group read (written into whole
    arrays, block by block); every other value lives in its block. ``printer``: the NumPy
    module's statement printer. ``size``: elements per block."""
    rows = kernels[0].domain[0]
    widths = sorted({str(k.domain[1]) for k in kernels} - {"1"}) or ["1"]
    split = [parts(k) for k in kernels]
    before = [s for p in split for s in p[0]]
    middle = [s for p in split for s in p[1]]
    after = [s for p in split for s in p[2]]
    inside = {s.target.name for s in middle}
    stored = stored | _reads(after)  # the scalar work after the loop reads whole arrays
    # Arrays read whole rows at a time: the data and the values of earlier passes, as views
    # of this block's rows; transposed operands as views of their transposes.
    views: dict[sp.Expr, sp.Symbol] = {}
    for s in middle:
        for e in s.inputs:
            for v in sorted(e.atoms(transposed), key=str):
                if tuple(reversed(shapes[v.args[0].name]))[0] == rows:
                    views.setdefault(v, sp.Symbol(f"_{v.args[0].name}_T", real=True))
            plain = e.xreplace({v: sp.S.Zero for v in e.atoms(transposed)}).free_symbols
            for sym in sorted(plain, key=str):
                if sym.name not in inside and sym.name in shapes and shapes[sym.name][0] == rows:
                    views.setdefault(sym, sp.Symbol(f"_{sym.name}", real=True))
    # A row (1, K) that the block's values are computed with is tiled to a block's shape
    # once, before the loop: NumPy broadcasts a row over short rows one row at a time (at
    # K = 10, 1.1 ms per 10^6 values for z + b against 0.3 ms for two arrays of one shape).
    # The same numbers: each block reads a view of the tiled rows, printed in the row's
    # place (the row's name stays in the expressions, which keep their order of terms).
    names = iter(sp.numbered_symbols("_", cls=sp.Symbol, real=True))
    tiled: dict[str, tuple[str, str]] = {}  # the row: the tiled array, its block's view
    width = widths[0] if len(widths) == 1 and sp.sympify(rows) != 1 else None
    # (Not a row that is also read transposed, as a column: its view reads the row itself.)
    turned = {v.args[0] for s in middle for e in s.inputs for v in e.atoms(transposed)}
    for s in middle:
        for e in s.inputs:
            for sym in sorted(e.free_symbols, key=str):
                shape = shapes.get(sym.name)
                if sym in views or sym in turned or sym.name in inside or sym.name in tiled:
                    continue
                if shape is None:
                    continue
                if width is not None and sp.sympify(shape[0]) == 1 and str(shape[1]) == width:
                    tiled[sym.name] = (next(names).name, f"_{sym.name}")
    # What each statement reads, in terms of the views and the row reductions (a value
    # computed by several statements has one form here), to know which values a later
    # statement reads again.
    forms: dict[sp.Symbol, sp.Expr] = dict(views)
    later: list[set[sp.Expr]] = []
    for s in middle:
        values = [e.xreplace(forms) for e in s.inputs]
        reads = {x for v in values for x in sp.preorder_traversal(v) if not x.is_Atom}
        heads = {_head(x, printer.array) for x in reads} - {None}
        later.append(reads | heads)  # a sum's first terms, which it may read by name
        if isinstance(s, Elementwise):
            forms[s.target] = values[0]
        elif s.axes == (1,):
            forms[s.target] = sp.Symbol(f"_{s.target.name}", real=True)
    for i in range(len(later) - 2, -1, -1):  # what the statements after each one read
        later[i] = later[i] | later[i + 1]
    later = [*later[1:], set()]
    k = kernels[-1]
    # Each statement as the optimizer wrote it, reading the block's values; a part that a
    # later statement computes again is named first (_0, _1, ...: no view of a user's
    # array, _name, starts with a digit), and the later one reads the name.
    local: dict[sp.Symbol, sp.Expr] = dict(views)  # each name, as the block reads it
    back: dict[sp.Symbol, sp.Expr] = {}  # each block name, as a form
    named: dict[sp.Expr, sp.Symbol] = {}  # forms computed in the block, by their name
    body: list[tuple[str, sp.Symbol, sp.Expr]] = []  # (kind, target, value) in order
    arrays = set(printer.array.arrays) | {v.name for v in views.values()}

    def is_array(e: sp.Expr) -> bool:
        return any(x.name in arrays for x in e.free_symbols)

    def rebuild(e: sp.Expr, after: set[sp.Expr], place: str = "whole") -> sp.Expr:
        """``e`` reading the names of the values computed already, and naming those that a
        later statement computes again (``after``), only where reading a name changes the
        order of no operation (``place``, see ``_places``): the same numbers, computed once."""
        if e.is_Atom:
            return e
        new = e.func(*[rebuild(x, after, where) for x, where in _places(e)])
        head = _head(new, printer.array)
        if head is not None and head.xreplace(back) in named:  # its first terms: computed
            new = sp.Add(named[head.xreplace(back)], sp.Add(*new.args) - head)
        if place == "fixed" or (place == "swap" and not e.is_Function):
            return new
        form = new.xreplace(back)
        if form in named:
            return named[form]
        if form in after and is_array(new):
            name = next(names)
            arrays.add(name.name)
            body.append(("value", name, new))
            named[form], back[name] = name, form
            return name
        return new

    for i, s in enumerate(middle):
        values = [rebuild(e.xreplace(local), later[i]) for e in s.inputs]
        if isinstance(s, Elementwise):
            if values[0].is_Symbol and values[0] in back:  # computed already: its name
                local[s.target] = values[0]
                if s.target.name in stored:
                    body.append(("store", s.target, values[0]))
                continue
            block = sp.Symbol(f"_{s.target.name}", real=True)
            arrays.add(block.name)
            local[s.target] = block
            form = values[0].xreplace(back)
            named.setdefault(form, block)
            back[block] = form
        elif s.axes == (1,):
            local[s.target] = sp.Symbol(f"_{s.target.name}", real=True)
            arrays.add(local[s.target].name)
            back[local[s.target]] = local[s.target]
        body.append(("stmt", s.target, _with_inputs(s, values)))
    printer.array.arrays = frozenset(arrays)
    k = kernels[-1]
    out = [printer.line(s, k) for s in before]
    out.append(f"_rows = max(1, {size}//max({', '.join(widths)}, 1))")
    for s in middle:  # the arrays written block by block, and the sums' starts
        name = s.target.name
        row_value = isinstance(s, Elementwise) or s.axes == (1,)
        if row_value and name in stored:
            shape = shapes[name]
            out.append(f"{name} = np.empty(({shape[0]}, {shape[1]}), dtype=DTYPE)")
        elif not row_value and not s.axes:
            out.append(f"{name} = {'-np.inf' if isinstance(s, Max) else '0.0'}")
        elif not row_value:
            # a float32 module's column sums add up across blocks in float64 (``sums``)
            out.append(
                f"{name} = {sums.accumulator_zeros(f'(1, {shapes[name][1]})', printer.dtype)}"
            )
    for row, (array, _) in tiled.items():
        out.append(f"{array} = np.broadcast_to({row}, (min({rows}, _rows), {width})).copy()")
    printer.array.renamed = {row: view for row, (_, view) in tiled.items()}

    wide = {view.name for v, view in views.items() if _width(v, shapes) == width} | set(tiled)
    loop = _block_lines(body, views, tiled, local, stored, printer, k, rows, wide, False)
    whole = _block_lines(body, views, tiled, local, stored, printer, k, rows, wide, True)
    blocks = [f"for _start in range(0, {rows}, _rows):", *(f"    {x}" for x in loop)]
    out += whole_or_blocks(rows, whole, blocks)
    printer.array.renamed = {}
    for s in middle:  # the column sums in the module's dtype again
        if isinstance(s, Reduction) and s.axes == (0,):
            if (line := sums.accumulator_result(s.target.name, printer.dtype)) is not None:
                out.append(line)
    out += [printer.line(s, k) for s in after]
    return out


def whole_or_blocks(rows: object, whole: list[str], blocks: list[str]) -> list[str]:
    """A pass whose ``rows`` fit one block (``_rows``) runs its body once on the whole
    arrays (``whole``: the same statements, so the same values), without the loop's views,
    buffers and copies (~1 us a pass at small sizes); otherwise ``blocks``."""
    return [
        f"if {rows} <= _rows:",
        *(f"    {x}" for x in whole),
        "else:",
        *(f"    {x}" for x in blocks),
    ]


def _block_lines(body, views, tiled, local, stored, printer, k, rows, wide, whole):
    """``lines``' loop body (see there), on the block of rows from ``_start``; ``whole``:
    the block is every row (the arrays themselves: no views; values stored by name).
    ``wide``: the names of the block's values as wide as the group."""
    part = "" if whole else "[_start:_start + _rows]"
    out = []
    for v, view in views.items():
        out.append(f"{view} = {printer.array.doprint(v)}{part}")
    for array, view in tiled.values():  # the last block may be shorter
        out.append(f"{view} = {array}" if whole else f"{view} = {array}[:{rows} - _start]")
    # Values per element written in place (``out=``), as an expert does: a stored value
    # straight into its rows of the whole array, any other into the block of an operand
    # that nothing reads after it. The same operations: no block allocated, none copied.
    wide = set(wide)
    last: dict[str, int] = {}
    for i, (kind, _, value) in enumerate(body):
        read = (
            value.free_symbols
            if kind != "stmt"
            else set().union(*(e.free_symbols for e in value.inputs))
        )
        last.update({sym.name: i for sym in read})
    own: set[str] = set()  # the block's own arrays (not views of the arguments or products)

    def written(i: int, block: sp.Symbol, value: sp.Expr, into: str | None) -> str | None:
        """The line computing ``value`` into ``block`` in place, or None."""
        if into is None and not _wide(value, wide):
            return None
        operation = _operation(value, printer.array)
        if operation is None:
            return None
        template, operands = operation
        if into is None:
            # any block the value reads last: the operands are computed before it is written
            dead = sorted(
                x.name
                for x in value.free_symbols
                if x.name in own and x.name in wide and last.get(x.name) == i
            )
            if not dead:
                return None
            into = dead[0]
        text = [printer.array.doprint(x) for x in operands]
        return f"{block.name} = {template.format(*text, out=into)}"

    def store(name: str, value: str) -> str:
        return f"{name} = {value}" if whole else f"{name}{part} = {value}"

    for i, (kind, target, value) in enumerate(body):
        name = target.name
        if kind == "value":
            line = written(i, target, value, None)
            out.append(line or f"{name} = " + printer.value(Elementwise(target, value), k))
            own.add(name)
            if _wide(value, wide):
                wide.add(name)
        elif kind == "store":
            out.append(store(name, value.name))
        elif target in local:  # a value per row (or element): computed into its block
            block = local[target]
            if isinstance(value, Elementwise) and _wide(value.value, wide):
                wide.add(block.name)
            rows_of = f"{name}{part}" if name in stored else None
            line = (
                written(i, block, value.value, rows_of) if isinstance(value, Elementwise) else None
            )
            if line is not None:
                out.append(line)
            else:
                out.append(printer.line(replace(value, target=block), k))
                if name in stored:
                    out.append(store(name, block.name))
            if name not in stored:  # a stored block may be rows of the whole array
                own.add(block.name)
        elif isinstance(value, Max) and not value.axes:
            out.append(f"{name} = max({name}, {printer.value(value, k)})")
        else:  # whole and column sums add this block's part
            out.append(printer.line(value, k, "+="))
    return out
