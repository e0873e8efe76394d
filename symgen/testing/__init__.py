"""Testing helpers: run generated CUDA/CuPy modules on a machine without a GPU.

* ``emulator.h``: a C++ header that lets CUDA kernel source compile with g++ and run
  on the CPU (threads of a block as fibers, a real ``__syncthreads()`` barrier);
* :mod:`symgen.testing.fakecupy`: a module to put in place of ``cupy``; device
  arrays are a NumPy subclass (``device_arrays``) and ``RawModule``/``RawKernel``
  (``raw_kernels``) compile the kernels with the emulator (``kernel_source``,
  ``translation_unit``, ``kernel_build``) and check their arguments strictly
  (``kernel_args``).

Needs g++ (C++17) on PATH to run kernels; the array part needs nothing.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from symgen.testing import fakecupy
from symgen.testing.errors import CompileError, EmulatorError, KernelLaunchError
from symgen.testing.translation_unit import HEADER_PATH

__all__ = [
    "HEADER_PATH",
    "CompileError",
    "EmulatorError",
    "KernelLaunchError",
    "emulator_available",
    "fake_cupy_installed",
    "fakecupy",
]


def emulator_available() -> bool:
    """Whether kernels can be compiled here (g++ is on PATH)."""
    return shutil.which("g++") is not None


@contextmanager
def fake_cupy_installed() -> Iterator[object]:
    """``import cupy`` gives :mod:`fakecupy` inside the block (restored after it)."""
    saved = sys.modules.get("cupy")
    sys.modules["cupy"] = fakecupy
    try:
        yield fakecupy
    finally:
        if saved is None:
            sys.modules.pop("cupy", None)
        else:
            sys.modules["cupy"] = saved
