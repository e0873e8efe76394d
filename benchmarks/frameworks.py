"""Optional frameworks the matrix workloads compare against: autograd, JAX, PyTorch.

None is a dependency of symgen. Each loader returns the module, or a ``str`` saying why it
is missing, which the workload reports as "not installed: ..." instead of timing it.

- autograd: ``pip install autograd`` (the ``bench`` extra)
- JAX on CPU: ``pip install jax jaxlib``
- PyTorch: ``pip install torch==2.13.0`` (pinned; an unpinned install may pull a CUDA build)
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


def block(value: Any) -> Any:
    """Wait for JAX's asynchronous dispatch to finish (``block_until_ready``)."""
    import jax

    return jax.block_until_ready(value)
