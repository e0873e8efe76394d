"""A module's parameters as one flat float64 vector (what SciPy's solvers move) and back,
by name and shape, and its data as arrays of the module's dtype."""

from __future__ import annotations

import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: What a module raises at a trial point outside the loss's domain, once x0 has been
#: evaluated (the arguments were accepted there and only the parameters' values changed):
#: the scalar arithmetic's ``math.log`` of a negative, division by zero, overflow. The
#: solvers hand SciPy an infinite loss or infinite residuals instead, which its line
#: searches, trust regions and MINPACK step back from (NumPy's NaN would not).
OUTSIDE_DOMAIN = (ArithmeticError, ValueError)


def module_name(module: Any) -> str:
    """The name messages use for ``module``: its problem's name."""
    if isinstance(module, types.ModuleType):
        return module.__name__.rsplit(".", 1)[-1]
    return type(module).__name__


def _by_name(what: str, names: tuple[str, ...], given: Any, name: str) -> tuple[list[Any], bool]:
    """``given`` (a dict by name, or a sequence in ``names`` order; one array alone when
    there is one name) as a list in ``names`` order, and whether it was a dict."""
    if isinstance(given, Mapping):
        unknown = sorted(set(given) - set(names))
        missing = [n for n in names if n not in given]
        if unknown or missing:
            problems = []
            if missing:
                problems.append(f"no value for {', '.join(map(repr, missing))}")
            if unknown:
                problems.append(f"unknown name(s) {', '.join(map(repr, unknown))}")
            raise ValueError(
                f"{name}: {what}: {'; '.join(problems)}; the module's are {', '.join(names)}"
            )
        return [given[n] for n in names], True
    if isinstance(given, np.ndarray) and len(names) == 1:
        return [given], False
    if not isinstance(given, Sequence) or isinstance(given, str):
        raise TypeError(
            f"{name}: {what} must be a dict by name or a tuple in the order "
            f"{', '.join(names)}, got {type(given).__name__}"
        )
    if len(given) != len(names):
        raise ValueError(
            f"{name}: {what} has {len(given)} values; the module takes {len(names)}: "
            f"{', '.join(names)}"
        )
    return list(given), False


@dataclass(frozen=True)
class Layout:
    """Where each parameter lies in the flat vector: ``shapes[i]`` is None for a scalar
    parameter (a float), else its array's shape; ``named``: the caller gave a dict."""

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...] | None, ...]
    dtype: np.dtype
    named: bool

    @property
    def size(self) -> int:
        return sum(1 if s is None else int(np.prod(s)) for s in self.shapes)

    def flatten(self, values: Sequence[Any]) -> np.ndarray:
        """Values in ``names`` order (floats, arrays) as one float64 vector."""
        return (
            np.concatenate([np.ravel(np.asarray(v, dtype=np.float64)) for v in values])
            if values
            else np.empty(0)
        )

    def unflatten(self, x: np.ndarray) -> list[Any]:
        """The parameters at ``x``: floats, and arrays of the module's dtype and shapes, each
        in memory of its own, never a view of ``x``: SciPy reuses its vectors (L-BFGS-B
        writes every iterate into the one array), so a view handed to a callback or kept in
        a result would change under the caller. A copy costs the parameters' size, not the
        data's."""
        out: list[Any] = []
        at = 0
        for shape in self.shapes:
            if shape is None:
                out.append(float(x[at]))
                at += 1
                continue
            size = int(np.prod(shape))
            out.append(np.array(x[at : at + size], dtype=self.dtype).reshape(shape))
            at += size
        return out

    def returned(self, values: list[Any]) -> dict[str, Any] | tuple[Any, ...]:
        """``values`` as the caller gave the parameters: a dict by name, or a tuple."""
        return dict(zip(self.names, values, strict=True)) if self.named else tuple(values)


def layout(module: Any, x0: Any) -> tuple[Layout, np.ndarray]:
    """The layout of ``module``'s parameters given as ``x0`` (a dict by name or a tuple in
    ``PARAMS`` order), and ``x0`` flattened."""
    name = module_name(module)
    names = tuple(module.PARAMS)
    values, named = _by_name("x0", names, x0, name)
    shapes = []
    for param, value in zip(names, values, strict=True):
        array = np.asarray(value)
        if array.dtype.kind not in "fiu":
            raise TypeError(f"{name}: x0 {param!r} must be real numbers, got {array.dtype}")
        _check_finite(name, param, array)
        shapes.append(None if array.ndim == 0 else array.shape)
    found = Layout(names, tuple(shapes), np.dtype(module.DTYPE), named)
    return found, found.flatten(values)


def _check_finite(name: str, param: str, array: np.ndarray) -> None:
    """A ``ValueError`` naming a parameter whose start is NaN or infinite: SciPy would start
    there and fail without saying why (L-BFGS-B's "ABNORMAL: " and a NaN loss,
    ``least_squares``'s "Initial guess is outside of provided bounds" with no bounds)."""
    bad = ~np.isfinite(array)
    if not bad.any():
        return
    if array.ndim == 0:
        found = f"is {array.item()}"
    else:
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        found = f"holds {array[index]} at index {index}"
    raise ValueError(
        f"{name}: x0 {param!r} {found}; the solvers start from finite values: "
        f"give {param!r} a finite start"
    )


def data_arrays(module: Any, data: Any) -> dict[str, Any]:
    """``data`` (a dict by name, or a tuple in ``DATA`` order) as arrays of the module's
    dtype, converted once, by name."""
    names = tuple(module.DATA)
    if data is None:
        data = {}
    values, _ = _by_name("data", names, data, module_name(module))
    dtype = np.dtype(module.DTYPE)
    out = {}
    for n, value in zip(names, values, strict=True):
        array = np.asarray(value)
        if array.dtype.kind not in "fiu":
            raise TypeError(
                f"{module_name(module)}: data {n!r} must be real numbers, got {array.dtype}"
            )
        out[n] = np.ascontiguousarray(array, dtype=dtype)
    return out
