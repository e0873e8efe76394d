"""``read_init``: initial parameters from ``--init FILE.npz`` and ``--init NAME=VALUE`` for
scalar parameters (parsed without ``eval``: ``0.5``, ``pi/2``, ``exp(-1)``)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from symgen.compiler.exprparse import parse_assignment
from symgen.compiler.problem import Problem
from symgen.errors import SpecError
from symgen.runtime.data.in_memory import read_npz
from symgen.runtime.data.slots import Value, numeric, slots


def read_init(problem: Problem, items: list[str]) -> dict[str, Value]:
    """Initial parameters from ``--init`` items: ``FILE.npz`` or ``NAME=VALUE``.

    A later item overrides an earlier one for the same parameter.
    """
    param_slots = {s.name: s for s in slots(problem) if s.role == "param"}
    names = ", ".join(param_slots)
    values: dict[str, Value] = {}
    files = []
    for item in items:
        if _is_assignment(item):
            name, expr = parse_assignment(item)
            slot = param_slots.get(name)
            if slot is None:
                raise SpecError(
                    f"--init {item}: {problem.name} has no parameter {name!r}; "
                    f"its parameters are {names}"
                )
            if slot.shape:
                raise SpecError(
                    f"--init {item}: {name!r} is an array of shape {slot.shape_text}; "
                    "give it in an --init FILE.npz"
                )
            try:
                number = float(expr)
            except (TypeError, ValueError):
                raise SpecError(f"--init {item}: {expr} is not a real number") from None
            if not math.isfinite(number):
                raise SpecError(f"--init {item}: the value is {number}")
            values[name] = Value(np.asarray(number), f"from --init {item}")
        else:
            files.append(item)
            arrays = read_npz(item)  # only the parameters' arrays are read
            for name in arrays:
                if name in param_slots:
                    values[name] = numeric(param_slots[name], Value(arrays[name], f"in {item}"))
    for name, slot in param_slots.items():
        if name not in values:
            where = f"not in {', '.join(files)}; " if files else ""
            how = (
                f"give --init {name}=VALUE or an --init FILE.npz holding it"
                if not slot.shape
                else "give an --init FILE.npz holding it"
            )
            shape = f" {slot.shape_text}" if slot.shape else ""
            raise SpecError(f"no initial value for parameter {name!r}{shape}: {where}{how}")
    return values


def _is_assignment(item: str) -> bool:
    return "=" in item and not item.lower().endswith(".npz") and not Path(item).exists()
