"""The public functions: ``generate``, ``compile``, ``gradients`` and ``hessians``."""

from __future__ import annotations

import linecache
import types
from typing import Literal

from symgen.backends.c import module as c_backend
from symgen.backends.cuda import module as cuda_backend
from symgen.backends.numpy import module as numpy_backend
from symgen.codegen.formulas import gradients, hessians
from symgen.codegen.optimizers import bake
from symgen.compiler.pipeline import run
from symgen.compiler.problem import Problem
from symgen.errors import SpecError

BACKENDS = {
    "numpy": numpy_backend.generate,
    "cuda": cuda_backend.generate,
    "c": c_backend.generate,
}


def generate(
    problem: Problem,
    backend: Literal["numpy", "cuda", "c"] = "numpy",
    *,
    source: str | None = None,
    optimizer: str | None = None,
    **hyperparameters: float,
) -> str:
    """The source of a standalone module for ``problem``.

    ``source`` names where the spec came from, for the header (a path).

    ``optimizer`` (``"sgd"``, ``"momentum"``, ``"nesterov"``, ``"adam"``) with
    ``hyperparameters`` (``lr``, ``momentum``, ``beta1``, ``beta2``, ``eps``; the
    ones not given at their defaults) bakes them into that optimizer's step
    function: literal constants instead of keyword arguments (``symgen.codegen.optimizers``).
    Without ``optimizer`` every step function takes them as keywords.
    """
    if not isinstance(problem, Problem):
        raise TypeError(f"generate() needs a symgen.Problem, got {type(problem).__name__}")
    if backend not in BACKENDS:
        raise SpecError(f"unknown backend {backend!r}; available: {', '.join(sorted(BACKENDS))}")
    baked = bake(optimizer, **hyperparameters)
    if baked is None:  # backends that predate baking keep working
        return BACKENDS[backend](run(problem), source)
    return BACKENDS[backend](run(problem), source, baked=baked)


def compile(  # noqa: A001
    problem: Problem,
    backend: Literal["numpy", "cuda", "c"] = "numpy",
    *,
    optimizer: str | None = None,
    **hyperparameters: float,
) -> types.ModuleType:
    """The generated module, imported in memory (no file is written); ``optimizer`` and
    ``hyperparameters`` as for ``generate``."""
    source = generate(problem, backend, optimizer=optimizer, **hyperparameters)
    baked = bake(optimizer, **hyperparameters)  # a baked module gets a name of its own
    filename = f"<symgen {problem.name}_{backend}{f' {baked.flags()}' if baked else ''}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    module = types.ModuleType(f"{problem.name}_{backend}")
    module.__file__ = filename
    try:
        exec(builtins_compile(source, filename, "exec"), module.__dict__)
    except ImportError as exc:  # the CUDA module's, naming the CuPy wheels
        if exc.name != "cupy":
            raise
        raise ImportError(
            f"the CUDA module of {problem.name!r} needs CuPy and a GPU: pip install "
            "'symgen[cuda12]' (CUDA 12) or 'symgen[cuda13]' (CUDA 13); to run it on the CPU "
            "(slowly, for checking), compile it inside symgen.testing.fake_cupy_installed()",
            name="cupy",
        ) from None
    return module


import builtins  # noqa: E402

builtins_compile = builtins.compile

__all__ = ["BACKENDS", "compile", "generate", "gradients", "hessians"]
