"""The generated module ``fit`` trains: compiled from a ``symgen.Problem`` when given one,
checked to be a generated module, and named for messages."""

from __future__ import annotations

import types
from typing import Any

from symgen.api import compile as compile_problem
from symgen.compiler.problem import Problem
from symgen.runtime.distributed.sources import problem_module


def generated_module(module: Any, lazy: bool) -> tuple[Any, Problem | None]:
    """``(module, problem)``: ``module`` as it is, or the module of a ``Problem`` (loaded as
    Dask workers load it when the data are Dask arrays, ``lazy``) and that problem."""
    if not isinstance(module, Problem):
        return module, None
    return (problem_module(module) if lazy else compile_problem(module)), module


def module_names(module: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The module's parameter and data names (``TypeError`` unless it is a generated module)."""
    missing = [attr for attr in ("PARAMS", "DATA", "DTYPE", "loss") if not hasattr(module, attr)]
    if missing:
        raise TypeError(
            f"fit() needs a generated module (symgen.compile(problem) or generated/*.py); "
            f"{module_name(module)!r} has no {', '.join(missing)}"
        )
    return tuple(module.PARAMS), tuple(module.DATA)


def module_name(module: Any) -> str:
    """The name messages use for ``module``: its problem's name."""
    if isinstance(module, types.ModuleType):
        return module.__name__.rsplit(".", 1)[-1].removesuffix("_numpy")
    return type(module).__name__
