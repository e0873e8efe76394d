"""What ``symgen train`` needs for each parameter and data array of a problem (a
``Slot``: its name, role and symbolic shape), the ``Value`` read for it, and the check
that a value holds real, finite numbers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp
from sympy.matrices.expressions import MatrixExpr

from symgen.compiler.problem import Problem
from symgen.errors import SpecError

#: The sample count of per-sample problems, as it is written in messages.
SAMPLES = sp.Symbol("N", integer=True, positive=True)


@dataclass(frozen=True)
class Slot:
    """One parameter or data array of a problem and the shape it must have."""

    name: str
    role: str  # "param" or "data"
    #: Symbolic dimensions; () for a single number.
    shape: tuple[sp.Expr, ...]

    @property
    def shape_text(self) -> str:
        if not self.shape:
            return "a single number"
        inner = ", ".join(str(d) for d in self.shape)
        return f"({inner},)" if len(self.shape) == 1 else f"({inner})"


@dataclass(frozen=True)
class Value:
    """An array read for a slot, and where it came from (for messages)."""

    #: A NumPy array, or a Dask array for data read lazily from a folder.
    array: Any
    source: str  # e.g. "in data.npz", "from --init a=0.5"


def slots(problem: Problem) -> tuple[Slot, ...]:
    """The problem's parameters, then its data, each with its expected shape."""
    out = []
    for role, symbols in (("param", problem.params), ("data", problem.data)):
        for symbol in symbols:
            if isinstance(symbol, MatrixExpr):
                shape = tuple(sp.sympify(d) for d in symbol.shape)
            elif role == "data" and problem.kind == "per_sample":
                shape = (SAMPLES,)
            else:
                shape = ()
            out.append(Slot(symbol.name, role, shape))
    return tuple(out)


def numeric(slot: Slot, value: Value) -> Value:
    """``value`` as an array of real numbers (integers converted), checked finite unless
    it is read lazily; ``SpecError`` naming the array for booleans, complex numbers,
    strings and objects, or naming the first bad entry."""
    array = value.array
    label = f"{slot.role} {slot.name!r} {value.source}"
    if not isinstance(array, np.ndarray) and not hasattr(array, "dask"):
        array = np.asarray(array)
    if array.dtype == bool:
        raise SpecError(
            f"{label} holds booleans (dtype bool), not real numbers; "
            "save it as numbers (e.g. x.astype(float)) if 0 and 1 are meant"
        )
    if np.issubdtype(array.dtype, np.integer):
        array = array.astype(float)
    if not np.issubdtype(array.dtype, np.floating):
        raise SpecError(f"{label} is not an array of real numbers (dtype {array.dtype})")
    if hasattr(array, "dask"):
        # Read lazily: scanning for non-finite values would read it all; a NaN shows up
        # as a non-finite loss instead.
        return Value(array, value.source)
    bad = ~np.isfinite(array)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        where = f"[{', '.join(map(str, first))}]" if first else ""
        raise SpecError(
            f"{label} has {int(bad.sum())} missing, non-numeric or non-finite value(s) "
            f"(first: {slot.name}{where} = {array[first]})"
        )
    return Value(array, value.source)
