"""A stand-in for ``cupy`` that runs generated CuPy modules on the CPU.

Put it in ``sys.modules["cupy"]`` (or use :func:`symgen.testing.fake_cupy_installed`)
before importing a generated module; ``import cupy as cp`` then gets this module.

Device arrays
    :class:`ndarray` is a NumPy subclass standing for device memory. Plain NumPy arrays
    are *not* instances, and mixing them with device arrays in arithmetic raises
    ``TypeError`` as CuPy does, so host/device mix-ups show up on the CPU. Arithmetic,
    ``@``, ``.T``, slicing and the functions of this module keep results on the device;
    reductions and indexing give 0-d device arrays (not NumPy scalars), as in CuPy.
    Calling ``numpy.*`` functions that are not ufuncs on device arrays may hand back
    plain arrays: generated code must use ``cp.*``. :func:`empty` fills with NaN (or
    0xA5 bytes), so reading memory nobody wrote shows up.

Kernels
    :class:`RawModule` / :class:`RawKernel` compile CUDA source with g++ on the first
    use, after prepending ``emulator.h`` (the CUDA built-ins on fibers; see that file
    for what is and is not emulated), and launch it through a generated C++ trampoline
    per ``__global__`` function, called with ctypes. Libraries are cached on disk by a
    hash of (header, source, command, g++'s identity) in ``$SYMGEN_EMULATOR_CACHE``,
    else ``$XDG_CACHE_HOME/symgen/emulator`` or ``~/.cache/symgen/emulator``, checked as
    the C backend's cache is (``symgen.library_cache``: a private folder, libraries of
    this user with the recorded sha256), and kept in memory per process. Kernel arguments
    are checked more strictly than CuPy does (CuPy checks nothing): see
    :meth:`RawKernel.__call__`.

Not emulated: streams, events, the ``cupy.cuda`` namespace, memory pools, templates
in ``name_expressions``, ``RawModule(path=...)`` (cubins), NVRTC options other than
``-D``/``-U``/``-std`` (the numerics ones such as ``--use_fast_math`` are accepted and
ignored).
Where it lives: ``device_arrays`` (arrays and array functions), ``raw_kernels``
(``RawModule``, ``RawKernel``) over ``kernel_args`` (launch checks), ``kernel_build``
(g++ and the library cache), ``translation_unit`` (header, source, trampolines),
``kernel_source`` (parsing kernels), ``errors``. This module is the ``cupy`` namespace
made of them.
"""

from __future__ import annotations

from symgen.testing.device_arrays import (
    add,
    allclose,
    arange,
    asarray,
    ascontiguousarray,
    asnumpy,
    bool_,
    divide,
    dot,
    dtype,
    empty,
    empty_like,
    exp,
    eye,
    float32,
    float64,
    full,
    full_like,
    int32,
    int64,
    log,
    log1p,
    matmul,
    maximum,
    may_share_memory,
    mean,
    minimum,
    multiply,
    ndarray,
    ones,
    sqrt,
    subtract,
    sum,
    tanh,
    uint32,
    uint64,
    where,
    zeros,
    zeros_like,
)
from symgen.testing.errors import CompileError, EmulatorError, KernelLaunchError
from symgen.testing.kernel_build import cache_dir, clear_memory_cache, compile_stats
from symgen.testing.kernel_source import KernelParam, KernelSignature, parse_kernels
from symgen.testing.raw_kernels import RawKernel, RawModule
from symgen.testing.translation_unit import HEADER_PATH

__all__ = [
    "HEADER_PATH",
    # errors
    "CompileError",
    "EmulatorError",
    "KernelLaunchError",
    # arrays
    "allclose",
    "add",
    "arange",
    "asarray",
    "ascontiguousarray",
    "asnumpy",
    "bool_",
    "divide",
    "dot",
    "dtype",
    "empty",
    "empty_like",
    "eye",
    "exp",
    "float32",
    "float64",
    "full",
    "full_like",
    "int32",
    "int64",
    "log",
    "log1p",
    "matmul",
    "maximum",
    "may_share_memory",
    "mean",
    "minimum",
    "multiply",
    "ndarray",
    "ones",
    "sqrt",
    "subtract",
    "sum",
    "tanh",
    "uint32",
    "uint64",
    "where",
    "zeros",
    "zeros_like",
    # kernels
    "KernelParam",
    "KernelSignature",
    "RawKernel",
    "RawModule",
    "cache_dir",
    "clear_memory_cache",
    "compile_stats",
    "parse_kernels",
]
