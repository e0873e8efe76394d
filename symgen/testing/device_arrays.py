"""Device arrays of the fake ``cupy``: :class:`ndarray` is a NumPy subclass standing for
device memory; plain NumPy arrays are *not* instances, and mixing them with device
arrays raises ``TypeError`` as CuPy does, so host/device mix-ups show up on the CPU. The
array functions here keep results on the device; :func:`empty` fills with NaN (or 0xA5
bytes), so reading memory nobody wrote shows up."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike


def _is_host_array(x: object) -> bool:
    """A plain NumPy array with at least one axis (0-d arrays count as scalars)."""
    return isinstance(x, np.ndarray) and not isinstance(x, ndarray) and x.ndim > 0


def _reject_host_arrays(what: str, values: Sequence[object]) -> None:
    for x in values:
        if _is_host_array(x):
            raise TypeError(
                f"{what}: unsupported type numpy.ndarray (host memory); "
                "move it to the device with cupy.asarray first"
            )


def _host_view(x: object) -> object:
    return x.view(np.ndarray) if isinstance(x, ndarray) else x


def _to_device(result: Any) -> Any:
    """Wrap NumPy results as device arrays (scalars become 0-d arrays, as in CuPy)."""
    if isinstance(result, tuple):
        return tuple(_to_device(r) for r in result)
    if isinstance(result, np.ndarray):
        return result.view(ndarray)
    if isinstance(result, np.generic | bool | int | float):
        return np.asarray(result).view(ndarray)
    return result


class ndarray(np.ndarray):  # noqa: N801 - the name CuPy uses
    """A NumPy array standing for a CuPy device array.

    ``.get()`` copies it to a plain (host) NumPy array. Operations with another device
    array or a scalar stay on the device; an operation with a plain NumPy array raises
    ``TypeError`` (implicit host/device transfers are errors in CuPy too).
    """

    def get(self, stream: object = None) -> np.ndarray:
        """A C-ordered host copy (``stream`` is accepted and ignored)."""
        del stream
        return np.array(self.view(np.ndarray), copy=True, order="C")

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        out = kwargs.get("out", ())
        _reject_host_arrays(f"cupy.{ufunc.__name__}", (*inputs, *out))
        if out:
            kwargs["out"] = tuple(_host_view(o) for o in out)
        result = getattr(ufunc, method)(*(_host_view(x) for x in inputs), **kwargs)
        if out:
            return out[0] if len(out) == 1 else out
        return _to_device(result)

    def __getitem__(self, key: Any) -> Any:
        return _to_device(super().__getitem__(key))


def asarray(a: ArrayLike, dtype: DTypeLike | None = None) -> ndarray:
    """``a`` on the device: device arrays as they are (cast if ``dtype`` differs), other
    inputs copied (host to device), keeping their memory order."""
    if isinstance(a, ndarray):
        return a if dtype is None or a.dtype == np.dtype(dtype) else a.astype(dtype)
    return np.array(a, dtype=dtype, copy=True, order="K").view(ndarray)


def ascontiguousarray(a: ndarray, dtype: DTypeLike | None = None) -> ndarray:
    """``a`` if it is C-contiguous (and of ``dtype``), else a C-contiguous copy.

    Like CuPy, it takes device arrays only."""
    if not isinstance(a, ndarray):
        raise TypeError(f"cupy.ascontiguousarray takes a cupy.ndarray, got {type(a).__name__}")
    return np.ascontiguousarray(a.view(np.ndarray), dtype=dtype).view(ndarray)


def asnumpy(a: ArrayLike) -> np.ndarray:
    """A host copy of a device array; host inputs are returned as NumPy arrays."""
    return a.get() if isinstance(a, ndarray) else np.asarray(a)


def _poison(array: np.ndarray) -> np.ndarray:
    """Fill with NaN (floating point) or 0xA5 bytes, like memory nobody wrote."""
    if np.issubdtype(array.dtype, np.inexact):
        array.fill(np.nan)
    else:
        array.reshape(-1).view(np.uint8).fill(0xA5)
    return array


def empty(shape: int | Sequence[int], dtype: DTypeLike = float, order: str = "C") -> ndarray:
    """An uninitialised device array (filled with NaN or 0xA5 bytes to expose reads)."""
    return _poison(np.empty(shape, dtype=dtype, order=order)).view(ndarray)


def zeros(shape: int | Sequence[int], dtype: DTypeLike = float, order: str = "C") -> ndarray:
    return np.zeros(shape, dtype=dtype, order=order).view(ndarray)


def ones(shape: int | Sequence[int], dtype: DTypeLike = float, order: str = "C") -> ndarray:
    return np.ones(shape, dtype=dtype, order=order).view(ndarray)


def full(
    shape: int | Sequence[int], fill_value: Any, dtype: DTypeLike | None = None, order: str = "C"
) -> ndarray:
    return np.full(shape, fill_value, dtype=dtype, order=order).view(ndarray)


def eye(n: int, dtype: DTypeLike = float) -> ndarray:
    return asarray(np.eye(n, dtype=dtype))


def empty_like(a: ArrayLike, dtype: DTypeLike | None = None) -> ndarray:
    """Like :func:`empty`, with the shape (and dtype) of ``a``; C order."""
    a = np.asarray(a)
    return empty(a.shape, dtype=a.dtype if dtype is None else dtype)


def zeros_like(a: ArrayLike, dtype: DTypeLike | None = None) -> ndarray:
    a = np.asarray(a)
    return zeros(a.shape, dtype=a.dtype if dtype is None else dtype)


def full_like(a: ArrayLike, fill_value: Any, dtype: DTypeLike | None = None) -> ndarray:
    a = np.asarray(a)
    return full(a.shape, fill_value, dtype=a.dtype if dtype is None else dtype)


def arange(
    start: float, stop: float | None = None, step: float = 1, dtype: DTypeLike | None = None
) -> ndarray:
    if stop is None:
        start, stop = 0, start
    return np.arange(start, stop, step, dtype=dtype).view(ndarray)


def may_share_memory(a: ndarray, b: ndarray, max_work: None = None) -> bool:
    """Whether the byte ranges of two device arrays overlap (CuPy checks the bounds only,
    and takes device arrays only)."""
    if max_work is not None:
        raise NotImplementedError("Only supported for `max_work` is `None`")  # as CuPy
    for x in (a, b):
        if not isinstance(x, ndarray):
            raise TypeError(f"cupy.may_share_memory takes cupy.ndarray, got {type(x).__name__}")
    return bool(np.may_share_memory(a.view(np.ndarray), b.view(np.ndarray)))


def _device_function(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` on device arrays: host arrays rejected, results on the device."""
    name = f"cupy.{function.__name__}"

    @functools.wraps(function)
    def on_device(*args: Any, **kwargs: Any) -> Any:
        _reject_host_arrays(name, (*args, *kwargs.values()))
        out = kwargs.get("out")
        result = function(
            *(_host_view(x) for x in args), **{k: _host_view(v) for k, v in kwargs.items()}
        )
        return out if isinstance(out, ndarray) else _to_device(result)

    return on_device


float32 = np.float32
float64 = np.float64
int32 = np.int32
int64 = np.int64
uint32 = np.uint32
uint64 = np.uint64
bool_ = np.bool_
dtype = np.dtype

sum = _device_function(np.sum)  # noqa: A001 - the names CuPy uses
dot = _device_function(np.dot)
matmul = _device_function(np.matmul)
sqrt = _device_function(np.sqrt)
multiply = _device_function(np.multiply)
divide = _device_function(np.divide)
add = _device_function(np.add)
subtract = _device_function(np.subtract)
exp = _device_function(np.exp)
log = _device_function(np.log)
log1p = _device_function(np.log1p)
tanh = _device_function(np.tanh)
maximum = _device_function(np.maximum)
minimum = _device_function(np.minimum)
where = _device_function(np.where)
mean = _device_function(np.mean)
allclose = _device_function(np.allclose)
