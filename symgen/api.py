"""The public functions: ``generate``, ``compile`` and ``gradients``."""

from __future__ import annotations

import linecache
import types
from typing import Literal

from .backends import numpy as numpy_backend
from .errors import SpecError
from .formulas import gradients
from .pipeline import run
from .problem import Problem

BACKENDS = {"numpy": numpy_backend.generate}


def generate(
    problem: Problem, backend: Literal["numpy"] = "numpy", *, source: str | None = None
) -> str:
    """The source of a standalone module for ``problem``.

    ``source`` names where the spec came from, for the header (a path).
    """
    if not isinstance(problem, Problem):
        raise TypeError(f"generate() needs a symgen.Problem, got {type(problem).__name__}")
    if backend not in BACKENDS:
        raise SpecError(f"unknown backend {backend!r}; available: {', '.join(sorted(BACKENDS))}")
    return BACKENDS[backend](run(problem), source)


def compile(problem: Problem, backend: Literal["numpy"] = "numpy") -> types.ModuleType:  # noqa: A001
    """The generated module, imported in memory (no file is written)."""
    source = generate(problem, backend)
    filename = f"<symgen {problem.name}_{backend}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    module = types.ModuleType(f"{problem.name}_{backend}")
    module.__file__ = filename
    exec(builtins_compile(source, filename, "exec"), module.__dict__)
    return module


import builtins  # noqa: E402

builtins_compile = builtins.compile

__all__ = ["BACKENDS", "compile", "generate", "gradients"]
