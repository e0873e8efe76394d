"""Array statements of a blocked pass written into preallocated buffers (``out=``).

Inside the loop over blocks of samples, ``x5 = e*_t + d*x1 + g - _y`` would make a
fresh temporary for every operation of every block. Here each statement becomes a
few ufunc calls writing into rows of one work array allocated before the loop
(``np.multiply(_t, e, out=_w4)``, ``_w4 += g``), the way an expert writes a hot
loop: no allocation per block, and the same few cache-resident buffers reused.

A buffer is taken when a statement defines its value and given back after the
last statement that reads it; a subexpression of a statement (a product inside
a sum) takes a scratch buffer for as long as the statement needs it. Statements
with functions that have no single ufunc (``sigmoid``, ``logaddexp``, ...) keep
their plain spelling (``printers.ArrayPrinter``) and allocate as before.
Arithmetic is the same as the plain spelling, operation for operation, up to the
order of a sum's terms.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from symgen.backends.numpy import sums
from symgen.codegen.printers import ScalarPrinter
from symgen.compiler.optimize import Dot, Elementwise, Stmt, Sum
from symgen.compiler.scalar_functions import FUNCTIONS, relu

#: Functions of one argument whose NumPy spelling is one ufunc: their ``out=`` spelling.
UFUNCS = {fn.sympy: fn.ufunc for fn in FUNCTIONS if fn.ufunc is not None}


@dataclass(frozen=True)
class _Ufunc:
    """A call ``fn(args..., out=dest)``: it returns ``dest``, so its value can be named."""

    fn: str
    args: tuple[str, ...]
    dest: str
    #: The call as a function's home spells it in place (``np.exp({0}, out={out})``), or
    #: None: ``fn(args..., out=dest)``.
    template: str | None = None

    @classmethod
    def spelled(cls, template: str, arg: str, dest: str) -> _Ufunc:
        """The in-place spelling ``template`` of a function's home, of ``arg`` into ``dest``."""
        return cls("", (arg,), dest, template)

    def __str__(self) -> str:
        if self.template is not None:
            return self.template.format(*self.args, out=self.dest)
        return f"{self.fn}({', '.join(self.args)}, out={self.dest})"


class _Unsupported(Exception):
    """The statement has a form this module does not write in place."""


class InPlace:
    """Writes the array statements of one blocked pass with ``out=`` buffers.

    ``arrays``: names of array symbols (views of the data, block temporaries);
    ``stmts``: the statements run per block (array values and reductions), in
    order. ``lines(stmt, position)`` gives the lines of one statement (None: keep
    the plain spelling), ``release_after(position)`` must follow each statement;
    ``count`` is the number of buffers used once every statement was written.
    Buffer ``k`` is the variable ``_w{k}``, a row of the work array.
    """

    def __init__(
        self,
        arrays: frozenset[str],
        stmts: list[Stmt],
        scalar: ScalarPrinter | None = None,
        dtype: str = "float64",
    ) -> None:
        self.arrays = arrays
        self.dtype = dtype  # the module's: a float32 module's sums are float64 (``sums``)
        self.scalar = scalar or ScalarPrinter()  # prints scalar operands (and records their use)
        self.free: list[int] = []
        self.count = 0
        self.held: dict[str, int] = {}  # value name -> its buffer
        self.last_use: dict[str, int] = {}
        for i, s in enumerate(stmts):
            for e in s.inputs:
                for sym in e.free_symbols:
                    self.last_use[sym.name] = i

    # -- buffers ------------------------------------------------------------------
    def _take(self) -> int:
        if self.free:
            return self.free.pop()
        self.count += 1
        return self.count - 1

    def _give(self, index: int) -> None:
        self.free.append(index)
        self.free.sort(reverse=True)  # lowest index next: deterministic, compact

    @staticmethod
    def buffer(index: int) -> str:
        return f"_w{index}"

    def release_after(self, position: int) -> None:
        """Give back the buffers of values that statement ``position`` read last."""
        for name, index in list(self.held.items()):
            if self.last_use.get(name, -1) <= position:
                del self.held[name]
                self._give(index)

    # -- statements ---------------------------------------------------------------
    def lines(self, stmt: Stmt, position: int) -> list[str] | None:
        """In-place lines for an ``Elementwise`` statement or a whole ``Sum`` or ``Dot`` of a
        1-D pass, or None to keep its plain spelling."""
        if isinstance(stmt, (Sum, Dot)) and not stmt.axes:
            written = self._attempt(
                lambda out, scratch: [self._operand(e, out, scratch) for e in stmt.inputs]
            )
            if written is None:
                return None
            out, values = written
            total = (
                sums.whole_dot(values[0], values[1], self.dtype, flat=True)
                if isinstance(stmt, Dot)
                else sums.whole_sum(values[0], self.dtype)
            )
            return [*map(str, out), f"{stmt.target.name} += {total}"]
        if not isinstance(stmt, Elementwise):
            return None
        expr = stmt.value
        if not self._is_array(expr) or expr.is_Symbol:
            return None

        def write(out: list, scratch: list[int]) -> int:
            index = self._take()
            self._into(expr, self.buffer(index), out, scratch)
            return index

        written = self._attempt(write)
        if written is None:
            return None
        out, index = written
        dest = self.buffer(index)
        name = stmt.target.name
        if self.last_use.get(name, -1) > position:
            self.held[name] = index
        else:  # never read: give it back at once
            self._give(index)
        lines = [str(x) for x in out]
        if isinstance(out[-1], _Ufunc) and out[-1].dest == dest:
            return [*lines[:-1], f"{name} = {lines[-1]}"]  # a ufunc returns its out array
        return [*lines, f"{name} = {dest}"]

    def _attempt(self, write):
        """``(lines, result)`` of ``write(lines, scratch)`` (a line: text or a ``_Ufunc``), its
        scratch buffers given back; None, with the buffers as they were, when the statement
        has an unsupported form."""
        before = (list(self.free), self.count)
        out: list = []
        scratch: list[int] = []
        try:
            result = write(out, scratch)
        except _Unsupported:
            self.free, self.count = before
            return None
        for index in scratch:
            self._give(index)
        return out, result

    # -- expressions ----------------------------------------------------------------
    def _is_array(self, e: sp.Expr) -> bool:
        return any(s.name in self.arrays for s in e.free_symbols)

    def _operand(self, e: sp.Expr, out: list, scratch: list[int]) -> str:
        """A name (or a scalar's text) holding ``e``, computing it into scratch if needed."""
        if not self._is_array(e):
            return self.scalar.doprint(e) if not e.is_Number else repr(float(e))
        if e.is_Symbol:
            return e.name
        index = self._take()
        scratch.append(index)
        name = self.buffer(index)
        self._into(e, name, out, scratch)
        return name

    def _into(self, e: sp.Expr, dest: str, out: list, scratch: list[int]) -> None:
        """Lines computing the array expression ``e`` into ``dest``: the first operand of
        each operation is computed into ``dest`` itself, the next ones update it in place."""
        if e.is_Add:
            self._add(e, dest, out, scratch)
        elif e.is_Mul:
            self._mul(e, dest, out, scratch)
        elif e.is_Pow and e.exp.is_Integer and not self._is_array(e.exp):
            n = int(e.exp)
            if n == 2:
                base = self._first(e.base, dest, out, scratch)
                out.append(_Ufunc("np.multiply", (base, base), dest))
            elif n == -1:
                base = self._first(e.base, dest, out, scratch)
                out.append(_Ufunc("np.divide", ("1.0", base), dest))
            else:
                base = self._first(e.base, dest, out, scratch)
                out.append(_Ufunc("np.power", (base, f"{n}.0"), dest))
        elif type(e) in UFUNCS and len(e.args) == 1:
            arg = self._first(e.args[0], dest, out, scratch)
            out.append(_Ufunc.spelled(UFUNCS[type(e)], arg, dest))
        elif isinstance(e, sp.Max) and len(e.args) == 2 and 0 in e.args:  # relu, as written
            z = next(a for a in e.args if a != 0)  # by the shared-exponential softplus
            arg = self._first(z, dest, out, scratch)
            out.append(_Ufunc.spelled(UFUNCS[relu], arg, dest))
        else:
            raise _Unsupported(str(e))

    def _first(self, e: sp.Expr, dest: str, out: list, scratch: list[int]) -> str:
        """The operand ``e`` of an operation that writes ``dest``: an array symbol as it is,
        anything else computed into ``dest`` first (a ufunc may read and write one array)."""
        if e.is_Symbol or not self._is_array(e):
            return self._operand(e, out, scratch)
        self._into(e, dest, out, scratch)
        return dest

    def _add(self, e: sp.Expr, dest: str, out: list, scratch: list[int]) -> None:
        arrays = [t for t in e.args if self._is_array(t)]
        constant = sp.Add(*[t for t in e.args if not self._is_array(t)])
        # positive terms first, computed ones before bare symbols: the first term is
        # computed into dest (or, a symbol, combined with the second), the rest update it
        arrays.sort(key=lambda t: (t.could_extract_minus_sign(), t.is_Symbol))
        if arrays[0].could_extract_minus_sign():  # every term negative: c - (a + b)
            value = self._first(-sp.Add(*arrays), dest, out, scratch)
            if constant == 0:
                out.append(_Ufunc("np.negative", (value,), dest))
            else:
                c = self._operand(constant, out, scratch)
                out.append(_Ufunc("np.subtract", (c, value), dest))
            return
        elif arrays[0].is_Symbol and (len(arrays) > 1 or constant != 0):
            if len(arrays) > 1:
                term, rest = arrays[1], arrays[2:]
            else:
                term, rest, constant = constant, [], sp.S.Zero
            op = "subtract" if term.could_extract_minus_sign() else "add"
            value = self._operand(-term if op == "subtract" else term, out, scratch)
            out.append(_Ufunc(f"np.{op}", (arrays[0].name, value), dest))
        else:
            self._into(arrays[0], dest, out, scratch)
            rest = arrays[1:]
        for t in rest:
            if t.could_extract_minus_sign():
                out.append(f"{dest} -= {self._operand(-t, out, scratch)}")
            else:
                out.append(f"{dest} += {self._operand(t, out, scratch)}")
        if constant != 0:
            if constant.could_extract_minus_sign():
                out.append(f"{dest} -= {self._operand(-constant, out, scratch)}")
            else:
                out.append(f"{dest} += {self._operand(constant, out, scratch)}")

    def _mul(self, e: sp.Expr, dest: str, out: list, scratch: list[int]) -> None:
        if any(isinstance(f, sp.Heaviside) for f in e.args):
            raise _Unsupported("a mask")  # the printer's comparison is cheaper
        arrays = sorted((f for f in e.args if self._is_array(f)), key=lambda f: f.is_Symbol)
        coeff = sp.Mul(*[f for f in e.args if not self._is_array(f)])
        if arrays[0].is_Symbol:
            if len(arrays) > 1:
                other, rest = self._operand(arrays[1], out, scratch), arrays[2:]
            else:
                other, rest, coeff = self._operand(coeff, out, scratch), [], sp.S.One
            out.append(_Ufunc("np.multiply", (arrays[0].name, other), dest))
        else:
            self._into(arrays[0], dest, out, scratch)
            rest = arrays[1:]
        for f in rest:
            out.append(f"{dest} *= {self._operand(f, out, scratch)}")
        if coeff != 1:
            out.append(f"{dest} *= {self._operand(coeff, out, scratch)}")
