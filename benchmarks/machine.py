"""Describe the machine and software the numbers were measured on."""

from __future__ import annotations

import ctypes
import os
import platform
import shutil
import subprocess
from importlib import metadata

import numpy as np


def cpu_lines() -> list[str]:
    info = _cpuinfo()
    model = info.get("model name") or platform.processor() or "unknown CPU"
    keys = ("vendor_id", "cpu family", "model", "stepping")
    detail = ", ".join(f"{key} {info[key]}" for key in keys if key in info)
    lines = [f"CPU: {model}" + (f" ({detail})" if detail else "")]
    lines.append(f"logical CPUs: {os.cpu_count()}" + _lscpu_caches())
    load = load_average()
    if load:
        lines.append(f"load average when the run started (1/5/15 min): {load}")
    lines.append(f"OS: {platform.platform()}")
    return lines


def _cpuinfo() -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break  # the first processor is enough
                key, _, value = line.partition(":")
                out[key.strip()] = value.strip()
    except OSError:
        pass
    return out


def _lscpu_caches() -> str:
    if not shutil.which("lscpu"):
        return ""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    parts = []
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("L1d cache", "L2 cache", "L3 cache"):
            parts.append(f"{key.strip()} {value.strip()}")
    return f"; {', '.join(parts)}" if parts else ""


def load_average() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return ""


def version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def software_lines() -> list[str]:
    import sympy

    import symgen

    libc, libc_version = platform.libc_ver()
    tunables = sorted(k for k in os.environ if k.startswith("MALLOC_") or k == "GLIBC_TUNABLES")
    allocator = ", ".join(f"`{k}={os.environ[k]}`" for k in tunables) or "none set (defaults)"
    return [
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"C library {libc or '?'} {libc_version}; malloc tunables: {allocator}",
        f"NumPy {np.__version__}, SymPy {sympy.__version__}, symgen {symgen.__version__}",
        f"contenders' frameworks (optional; see `benchmarks/frameworks.py`): autograd "
        f"{version('autograd')}, jax {version('jax')}, jaxlib {version('jaxlib')}, "
        f"torch {version('torch')}, pytensor {version('pytensor')} (numba "
        f"{version('numba')}); C/C++ compiler for `torch.compile` and PyTensor's C linker: "
        f"{_compiler()}",
        f"solvers (time to solution): SciPy {version('scipy')}, scikit-learn "
        f"{version('scikit-learn')}",
    ]


def _compiler() -> str:
    """The C++ compiler on PATH (both ``torch.compile``'s inductor and PyTensor use it)."""
    for name in ("g++", "c++", "clang++"):
        path = shutil.which(name)
        if path:
            try:
                first = subprocess.run(
                    [path, "--version"], capture_output=True, text=True, timeout=10
                ).stdout.splitlines()
            except (OSError, subprocess.SubprocessError):
                first = []
            return f"`{path}`" + (f" ({first[0]})" if first else "")
    return "none found on PATH"


def blas_lines() -> list[str]:
    """BLAS as NumPy was built with it, and as OpenBLAS runs now (no threadpoolctl)."""
    lines = []
    try:
        config = np.show_config(mode="dicts")
    except TypeError:  # NumPy < 1.26 has no mode="dicts"
        config = {}
    blas = config.get("Build Dependencies", {}).get("blas", {})
    if blas:
        configuration = blas.get("openblas configuration")
        lines.append(
            f"BLAS (build): {blas.get('name', '?')} {blas.get('version', '?')}"
            + (f" — `{configuration}`" if configuration else "")
        )
    else:
        lines.append("BLAS (build): unknown (`np.show_config(mode='dicts')` gave no BLAS entry)")
    runtime = _openblas_runtime()
    if runtime:
        lines.append(f"OpenBLAS at run time: {runtime}")
    simd = config.get("SIMD Extensions", {})
    if simd:
        lines.append(
            "NumPy SIMD: baseline "
            + " ".join(simd.get("baseline", []))
            + "; found "
            + (" ".join(simd.get("found", [])) or "none")
            + "; not found "
            + (" ".join(simd.get("not found", [])) or "none")
        )
    return lines


def _openblas_runtime() -> str:
    """Core type and thread count from the OpenBLAS library NumPy loaded, via ctypes."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower()}
    except OSError:
        return ""
    for path in sorted(p for p in paths if p.startswith("/")):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        core = _call(lib, ctypes.c_char_p, "openblas_get_corename")
        threads = _call(lib, ctypes.c_int, "openblas_get_num_threads")
        if core is not None or threads is not None:
            core_text = core.decode() if isinstance(core, bytes) else "?"
            return f"core `{core_text}`, {threads if threads is not None else '?'} thread(s)"
    return ""


def _call(lib: ctypes.CDLL, restype: type, base: str):
    # scipy-openblas prefixes and suffixes its symbols (scipy_openblas_get_corename64_).
    for name in (base, f"scipy_{base}64_", f"scipy_{base}", f"{base}64_"):
        fn = getattr(lib, name, None)
        if fn is not None:
            fn.restype = restype
            fn.argtypes = []
            return fn()
    return None
