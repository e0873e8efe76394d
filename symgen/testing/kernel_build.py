"""Building kernel libraries with g++: the flags for NVRTC options, and the cache of
compiled libraries: on disk, keyed by the source, the command and g++'s identity, and
checked before anything in it is loaded, as the C backend's cache is
(``symgen.library_cache``); in memory per process."""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path

from symgen.library_cache import cache_root, cached_library, compiler_identity
from symgen.testing.errors import CompileError

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


def gxx_flags(options: Sequence[str]) -> tuple[str, ...]:
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
    """Where compiled kernel libraries are kept: ``$SYMGEN_EMULATOR_CACHE`` if set, else
    ``$XDG_CACHE_HOME/symgen/emulator`` or ``~/.cache/symgen/emulator``, as an absolute path.
    It is checked as the C backend's cache is (``symgen.library_cache``)."""
    return Path(os.path.realpath(cache_root("SYMGEN_EMULATOR_CACHE", "symgen", "emulator")))


def _compiler() -> tuple[str, ...]:
    """g++'s command, by its absolute path."""
    program = shutil.which("g++")
    if program is None:
        raise CompileError("the CUDA emulator needs g++ on PATH")
    return (os.path.abspath(program),)


def _run(command: Sequence[str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            command, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace"
        )
    except OSError as exc:
        raise CompileError(f"the CUDA emulator cannot run g++ ({exc})") from None


def _key(compiler: tuple[str, ...], source: str, flags: Sequence[str]) -> str:
    """The library's key: the source, the command, and g++'s identity (its program, and what
    it predefines with the module's standard and the base flags: its version and target)."""
    identity = compiler_identity(compiler, ((flags[0], *_BASE_FLAGS),), "c++", _run)
    command = _command(compiler, flags, "kernel.cpp", "kernel.so")
    return hashlib.sha256("\0".join([source, *command, *identity]).encode()).hexdigest()[:40]


def _command(
    compiler: tuple[str, ...], flags: Sequence[str], source: object, library: object
) -> list[str]:
    return [*compiler, *flags, "-o", str(library), str(source)]


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


def _compile(
    compiler: tuple[str, ...], source: str, flags: Sequence[str], scratch: Path, name: str
) -> Path:
    """g++ ``source`` in the folder ``scratch`` into the library ``name`` there; its path."""
    cpp = scratch / "kernel.cpp"
    cpp.write_text(source)
    library = scratch / name
    command = _command(compiler, flags, cpp, library)
    done = _run(command)
    if done.returncode != 0:
        raise CompileError(
            f"g++ failed to compile the CUDA source:\n$ {' '.join(command)}\n{done.stderr.strip()}"
        )
    _stats["compiles"] += 1
    return library


def load_library(source: str, flags: Sequence[str]) -> ctypes.CDLL:
    """The shared library of ``source``: from memory, from the disk cache (if it passes the
    cache's checks) or compiled, and loaded by its absolute path."""
    compiler = _compiler()
    key = _key(compiler, source, flags)
    with _lock:
        if key in _loaded:
            _stats["memory_hits"] += 1
            return _loaded[key]
        build = functools.partial(_compile, compiler, source, flags)
        compiles = _stats["compiles"]
        where = {"who": "the CUDA emulator", "what": "the cache of compiled kernels"}
        where["variable"] = "SYMGEN_EMULATOR_CACHE"
        path = cached_library(cache_dir(), f"{key}.so", build, **where)
        if _stats["compiles"] == compiles:
            _stats["disk_hits"] += 1
        try:
            library = ctypes.CDLL(str(path))  # an absolute path: no library search path
        except OSError:  # an intact library this system cannot load: build it again
            path = cached_library(cache_dir(), path.name, build, **where, again=True)
            library = ctypes.CDLL(str(path))
        _loaded[key] = library
        return library
