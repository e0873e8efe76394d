"""A generated module contains the helpers and imports its statements use, and no others:
the ``sg_`` functions of its C or CUDA source, the module-level helpers (``_safelog``,
``_logaddexp``, ``_as_scalar``) and the standard modules (``math``) of its Python."""

from __future__ import annotations

import ast
import re

import pytest
import sympy as sp

import symgen
from examples import curve_fit, logistic, mlp, rosenbrock, softmax

a, b, c, t, y = sp.symbols("a b c t y", real=True)
M, K = sp.symbols("M K", integer=True, positive=True)
W = sp.MatrixSymbol("W", K, 1)
X = sp.MatrixSymbol("X", M, K)

PROBLEMS = {
    "rosenbrock": rosenbrock.rosenbrock,
    "curve_fit": curve_fit.curve_fit,
    "logistic": logistic.logistic,
    "mlp": mlp.mlp,
    "softmax": softmax.softmax,
    "pieces": symgen.Problem(
        symgen.softplus(a * t + b)
        - y * (a * t + b)
        + c**2 * symgen.sigmoid(b * y)
        + symgen.relu(a - t) ** 2,
        params=[a, b, c],
        data=[t, y],
        name="pieces",
    ),  # fmt: skip
    "scalar_helpers": symgen.Problem(  # stable form: logaddexp of safelogs
        sp.log(symgen.sigmoid(a) * (b**2 + 1) + (1 - symgen.sigmoid(a)) * c**2) + sp.Max(a, c),
        params=[a, b, c],
        name="scalar_helpers",
    ),
    "per_sample_helpers": symgen.Problem(
        y * sp.log(symgen.sigmoid(a * t) * (b**2 + 1) + (1 - symgen.sigmoid(a * t)) * t**2)
        + sp.Min(a * t, c)
        + sp.Heaviside(a - t),
        params=[a, b, c],
        data=[t, y],
        name="per_sample_helpers",
    ),  # fmt: skip
    "matrix_and_scalar": symgen.Problem(
        symgen.sum(symgen.relu(X * W)) * c**2, params=[W, c], data=[X], name="matrix_and_scalar"
    ),
}

#: A helper's definition in C (``static inline``) or CUDA (``__device__``), or a kernel.
DEFINITION = re.compile(
    r"^(?:static inline|__device__(?: __forceinline__)?|extern \"C\" __global__) \w+ (\w+)\(",
    re.MULTILINE,
)
#: Functions the host launches by name: kernels of the template, not helpers.
LAUNCHED = {"sg_finish", "sg_sgd", "sg_momentum", "sg_adam"}


def generated(name: str, backend: str) -> str:
    return symgen.generate(PROBLEMS[name], backend)


def c_source(module: str) -> str | None:
    """The C (or CUDA C) source a module embeds as ``_SOURCE``, or None."""
    for node in ast.parse(module).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "_SOURCE":
            return node.value.value
    return None


def sg_defined_and_called(code: str) -> tuple[set[str], set[str]]:
    defined = {n for n in DEFINITION.findall(code) if n.startswith("sg_")} - LAUNCHED
    calls = re.findall(r"\b(sg_\w+)\(", code)
    # every definition names itself once; a call is any further occurrence
    called = {n for n in set(calls) if calls.count(n) > (n in defined or n in LAUNCHED)}
    return defined, called


@pytest.mark.parametrize("backend", ["c", "cuda"])
@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_c_and_cuda_sources_define_exactly_the_helpers_they_call(name, backend):
    code = c_source(generated(name, backend))
    if code is None:  # a scalar problem: computed on Python floats
        assert PROBLEMS[name].kind == "scalar"
        return
    defined, called = sg_defined_and_called(code)
    assert defined == called - LAUNCHED


def python_uses(module: str) -> tuple[set[str], set[str], set[str]]:
    """The modules a module imports, its module-level functions, and every name it reads."""
    tree = ast.parse(module)
    imported = {
        alias.asname or alias.name
        for node in tree.body
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    read = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    return imported, functions, read


@pytest.mark.parametrize("backend", ["numpy", "c", "cuda"])
@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_python_imports_and_helpers_are_those_used(name, backend):
    imported, functions, read = python_uses(generated(name, backend))
    assert imported <= read  # no unused import
    assert "math" in imported or "math" not in read
    for helper in ("_safelog", "_logaddexp", "_as_scalar"):
        assert (helper in functions) == (helper in read), helper


def test_the_cases_cover_every_helper():
    """The problems above use each helper somewhere (so the equalities are not vacuous)."""
    sg, python = set(), set()
    for name in PROBLEMS:
        for backend in ("numpy", "c", "cuda"):
            module = generated(name, backend)
            _, functions, _ = python_uses(module)
            python |= functions & {"_safelog", "_logaddexp", "_as_scalar"}
            code = c_source(module)
            sg |= sg_defined_and_called(code)[0] if code else set()
    assert python == {"_safelog", "_logaddexp", "_as_scalar"}
    assert {"sg_relu", "sg_softplus", "sg_sigmoid", "sg_maximum", "sg_max"} <= sg
    assert {"sg_safelog", "sg_minimum", "sg_heaviside", "sg_block_reduce"} <= sg
