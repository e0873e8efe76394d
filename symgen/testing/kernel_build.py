"""Building kernel libraries with g++: the flags for NVRTC options, and the cache of
compiled libraries (on disk by a hash of source, flags and compiler version; in memory
per process)."""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import re
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

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


def load_library(source: str, flags: Sequence[str]) -> ctypes.CDLL:
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
