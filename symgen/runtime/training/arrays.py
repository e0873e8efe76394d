"""The array library a fit computes with (NumPy, or the CuPy of a CUDA module), and the
few operations ``fit`` needs from it, written once for both."""

from __future__ import annotations

import types
from typing import Any

import numpy as np


def array_library(module: Any) -> Any:
    """The array module ``module`` computes with: the ``cp`` (CuPy, or a stand-in such
    as ``symgen.testing.fakecupy``) of a generated CUDA module, else NumPy."""
    xp = getattr(module, "cp", None)
    if (
        isinstance(xp, types.ModuleType)
        and xp is not np
        and all(hasattr(xp, attr) for attr in ("ndarray", "asarray", "ascontiguousarray"))
    ):
        return xp
    return np


def copy_into(xp: Any, target: Any, source: Any) -> None:
    """``target[...] = source`` (arrays of one shape and dtype, both of ``xp``)."""
    if xp is np:
        np.copyto(target, source)
    else:
        target[...] = source


def all_finite(xp: Any, array: Any) -> bool:
    """Whether every entry of ``array`` (an array of ``xp``) is finite, checked where the
    array lives; only a bool comes back from the device."""
    if xp is np:
        return bool(np.isfinite(array).all())
    # ``symgen.testing.fakecupy`` has no ``isfinite``: ``x - x`` is 0 exactly for every
    # finite x and NaN for an infinite or NaN x, with the same ops in CuPy and the fake.
    with np.errstate(invalid="ignore"):
        return bool(((array - array) == 0).all())
