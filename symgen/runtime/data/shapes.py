"""``check_shapes``: every array checked against the problem's symbolic shapes before
training. A mismatch is a ``SpecError`` naming the array, its shape and the shape it
should have, with the dimensions already fixed by other arrays, e.g. ``data 'X' in
data.npz has shape (3, 4); expected (M, N_I) with N_I = 5 from W1``."""

from __future__ import annotations

from symgen.compiler.problem import Problem
from symgen.errors import SpecError
from symgen.runtime.data.slots import Value, slots


def check_shapes(problem: Problem, values: dict[str, Value]) -> None:
    """Raise ``SpecError`` unless every array has its slot's shape, dimensions agreeing.

    Dimensions are fixed in order, parameters first, by the first array that
    has them; a later array that disagrees is the one reported. A column (n, 1) or
    row (1, n) may be a 1-D array, as the generated modules take it.
    """
    bound: dict[str, tuple[int, str]] = {}
    for slot in slots(problem):
        value = values[slot.name]
        shape = tuple(value.array.shape)
        label = f"{slot.role} {slot.name!r} {value.source} has shape {shape}"
        if not slot.shape:
            if shape:
                raise SpecError(f"{label}; expected a single number")
            continue
        if len(shape) == 1 and len(slot.shape) == 2 and 1 in slot.shape:  # a vector, 1-D
            shape = (shape[0], 1) if slot.shape[1] == 1 else (1, shape[0])
        if len(shape) != len(slot.shape):
            raise SpecError(f"{label}; expected a {len(slot.shape)}-D array {slot.shape_text}")
        conflicts, fresh = [], {}
        for dim, size in zip(slot.shape, shape, strict=True):
            if size == 0:
                raise SpecError(f"{label}; expected {slot.shape_text} with {dim} >= 1")
            if dim.is_Integer:
                if size != int(dim):
                    conflicts.append(None)
                continue
            key = str(dim)
            known = bound.get(key) or fresh.get(key)
            if known is None:
                fresh[key] = (size, slot.name)
            elif known[0] != size:
                origin = "" if known[1] == slot.name else f" from {known[1]}"
                conflicts.append(f"{key} = {known[0]}{origin}")
        if conflicts:
            told = [c for c in conflicts if c is not None]
            raise SpecError(
                f"{label}; expected {slot.shape_text}"
                + (f" with {', '.join(told)}" if told else "")
            )
        bound.update(fresh)
