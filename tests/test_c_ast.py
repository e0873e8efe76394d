"""The C-family AST (``codegen/c_ast``) and its printers (``codegen/c_printer``): each node
prints as C (or CUDA C) spells it, and printed functions compile and compute."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import jinja2
import numpy as np
import pytest
import sympy as sp

import symgen
from symgen.backends.c.module import CKernel, source
from symgen.codegen import c_ast as c
from symgen.codegen.c_printer import CPrinter, CudaPrinter, helpers_used
from symgen.codegen.printers import c_definitions
from symgen.testing import emulator_available

x, y = sp.symbols("x y", real=True)
ROW, COL, N = c.Var("_i"), c.Var("_j"), c.Var("N")
POINTER = {"pointer": True, "restrict": True}
C_TEMPLATES = Path(symgen.__file__).parent / "backends" / "c" / "templates"


def text(node, printer=None) -> str:
    return (printer or CPrinter("float64")).expression(node)


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        (c.add(c.mul(ROW, N), COL), "_i*N + _j"),
        (c.mul(c.add(ROW, COL), N), "(_i + _j)*N"),
        (c.BinOp("-", ROW, c.add(COL, N)), "_i - (_j + N)"),
        (c.BinOp("-", c.BinOp("-", ROW, COL), N), "_i - _j - N"),
        (c.BinOp("%", c.Var("_e"), N), "_e % N"),
        (
            c.BinOp("/", c.Literal("2048"), c.Ternary(c.BinOp(">", N, c.Literal("0")), N, ROW)),
            "2048 / (N > 0 ? N : _i)",
        ),
        (
            c.BinOp("&&", c.BinOp("==", ROW, c.Literal("0")), c.BinOp("==", COL, c.Literal("0"))),
            "_i == 0 && _j == 0",
        ),  # fmt: skip
        (c.Index(c.Var("a"), c.add(ROW, COL)), "a[_i + _j]"),
        (c.Cast("double", c.Index(c.Var("a"), ROW)), "(double)a[_i]"),
        (c.Cast("double", c.Var("acc")), "(double)acc"),
        (c.Cast("double", x * y), "(double)(x*y)"),
        (c.Cast("double", x), "(double)x"),
        (
            c.mul(c.Cast("long long", c.Var("blockIdx.x")), c.Var("blockDim.x")),
            "(long long)blockIdx.x*blockDim.x",
        ),  # fmt: skip
        (c.Call("sg_max", (c.Var("a"), c.Cast("double", x + 1))), "sg_max(a, (double)(x + 1.0))"),
    ],
)
def test_expressions_print_with_the_parentheses_c_needs(node, expected):
    assert text(node) == expected


def test_element_arithmetic_keeps_its_type_and_names():
    printer = CPrinter("float32", {"x": "_v_x"})
    assert text(c.Cast("double", 2 * x + y), printer) == "(double)(2.0F*_v_x + y)"
    assert text(symgen.relu(x) * y, printer) == "y*sg_relu(_v_x)"


def test_printers_record_the_functions_they_call():
    printer = CPrinter("float64")
    printer.expression(symgen.softplus(x) + sp.Max(x, y))
    printer.expression(c.Call("sg_max", (c.Var("a"), c.Var("b"))))
    assert printer.calls == {"sg_softplus", "sg_maximum", "sg_max"}
    assert helpers_used(printer.calls) == {"sg_softplus", "sg_maximum", "sg_max"}
    assert helpers_used({"sg_logaddexp"}) == {"sg_logaddexp", "sg_maximum"}
    assert helpers_used({"sg_block_reduce"}) == {"sg_block_reduce", "sg_max"}


def _pass() -> c.Function:
    """sum of relu(x)*y over n elements, and y broadcast-written where x is the first."""
    element = (
        c.Declare(c.Type("double", const=True), "_v_x", c.Index(c.Var("x"), c.Var("_e"))),
        c.Declare(c.Type("double", const=True), "_v_y", c.Index(c.Var("y"), c.Var("_e"))),
        c.Assign(c.Var("_acc0"), c.Cast("double", symgen.relu(x) * y), "+="),
        c.If(
            c.BinOp("==", c.Var("_e"), c.Literal("0")),
            (c.Assign(c.Index(c.Var("_w_first"), c.Literal("0")), c.Var("_v_y")),),
        ),
    )
    return c.Function(
        "relu_dot",
        (
            c.Param(c.Type("double", const=True, **POINTER), "x"),
            c.Param(c.Type("double", const=True, **POINTER), "y"),
            c.Param(c.Type("double", **POINTER), "_w_first"),
            c.Param(c.Type("long long", const=True), "n"),
            c.Param(c.Type("double", **POINTER), "_out"),
        ),
        (
            c.Declare(c.Type("double"), "_acc0", c.Literal("0.0")),
            c.Loop("_e", c.Literal("0"), c.Var("n"), element, simd=c.Simd(("_acc0",))),
            c.Block((c.Assign(c.Index(c.Var("_out"), c.Literal("0")), c.Var("_acc0")),)),
        ),
        "a test pass",
    )


def _printer(kind):
    return kind("float64", {"x": "_v_x", "y": "_v_y"})


C_PASS = """\
// relu_dot: a test pass
void relu_dot(const double* restrict x, const double* restrict y, double* restrict _w_first, const long long n, double* restrict _out)
{
    double _acc0 = 0.0;
    #pragma omp simd reduction(+:_acc0)
    for (long long _e = 0; _e < n; ++_e) {
        const double _v_x = x[_e];
        const double _v_y = y[_e];
        _acc0 += (double)(_v_y*sg_relu(_v_x));
        if (_e == 0) _w_first[0] = _v_y;
    }
    {
        _out[0] = _acc0;
    }
}"""  # noqa: E501


def test_c_printer_prints_a_function():
    printer = _printer(CPrinter)
    assert printer.function(_pass()) == C_PASS
    assert printer.calls == {"sg_relu"}


def test_cuda_printer_is_the_c_printer_with_cuda_spellings():
    printed = _printer(CudaPrinter).function(_pass())
    expected = C_PASS.replace("restrict", "__restrict__").replace(
        "void relu_dot", 'extern "C" __global__ void relu_dot'
    )
    expected = expected.replace("    #pragma omp simd reduction(+:_acc0)\n", "")
    assert printed == expected
    shared = c.SharedArray("double", "_shared", c.Literal("256"))
    assert _printer(CudaPrinter).statement(shared) == ["__shared__ double _shared[256];"]
    with pytest.raises(TypeError, match="no shared memory"):
        _printer(CPrinter).statement(shared)


def test_if_with_several_statements_is_a_block():
    body = (
        c.Declare(c.Type("double", const=True), "v", c.Var("a")),
        c.Assign(c.Var("b"), c.Var("v")),
    )
    assert _printer(CPrinter).statement(c.If(c.Var("ok"), body)) == [
        "if (ok) {",
        "    const double v = a;",
        "    b = v;",
        "}",
    ]


def test_a_strided_loop_and_a_local_array():
    printer = _printer(CPrinter)
    loop = c.Loop(
        "_c", c.Literal("0"), N, (c.Assign(c.Var("s"), c.Var("_c"), "+="),), step=c.Var("_rows")
    )
    assert printer.statement(loop) == [
        "for (long long _c = 0; _c < N; _c += _rows) {",
        "    s += _c;",
        "}",
    ]
    local = c.Declare(c.Type("float"), "_a", size=c.Literal("256"))
    assert printer.statement(local) == ["float _a[256];"]


def test_names_used_sees_variables_and_symbols():
    loop = _pass().body[1]
    assert {"_e", "x", "y", "_acc0", "_w_first", "n"} <= c.names_used(loop)
    assert "_i" not in c.names_used(loop)


@pytest.mark.skipif(not shutil.which("cc"), reason="no C compiler")
def test_printed_c_compiles_and_computes(tmp_path):
    printer = _printer(CPrinter)
    kernel = CKernel("relu_dot", (), printer.function(_pass()), frozenset(printer.calls), 1)
    code = source("test", "float64", (kernel,), helpers_used(printer.calls))
    assert "sg_relu(" in code and "sg_sigmoid" not in code and "sg_max(" not in code
    (tmp_path / "pass.c").write_text(code)
    library = tmp_path / "pass.so"
    command = ["cc", "-O2", "-fopenmp-simd", "-Wall", "-Werror", "-shared", "-fPIC"]
    subprocess.run([*command, "-o", library, tmp_path / "pass.c", "-lm"], check=True)
    function = ctypes.CDLL(str(library)).relu_dot
    function.restype = None
    rng = np.random.default_rng(0)
    xs, ys = rng.normal(size=1001), rng.normal(size=1001)
    first, out = np.zeros(1), np.zeros(1)
    pointers = [a.ctypes.data_as(ctypes.c_void_p) for a in (xs, ys, first)]
    function(*pointers, ctypes.c_longlong(xs.size), out.ctypes.data_as(ctypes.c_void_p))
    np.testing.assert_allclose(out[0], np.dot(np.maximum(xs, 0), ys), rtol=1e-13)
    assert first[0] == ys[0]


def _softplus_kernel() -> tuple[str, set[str]]:
    """A CUDA source with one kernel, out[e] = softplus(x[e]) over a grid-stride loop,
    and the helpers it calls."""
    printer = CudaPrinter("float64", {"x": "_v_x"})
    start = c.add(
        c.mul(c.Cast("long long", c.Var("blockIdx.x")), c.Var("blockDim.x")), c.Var("threadIdx.x")
    )
    step = c.mul(c.Cast("long long", c.Var("gridDim.x")), c.Var("blockDim.x"))
    element = (
        c.Declare(c.Type("double", const=True), "_v_x", c.Index(c.Var("x"), c.Var("_e"))),
        c.Assign(c.Index(c.Var("out"), c.Var("_e")), symgen.softplus(x)),
    )
    kernel = c.Function(
        "softplus_all",
        (
            c.Param(c.Type("double", const=True, **POINTER), "x"),
            c.Param(c.Type("double", **POINTER), "out"),
            c.Param(c.Type("long long"), "n"),
        ),
        (c.Loop("_e", start, c.Var("n"), element, step=step),),
    )
    text = printer.function(kernel)
    helpers = helpers_used(printer.calls)
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(C_TEMPLATES)), trim_blocks=True, lstrip_blocks=True
    )
    functions = environment.from_string(
        '{% import "sg_functions.j2" as sg %}'
        '{{ sg.functions(definitions, "__device__ __forceinline__", used) }}'
    ).render(definitions=c_definitions("double", helpers), used=helpers)
    return f"#include <math.h>\n{functions}\n{text}\n", set(helpers)


@pytest.mark.skipif(not emulator_available(), reason="the CUDA emulator needs g++")
def test_printed_cuda_kernel_runs_in_the_emulator():
    from symgen.testing import fakecupy as cp

    code, helpers = _softplus_kernel()
    assert helpers == {"sg_softplus", "sg_maximum"}
    kernel = cp.RawModule(code=code).get_function("softplus_all")
    xs = np.linspace(-40, 40, 777)
    out = cp.empty(xs.size)
    kernel((2,), (128,), (cp.asarray(xs), out, np.int64(xs.size)))
    np.testing.assert_allclose(out.get(), np.logaddexp(0.0, xs), rtol=1e-15, atol=0)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on the PATH")
def test_printed_cuda_kernel_compiles_with_nvcc(tmp_path):
    code, _ = _softplus_kernel()
    (tmp_path / "k.cu").write_text(code)
    command = ["nvcc", "--gpu-architecture=sm_75", "--cubin", "-Werror", "all-warnings"]
    result = subprocess.run(
        [*command, "-o", str(tmp_path / "k.cubin"), str(tmp_path / "k.cu")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
