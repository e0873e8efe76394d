"""What ``fit`` starts from: the initial parameters (copied, checked finite) and the data
(checked against the module's names), as arrays of the module's array library and dtype."""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from symgen.runtime.training.arrays import all_finite


def initial_params(
    name: str, names: tuple[str, ...], params: Any, dtype: Any, xp: Any = np
) -> list[Any]:
    """The initial values checked: floats for scalars, copies of the arrays as arrays of
    ``xp`` (C-contiguous device arrays for a CUDA module) of ``dtype``."""
    if isinstance(params, Mapping):
        missing = [n for n in names if n not in params]
        extra = [str(n) for n in params if n not in names]
        if missing or extra:
            raise ValueError(
                f"{name}: params "
                + "; ".join(
                    part
                    for part in (
                        missing and f"missing {', '.join(map(repr, missing))}",
                        extra and f"unknown {', '.join(map(repr, extra))}",
                    )
                    if part
                )
                + f"; the parameters are {', '.join(names)}"
            )
        params = [params[n] for n in names]
    elif isinstance(params, (np.ndarray, xp.ndarray)) and params.ndim == 1:
        params = list(params)
    elif isinstance(params, (str, bytes)) or not isinstance(params, Sequence):
        raise TypeError(
            f"{name}: params must be a tuple of initial values in PARAMS order "
            f"({', '.join(names)}) or a dict by name, got {type(params).__name__}"
        )
    if len(params) != len(names):
        raise TypeError(
            f"{name}: fit() got {len(params)} initial parameter value(s) but the module has "
            f"{len(names)}: {', '.join(names)} (in that order)"
        )
    out = []
    for pname, value in zip(names, params, strict=True):
        real_numbers(name, f"parameter {pname!r}", value)
        if np.ndim(value) == 0:
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise TypeError(
                    f"{name}: parameter {pname!r} must be a number or an array of numbers, "
                    f"got {type(value).__name__}"
                ) from None
            if not math.isfinite(number):
                raise ValueError(f"{name}: initial parameter {pname!r} is {number}")
            out.append(number)
        elif xp is np:
            try:
                array = np.array(value, dtype=dtype, copy=True)
            except (TypeError, ValueError) as exc:
                raise TypeError(f"{name}: parameter {pname!r}: {exc}") from None
            if not np.isfinite(array).all():
                raise ValueError(f"{name}: initial parameter {pname!r} has non-finite entries")
            out.append(array)
        else:
            out.append(device_param(name, pname, value, dtype, xp))
    return out


def device_param(name: str, pname: str, value: Any, dtype: Any, xp: Any) -> Any:
    """A C-contiguous device copy (of ``xp``, CuPy) of an initial array parameter given as
    a device array, a NumPy array or a nested list, checked to be finite."""
    try:
        if isinstance(value, xp.ndarray):  # already on the device: copy it there
            array = value.astype(dtype, order="C", copy=True)
            finite = all_finite(xp, array)
        else:  # on the host: check it there, then copy it to the device
            host = np.asarray(value, dtype=dtype)
            finite = bool(np.isfinite(host).all())
            array = xp.ascontiguousarray(xp.asarray(host))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name}: parameter {pname!r}: {exc}") from None
    if not finite:
        raise ValueError(f"{name}: initial parameter {pname!r} has non-finite entries")
    return array


def has_dask_arrays(data: Any) -> bool:
    """Whether ``data`` holds a Dask array (without importing Dask when it is not in use)."""
    array = sys.modules.get("dask.array")
    if array is None or not isinstance(data, Mapping):
        return False
    return any(isinstance(value, array.Array) for value in data.values())


def data_arrays(
    name: str,
    names: tuple[str, ...],
    data: Mapping[str, Any] | None,
    dtype: Any,
    *,
    lazy: bool = False,
    xp: Any = np,
    labels: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The data by name, checked against the module's names; arrays of ``xp`` (NumPy, or
    C-contiguous CuPy arrays for a CUDA module) of ``dtype`` (Dask arrays, when ``lazy``,
    are left as they are: they are read chunk by chunk). The ``labels`` (class indices)
    keep their dtype: the module checks that they are integers."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise TypeError(
            f"{name}: data must be a dict of arrays by name ({', '.join(names) or 'none'}), "
            f"got {type(data).__name__}"
        )
    missing = [n for n in names if n not in data]
    extra = [str(n) for n in data if n not in names]
    if missing:
        raise ValueError(
            f"{name}: missing data {', '.join(map(repr, missing))}; the module needs "
            f"{', '.join(names)}"
        )
    if extra:
        needs = f"its data are {', '.join(names)}" if names else "it takes no data"
        raise ValueError(f"{name}: unknown data {', '.join(map(repr, extra))}; {needs}")
    arrays: dict[str, Any] = {}
    for dname in names:
        value = data[dname]
        real_numbers(name, f"data {dname!r}", value)
        if lazy and hasattr(value, "dask"):
            arrays[dname] = value
        elif np.ndim(value) == 0:
            arrays[dname] = float(value)
        else:
            try:
                if dname in labels:
                    arrays[dname] = xp.asarray(value)
                elif xp is np:
                    arrays[dname] = np.asarray(value, dtype=dtype)
                else:
                    arrays[dname] = xp.ascontiguousarray(xp.asarray(value, dtype=dtype))
            except (TypeError, ValueError) as exc:
                raise TypeError(
                    f"{name}: data {dname!r} must be an array of numbers: {exc}"
                ) from None
    return arrays


#: What arrays of other kinds of dtype hold, for messages (``numpy.dtype.kind``).
_NOT_REAL = {"b": "booleans", "c": "complex numbers", "O": "Python objects", "U": "strings",
             "S": "bytes", "M": "dates", "m": "time spans", "V": "records"}  # fmt: skip


def real_numbers(name: str, what: str, value: Any) -> None:
    """``TypeError`` naming ``what`` unless ``value`` holds integers or real floats (never
    converted: complex numbers would lose their imaginary part, strings be parsed,
    ``None`` become NaN, booleans pass for 0 and 1)."""
    dtype = getattr(value, "dtype", None)  # NumPy, CuPy and Dask arrays, NumPy scalars
    try:
        kind = np.dtype(dtype).kind if dtype is not None else np.asarray(value).dtype.kind
    except (TypeError, ValueError):  # ragged lists and the like: the conversion says so
        return
    if kind not in "iuf":
        held = _NOT_REAL.get(kind, f"dtype kind {kind!r}")
        raise TypeError(f"{name}: {what} must hold real numbers, not {held}")
