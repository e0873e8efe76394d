"""Optional frameworks the workloads compare against: autograd, JAX, PyTorch, PyTensor.

None is a dependency of symgen. Each loader returns the module, or a ``str`` saying why it
is missing, which the workload reports as "not installed: ..." instead of timing it; a
contender that is installed but fails to compile is reported as "failed: ...".

- autograd: ``pip install autograd`` (the ``bench`` extra)
- JAX on CPU: ``pip install jax jaxlib``
- PyTorch: ``pip install torch==2.13.0`` (pinned; an unpinned install may pull a CUDA build);
  ``torch.compile`` also needs a C++ compiler on PATH
- PyTensor: ``pip install pytensor`` (brings Numba, its default linker since 3.0; its C
  linker needs a C++ compiler)
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

TORCH_VERSION = "2.13.0"


def load_autograd() -> tuple[Any, Any] | str:
    """``(autograd, autograd.numpy)``."""
    try:
        import autograd
        import autograd.numpy as anp
    except ImportError as exc:
        return f"not installed ({exc})"
    return autograd, anp


def load_jax() -> Any | str:
    """``jax`` with float64 enabled (W2 is float64); float32 inputs stay float32.

    One XLA thread is asked for by ``benchmarks.process`` through ``XLA_FLAGS``, which XLA
    reads when its CPU backend starts.
    """
    try:
        import jax
    except ImportError as exc:
        return f"not installed ({exc})"
    jax.config.update("jax_enable_x64", True)
    return jax


def load_torch() -> Any | str:
    """``torch`` if exactly version 2.13.0 (CPU) is importable, with one intra-op thread."""
    try:
        installed = metadata.version("torch")
    except metadata.PackageNotFoundError:
        return f"not installed (`pip install torch=={TORCH_VERSION}`)"
    if installed.split("+")[0] != TORCH_VERSION:
        return f"not run: torch {installed} installed, the benchmark pins {TORCH_VERSION}"
    try:
        import torch
    except ImportError as exc:
        return f"not installed ({exc})"
    torch.set_num_threads(1)
    return torch


_SHARED: dict[tuple, dict[str, Any]] = {}


def shared_arrays(arrays: dict[str, Any], *, cache: bool = True) -> dict[str, Any]:
    """JAX (``j`` + name) and PyTorch (``t`` + name) views of NumPy ``arrays``, made once.

    Only for the frameworks already imported (their contenders import them when built), so a
    process timing NumPy contenders alone never loads them. JAX gets a copy on its device
    (the data live on JAX's side between calls, as in JAX code); PyTorch tensors share the
    NumPy arrays' memory. With ``cache`` (for data), they are kept by the arrays' identities:
    every contender and every check of a workload shares the same copies.
    """
    import sys

    key = tuple((name, id(value)) for name, value in arrays.items())
    out = _SHARED.get(key, {}) if cache else {}
    if sys.modules.get("jax") is not None and not any(k.startswith("j") for k in out):
        import jax

        out.update({f"j{k}": jax.device_put(v) for k, v in arrays.items()})
    if sys.modules.get("torch") is not None and not any(k.startswith("t") for k in out):
        import torch

        out.update({f"t{k}": torch.from_numpy(v) for k, v in arrays.items()})
    if cache:
        _SHARED[key] = out
        _KEEP[key] = arrays  # keeps the arrays alive, so that their ids stay theirs
    return dict(out)


_KEEP: dict[tuple, dict[str, Any]] = {}


def block(value: Any) -> Any:
    """Wait for JAX's asynchronous dispatch to finish (``block_until_ready``)."""
    import jax

    return jax.block_until_ready(value)


def load_pytensor() -> Any | str:
    """``pytensor``, quietly: it warns at import and compile time when it finds no BLAS."""
    import logging
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pytensor
    except ImportError as exc:
        return f"not installed (`pip install pytensor`; {exc})"
    logging.getLogger("pytensor").setLevel(logging.ERROR)  # its notes on which BLAS it uses
    return pytensor


#: The two PyTensor modes timed: its default (in PyTensor 3 the Numba linker) and the
#: C virtual machine it had by default before ("CVM": C thunks where an Op has C code).
PYTENSOR_MODES = {
    None: "PyTensor `function`, default mode",
    "CVM": 'PyTensor `function`, `mode="CVM"` (C linker)',
}


def pytensor_function(inputs, outputs, mode: str | None, updates=None) -> tuple[Any, str] | str:
    """``(compiled function, note on its linker)``, or ``"failed: ..."`` if compilation fails."""
    import contextlib
    import io
    import time
    import warnings

    pytensor = load_pytensor()
    start = time.perf_counter()
    try:  # quietly: it prints and warns about the BLAS it found, or did not
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            fn = pytensor.function(inputs, outputs, mode=mode, updates=updates)
    except Exception as exc:  # noqa: BLE001 - reported in the table
        return failed(exc)
    return fn, f"{pytensor_linker(fn)}; compiled in {time.perf_counter() - start:.1f} s"


def pytensor_linker(fn: Any) -> str:
    """Which linker a compiled PyTensor function runs with, and how much of it is C."""
    import pytensor

    linker = type(fn.maker.linker).__name__
    if linker == "NumbaLinker":
        return f"pytensor {pytensor.__version__}, linker: Numba (`NumbaLinker`)"
    thunks = getattr(getattr(fn, "vm", None), "thunks", None)
    if not thunks:
        return f"pytensor {pytensor.__version__}, linker: `{linker}`"
    nodes = fn.maker.fgraph.toposort()
    python = [str(n.op) for n, t in zip(nodes, thunks, strict=False) if not hasattr(t, "cthunk")]
    text = (
        f"pytensor {pytensor.__version__}, linker: `{linker}` with C thunks for "
        f"{len(thunks) - len(python)} of {len(thunks)} nodes"
    )
    if python:
        text += f", Python for {', '.join(sorted(set(python)))}"
        if not pytensor.config.blas__ldflags:
            text += " (no BLAS linked: `blas__ldflags` is empty, so its BLAS Ops call NumPy)"
    return text


def torch_compile(fn: Any, warm: Any) -> tuple[Any, str] | str:
    """``(torch.compile(fn), note)`` after ``warm(compiled)`` ran once, or ``"failed: ..."``.

    ``warm`` calls the compiled function as the timed statement will (forward and backward),
    so that compilation happens here and not in the timed loop.
    """
    import time

    torch = load_torch()
    if isinstance(torch, str):
        return torch
    start = time.perf_counter()
    try:
        compiled = torch.compile(fn, dynamic=False)
        warm(compiled)
        warm(compiled)
    except Exception as exc:  # noqa: BLE001 - reported in the table
        return failed(exc)
    return compiled, (
        f"torch {TORCH_VERSION}, inductor (C++ on CPU), 1 thread; compiled in "
        f"{time.perf_counter() - start:.1f} s"
    )


def failed(exc: BaseException) -> str:
    """One line for the table: ``failed: Type: first line of the message``."""
    first = (str(exc).strip().splitlines() or [""])[0][:160]
    return f"failed: {type(exc).__name__}: {first}".rstrip(": ")


def lambdify_not_applicable(problem: Any, param: Any) -> list[Any]:
    """The two SymPy ``lambdify`` rows of the matrix workloads, as not applicable (and why)."""
    import sympy as sp

    from .timing import Contender

    try:
        derivative = type(sp.diff(problem.loss, param)).__name__
    except Exception as exc:  # noqa: BLE001 - only shown as the reason
        derivative = f"raises {type(exc).__name__}"
    why = (
        f"not applicable: a matrix loss; `sympy.diff(loss, {param})` gives {derivative} "
        "(SymPy's matrix calculus does not see through the elementwise maps)"
    )
    return [
        Contender("SymPy `lambdify` of `sympy.diff`", missing=why),
        Contender("SymPy `lambdify(cse=True)` of `sympy.diff`", missing=why),
    ]


def symgen_c_contender(name: str, problem: Any, spec: str, stmt: str, detail: str) -> Any:
    """The contender running ``stmt`` on ``symgen.compile(problem, "c")``, its C passes built
    before timing (not in the first timed call); missing when they cannot be built (no C
    compiler, a failed build). ``stmt`` calls the module's function by its own name."""
    import symgen

    from .timing import Contender

    function = stmt.partition("(")[0]
    try:
        module = symgen.compile(problem, "c")
        if hasattr(module, "_lib"):
            module._lib()
    except RuntimeError as exc:
        return Contender(name, missing=f"not available: {str(exc).splitlines()[0]}")
    return Contender(
        name,
        stmt,
        {function: getattr(module, function)},
        note=f'`symgen.compile({spec}, "c")`: its passes are C ({", ".join(module._FLAGS)}); '
        + detail,
    )
