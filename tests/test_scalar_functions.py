"""Every scalar function's home (symgen.compiler.scalar_functions) against SymPy: each
spelling (NumPy, in-place ufunc, Python floats, C in double and float) evaluates to the
function's value at a few points, each function differentiates to something every target
spells, and every list of functions elsewhere is the one the homes give."""

import ctypes
import itertools
import math
import re
import shutil
import subprocess

import numpy as np
import pytest
import sympy as sp

import symgen
from symgen import Problem, generate
from symgen.backends.numpy.inplace import UFUNCS
from symgen.codegen.printers import (
    C_RESERVED,
    ArrayPrinter,
    CExpressionPrinter,
    ScalarPrinter,
    c_definitions,
    c_helper_name,
    python_helpers,
)
from symgen.compiler import exprparse
from symgen.compiler.scalar_functions import (
    BY_CLASS,
    DATA_ONLY_FUNCTIONS,
    FUNCTIONS,
    HELPERS,
    PARSED,
    SHORTHANDS,
    SUPPORTED_FUNCTIONS,
    TARGETS,
    stop_gradient,
)
from symgen.compiler.supported import check_scalar_expression
from symgen.errors import SpecError

PRINTED = [fn for fn in FUNCTIONS if fn.role != "diff"]
GRID = [sp.Rational(v) for v in ("-5/2", "-7/10", "0", "3/10", "9/10", "3")]
NAMES = ("x0", "x1", "x2")


def _counts(fn) -> tuple[int, ...]:
    """The argument counts of a call of ``fn`` (a variadic one: 2 and 3); ``log(x, b)`` is
    not a call (SymPy makes it ``log(x)/log(b)``)."""
    nargs = fn.sympy.nargs
    counts = sorted(nargs) if nargs.is_finite_set else (2, 3)
    return tuple(
        n for n in counts if isinstance(fn.sympy(*sp.symbols(NAMES[:n], real=True)), fn.sympy)
    )


def _reference(fn, args) -> float | None:
    """The value of ``fn`` at ``args`` from SymPy, or None where it is not real or defined."""
    meaning = fn.meaning or fn.sympy
    value = sp.sympify(meaning(*args)).evalf(30)
    if value == -sp.oo:
        return -math.inf
    if not (value.is_real and value.is_finite):
        return None
    return float(value)


def _cases(fn):
    """(symbols, call, points, values) for each argument count of ``fn``."""
    for n in _counts(fn):
        symbols = sp.symbols(NAMES[:n], real=True)
        call = fn.sympy(*symbols)
        points, values = [], []
        for args in itertools.product(GRID, repeat=n):
            value = _reference(fn, args)
            if value is not None:
                points.append(tuple(float(a) for a in args))
                values.append(value)
        assert points, f"{fn.name}: no point of the grid is in its domain"
        yield symbols, call, np.array(points), np.array(values)


def _close(got, want, rtol):
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    return np.allclose(got, want, rtol=rtol, atol=rtol, equal_nan=False) and np.array_equal(
        np.isinf(got), np.isinf(want)
    )


def _namespace(array: bool) -> dict:
    namespace = {"np": np, "math": math}
    for helper in HELPERS:
        exec(helper.array_source or helper.source if array else helper.source, namespace)
    return namespace


# -- every home is complete -------------------------------------------------------------
@pytest.mark.parametrize("fn", FUNCTIONS, ids=lambda fn: fn.name)
def test_each_home_states_what_its_role_needs(fn):
    spellings = [fn.spelling(t) for t in TARGETS]
    if fn.role == "diff":
        assert spellings == [None, None, None] and fn.parse, fn.name
    else:
        assert None not in spellings, f"{fn.name} lacks a spelling"
    if fn.ufunc is not None:
        assert _counts(fn) == (1,) and "{out}" in fn.ufunc
    own = fn.sympy.__module__ == "symgen.compiler.scalar_functions"
    assert (fn.meaning is not None) == own, "symgen's own functions state their meaning"
    if own and fn.partials is None:  # made after differentiation
        assert fn.name == "sigmoid_from_exp"
    spelled = [s.text for s in spellings if s is not None]
    if fn.helper is not None:
        assert any(f"{fn.helper.name}(" in text for text in spelled)
    if fn.c_definition is not None:  # it defines the helper its C spelling calls
        helper = re.match(r"(sg_\w+)\(", fn.c.text).group(1)
        assert f" {helper}(" in fn.c_definition


# -- every spelling gives the function's value ----------------------------------------------
@pytest.mark.parametrize("fn", PRINTED, ids=lambda fn: fn.name)
def test_python_spelling(fn):
    namespace = _namespace(array=False)
    for _, call, points, values in _cases(fn):
        text = ScalarPrinter().doprint(call)
        got = [eval(text, namespace, dict(zip(NAMES, p, strict=False))) for p in points]
        assert _close(got, values, 1e-13), (text, points, got, values)


@pytest.mark.parametrize("fn", PRINTED, ids=lambda fn: fn.name)
def test_numpy_spelling(fn):
    namespace = _namespace(array=True)
    for _, call, points, values in _cases(fn):
        text = ArrayPrinter(frozenset(NAMES)).doprint(call)
        columns = dict(zip(NAMES, points.T, strict=False))
        with np.errstate(divide="ignore"):
            got = eval(text, namespace, columns)
        assert _close(np.broadcast_to(got, values.shape), values, 1e-13), (text, got, values)


@pytest.mark.parametrize("fn", [fn for fn in FUNCTIONS if fn.ufunc], ids=lambda fn: fn.name)
def test_ufunc_spelling(fn):
    for _, _, points, values in _cases(fn):
        out = np.full(len(points), np.nan)
        exec(fn.ufunc.format("x0", out="out"), {"np": np, "x0": points[:, 0], "out": out})
        assert _close(out, values, 1e-13), (fn.ufunc, out, values)


def _c_program(ctype: str) -> tuple[str, list]:
    """A C file defining the sg_ helpers and one function per (home, argument count)."""
    dtype = "float32" if ctype == "float" else "float64"
    lines = ["#include <math.h>", *(f"static inline {d}" for d in c_definitions(ctype))]
    cases = []
    for fn in PRINTED:
        for symbols, call, points, values in _cases(fn):
            name = f"f_{len(cases)}"
            names = {s.name: f"a[{i}]" for i, s in enumerate(symbols)}
            body = CExpressionPrinter(dtype, names).doprint(call)
            lines.append(f"{ctype} {name}(const {ctype}* a) {{ return {body}; }}")
            cases.append((fn, name, body, points, values))
    return "\n".join(lines) + "\n", cases


@pytest.mark.skipif(
    not any(shutil.which(c) for c in ("cc", "gcc", "clang")), reason="no C compiler"
)
@pytest.mark.parametrize("ctype", ["double", "float"])
def test_c_spelling(ctype, tmp_path):
    source, cases = _c_program(ctype)
    (tmp_path / "f.c").write_text(source)
    compiler = next(shutil.which(c) for c in ("cc", "gcc", "clang") if shutil.which(c))
    subprocess.run(
        [compiler, "-std=c99", "-O1", "-Wall", "-Werror", "-Wno-unused-function", "-shared"]
        + ["-fPIC", "-o", str(tmp_path / "f.so"), str(tmp_path / "f.c"), "-lm"],
        check=True,
    )
    library = ctypes.CDLL(str(tmp_path / "f.so"))
    scalar = ctypes.c_float if ctype == "float" else ctypes.c_double
    rtol = 1e-5 if ctype == "float" else 1e-13
    for fn, name, body, points, values in cases:
        function = getattr(library, name)
        function.restype = scalar
        got = [function((scalar * len(p))(*p)) for p in points]
        want = values.astype(np.float32) if ctype == "float" else values
        assert _close(got, want, rtol), (fn.name, body, points, got, values)


# -- every function differentiates, to something every target spells -----------------------
# data-only functions are never differentiated (no target spells digamma, loggamma's derivative)
DIFFERENTIABLE = [
    fn
    for fn in PRINTED
    if fn.role != "data_only" and (fn.meaning is None or fn.partials is not None)
]


@pytest.mark.parametrize("fn", DIFFERENTIABLE, ids=lambda fn: fn.name)
def test_derivatives(fn):
    for symbols, call, points, values in _cases(fn):
        for i, s in enumerate(symbols):
            if fn.sympy is sp.Heaviside and i == 1:
                continue  # its value at 0, a constant
            d = sp.diff(call, s).replace(sp.DiracDelta, lambda *a: sp.S.Zero)  # as autodiff
            assert not d.has(sp.Derivative, sp.Subs), (fn.name, d)
            for f in d.atoms(sp.Function):
                home = BY_CLASS.get(type(f))
                assert home is not None and home.role != "diff", (fn.name, d)
            if fn.partials is None:
                continue
            stated = fn.partials(*symbols)[i]
            if fn.sympy is stop_gradient:  # its value is its argument, its derivative 0
                assert stated == 0 and sp.diff(call, s) == 0
                continue
            # symgen's partials agree with the derivative of the function's meaning
            exact = sp.diff(fn.meaning(*symbols), s)
            for p, value in zip(points, values, strict=True):
                if 0 in p or not math.isfinite(value):  # a kink, or outside the domain
                    continue
                at = dict(zip(symbols, (sp.Rational(v) for v in p), strict=False))
                want = exact.subs(at).evalf(30)
                if not (want.is_real and want.is_finite):
                    continue
                got = stated.subs(at).rewrite(sp.exp).evalf(30)
                assert abs(float(got) - float(want)) <= 1e-12 * (1 + abs(float(want)))


# -- every list of functions is the homes' ------------------------------------------------------
def test_a_loss_may_use_exactly_the_loss_functions():
    assert SUPPORTED_FUNCTIONS == {fn.name: fn.sympy for fn in FUNCTIONS if fn.role == "loss"}
    assert DATA_ONLY_FUNCTIONS == {fn.name: fn.sympy for fn in FUNCTIONS if fn.role == "data_only"}
    for fn in FUNCTIONS:
        symbols = sp.symbols(NAMES[: _counts(fn)[0]], real=True)
        if fn.role == "loss":
            check_scalar_expression(fn.sympy(*symbols))
        elif fn.role == "data_only":  # in terms free of the parameters only
            check_scalar_expression(fn.sympy(*symbols) * symbols[0])
            holds = {symbols[0]: frozenset({"p"})}
            with pytest.raises(SpecError, match=f"depends on the parameter p.*evaluates {fn.name}"):
                check_scalar_expression(symbols[0] + fn.sympy(*symbols), holds)
        else:
            with pytest.raises(SpecError, match="unsupported function"):
                check_scalar_expression(fn.sympy(*symbols))


def test_symgen_diff_parses_the_named_functions():
    named = {fn.parse for fn in FUNCTIONS if fn.parse} | {s.name for s in SHORTHANDS}
    assert exprparse.FUNCTIONS == tuple(sorted(named)) == tuple(sorted(PARSED))
    x = sp.Symbol("x")
    for fn in FUNCTIONS:
        if fn.parse:
            symbols = sp.symbols(NAMES[: fn.parse_counts[0]])
            text = f"{fn.parse}({', '.join(NAMES[: fn.parse_counts[0]])})"
            assert exprparse.parse_expression(text) == fn.sympy(*symbols)
    for s in SHORTHANDS:
        assert exprparse.parse_expression(f"{s.name}(x)") == s.build(x)


def test_printers_spell_every_printed_function():
    for printer, target in (
        (ScalarPrinter, "python"),
        (ArrayPrinter, "numpy"),
        (CExpressionPrinter, "c"),
    ):
        for fn in PRINTED:
            method = getattr(printer, f"_print_{fn.name}")
            assert method.__qualname__.startswith("_spells"), (printer, fn.name, target)


def test_numpy_takes_float_literals_in_max_and_min_of_arrays():
    """np.maximum(0.0, x): NumPy takes a Python float faster than an int, for the same values
    (an int stays an int where no operand is an array)."""
    x = sp.Symbol("x")
    printer = ArrayPrinter(frozenset({"x"}))
    assert printer.doprint(sp.Max(0, x)) == "np.maximum(0.0, x)"
    assert printer.doprint(sp.Min(x, -2)) == "np.minimum(-2.0, x)"
    values = np.array([-1.5, -0.0, 0.0, 2.0, np.nan, np.inf])
    assert np.array_equal(np.maximum(0.0, values), np.maximum(0, values), equal_nan=True)
    assert ArrayPrinter(frozenset()).doprint(sp.Max(0, x)) == "np.maximum(0, x)"


def test_in_place_ufuncs_are_the_homes():
    assert UFUNCS == {fn.sympy: fn.ufunc for fn in FUNCTIONS if fn.ufunc}


def test_c_definitions_call_only_earlier_ones_and_are_reserved():
    defined: list[str] = []
    for text in c_definitions("double"):
        name = re.match(r"double (sg_\w+)\(", text).group(1)
        calls = set(re.findall(r"\b(sg_\w+)\(", text)) - {name}
        assert calls <= set(defined), f"{name} calls {calls - set(defined)} before it is defined"
        defined.append(name)
    called = {m for fn in PRINTED for m in re.findall(r"([A-Za-z_]\w*)\{f\}\(", fn.c.text)}
    assert set(defined) | called | {f"{c}f" for c in called} <= C_RESERVED


def test_c_and_cuda_kernels_define_the_helpers_they_call():
    """The definitions come from the homes, and only those the kernels need: softplus and
    relu, their derivatives (the step function, and sigmoid from softplus's shared
    exponential), and the maximum softplus calls; not the plain sigmoid, which nothing
    calls."""
    x, w = sp.symbols("x w")
    loss = symgen.softplus(w * x) + symgen.relu(x - w)
    problem = Problem(loss, params=[w], data=[x], name="tiny")
    c, cuda = generate(problem, "c"), generate(problem, "cuda")
    used = {"sg_softplus", "sg_relu", "sg_heaviside", "sg_sigmoid_e", "sg_maximum"}
    for definition in c_definitions("double"):
        wanted = c_helper_name(definition) in used
        assert (f"static inline {definition}\n" in c) == wanted, definition
        assert (f"__device__ __forceinline__ {definition}\n" in cuda) == wanted, definition


def test_modules_get_the_helpers_they_call():
    assert python_helpers(["_safelog"]) == tuple(h for h in HELPERS if h.name == "_safelog")
    assert python_helpers([]) == ()
