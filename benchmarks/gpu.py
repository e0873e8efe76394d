"""``python -m benchmarks.gpu [--quick] [--out FILE.md] [--emulate] [--without torch|jax]``:
symgen's CUDA modules against PyTorch eager and JAX ``jit`` on one GPU.

On the device machine: ``OUT=folder bash benchmarks/gpu_run.sh`` (also runs the CUDA tests).

Workloads (``../shared/WORKLOADS.md``; data, problems and framework losses are the CPU
benchmark's, from ``benchmarks.curve_fit_grad``, ``mlp_grad`` and ``logistic_grad``):

- W4, the curve fit with six scalar parameters, N = 10⁷ samples, float64 and float32:
  ``loss_and_grad``; with the achieved bandwidth of symgen's kernel (bytes of t and y
  read, over its time) against a device-to-device copy of as many bytes;
- W3 large, the two-layer ReLU network (M = 4096, N_I = 1024, N_H = 1024, N_O = 10,
  float32): ``loss_and_grad`` and ``sgd_step`` (PyTorch: the same step in place, eager);
- W2 large, logistic regression (N = 10⁶, D = 16), float64 and float32: ``loss_and_grad``.

Every contender is checked against symgen's module (loss and gradient or new weights;
rtol 1e-6 per element in float64, 1e-3 of the largest element in float32) before it is
timed; a mismatch is reported in the table (and makes the exit status 1), not hidden.
Contenders that cannot run here (no torch with CUDA, no JAX GPU backend) are listed as
missing. Timing: warm-up calls first (their time, which includes compilation, is reported
as "first call"); then rounds in which every contender runs one sample (the order rotating),
a sample being enough back-to-back calls to last ``--quick`` 5 ms, else 20 ms, between two
waits for the whole device; the median over rounds counts.

``--emulate`` runs the same code on the CPU, with ``symgen.testing.fakecupy`` in place of
CuPy (kernels compiled by g++ and run on fibers) and torch/JAX on the CPU, at tiny sizes:
only to check that the script works end to end; its timings mean nothing.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import math
import os
import platform
import re
import shlex
import shutil
import statistics
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "gpu_results.md"

#: Per mode: rounds, and the least seconds one sample lasts (0: one call per sample).
PLANS = {
    "full": (31, 0.020),
    "quick": (7, 0.005),
    "emulate": (3, 0.0),
    "emulate-quick": (2, 0.0),
}
W4_N = 10_000_000  # WORKLOADS.md: "10,000,000 for speed"
#: Sizes when emulating: the emulator runs ~0.5 µs per fiber switch.
EMULATED = {"w4": 2000, "w2": 2000, "w3": (64, 32, 32, 4)}
RTOL64 = 1e-6  # float64: every element within this of symgen's, relative to itself
RTOL32 = 1e-3  # float32: within this times the largest |element| of symgen's array
W4_TARGET = 0.70  # of the copy bandwidth
W3_TARGET = 1.10  # times PyTorch's time

SYMGEN = "symgen"
TORCH = "PyTorch"
JAX = "JAX"


# -- the device: CuPy on a GPU, or the emulator ------------------------------------------


class Device:
    """The array module, and how to wait for, time and describe the device.

    ``fakecupy`` has no ``cupy.cuda`` namespace (no events, streams or device queries):
    when emulating, waiting is a no-op and the clock is ``time.perf_counter`` alone (the
    emulated kernels run synchronously anyway).
    """

    def __init__(self, emulate: bool) -> None:
        self.emulate = emulate
        self.waiters: list[Callable[[], None]] = []  # torch.cuda.synchronize, when loaded
        if emulate:
            from symgen.testing import fakecupy

            self.xp = fakecupy
        else:
            import cupy

            self.xp = cupy
            cupy.cuda.runtime.getDeviceCount()  # raises without a driver or a device
        self._copies: dict[int, tuple[float, str]] = {}

    def sync(self) -> None:
        """Wait until everything queued on the device (by CuPy, torch or XLA) has run."""
        if not self.emulate:
            self.xp.cuda.Device().synchronize()
        for wait in self.waiters:
            wait()

    def per_call(self, fn: Callable[[], Any], wait: Callable[[Any], Any], number: int) -> float:
        """Seconds per call of ``number`` back-to-back calls, between two device waits."""
        self.sync()
        start = time.perf_counter()
        result = None
        for _ in range(number):
            result = fn()
        wait(result)
        self.sync()
        return (time.perf_counter() - start) / number

    def free(self) -> None:
        gc.collect()
        if not self.emulate:
            self.xp.get_default_memory_pool().free_all_blocks()
        if "torch" in sys.modules:
            torch = sys.modules["torch"]
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    def name(self) -> str:
        if self.emulate:
            return f"CPU emulator ({platform.processor() or platform.machine()})"
        name = self.xp.cuda.runtime.getDeviceProperties(0)["name"]
        return name.decode() if isinstance(name, bytes) else str(name)

    def lines(self) -> list[str]:
        if self.emulate:
            return [
                f"device: none; EMULATED: `symgen.testing.fakecupy` in place of CuPy on "
                f"{platform.processor() or platform.machine()} ({os.cpu_count()} CPUs), kernels "
                f"compiled by {_gxx_version()} and run on fibers",
                "EMULATED TIMINGS ARE MEANINGLESS: this run only checks that the script works",
            ]
        cupy = self.xp
        props = cupy.cuda.runtime.getDeviceProperties(0)
        free, total = cupy.cuda.runtime.memGetInfo()
        return [
            f"device: {self.name()} (compute capability {props['major']}.{props['minor']}, "
            f"{props['multiProcessorCount']} SMs, {total / 2**30:.1f} GiB, "
            f"{free / 2**30:.1f} GiB free at the start, "
            f"L2 {props.get('l2CacheSize', 0) / 2**20:.0f} MiB)",
            f"CUDA driver {_cuda_version(cupy.cuda.runtime.driverGetVersion())}, runtime "
            f"{_cuda_version(cupy.cuda.runtime.runtimeGetVersion())}" + _nvrtc_version(cupy),
        ]

    def copy(self, nbytes: int, plan: tuple[int, float]) -> tuple[float, str]:
        """(seconds per device-to-device copy of ``nbytes``, how): the faster of CuPy's
        elementwise copy (``dst[...] = src``) and ``cudaMemcpyAsync`` device to device."""
        if nbytes not in self._copies:
            best = self._time_copies(nbytes, plan)
            self.free()
            how = min(best, key=best.get)
            self._copies[nbytes] = (best[how], how)
        return self._copies[nbytes]

    def _time_copies(self, nbytes: int, plan: tuple[int, float]) -> dict[str, float]:
        xp = self.xp
        src = xp.arange(nbytes // 8, dtype=xp.float64)
        dst = xp.empty_like(src)

        def assign():
            dst[...] = src

        ways = {"CuPy `dst[...] = src`": assign}
        if not self.emulate:
            runtime = xp.cuda.runtime

            def memcpy():
                runtime.memcpyAsync(
                    dst.data.ptr,
                    src.data.ptr,
                    src.nbytes,
                    runtime.memcpyDeviceToDevice,
                    xp.cuda.get_current_stream().ptr,
                )

            ways["`cudaMemcpyAsync` device to device"] = memcpy
        rounds, target = plan
        best = {}
        for how, fn in ways.items():
            number = _calibrate(self, fn, _no_wait, target)
            best[how] = statistics.median(
                self.per_call(fn, _no_wait, number) for _ in range(max(rounds, 3))
            )
        return best


def _no_wait(result: Any) -> Any:
    return result


def _cuda_version(v: int) -> str:
    return f"{v // 1000}.{(v % 1000) // 10}"


def _nvrtc_version(cupy: Any) -> str:
    try:
        major, minor = cupy.cuda.nvrtc.getVersion()
    except Exception:  # noqa: BLE001 - only for the report
        return ""
    return f", NVRTC {major}.{minor}"


def _gxx_version() -> str:
    import subprocess

    try:
        out = subprocess.run(["g++", "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "g++"
    return (out.stdout.splitlines() or ["g++"])[0]


def _calibrate(device: Device, fn, wait, target: float) -> int:
    """Calls per sample so that a sample lasts at least ``target`` seconds."""
    if target <= 0:
        return 1
    one = device.per_call(fn, wait, 1)
    number = max(1, min(100_000, math.ceil(1.2 * target / max(one, 1e-7))))
    if number > 1:  # refine: one call alone includes a device wait
        each = device.per_call(fn, wait, number)
        number = max(1, min(100_000, math.ceil(1.2 * target / max(each, 1e-7))))
    return number


# -- the frameworks ---------------------------------------------------------------------


@dataclass
class Frameworks:
    """torch and JAX, on the device (on the CPU when emulating), or why they are missing."""

    torch: Any = None
    torch_device: str = ""
    torch_missing: str | None = None
    jax: Any = None
    jax_device: Any = None
    jax_missing: str | None = None

    def lines(self) -> list[str]:
        out = []
        if self.torch is not None:
            t = self.torch
            where = (
                f"on {t.cuda.get_device_name(0)}, CUDA {t.version.cuda}, cuDNN "
                f"{t.backends.cudnn.version()}"
                if self.torch_device == "cuda"
                else "on the CPU (emulated run)"
            )
            out.append(
                f"torch {t.__version__} {where}; float32 matmul precision "
                f"{t.get_float32_matmul_precision()!r}, "
                f"`torch.backends.cuda.matmul.allow_tf32` {t.backends.cuda.matmul.allow_tf32}"
            )
        else:
            out.append(f"torch: missing: {self.torch_missing}")
        if self.jax is not None:
            import jaxlib

            out.append(
                f"jax {self.jax.__version__}, jaxlib {jaxlib.__version__}, on "
                f"{self.jax_device.platform} device {getattr(self.jax_device, 'device_kind', '?')}"
                "; x64 enabled; `jax_default_matmul_precision` 'highest' (full float32, "
                "no TF32, as CuPy and torch); XLA_PYTHON_CLIENT_PREALLOCATE="
                f"{os.environ.get('XLA_PYTHON_CLIENT_PREALLOCATE', '(unset)')}"
            )
        else:
            out.append(f"jax: missing: {self.jax_missing}")
        return out


def load_frameworks(device: Device, without: set[str]) -> Frameworks:
    fw = Frameworks()
    if "torch" in without:
        fw.torch_missing = "not run (`--without torch`)"
    else:
        try:
            import torch
        except ImportError as exc:
            fw.torch_missing = f"not installed ({exc})"
        except Exception as exc:  # noqa: BLE001 - a broken install (CUDA libraries, say)
            fw.torch_missing = f"import {_failed(exc)}"
        else:
            if device.emulate:
                fw.torch, fw.torch_device = torch, "cpu"
            elif not torch.cuda.is_available():
                fw.torch_missing = (
                    f"torch {torch.__version__} sees no CUDA device (CUDA build: "
                    f"{torch.version.cuda})"
                )
            else:
                fw.torch, fw.torch_device = torch, "cuda"
                device.waiters.append(torch.cuda.synchronize)
    if "jax" in without:
        fw.jax_missing = "not run (`--without jax`)"
    else:
        try:
            import jax
        except ImportError as exc:
            fw.jax_missing = f"not installed ({exc})"
        except Exception as exc:  # noqa: BLE001 - a broken install (its CUDA plugin, say)
            fw.jax_missing = f"import {_failed(exc)}"
        else:
            platform_ = "cpu" if device.emulate else "gpu"
            try:
                jax.config.update("jax_enable_x64", True)  # float64 workloads; float32 stays
                jax.config.update("jax_default_matmul_precision", "highest")
                fw.jax_device = jax.devices(platform_)[0]
                fw.jax = jax
            except Exception as exc:  # noqa: BLE001 - RuntimeError: unknown backend
                fw.jax_missing = (
                    f"jax {jax.__version__} has no {platform_.upper()} backend "
                    f"({_failed(exc).removeprefix('failed: ')})"
                )
    return fw


def _failed(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0][:200]
    return f"failed: {type(exc).__name__}: {first}".rstrip(": ")


# -- rows, tables, checks and timing ----------------------------------------------------


@dataclass
class Row:
    """One contender. ``make(point)`` binds it to a point (parameters, weights) and returns
    the call to time, which returns ``(loss, sequence of gradients or new parameters)``."""

    name: str
    framework: str  # SYMGEN, TORCH, JAX, or "extra" (timed, not checked)
    note: str = ""
    make: Callable[[Any], Callable[[], Any]] | None = None
    wait: Callable[[Any], Any] = _no_wait  # waits for a result (JAX: block_until_ready)
    missing: str | None = None
    check: str = ""
    first_call: float | None = None
    compile_s: float | None = None  # symgen: `symgen.compile` (generate + exec)
    number: int = 0
    samples: list[float] = field(default_factory=list)
    fn: Callable[[], Any] | None = None

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None

    @property
    def spread(self) -> float | None:
        if len(self.samples) < 4:
            return None
        q1, _, q3 = statistics.quantiles(self.samples, n=4)
        return (q3 - q1) / 2 / statistics.median(self.samples)


@dataclass
class Table:
    title: str
    description: str
    rows: list[Row]
    points: list[tuple[str, Any]]  # (label, point); the first is the timed one
    float32: bool
    #: Least bytes a call must read (bandwidth column), or None; floating-point operations.
    nbytes: int | None = None
    flops: float | None = None
    copy: tuple[float, str] | None = None
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def symgen(self) -> Row:
        return self.rows[0]

    def runnable(self) -> list[Row]:
        return [r for r in self.rows if r.missing is None]


def host(x: Any) -> Any:
    """A NumPy array (or float) of a CuPy, fakecupy, torch or JAX value."""
    import numpy as np

    if hasattr(x, "detach"):  # torch
        return x.detach().cpu().numpy()
    if isinstance(x, np.ndarray):  # numpy, and fakecupy's device arrays (a subclass)
        return np.array(x)
    if hasattr(x, "get") and hasattr(x, "shape"):  # cupy
        return x.get()
    return np.asarray(x)


def as_parts(result: Any) -> tuple[float, list[Any]]:
    """``(loss, sequence)`` → ``(float, [float64 array, ...])``; scalars as one vector."""
    import numpy as np

    loss, rest = result
    parts = [np.asarray(host(p), dtype=np.float64) for p in rest]
    if parts and all(p.ndim == 0 for p in parts):
        parts = [np.array([float(p) for p in parts])]
    return float(host(loss)), parts


def disagreement(got: Any, want: Any, float32: bool) -> str:
    """Empty if ``got`` agrees with ``want`` (symgen's), else what differs."""
    import numpy as np

    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        return f"shape {got.shape}, expected {want.shape}"
    if float32:
        bound = RTOL32 * float(np.max(np.abs(want))) if want.size else 0.0
        ok = np.abs(got - want) <= bound
    else:
        ok = np.isclose(got, want, rtol=RTOL64, atol=0.0)
    if ok.all():
        return ""
    if got.size <= 8:
        return f"{got.tolist()}, expected {want.tolist()}"
    i = np.unravel_index(int(np.argmin(ok.ravel())), got.shape)
    return (
        f"{int(np.count_nonzero(~ok)):,} of {got.size:,} elements differ; at "
        f"{tuple(map(int, i))} {float(got[i])!r}, expected {float(want[i])!r}"
    )


def tolerance(float32: bool) -> str:
    if float32:
        return f"|difference| ≤ {RTOL32:g} × max |symgen's|, per array (the loss: relative)"
    return f"rtol {RTOL64:g} per element"


def run_table(table: Table, device: Device, plan: tuple[int, float], log) -> None:
    """First calls, the checks against symgen, then the interleaved timing."""
    timed_point = table.points[0][1]
    for row in table.rows:  # first call (compilation, lazy initialisation) of each
        if row.missing is not None:
            continue
        try:
            device.sync()
            start = time.perf_counter()
            row.fn = row.make(timed_point)
            row.wait(row.fn())
            device.sync()
            row.first_call = time.perf_counter() - start
        except Exception as exc:  # noqa: BLE001 - reported in the table
            row.missing = _failed(exc)
            log(f"  {row.name}: {row.missing}")
            traceback.print_exc()
    check_table(table, log)
    rounds, target = plan
    runnable = table.runnable()
    for row in runnable:
        row.wait(row.fn())  # one more warm-up call
        row.number = _calibrate(device, row.fn, row.wait, target)
    gc.disable()
    try:
        for r in range(rounds):
            k = r % len(runnable) if runnable else 0
            for row in runnable[k:] + runnable[:k]:
                row.samples.append(device.per_call(row.fn, row.wait, row.number))
    finally:
        gc.enable()
    if table.nbytes is not None:
        table.copy = device.copy(table.nbytes, plan)
    for row in table.rows:
        if row.median is not None:
            log(f"  {row.name}: {_seconds(row.median)} per call ({row.number} calls/sample)")
        row.make = row.fn = None  # the device arrays they hold can go
        row.wait = _no_wait


def check_table(table: Table, log) -> None:
    import numpy as np

    symgen_row = table.symgen
    if symgen_row.missing is not None:
        for row in table.rows[1:]:
            if row.missing is None and row.framework != "extra":
                row.check = "not checked: symgen failed"
        return
    for label, point in table.points:
        try:
            want_loss, want_rest = as_parts(symgen_row.make(point)())
        except Exception as exc:  # noqa: BLE001 - reported in the table
            symgen_row.check = f"symgen {_failed(exc)} at {label}"
            return
        for row in table.rows[1:]:
            if row.missing is not None or row.framework == "extra" or row.check:
                continue
            try:
                got_loss, got_rest = as_parts(row.make(point)())
            except Exception as exc:  # noqa: BLE001 - reported in the table
                row.check = f"MISMATCH: {_failed(exc)} at {label}"
                log(f"  {row.name}: {row.check}")
                continue
            pairs = [("loss", got_loss, want_loss)]
            if len(got_rest) != len(want_rest):
                row.check = (
                    f"MISMATCH: {len(got_rest)} arrays returned, symgen {len(want_rest)} "
                    f"(at {label})"
                )
                continue
            pairs += [
                (f"part {i}", g, w)
                for i, (g, w) in enumerate(zip(got_rest, want_rest, strict=True))
            ]
            for what, got, want in pairs:
                if what == "loss":
                    rtol = RTOL32 if table.float32 else RTOL64
                    problem = (
                        "" if np.isclose(got, want, rtol=rtol, atol=0) else f"{got!r} vs {want!r}"
                    )
                else:
                    problem = disagreement(got, want, table.float32)
                if problem:
                    row.check = f"MISMATCH at {label}: {what}: {problem}"
                    log(f"  {row.name}: {row.check}")
                    break
    n = len(table.points)
    for row in table.rows[1:]:
        if row.missing is None and row.framework != "extra" and not row.check:
            row.check = f"ok ({n} point{'s' if n > 1 else ''})"
    symgen_row.check = symgen_row.check or "reference"


# -- the workloads ----------------------------------------------------------------------


def _problem_as(problem: Any, dtype: str) -> Any:
    import symgen

    return symgen.Problem(
        problem.loss,
        problem.params,
        problem.data,
        reduce=problem.reduce,
        dtype=dtype,
        name=problem.name,
    )


def _compiled(problem: Any) -> tuple[Any, float]:
    """``symgen.compile(problem, "cuda")`` and the seconds it took (generate + exec)."""
    import symgen

    start = time.perf_counter()
    module = symgen.compile(problem, "cuda")
    return module, time.perf_counter() - start


def _symgen_note(seconds: float) -> str:
    return f'`symgen.compile(problem, "cuda")` {seconds:.2f} s (generate + exec)'


def _jax_wait(fw: Frameworks) -> Callable[[Any], Any]:
    return fw.jax.block_until_ready


def w4_table(device: Device, fw: Frameworks, n: int, dtype: str) -> Table:
    import numpy as np

    from examples.curve_fit import curve_fit

    from . import curve_fit_grad

    xp = device.xp
    np_dtype = np.dtype(dtype)
    t64, y64 = curve_fit_grad.data(n)
    t_h, y_h = t64.astype(np_dtype), y64.astype(np_dtype)
    problem = curve_fit if dtype == "float64" else _problem_as(curve_fit, dtype)
    module, compile_s = _compiled(problem)
    t, y = xp.asarray(t_h), xp.asarray(y_h)

    def symgen_make(p):
        return lambda: module.loss_and_grad(*p, t, y)

    rows = [
        Row(
            "symgen `loss_and_grad` (generated CUDA)",
            SYMGEN,
            f"{_symgen_note(compile_s)}; returns Python floats, so every call waits for the "
            "device and copies 7 numbers to the host",
            symgen_make,
            compile_s=compile_s,
        )
    ]
    kernels = _w4_kernels_only(problem, module, t, y, n)
    if isinstance(kernels, str):
        rows.append(Row("symgen kernels alone", "extra", missing=kernels))
    else:
        rows.append(
            Row(
                "symgen kernels alone (no copy to the host)",
                "extra",
                "the two launches of `loss_and_grad` (fused per-sample kernel, then the "
                "ordered sum of the block partials), results left on the device; not a "
                "contender, the bandwidth of the kernel itself",
                kernels,
            )
        )
    loss = curve_fit_grad._loss  # (np_, a, b, c, d, e, g, t, y): mean of squared residuals

    if fw.torch is None:
        rows.append(Row("PyTorch eager, `torch.autograd.grad`", TORCH, missing=fw.torch_missing))
    else:
        torch = fw.torch
        tt = torch.as_tensor(t_h, device=fw.torch_device)
        ty = torch.as_tensor(y_h, device=fw.torch_device)

        def torch_make(p):
            ps = [
                torch.tensor(v, dtype=tt.dtype, device=fw.torch_device, requires_grad=True)
                for v in p
            ]

            def call():
                value = loss(torch, *ps, tt, ty)
                return value.detach(), torch.autograd.grad(value, ps)

            return call

        rows.append(
            Row(
                "PyTorch eager, `torch.autograd.grad`",
                TORCH,
                f"torch {torch.__version__}; six 0-d tensors with `requires_grad`, "
                "`mean((exp(-a t) sin(b t + c) + d t**2 + e t + g - y)**2)`, "
                "`autograd.grad(loss, params)`; results left on the device",
                torch_make,
            )
        )
    if fw.jax is None:
        rows.append(Row("JAX `jit(value_and_grad)`", JAX, missing=fw.jax_missing))
    else:
        jax = fw.jax
        import jax.numpy as jnp

        jt, jy = jax.device_put(t_h, fw.jax_device), jax.device_put(y_h, fw.jax_device)
        value_and_grad = jax.jit(
            jax.value_and_grad(lambda *a: loss(jnp, *a), argnums=tuple(range(6)))
        )

        def jax_make(p):
            ps = [jax.device_put(np.asarray(v, dtype=np_dtype), fw.jax_device) for v in p]
            return lambda: value_and_grad(*ps, jt, jy)

        rows.append(
            Row(
                "JAX `jit(value_and_grad)`",
                JAX,
                f"jax {jax.__version__}; the same loss over six 0-d arrays, "
                "`argnums=(0, ..., 5)`; results left on the device (`block_until_ready` "
                "on the last call of a sample)",
                jax_make,
                wait=_jax_wait(fw),
            )
        )
    points = [(f"(a, ..., g) = {p}", p) for p in curve_fit_grad.CHECKS]
    itemsize = np_dtype.itemsize
    return Table(
        f"{dtype}, N = {n:,}",
        f"loss and six partials of the mean over N = {n:,} {dtype} samples, at "
        "`examples/curve_fit.py`'s START on its `synthetic(N)` data",
        rows,
        points,
        float32=dtype == "float32",
        nbytes=2 * n * itemsize,
        notes=[
            f"bandwidth: bytes of t and y read once ({_bytes(2 * n * itemsize)}) over "
            "the time per call"
        ],
    )


def _w4_kernels_only(problem, module, t, y, n) -> Callable[[Any], Callable[[], Any]] | str:
    """The ``_reduce(...)`` launch of the generated ``loss_and_grad``, without the host copy."""
    import symgen

    source = symgen.generate(problem, "cuda")
    body = source.partition("\ndef loss_and_grad(")[2].partition("\ndef ")[0]
    calls = re.findall(r"^\s*\w+ = (_reduce\(.*\))$", body, re.MULTILINE)
    if len(calls) != 1:
        return f"n/a: {len(calls)} `_reduce` launches found in the generated `loss_and_grad`"
    code = compile(calls[0], "<symgen loss_and_grad launch>", "eval")

    def make(p):
        names = {**vars(module), **dict(zip(module.PARAMS, map(float, p), strict=True)), "N": n}
        names.update(dict(zip(module.DATA, (t, y), strict=True)))
        return lambda: eval(code, names)  # noqa: S307 - the generated module's own line

    return make


def w3_tables(device: Device, fw: Frameworks, sizes: tuple[int, int, int, int]) -> list[Table]:
    import numpy as np

    from examples.mlp import mlp, seed_data

    from . import mlp_grad

    xp = device.xp
    m, n_i, n_h, n_o = sizes
    x_h, y_h, w1_h, w2_h = seed_data(m, n_i, n_h, n_o)
    module, compile_s = _compiled(mlp)
    X, Y = xp.asarray(x_h), xp.asarray(y_h)
    factors = (1.0, 0.1, -1.0)  # as mlp_grad.check: the seed weights times these

    def weights(factor):
        return w1_h * np.float32(factor), w2_h * np.float32(factor)

    # Points: (W1, W2, lr); the timed one first (lr only matters to the steps).
    grad_points = [(f"W = {f:g} × seed weights", (*weights(f), 0.0)) for f in factors]
    step_points = [
        (f"W = 1 × seed weights, lr {mlp_grad.TIMED_LR:g}", (w1_h, w2_h, mlp_grad.TIMED_LR))
    ] + [
        (f"W = {f:g} × seed weights, lr {mlp_grad.CHECK_LR:g}", (*weights(f), mlp_grad.CHECK_LR))
        for f in factors
    ]

    def symgen_grad(point):
        W1, W2 = xp.asarray(point[0]), xp.asarray(point[1])
        return lambda: module.loss_and_grad(W1, W2, X, Y)

    def symgen_step(point):
        W1, W2 = xp.asarray(point[0]), xp.asarray(point[1])  # fresh copies, updated in place
        lr = point[2]
        return lambda: module.sgd_step(W1, W2, X, Y, lr=lr)

    note = f"{_symgen_note(compile_s)}; returns the loss as a Python float (waits each call)"
    grad_rows = [
        Row(
            "symgen `loss_and_grad` (generated CUDA)",
            SYMGEN,
            note,
            symgen_grad,
            compile_s=compile_s,
        )
    ]
    step_rows = [
        Row(
            "symgen `sgd_step` (generated CUDA)",
            SYMGEN,
            note + "; W1, W2 updated in place, one kernel each",
            symgen_step,
        )
    ]
    if fw.torch is None:
        grad_rows.append(Row("PyTorch eager, `autograd.grad`", TORCH, missing=fw.torch_missing))
        step_rows.append(
            Row("PyTorch eager, `autograd.grad`, `sub_`", TORCH, missing=fw.torch_missing)
        )
    else:
        torch = fw.torch
        dev = fw.torch_device
        tX, tY = torch.as_tensor(x_h, device=dev), torch.as_tensor(y_h, device=dev)
        loss_and_grad = mlp_grad._torch_loss_and_grad(mlp_grad._torch_loss)
        sgd_step = mlp_grad._torch_sgd_step(mlp_grad._torch_loss)

        def torch_grad(point):
            W1 = torch.as_tensor(point[0], device=dev)
            W2 = torch.as_tensor(point[1], device=dev)
            return lambda: loss_and_grad(W1, W2, tX, tY)

        def torch_step(point):
            W1 = torch.as_tensor(point[0], device=dev).clone()
            W2 = torch.as_tensor(point[1], device=dev).clone()
            lr = point[2]
            return lambda: sgd_step(W1, W2, tX, tY, lr)

        grad_rows.append(
            Row(
                "PyTorch eager, `autograd.grad`",
                TORCH,
                f"torch {torch.__version__}; `((relu(X @ W1) @ W2 - Y)**2).sum() / (M N_O)`, "
                "`autograd.grad(loss, (W1, W2))`; results left on the device",
                torch_grad,
            )
        )
        step_rows.append(
            Row(
                "PyTorch eager, `autograd.grad`, `sub_`",
                TORCH,
                f"torch {torch.__version__}; the same, then `W.sub_(g, alpha=lr)` in place "
                "under `no_grad`",
                torch_step,
            )
        )
    if fw.jax is None:
        grad_rows.append(Row("JAX `jit(value_and_grad)`", JAX, missing=fw.jax_missing))
        step_rows.append(Row("JAX `jit` of the step", JAX, missing=fw.jax_missing))
    else:
        jax = fw.jax
        put = lambda a: jax.device_put(a, fw.jax_device)  # noqa: E731
        jX, jY = put(x_h), put(y_h)
        value_and_grad = jax.value_and_grad(
            lambda W1, W2, X, Y: mlp_grad._loss(W1, W2, X, Y, jax.nn.relu), argnums=(0, 1)
        )
        jit_grad = jax.jit(value_and_grad)

        def step(W1, W2, X, Y, lr):
            value, (g1, g2) = value_and_grad(W1, W2, X, Y)
            return value, (W1 - lr * g1, W2 - lr * g2)

        jit_step = jax.jit(step, donate_argnums=(0, 1))

        def jax_grad(point):
            W1, W2 = put(point[0]), put(point[1])
            return lambda: jit_grad(W1, W2, jX, jY)

        def jax_step(point):
            state = [put(point[0]), put(point[1])]
            lr = point[2]

            def call():
                value, new = jit_step(state[0], state[1], jX, jY, lr)
                state[:] = new
                return value, new

            return call

        grad_rows.append(
            Row(
                "JAX `jit(value_and_grad)`",
                JAX,
                f"jax {jax.__version__}; the same loss, `jax.nn.relu`; results left on the device",
                jax_grad,
                wait=_jax_wait(fw),
            )
        )
        step_rows.append(
            Row(
                "JAX `jit` of the step",
                JAX,
                f"jax {jax.__version__}; returns new weights `W - lr * g`, the old ones donated "
                "(`donate_argnums=(0, 1)`)",
                jax_step,
                wait=_jax_wait(fw),
            )
        )
    flops = 4.0 * m * n_i * n_h + 6.0 * m * n_h * n_o  # the five matrix products
    dims = f"M = {m:,}, N_I = {n_i:,}, N_H = {n_h:,}, N_O = {n_o}, float32"
    notes = [
        f"TFLOP/s: the five matrix products' {flops / 1e9:.1f} GFLOP (forward 2·M·N_I·N_H + "
        "2·M·N_H·N_O, back 2·M·N_H·N_O twice and 2·M·N_I·N_H) over the time per call"
    ]
    return [
        Table(
            f"`loss_and_grad`, {dims}",
            "loss and both weight gradients, `examples/mlp.py`'s "
            f"sum((relu(X W1) W2 - Y)²) / (M N_O) on its `seed_data{sizes}`",
            grad_rows,
            grad_points,
            float32=True,
            flops=flops,
            notes=notes,
        ),
        Table(
            f"`sgd_step`, {dims}",
            "one SGD step (loss, gradients, W1 and W2 updated; timed at lr "
            f"{mlp_grad.TIMED_LR:g} so the weights stay put, checked at lr "
            f"{mlp_grad.CHECK_LR:g}: the loss and the new weights)",
            step_rows,
            step_points,
            float32=True,
            flops=flops,
            notes=notes,
        ),
    ]


def w2_table(device: Device, fw: Frameworks, n: int, d: int, dtype: str) -> Table:
    import numpy as np

    from examples.logistic import large, logistic

    from . import logistic_grad

    xp = device.xp
    np_dtype = np.dtype(dtype)
    x64, t64 = large(n, d)
    x_h, t_h = x64.astype(np_dtype), t64.astype(np_dtype)
    problem = logistic if dtype == "float64" else _problem_as(logistic, dtype)
    module, compile_s = _compiled(problem)
    X, t = xp.asarray(x_h), xp.asarray(t_h)

    def weights(scale, seed):
        return (np.random.default_rng(seed).standard_normal((d, 1)) * scale).astype(np_dtype)

    points = [
        (f"w = {scale:g} × standard normal (seed {seed})", weights(scale, seed))
        for scale, seed in logistic_grad.CHECKS
    ]

    def symgen_make(w):
        wc = xp.asarray(w)
        return lambda: module.loss_and_grad(wc, X, t)

    rows = [
        Row(
            "symgen `loss_and_grad` (generated CUDA)",
            SYMGEN,
            f"{_symgen_note(compile_s)}; the example's mixture spelling "
            "-Σ log(p t + (1 - p)(1 - t)), evaluated stably; the loss as a Python float",
            symgen_make,
            compile_s=compile_s,
        )
    ]
    if fw.torch is None:
        rows.append(Row("PyTorch eager, `autograd.grad`", TORCH, missing=fw.torch_missing))
    else:
        torch = fw.torch
        dev = fw.torch_device
        tX, tt = torch.as_tensor(x_h, device=dev), torch.as_tensor(t_h, device=dev)
        loss_and_grad = logistic_grad._torch_loss_and_grad(logistic_grad._torch_loss)

        def torch_make(w):
            tw = torch.as_tensor(w, device=dev)
            return lambda: loss_and_grad(tw, tX, tt)

        rows.append(
            Row(
                "PyTorch eager, `autograd.grad`",
                TORCH,
                f"torch {torch.__version__}; Σ logaddexp(0, -z) t + logaddexp(0, z)(1 - t), "
                "z = X @ w; results left on the device",
                torch_make,
            )
        )
    if fw.jax is None:
        rows.append(Row("JAX `jit(value_and_grad)`", JAX, missing=fw.jax_missing))
    else:
        jax = fw.jax
        import jax.numpy as jnp

        jX, jt = jax.device_put(x_h, fw.jax_device), jax.device_put(t_h, fw.jax_device)
        value_and_grad = jax.jit(
            jax.value_and_grad(
                lambda w, X, t: logistic_grad._stable_loss(jnp, w, X, t), argnums=(0,)
            )
        )

        def jax_make(w):
            jw = jax.device_put(w, fw.jax_device)
            return lambda: value_and_grad(jw, jX, jt)

        rows.append(
            Row(
                "JAX `jit(value_and_grad)`",
                JAX,
                f"jax {jax.__version__}; the same formula as torch; results left on the device",
                jax_make,
                wait=_jax_wait(fw),
            )
        )
    itemsize = np_dtype.itemsize
    nbytes = (n * d + n) * itemsize
    return Table(
        f"{dtype}, N = {n:,}, D = {d}",
        f"loss and gradient of `examples/logistic.py`'s loss on its `large({n}, {d})` data "
        f"({dtype}), at w = 0.25 × standard normal",
        rows,
        points,
        float32=dtype == "float32",
        nbytes=nbytes,
        notes=[f"bandwidth: bytes of X and t read once ({_bytes(nbytes)}) over the time"],
    )


# -- the report -------------------------------------------------------------------------


def _seconds(s: float | None) -> str:
    from .timing import format_seconds

    return "—" if s is None else format_seconds(s)


def _bytes(n: float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f} B"


def _rate(bytes_per_second: float) -> str:
    return _bytes(bytes_per_second) + "/s"


def render_table(table: Table, emulate: bool) -> list[str]:
    lines = [f"### {table.title}", "", table.description + ".", ""]
    if table.error:
        return [*lines, f"**FAILED**: {table.error}", ""]
    extra_col = "bandwidth (% of copy)" if table.nbytes is not None else "TFLOP/s"
    lines += [
        f"| contender | median per call | ± | × symgen's time | {extra_col} | first call | check |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    base = table.symgen.median
    copy_rate = 2 * table.nbytes / table.copy[0] if table.copy and table.nbytes else None
    for row in table.rows:
        if row.missing is not None:
            lines.append(f"| {row.name} | missing: {row.missing} | | | | | |")
            continue
        med = row.median
        ratio = f"{med / base:.2f}" if med and base else "—"
        spread = f"{row.spread:.0%}" if row.spread is not None else "—"
        if table.nbytes is not None and med:
            rate = table.nbytes / med
            extra = _rate(rate) + (f" ({rate / copy_rate:.0%})" if copy_rate else "")
        elif table.flops is not None and med:
            extra = f"{table.flops / med / 1e12:.3g}"
        else:
            extra = "—"
        first = _seconds(row.first_call)
        lines.append(
            f"| {row.name} | {_seconds(med)} | {spread} | {ratio} | {extra} | {first} | "
            f"{row.check or '—'} |"
        )
    lines.append("")
    if table.copy and table.nbytes:
        seconds, how = table.copy
        lines.append(
            f"- copy: {how} of {_bytes(table.nbytes)} in {_seconds(seconds)}: "
            f"{_rate(copy_rate)} counting bytes read and written"
        )
    lines += [f"- {note}" for note in table.notes]
    lines += [f"- {row.name}: {row.note}" for row in table.rows if row.note]
    if emulate:
        lines.append("- EMULATED: these times mean nothing")
    lines.append("")
    return lines


@dataclass
class Section:
    heading: str
    intro: str
    tables: list[Table] = field(default_factory=list)
    error: str | None = None
    done: bool = False


def targets(sections: list[Section], emulate: bool) -> list[str]:
    """One line per target: what was asked, what was measured, met or not."""
    out = []

    def verdict(ok: bool | None) -> str:
        if emulate:
            return "not assessed (emulated)"
        return "n/a" if ok is None else ("**met**" if ok else "**not met**")

    def by(table: Table, framework: str) -> Row | None:
        return next((r for r in table.rows if r.framework == framework), None)

    for section in sections:
        for table in section.tables:
            s = table.symgen.median
            label = f"{section.heading.split(' —')[0]} {table.title.split(',')[0]}"
            if section.heading.startswith("W4"):
                copy_rate = 2 * table.nbytes / table.copy[0] if table.copy else None
                for row in (table.symgen, by(table, "extra")):
                    if row is None or row.median is None or not copy_rate:
                        continue
                    share = table.nbytes / row.median / copy_rate
                    out.append(
                        f"{label}: {row.name} reads t, y at {share:.0%} of the copy bandwidth "
                        f"(target ≥ {W4_TARGET:.0%}): {verdict(share >= W4_TARGET)}"
                    )
                for fw_name in (TORCH, JAX):
                    row = by(table, fw_name)
                    if row is None or row.median is None or s is None:
                        why = row.missing if row is not None and row.missing else "not timed"
                        out.append(f"{label}: faster than {fw_name}: n/a ({why})")
                        continue
                    out.append(
                        f"{label}: faster than {row.name}: symgen {_seconds(s)} vs "
                        f"{_seconds(row.median)} (their time / symgen's: {row.median / s:.2f}): "
                        f"{verdict(s < row.median)}"
                    )
            elif section.heading.startswith("W3"):
                row = by(table, TORCH)
                if row is None or row.median is None or s is None:
                    why = row.missing if row is not None and row.missing else "not timed"
                    out.append(f"{label}: within {W3_TARGET:.2f}× of PyTorch: n/a ({why})")
                    continue
                out.append(
                    f"{label}: within {W3_TARGET:.2f}× of {row.name}: symgen {_seconds(s)} vs "
                    f"{_seconds(row.median)} (symgen/torch {s / row.median:.2f}): "
                    f"{verdict(s <= W3_TARGET * row.median)}"
                )
    return out


def first_calls(sections: list[Section]) -> list[str]:
    out = []
    for section in sections:
        for table in section.tables:
            parts = []
            for row in table.rows:
                if row.framework == "extra" or row.first_call is None:
                    continue
                if row.compile_s is not None:
                    parts.append(
                        f"symgen `symgen.compile` {_seconds(row.compile_s)}, then its first "
                        f"call {_seconds(row.first_call)} (kernel compilation + the call)"
                    )
                else:
                    parts.append(f"{row.framework} {_seconds(row.first_call)}")
            label = f"{section.heading.split(' —')[0]} {table.title.split(',')[0]}"
            out.append(f"{label}: " + "; ".join(parts))
    return out


def render(header: list[tuple[str, list[str]]], sections: list[Section], emulate: bool) -> str:
    lines = ["# symgen on the GPU: W4, W3 large, W2 large against PyTorch and JAX", ""]
    if emulate:
        lines += [
            "**EMULATED RUN** (`--emulate`): CuPy replaced by `symgen.testing.fakecupy` on the "
            "CPU, tiny sizes; the timings below mean nothing. It only shows that the script "
            "works end to end.",
            "",
        ]
    for heading, items in header:
        lines += [f"## {heading}", "", *[f"- {item}" for item in items], ""]
    mismatches = [
        f"{section.heading}: FAILED: {section.error}" for section in sections if section.error
    ]
    for section in sections:
        for table in section.tables:
            for row in table.rows:
                what = f"{section.heading.split(' —')[0]} {table.title}: {row.name}"
                if row.check.startswith(("MISMATCH", "symgen failed")):
                    mismatches.append(f"{what}: {row.check}")
                elif row.framework == SYMGEN and row.missing:
                    mismatches.append(f"{what}: {row.missing}")
    lines += ["## Targets", ""]
    lines += [f"- {line}" for line in targets(sections, emulate)] or ["- (nothing measured)"]
    lines += ["", "## First calls (compilation; not in the timings)", ""]
    lines += [f"- {line}" for line in first_calls(sections)] or ["- (nothing measured)"]
    lines += ["", "## Checks", ""]
    lines += [f"- **{m}**" for m in mismatches] or [
        "- every contender that ran agrees with symgen's module at every point checked"
    ]
    lines.append("")
    for section in sections:
        lines += [f"## {section.heading}", "", section.intro, ""]
        if section.error:
            lines += [f"**FAILED**: {section.error}", ""]
        elif not section.done and not section.tables:
            lines += ["(not measured yet)", ""]
        for table in section.tables:
            lines += render_table(table, emulate)
    return "\n".join(lines).rstrip() + "\n"


def _software(device: Device, fw: Frameworks) -> list[str]:
    import numpy
    import sympy

    import symgen

    from .machine import version

    cupy = (
        "CuPy: EMULATED by `symgen.testing.fakecupy` (a real CuPy, if installed, is not used)"
        if device.emulate
        else f"cupy {device.xp.__version__}"
    )
    return [
        f"Python {platform.python_version()}, numpy {numpy.__version__}, sympy "
        f"{sympy.__version__}, symgen {getattr(symgen, '__version__', version('symgen'))}",
        cupy,
        *fw.lines(),
    ]


def _method(mode: str, plan: tuple[int, float], cache: str) -> list[str]:
    rounds, target = plan
    sample = (
        "one call per sample"
        if target <= 0
        else f"a sample is as many back-to-back calls as last ≥ {target * 1e3:.0f} ms"
    )
    return [
        f"mode: {mode}; {rounds} rounds, each timing every contender once (the first "
        f"rotating); {sample}, between two waits for the whole device "
        "(`cupy.cuda.Device().synchronize()`, and `torch.cuda.synchronize()`; JAX's last "
        "result `block_until_ready` first), timed with `time.perf_counter`; the median over "
        "rounds per call, ± half the interquartile range relative to it",
        "symgen's functions return the loss (and W4's partials) as Python floats, so each of "
        "its calls waits for the device; torch and JAX calls return device arrays and queue "
        "the next call's work behind them (waited for at the end of a sample)",
        "before timing: one first call of each contender (its time, in the tables, includes "
        "compilation: NVRTC for symgen, XLA for JAX, lazy CUDA/cuBLAS setup for torch), "
        "then every contender's loss and gradient (or new weights) checked against symgen's "
        f"at each point listed: {tolerance(False)} in float64, {tolerance(True)} in float32; "
        "one more warm-up call, then calibration",
        f"CuPy kernel cache: {cache}",
        "garbage collection off while timing; data and weights live on the device throughout",
    ]


# -- main -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.gpu", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"Markdown report (default: {DEFAULT_OUT})"
    )
    parser.add_argument(
        "--emulate",
        action="store_true",
        help="run on the CPU with symgen.testing.fakecupy at tiny sizes (timings meaningless)",
    )
    parser.add_argument(
        "--without",
        action="append",
        choices=("torch", "jax"),
        default=[],
        help="do not run this framework's contenders (listed as missing); repeatable",
    )
    args = parser.parse_args(argv)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # leave CuPy and torch room
    if args.emulate:
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
        from symgen.testing import emulator_available, fake_cupy_installed

        if not emulator_available():
            print("--emulate needs g++ on PATH (the CUDA emulator compiles kernels with it)")
            return 2
        with fake_cupy_installed():
            return run(args, cache="not used (emulated: g++ builds, cached by symgen.testing)")
    cache_dir = None
    if "CUPY_CACHE_DIR" in os.environ:
        cache = f"`CUPY_CACHE_DIR={os.environ['CUPY_CACHE_DIR']}` (given: first calls may load)"
    else:
        cache_dir = tempfile.mkdtemp(prefix="symgen-gpu-bench-cupy-")
        os.environ["CUPY_CACHE_DIR"] = cache_dir
        cache = "a fresh empty folder, so symgen's first calls include NVRTC compilation"
    try:
        return run(args, cache)
    finally:
        if cache_dir:
            shutil.rmtree(cache_dir, ignore_errors=True)


def run(args: argparse.Namespace, cache: str) -> int:
    started = datetime.datetime.now(datetime.UTC)
    mode = ("emulate" if args.emulate else "") + ("-quick" if args.quick else "")
    mode = mode.strip("-") or "full"
    plan = PLANS[mode]
    try:
        device = Device(args.emulate)
    except Exception as exc:  # noqa: BLE001 - no cupy, no driver, no device
        print(f"no CUDA device through CuPy ({_failed(exc)}); use --emulate to run on the CPU")
        return 2
    fw = load_frameworks(device, set(args.without))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. JAX on the CPU: donated buffers not usable
        return _run(args, device, fw, mode, plan, cache, started)


def _run(args, device, fw, mode, plan, cache, started) -> int:
    def log(text: str) -> None:
        print(text, flush=True)

    header = [
        (
            "Run",
            [
                f"command: `{shlex.join(sys.orig_argv)}` (from {os.getcwd()})",
                f"date: {started:%Y-%m-%d %H:%M} UTC",
            ],
        ),
        ("Device", device.lines()),
        ("Software", _software(device, fw)),
        ("Method", _method(mode, plan, cache)),
    ]
    for heading, items in header:
        log(f"{heading}:\n" + "\n".join(f"  {item}" for item in items))
    if args.emulate:
        w4_n, w2_n, w3_sizes = EMULATED["w4"], EMULATED["w2"], EMULATED["w3"]
    else:
        from . import logistic_grad, mlp_grad

        w4_n, w2_n, w3_sizes = W4_N, logistic_grad.N, mlp_grad.SIZES["large"]
    w2_d = 16
    sections = [
        Section(
            f"W4 — curve fit, six scalar parameters, N = {w4_n:,}",
            "`loss_and_grad(a, b, c, d, e, g, t, y)`: the loss (exp(-a t) sin(b t + c) + d t² "
            "+ e t + g - y)², averaged, and its six partials from one pass over (t, y). "
            f"Targets: ≥ {W4_TARGET:.0%} of the copy bandwidth, faster than PyTorch eager and "
            "JAX `jit`.",
        ),
        Section(
            f"W3 large — two-layer ReLU network, M = {w3_sizes[0]:,}, float32",
            f"Target: symgen within {W3_TARGET:.2f}× of PyTorch eager (loss and gradients; "
            "the SGD step). symgen's matrix products are CuPy's `@` (cuBLAS).",
        ),
        Section(
            f"W2 large — logistic regression, N = {w2_n:,}, D = {w2_d}",
            "`loss_and_grad(w, X, t)`; no target set: the ratios are reported.",
        ),
    ]
    jobs = [
        (sections[0], lambda: [w4_table(device, fw, w4_n, "float64")]),
        (sections[0], lambda: [w4_table(device, fw, w4_n, "float32")]),
        (sections[1], lambda: w3_tables(device, fw, w3_sizes)),
        (sections[2], lambda: [w2_table(device, fw, w2_n, w2_d, "float64")]),
        (sections[2], lambda: [w2_table(device, fw, w2_n, w2_d, "float32")]),
    ]
    failed = False
    for section, build in jobs:
        log(f"{section.heading} ...")
        start = time.perf_counter()
        try:
            tables = build()
            for table in tables:
                section.tables.append(table)
                log(f" {table.title}")
                run_table(table, device, plan, log)
        except Exception as exc:  # noqa: BLE001 - reported, the other workloads go on
            traceback.print_exc()
            section.error = (section.error + "; " if section.error else "") + _failed(exc)
            failed = True
        section.done = True
        device.free()
        log(f"  ({time.perf_counter() - start:.1f} s)")
        _write(args.out, render(header, sections, args.emulate))
    text = render(header, sections, args.emulate)
    _write(args.out, text)
    print()
    print(text)
    print(f"wrote {args.out}")
    bad = failed or any(
        row.check.startswith(("MISMATCH", "symgen")) or (row.framework == SYMGEN and row.missing)
        for section in sections
        for table in section.tables
        for row in table.rows
    )
    return 1 if bad else 0


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
