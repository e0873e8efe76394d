"""SciPy, imported when a solver first runs: an optional dependency of symgen."""

from __future__ import annotations

from types import ModuleType


def scipy_optimize(caller: str) -> ModuleType:
    """``scipy.optimize``, or an ``ImportError`` saying how to install it."""
    try:
        import scipy.optimize
    except ImportError:
        raise ImportError(
            f"symgen.{caller} runs SciPy's solvers, and SciPy is not installed: "
            "pip install 'symgen[scipy]' (or pip install scipy)",
            name="scipy",
        ) from None
    return scipy.optimize
