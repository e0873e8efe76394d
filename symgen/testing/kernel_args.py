"""The checks of a kernel launch, stricter than CuPy's: the grid and block within CUDA's
limits, and each argument packed for ``void* args[]`` only if it matches its parameter
(device arrays of the pointee's dtype, NumPy scalars of exactly the parameter's type,
no overlap where ``__restrict__`` forbids it)."""

from __future__ import annotations

import ctypes
import itertools
import operator
from collections.abc import Sequence
from typing import Any

import numpy as np

from symgen.testing.device_arrays import ndarray
from symgen.testing.errors import KernelLaunchError
from symgen.testing.kernel_source import KernelParam, KernelSignature

_MAX_THREADS_PER_BLOCK = 1024
_MAX_BLOCK = (1024, 1024, 64)
_MAX_GRID = (2**31 - 1, 65535, 65535)
_MAX_DYNAMIC_SHARED = 48 * 1024


def dims(what: str, value: int | Sequence[int]) -> tuple[int, int, int]:
    """A grid or block given as an int or a tuple of 1 to 3 ints, as three ints."""
    items = value if isinstance(value, tuple) else (value,)
    if not 1 <= len(items) <= 3 or any(isinstance(v, bool) for v in items):
        raise TypeError(f"{what} must be an int or a tuple of 1 to 3 ints, got {value!r}")
    try:
        dims = [operator.index(v) for v in items]
    except TypeError:
        raise TypeError(f"{what} must be an int or a tuple of 1 to 3 ints, got {value!r}") from None
    padded = (*dims, 1, 1)
    return padded[0], padded[1], padded[2]


def check_configuration(
    kernel: str, grid: tuple[int, ...], block: tuple[int, ...], shared_mem: int
) -> None:
    """Raise like cuLaunchKernel (CUDA_ERROR_INVALID_VALUE) for an impossible launch."""
    problems = []
    if min(grid) < 1 or min(block) < 1:
        problems.append(f"grid {grid} and block {block} must be positive")
    if block[0] * block[1] * block[2] > _MAX_THREADS_PER_BLOCK:
        problems.append(
            f"block {block} has {block[0] * block[1] * block[2]} threads, "
            f"more than {_MAX_THREADS_PER_BLOCK}"
        )
    if any(b > m for b, m in zip(block, _MAX_BLOCK, strict=True)):
        problems.append(f"block {block} exceeds the per-axis maximum {_MAX_BLOCK}")
    if any(g > m for g, m in zip(grid, _MAX_GRID, strict=True)):
        problems.append(f"grid {grid} exceeds the per-axis maximum {_MAX_GRID}")
    if not 0 <= shared_mem <= _MAX_DYNAMIC_SHARED:
        problems.append(f"shared_mem={shared_mem} is not in [0, {_MAX_DYNAMIC_SHARED}]")
    if problems:
        raise KernelLaunchError(
            f"kernel {kernel!r}: CUDA_ERROR_INVALID_VALUE: invalid argument ("
            + "; ".join(problems)
            + ")"
        )


def _accepted_scalars(dt: np.dtype) -> str:
    extra = {"int64": " or a Python int", "float64": " or a Python float", "bool": " or True/False"}
    return f"numpy.{dt.type.__name__}{extra.get(dt.name, '')}"


def _scalar_value(where: str, param: KernelParam, value: object) -> ctypes._SimpleCData:
    """A ctypes value for a by-value parameter; the NumPy type must match exactly.

    Python ints, floats and bools are taken for ``long long``, ``double`` and ``bool``
    only: CuPy passes them as exactly those (8, 8 and 1 bytes)."""
    dt = param.dtype
    exact = type(value) is dt.type
    python = (
        (type(value) is int and dt == np.int64)
        or (type(value) is float and dt == np.float64)
        or (type(value) is bool and dt == np.bool_)
    )
    if not (exact or python):
        if isinstance(value, ndarray):
            got = "a cupy.ndarray (device arrays are passed as pointers)"
        elif isinstance(value, np.ndarray):
            got = "a numpy.ndarray"
        else:
            got = f"{type(value).__module__}.{type(value).__name__}".removeprefix("builtins.")
        raise TypeError(f"{where}: expected {_accepted_scalars(dt)}, got {got}")
    if type(value) is int and not -(2**63) <= value < 2**63:
        raise OverflowError(f"{where}: {value} does not fit in a long long")
    item = value.item() if isinstance(value, np.generic) else value
    return np.ctypeslib.as_ctypes_type(dt)(item)


def _pointer_value(where: str, param: KernelParam, value: object) -> ctypes.c_void_p:
    """The data pointer of a device array that matches a pointer parameter."""
    if not isinstance(value, ndarray):
        if isinstance(value, np.ndarray):
            raise TypeError(
                f"{where}: got a numpy.ndarray (host memory); kernels take device arrays: "
                "pass cupy.asarray(x)"
            )
        raise TypeError(f"{where}: expected a cupy.ndarray, got {type(value).__name__}")
    if value.dtype != param.dtype:
        raise TypeError(f"{where}: expected an array of {param.dtype}, got {value.dtype}")
    if not value.flags.c_contiguous:
        raise ValueError(f"{where}: the array is not C-contiguous; pass cupy.ascontiguousarray(x)")
    if not value.flags.aligned:
        raise ValueError(f"{where}: the array is not aligned for {param.ctype}")
    if not param.const and not value.flags.writeable:
        raise ValueError(f"{where}: the array is read-only but the pointer is not const")
    return ctypes.c_void_p(value.ctypes.data)


def _check_aliasing(kernel: KernelSignature, args: tuple[Any, ...]) -> None:
    """Overlapping arrays are undefined behaviour when either pointer is __restrict__
    and either is written through."""
    pointers = [
        (i, p, a) for i, (p, a) in enumerate(zip(kernel.params, args, strict=True)) if p.pointer
    ]
    for (i, p, a), (j, q, b) in itertools.combinations(pointers, 2):
        restricted = p.restrict or q.restrict
        written = not (p.const and q.const)
        if restricted and written and a.size and b.size and np.may_share_memory(a, b):
            raise ValueError(
                f"kernel {kernel.name!r}: arguments {i} ({p.name}) and {j} ({q.name}) overlap "
                "in memory, which __restrict__ forbids when one of them is written"
            )


class PackedArgs:
    """The ``void* args[]`` of a launch, with the values it points to kept alive."""

    def __init__(self, kernel: KernelSignature, args: object) -> None:
        if not isinstance(args, tuple):
            raise TypeError(
                f"kernel {kernel.name!r}: args must be a tuple, got {type(args).__name__}"
            )
        if len(args) != len(kernel.params):
            signature = ", ".join(str(p) for p in kernel.params)
            raise TypeError(
                f"kernel {kernel.name!r} takes {len(kernel.params)} arguments "
                f"({signature}), got {len(args)}"
            )
        self.values: list[ctypes._SimpleCData] = []
        for i, (param, value) in enumerate(zip(kernel.params, args, strict=True)):
            where = f"kernel {kernel.name!r}, argument {i} ({param})"
            pack = _pointer_value if param.pointer else _scalar_value
            self.values.append(pack(where, param, value))
        _check_aliasing(kernel, args)
        self.array = (ctypes.c_void_p * len(self.values))(
            *(ctypes.addressof(v) for v in self.values)
        )
