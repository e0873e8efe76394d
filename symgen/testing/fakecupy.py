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
    hash of (header, source, flags, compiler version) in ``$SYMGEN_EMULATOR_CACHE``,
    else ``$XDG_CACHE_HOME/symgen/emulator`` or ``~/.cache/symgen/emulator``, and kept
    in memory per process. Kernel arguments are checked more strictly than CuPy does
    (CuPy checks nothing): see :meth:`RawKernel.__call__`.

Not emulated: streams, events, the ``cupy.cuda`` namespace, memory pools, templates
in ``name_expressions``, ``RawModule(path=...)`` (cubins), NVRTC options other than
``-D``/``-U``/``-std`` (the numerics ones such as ``--use_fast_math`` are accepted and
ignored).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import itertools
import operator
import os
import re
import subprocess
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

__all__ = [
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

HEADER_PATH = Path(__file__).with_name("emulator.h")


class EmulatorError(RuntimeError):
    """An error of the CUDA emulator (compiling or running a kernel)."""


class CompileError(EmulatorError):
    """g++ rejected the kernel source; the message holds the compiler output."""


class KernelLaunchError(EmulatorError):
    """A launch failed: a bad launch configuration or a divergent ``__syncthreads()``."""


# ------------------------------------------------------------------ device arrays


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


# ------------------------------------------------------------ parsing kernel source

#: NumPy dtype of each supported C spelling of a kernel parameter's (pointee) type.
_C_TYPES: dict[str, np.dtype] = {
    spelling: np.dtype(dt)
    for dt, spellings in {
        np.float64: ("double",),
        np.float32: ("float",),
        np.bool_: ("bool",),
        np.int8: ("signed char", "int8_t"),
        np.uint8: ("unsigned char", "uint8_t"),
        np.int16: ("short", "short int", "signed short", "signed short int", "int16_t"),
        np.uint16: ("unsigned short", "unsigned short int", "uint16_t"),
        np.int32: ("int", "signed", "signed int", "int32_t"),
        np.uint32: ("unsigned", "unsigned int", "uint32_t"),
        np.int64: (
            "long long",
            "long long int",
            "signed long long",
            "signed long long int",
            "int64_t",
        ),
        np.uint64: ("unsigned long long", "unsigned long long int", "uint64_t"),
    }.items()
    for spelling in spellings
}
_QUALIFIERS = {"const", "volatile", "__restrict__", "__restrict"}


@dataclass(frozen=True)
class KernelParam:
    """One parameter of a ``__global__`` function."""

    name: str
    ctype: str  # the C spelling of the value's type, or of the pointee for a pointer
    dtype: np.dtype
    pointer: bool
    const: bool  # pointee is const (pointers only)
    restrict: bool

    def __str__(self) -> str:
        const = "const " if self.pointer and self.const else ""
        star = "*" + (" __restrict__" if self.restrict else "") if self.pointer else ""
        return f"{const}{self.ctype}{star} {self.name}"


@dataclass(frozen=True)
class KernelSignature:
    """A ``__global__`` function found in the source."""

    name: str
    params: tuple[KernelParam, ...]
    extern_c: bool
    template: bool


_COMMENT_OR_LITERAL = re.compile(
    r"//[^\n]*|/\*.*?\*/|\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*'", re.S
)
_SCOPE_TOKEN = re.compile(
    r'(?P<externc>\bextern\s*"C"\s*\{)'
    r"|(?P<namespace>\bnamespace\b[\w\s]*\{)"
    r"|(?P<open>\{)"
    r"|(?P<close>\})"
)
_KERNEL = re.compile(
    r"""
    (?P<template>\btemplate\s*<[^{};]*>\s*)?
    (?P<externc>\bextern\s*"C"\s*)?
    \b__global__\s+
    (?:__launch_bounds__\s*\([^()]*\)\s*)?
    void\s+
    (?:__launch_bounds__\s*\([^()]*\)\s*)?
    (?P<name>[A-Za-z_]\w*)\s*
    \((?P<params>[^()]*)\)\s*
    (?P<end>[{;])
    """,
    re.X,
)
_DYNAMIC_SHARED = re.compile(
    r"\bextern\s+__shared__\s+(?:__align__\s*\(\s*\d+\s*\)\s*)?"
    r"(?P<type>[A-Za-z_][\w\s]*?)\s+(?:__align__\s*\(\s*\d+\s*\)\s*)?"
    r"(?P<name>[A-Za-z_]\w*)\s*\[\s*\]\s*;"
)


def _blank(source: str) -> str:
    """``source`` with comments and string/char literal contents turned into spaces.

    Offsets and line numbers are kept, and so is ``"C"`` (for ``extern "C"``)."""

    def blank(match: re.Match[str]) -> str:
        text = match.group()
        if text == '"C"':
            return text
        if text[0] in "\"'":
            return text[0] + re.sub(r"[^\n]", " ", text[1:-1]) + text[-1]
        return re.sub(r"[^\n]", " ", text)

    return _COMMENT_OR_LITERAL.sub(blank, source)


def _scopes_at(blanked: str, position: int) -> list[str]:
    """The open braces enclosing ``position``: "externc", "namespace" or "open"."""
    stack: list[str] = []
    for match in _SCOPE_TOKEN.finditer(blanked, 0, position):
        if match.lastgroup == "close":
            if stack:
                stack.pop()
        else:
            stack.append(match.lastgroup or "open")
    return stack


def _parse_param(kernel: str, index: int, text: str) -> KernelParam:
    """One parameter such as ``const double* __restrict__ x`` or ``const long long n``."""
    tokens = re.findall(r"[A-Za-z_]\w*|\S", text)
    unsupported = f"kernel {kernel!r}, parameter {index} ({text.strip()!r})"
    if any(t != "*" and not re.fullmatch(r"[A-Za-z_]\w*", t) for t in tokens):
        raise TypeError(f"{unsupported}: only scalars and plain pointers are supported")
    stars = tokens.count("*")
    if stars > 1:
        raise TypeError(f"{unsupported}: pointers to pointers are not supported")
    star = tokens.index("*") if stars else len(tokens)
    before = [t for t in tokens[:star] if t not in _QUALIFIERS]
    after = [t for t in tokens[star + 1 :] if t not in _QUALIFIERS] if stars else []
    name = after[0] if after else ""
    if not stars and " ".join(before) not in _C_TYPES and len(before) > 1:
        name, before = before[-1], before[:-1]
    ctype = " ".join(before)
    if ctype not in _C_TYPES or len(after) > 1:
        supported = ", ".join(sorted(_C_TYPES))
        raise TypeError(f"{unsupported}: unsupported type; supported: {supported}")
    return KernelParam(
        name=name or f"arg{index}",
        ctype=ctype,
        dtype=_C_TYPES[ctype],
        pointer=bool(stars),
        const=bool(stars) and "const" in tokens[:star],
        restrict=bool(stars) and any(t in ("__restrict__", "__restrict") for t in tokens[star:]),
    )


def parse_kernels(source: str) -> dict[str, KernelSignature]:
    """Every ``__global__`` function defined in ``source``, by name.

    Kernel signatures must be written out (not produced by macros), at file scope or
    in an ``extern "C" {}`` block; parameters are scalars or pointers of the types in
    ``_C_TYPES``."""
    blanked = _blank(source)
    kernels: dict[str, KernelSignature] = {}
    for match in _KERNEL.finditer(blanked):
        if match["end"] == ";":
            continue  # a declaration; the definition comes elsewhere
        name = match["name"]
        if name in kernels:
            raise TypeError(f"kernel {name!r} is defined twice (overloads are not supported)")
        scopes = _scopes_at(blanked, match.start())
        if "namespace" in scopes:
            raise TypeError(f"kernel {name!r}: kernels inside a namespace are not supported")
        params_text = match["params"].strip()
        pieces = [] if params_text in ("", "void") else params_text.split(",")
        extern_c = bool(match["externc"]) or "externc" in scopes
        template = bool(match["template"])
        kernels[name] = KernelSignature(
            name=name,
            params=()
            if template
            else tuple(_parse_param(name, i, p) for i, p in enumerate(pieces)),
            extern_c=extern_c,
            template=template,
        )
    return kernels


def _rewrite_dynamic_shared(source: str) -> str:
    """``extern __shared__ T name[];`` (in a function) → a pointer to the launch's buffer.

    The replacement keeps the line count, so compiler messages keep their line numbers."""
    blanked = _blank(source)
    pieces = []
    last = 0
    for match in _DYNAMIC_SHARED.finditer(blanked):
        if "open" not in _scopes_at(blanked, match.start()):
            line = blanked.count("\n", 0, match.start()) + 1
            raise CompileError(
                f"line {line}: file-scope `extern __shared__` arrays are not supported by the "
                "CUDA emulator; declare them inside the kernel"
            )
        ctype = " ".join(match["type"].split())
        newlines = "\n" * match.group().count("\n")
        pieces.append(source[last : match.start()])
        pieces.append(
            f"{ctype}* const {match['name']} = "
            f"static_cast<{ctype}*>(::symgen_emu::dynamic_shared_memory());{newlines}"
        )
        last = match.end()
    pieces.append(source[last:])
    return "".join(pieces)


# --------------------------------------------------------------- building libraries

_BASE_FLAGS = (
    "-O2",
    "-shared",
    "-fPIC",
    "-pthread",
    "-fvisibility=hidden",
    "-Wall",
    "-Wno-sign-compare",  # nvcc does not warn on `threadIdx.x < n` either
    "-Werror",
)
_DEFAULT_STD = "-std=c++17"
#: NVRTC options that change nothing here (architecture, debug info, device numerics).
_IGNORED_OPTIONS = re.compile(
    r"(-arch|--gpu-architecture|-G|--device-debug|-lineinfo|--generate-line-info"
    r"|-?-use_fast_math|--fmad|-fmad|--ftz|-ftz|--prec-div|-prec-div|--prec-sqrt|-prec-sqrt"
    r"|--extra-device-vectorization|-dw|--device-as-default-execution-space"
    r"|-default-device|--restrict|-restrict|-dopt|--dopt)(=.*)?"
)


def _gxx_flags(options: Sequence[str]) -> tuple[str, ...]:
    """g++ flags for a module compiled with the NVRTC ``options``."""
    std = _DEFAULT_STD
    extra: list[str] = []
    for option in options:
        if re.fullmatch(r"--?std=c\+\+\d\d", option):
            std = "-std=" + option.split("=", 1)[1]
        elif re.fullmatch(r"-[DU]\S+", option):
            extra.append(option)
        elif option.startswith("--define-macro="):
            extra.append("-D" + option.split("=", 1)[1])
        elif not _IGNORED_OPTIONS.fullmatch(option):
            raise ValueError(
                f"compile option {option!r} is not supported by the CUDA emulator "
                "(it takes -D, -U, -std=c++NN and ignores architecture/debug/fast-math ones)"
            )
    return (std, *_BASE_FLAGS, *extra)


def cache_dir() -> Path:
    """Where compiled kernel libraries are kept (``$SYMGEN_EMULATOR_CACHE`` if set)."""
    if env := os.environ.get("SYMGEN_EMULATOR_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "symgen" / "emulator"


@functools.cache
def _compiler_version() -> str:
    try:
        done = subprocess.run(["g++", "--version"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise CompileError(f"the CUDA emulator needs g++ on PATH ({exc})") from exc
    return done.stdout.splitlines()[0]


def _entry_symbol(kernel: str) -> str:
    return f"symgen_launch_{kernel}"


def _trampoline_argument(index: int, param: KernelParam) -> str:
    if param.pointer:
        return f"*static_cast<{param.ctype}* const*>(a[{index}])"
    return f"*static_cast<const {param.ctype}*>(a[{index}])"


def _trampoline(kernel: KernelSignature, with_fibers: bool) -> str:
    """``extern "C" int symgen_launch_NAME(grid, block, shared, args, error, len)``."""
    arguments = ", ".join(_trampoline_argument(i, p) for i, p in enumerate(kernel.params))
    unused = "" if kernel.params else " (void)a;"
    return f"""
extern "C" __attribute__((visibility("default"))) int {_entry_symbol(kernel.name)}(
    const unsigned int* grid, const unsigned int* block, unsigned long long shared_bytes,
    void** args, char* error, unsigned long long error_len)
{{
    return ::symgen_emu::launch(
        "{kernel.name}", grid, block, shared_bytes, {"true" if with_fibers else "false"},
        [](void* p) {{ void** a = static_cast<void**>(p);{unused} {kernel.name}({arguments}); }},
        args, error, error_len);
}}
"""


def _translation_unit(code: str, kernels: Sequence[KernelSignature]) -> str:
    """emulator.h + the kernel source (its own line numbers) + the trampolines."""
    rewritten = _rewrite_dynamic_shared(code)
    with_fibers = "__syncthreads" in _blank(code)
    trampolines = "".join(_trampoline(k, with_fibers) for k in kernels)
    return (
        f"{HEADER_PATH.read_text()}\n"
        f'#line 1 "kernel.cu"\n{rewritten}\n'
        f'#line 1 "symgen-trampolines.cpp"\n{trampolines}'
    )


_stats = {"compiles": 0, "disk_hits": 0, "memory_hits": 0}
_loaded: dict[str, ctypes.CDLL] = {}
_lock = threading.Lock()


def compile_stats() -> dict[str, int]:
    """How many libraries this process compiled, found on disk, found in memory."""
    with _lock:
        return dict(_stats)


def clear_memory_cache() -> None:
    """Forget the libraries loaded by this process (the disk cache stays)."""
    with _lock:
        _loaded.clear()


def _write_atomically(path: Path, data: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(data)
    os.replace(tmp, path)


def _compile(source: str, flags: Sequence[str], library: Path) -> None:
    """g++ ``source`` into ``library``, written under a temporary name then renamed."""
    cpp = library.with_suffix(".cpp")
    _write_atomically(cpp, source)
    fd, tmp = tempfile.mkstemp(dir=library.parent, prefix=f".{library.name}.")
    os.close(fd)
    command = ["g++", *flags, "-o", tmp, str(cpp)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        os.unlink(tmp)
        raise CompileError(
            f"g++ failed to compile the CUDA source (kept in {cpp}):\n"
            f"$ {' '.join(command)}\n{done.stderr.strip()}"
        )
    os.replace(tmp, library)


def _load(source: str, flags: Sequence[str]) -> ctypes.CDLL:
    """The shared library of ``source``: from memory, from the disk cache or compiled."""
    key = hashlib.sha256("\0".join([_compiler_version(), *flags, source]).encode()).hexdigest()[:40]
    with _lock:
        if key in _loaded:
            _stats["memory_hits"] += 1
            return _loaded[key]
        directory = cache_dir()
        directory.mkdir(parents=True, exist_ok=True)
        library = directory / f"{key}.so"
        if library.exists():
            _stats["disk_hits"] += 1
        else:
            _compile(source, flags, library)
            _stats["compiles"] += 1
        _loaded[key] = ctypes.CDLL(str(library))
        return _loaded[key]


# ----------------------------------------------------------------- launching kernels

_MAX_THREADS_PER_BLOCK = 1024
_MAX_BLOCK = (1024, 1024, 64)
_MAX_GRID = (2**31 - 1, 65535, 65535)
_MAX_DYNAMIC_SHARED = 48 * 1024


def _dims(what: str, value: int | Sequence[int]) -> tuple[int, int, int]:
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


def _check_configuration(
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


class _PackedArgs:
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


_ERROR_BYTES = 1024


class RawModule:
    """CUDA source holding one or more ``__global__`` functions (like ``cupy.RawModule``).

    The source is compiled on the first :meth:`get_function`. ``name_expressions``
    may list kernels without ``extern "C"`` (templates are not supported)."""

    def __init__(
        self,
        code: str,
        *,
        options: Sequence[str] = (),
        name_expressions: Sequence[str] | None = None,
    ) -> None:
        self.code = code
        self.options = tuple(options)
        self.name_expressions = tuple(name_expressions or ())
        self._kernels: dict[str, KernelSignature] | None = None
        self._library: ctypes.CDLL | None = None
        for expression in self.name_expressions:
            if not re.fullmatch(r"[A-Za-z_]\w*", expression):
                raise ValueError(
                    f"name expression {expression!r}: only plain kernel names are supported "
                    "by the CUDA emulator (no templates)"
                )

    def _build(self) -> tuple[dict[str, KernelSignature], ctypes.CDLL]:
        if self._kernels is None or self._library is None:
            kernels = parse_kernels(self.code)
            launchable = [k for k in kernels.values() if not k.template]
            source = _translation_unit(self.code, launchable)
            self._library = _load(source, _gxx_flags(self.options))
            self._kernels = kernels
        return self._kernels, self._library

    def get_function(self, name: str) -> RawKernel:
        """The kernel ``name`` (compiles the module on first use)."""
        kernels, library = self._build()
        if name not in kernels:
            raise KeyError(f"no __global__ function {name!r} in the module; it has {list(kernels)}")
        signature = kernels[name]
        if signature.template:
            raise KeyError(f"kernel {name!r} is a template: not supported by the CUDA emulator")
        if not signature.extern_c and name not in self.name_expressions:
            raise KeyError(
                f'kernel {name!r} has C++ linkage: declare it extern "C" or list it in '
                "name_expressions"
            )
        kernel = RawKernel(self.code, name, self.options)
        kernel._bind(signature, getattr(library, _entry_symbol(name)))
        return kernel


class RawKernel:
    """One kernel (like ``cupy.RawKernel``): ``kernel(grid, block, args, shared_mem=0)``."""

    def __init__(self, code: str, name: str, options: Sequence[str] = ()) -> None:
        self.code = code
        self.name = name
        self.options = tuple(options)
        self._signature: KernelSignature | None = None
        self._entry: Any = None

    def _bind(self, signature: KernelSignature, entry: Any) -> None:
        entry.restype = ctypes.c_int
        entry.argtypes = [
            ctypes.POINTER(ctypes.c_uint),
            ctypes.POINTER(ctypes.c_uint),
            ctypes.c_ulonglong,
            ctypes.POINTER(ctypes.c_void_p),
            ctypes.c_char_p,
            ctypes.c_ulonglong,
        ]
        self._signature = signature
        self._entry = entry

    @property
    def params(self) -> tuple[KernelParam, ...]:
        """The kernel's parameters as parsed from the source (compiles on first use)."""
        self._ensure_bound()
        assert self._signature is not None
        return self._signature.params

    def _ensure_bound(self) -> None:
        if self._entry is None:
            bound = RawModule(self.code, options=self.options).get_function(self.name)
            self._bind(bound._signature, bound._entry)  # type: ignore[arg-type]

    def __call__(
        self,
        grid: int | tuple[int, ...],
        block: int | tuple[int, ...],
        args: tuple[Any, ...],
        *,
        shared_mem: int = 0,
    ) -> None:
        """Launch on the CPU; returns once every block has run.

        Checks, stricter than CuPy: ``args`` is a tuple with one value per parameter;
        a pointer takes a C-contiguous, aligned device :class:`ndarray` whose dtype
        matches the pointee (``double*`` float64, ``float*`` float32, ``int*`` int32,
        ``long long*`` int64, ...; writable unless ``const``), and arrays passed to
        ``__restrict__`` pointers must not overlap one that is written; a by-value
        parameter takes a NumPy scalar of exactly its type (``double`` numpy.float64,
        ``float`` numpy.float32, ``int`` numpy.int32, ``unsigned int`` numpy.uint32,
        ``long long`` numpy.int64, ``bool`` numpy.bool_), and also a Python float for
        ``double``, a Python int for ``long long`` and a Python bool for ``bool`` (the
        types CuPy passes them as). Block size and grid limits are CUDA's."""
        self._ensure_bound()
        assert self._signature is not None
        grid3 = _dims("grid", grid)
        block3 = _dims("block", block)
        shared_bytes = operator.index(shared_mem)
        _check_configuration(self.name, grid3, block3, shared_bytes)
        packed = _PackedArgs(self._signature, args)
        error = ctypes.create_string_buffer(_ERROR_BYTES)
        failed = self._entry(
            (ctypes.c_uint * 3)(*grid3),
            (ctypes.c_uint * 3)(*block3),
            shared_bytes,
            packed.array,
            error,
            _ERROR_BYTES,
        )
        if failed:
            raise KernelLaunchError(error.value.decode(errors="replace"))
