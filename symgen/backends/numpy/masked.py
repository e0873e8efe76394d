"""``Piecewise`` values in NumPy, each branch computed only on the elements where it holds.

``np.where(c, a, b)`` computes ``a`` and ``b`` on every element: right, and fastest, for
branches that are safe to compute anywhere (``compiler.guards.pieces_total``: Huber's
``r**2/2`` and ``delta*(|r| - delta/2)``), as the printers spell it. Any other
``Piecewise`` of an array statement (``t*log(t/p)`` where ``t == 0`` is possible, ``sqrt(x)``
where ``x < 0`` is) is computed before the statement, into an array of its own, by masked
assignments, with no warning and no NaN from a branch that does not hold::

    _pw0 = np.empty(_t.shape, dtype=DTYPE)
    _mask = (_t == 0)
    _pw0[_mask] = 0.0
    _rest = np.logical_not(_mask)
    _pw0[_rest] = _t[_rest]*np.log(_t[_rest]/p)

A later condition is combined with the elements still left (``_rest & (...)``), or, when
it is not safe to compute anywhere, computed on those elements only. The first piece whose
condition holds gives the value, as in SymPy; NaN where none holds.
"""

from __future__ import annotations

import sympy as sp

from symgen.codegen.printers import ArrayPrinter
from symgen.compiler.guards import pieces_total, total
from symgen.compiler.ir import Shape, broadcast_shapes
from symgen.compiler.optimize import Assign, Elementwise, Stmt, transposed


class gathered(sp.Function):  # noqa: N801 - printed as ``array[mask]``
    """The elements of an array where a mask holds, ``array[mask]`` (the array broadcast to
    the shape ``shape`` first, when it is given)."""

    def _eval_is_real(self):
        return True

    def _numpycode(self, printer, **kwargs):
        array, mask, *shape = self.args
        text = printer._print(array)
        if shape:
            text = f"np.broadcast_to({text}, {printer._print(shape[0])})"
        return f"{text}[{printer._print(mask)}]"


class MaskedPieces:
    """Writes the ``Piecewise`` of array statements that ``np.where`` must not compute.

    ``printer`` prints the array expressions (the names it knows as arrays grow with the
    arrays written here); ``shapes`` has the shape of each array name, so that an operand
    of another shape is broadcast before it is indexed."""

    def __init__(self, printer: ArrayPrinter, shapes: dict[str, Shape]) -> None:
        self.printer = printer
        self.shapes = shapes
        #: The arrays of the statement being written (``release`` forgets them).
        self.local: set[str] = set()

    def release(self) -> None:
        """Forget the arrays that the last statement's lines defined: the next reuses the
        names."""
        self.printer.arrays = self.printer.arrays - self.local
        self.local = set()

    # -- names ------------------------------------------------------------------------
    def _fresh(self, base: str, used: set[str]) -> str:
        name, i = base, 1
        while name in self.printer.arrays or name in used:
            name, i = f"{base}_{i}", i + 1
        used.add(name)
        return name

    def _operands(self, e: sp.Basic) -> list[sp.Basic]:
        """The arrays ``e`` reads: array symbols and transposed views of them, by name."""
        views = e.atoms(transposed)
        plain = e.xreplace({v: sp.S.Zero for v in views}).free_symbols
        found = [v for v in (*views, *plain) if self._is_array(v)]
        return sorted(found, key=str)

    def _shape(self, e: sp.Basic) -> Shape | None:
        """The shape of the array expression ``e`` (None: an operand's shape is unknown)."""
        shapes = []
        for v in self._operands(e):
            if isinstance(v, transposed):
                shape = self.shapes.get(v.args[0].name)
                shapes.append(None if shape is None else tuple(reversed(shape)))
            else:
                shapes.append(self.shapes.get(v.name))
        if any(s is None for s in shapes):
            return None
        return broadcast_shapes(*shapes) if shapes else ()

    def _is_array(self, e: sp.Basic) -> bool:
        return any(s.name in self.printer.arrays for s in e.free_symbols)

    def _masked(self, e: sp.Basic) -> bool:
        return (
            isinstance(e, sp.Piecewise)
            and self._is_array(e)
            and not pieces_total(e, leaves=(transposed,))
        )

    # -- statements -------------------------------------------------------------------
    def split(self, stmt: Stmt) -> tuple[list[str], Stmt]:
        """The lines computing the ``Piecewise`` of ``stmt`` that must be masked, inner ones
        first, and ``stmt`` reading them; an ``Elementwise`` statement that is one such
        ``Piecewise`` is written whole (then ``stmt`` is None)."""
        if isinstance(stmt, Assign) or not any(e.has(sp.Piecewise) for e in stmt.inputs):
            return [], stmt
        lines: list[str] = []
        used: set[str] = set()
        mapping: dict[sp.Basic, sp.Symbol] = {}
        top = stmt.value if isinstance(stmt, Elementwise) and self._masked(stmt.value) else None
        for e in stmt.inputs:
            for node in sp.postorder_traversal(e):
                if node in mapping or node is top or not self._masked(node):
                    continue
                name = self._fresh(f"_pw{len(mapping)}", used)
                lines += self.assign(name, node.xreplace(mapping), used)
                mapping[node] = sp.Symbol(name, real=True)
                self.printer.arrays = self.printer.arrays | {name}
                self.local.add(name)
        if top is not None:
            lines += self.assign(stmt.target.name, top.xreplace(mapping), used)
            return lines, None
        return lines, (stmt.substituted(mapping) if mapping else stmt)

    def assign(self, name: str, pw: sp.Piecewise, used: set[str]) -> list[str]:
        """Lines setting the array ``name`` to ``pw``, each piece where it is the first to
        hold."""
        a = self.printer.doprint
        operands = self._operands(pw)
        shape = self._shape(pw)
        lines = []
        size: sp.Symbol | None = None  # the variable holding the shape, when one is needed
        full = [v for v in operands if shape is not None and self._shape(v) == shape]
        if full and len(full) == len(operands):
            shape_text = f"{a(full[0])}.shape"
        else:
            size = sp.Symbol(self._fresh("_shape", used))
            shapes = ", ".join(f"np.shape({a(v)})" for v in operands)
            lines.append(f"{size} = np.broadcast_shapes({shapes})")
            shape_text = size.name
        lines.append(f"{name} = np.empty({shape_text}, dtype=DTYPE)")

        def at(e: sp.Basic, mask: sp.Symbol) -> str:
            """``e`` on the elements where ``mask`` holds."""
            views = {
                v: gathered(v, mask) if size is None else gathered(v, mask, size)
                for v in self._operands(e)
            }
            return a(e.xreplace(views))

        def everywhere(cond: sp.Basic) -> str:
            """A condition evaluated on every element, as a mask of the whole shape."""
            if size is None and self._shape(cond) == shape:
                return a(cond)
            return f"np.broadcast_to({a(cond)}, {shape_text})"

        mask = sp.Symbol(self._fresh("_mask", used))
        rest: sp.Symbol | None = None  # the elements that no piece has taken (None: all)
        for value, cond in pw.args:
            if cond == sp.true:
                where = "..." if rest is None else rest.name
                lines.append(f"{name}[{where}] = {at(value, rest) if rest else a(value)}")
                break
            if rest is None:
                lines.append(f"{mask} = {everywhere(cond)}")
            elif total(cond, leaves=(transposed,)):
                lines.append(f"{mask} = {rest} & {a(cond)}")
            else:  # computed only on the elements left
                lines.append(f"{mask} = {rest}.copy()")
                lines.append(f"{mask}[{rest}] = {at(cond, rest)}")
            lines.append(f"{name}[{mask}] = {at(value, mask)}")
            if rest is None:
                rest = sp.Symbol(self._fresh("_rest", used))
                lines.append(f"{rest} = np.logical_not({mask})")
            else:
                lines.append(f"{rest} &= np.logical_not({mask})")
        else:  # where no condition holds the value is undefined, as in SymPy
            lines.append(f"{name}[{rest}] = np.nan")
        return lines
