"""Typed statements (``compiler/optimize``): each kind of statement is a class with named
fields, and what a statement reads is known from them."""

import sympy as sp

import symgen
from examples import logistic, mlp, softmax
from symgen.compiler.optimize import (
    Assign,
    Dot,
    Elementwise,
    Fill,
    Identity,
    MatrixProduct,
    Max,
    Reduction,
    Sum,
    transposed,
)
from symgen.compiler.pipeline import run

a, b, t, y = sp.symbols("a b t y", real=True)


def kinds(program) -> set[type]:
    return {type(s) for s in program.stmts}


def test_a_per_sample_pass_is_scalar_set_up_elementwise_values_and_dot_products():
    problem = symgen.Problem((a * t + b - y) ** 2, params=[a, b], data=[t, y], name="line")
    program = run(problem).grad_program
    (kernel,) = [k for k in program.kernels if k.domain]
    assert kinds(program) <= {Assign, Elementwise, Sum, Dot}
    assert any(isinstance(s, Dot) for s in kernel.stmts)
    for s in kernel.stmts:
        if isinstance(s, Dot):
            assert s.op == "sum" and s.axes == ()
            assert s.summand == sp.Mul(s.left, s.right, evaluate=False)
            assert s.inputs == (s.left, s.right)
    # the array part sits between the scalar set-up and the scalar results
    array_part = [i for i, s in enumerate(kernel.stmts) if not isinstance(s, Assign)]
    assert array_part == list(range(array_part[0], array_part[-1] + 1))


def test_matrix_products_name_their_operands():
    program = run(mlp.mlp).grad_program
    products = [s for s in program.stmts if isinstance(s, MatrixProduct)]
    assert products and all(k.is_matmul for k in program.kernels if k.stmts[0] in products)
    assert any(isinstance(s.left, transposed) for s in products)  # X.T @ ..., a view
    for s in products:
        assert s.inputs == (s.left, s.right)


def test_axis_reductions_keep_their_axes_and_shape():
    program = run(softmax.softmax).grad_program
    reductions = [s for s in program.stmts if isinstance(s, Reduction)]
    assert {type(s) for s in reductions} >= {Max, Sum}
    shapes = program.array_shapes()
    for s in reductions:
        if s.axes == (1,):
            assert shapes[s.target.name][1] == 1


def test_identity_and_fill():
    n = sp.Symbol("n", integer=True, positive=True)
    x, c = sp.MatrixSymbol("X", n, n), sp.Symbol("c", real=True)
    identity = run(symgen.Problem(sp.Trace(x.T * x + sp.Identity(n)), params=[x], name="tr"))
    (eye,) = [s for s in identity.grad_program.stmts if isinstance(s, Identity)]
    assert eye.inputs == (eye.size,) and eye.size == n
    filled = run(symgen.Problem(symgen.sum(x) * c, params=[x, c], name="scaled_sum"))
    (fill,) = [s for s in filled.grad_program.stmts if isinstance(s, Fill)]
    assert fill.value == c and fill.shape == (n, n)  # the gradient of X: c everywhere
    assert fill.inputs == (c, n, n)


def test_substituted_reads_new_symbols_and_keeps_its_target():
    x0, v = sp.symbols("x0 v", real=True)
    s = Sum(x0, a * t, (1,))
    renamed = s.substituted({t: v, x0: y})
    assert renamed == Sum(x0, a * v, (1,))
    fill = Fill(x0, a, (sp.Symbol("N"), sp.S.One)).substituted({sp.Symbol("N"): sp.Symbol("M")})
    assert fill.shape == (sp.Symbol("M"), 1)
    assert Dot(x0, a, t).substituted({t: v}) == Dot(x0, a, v)


def test_programs_read_what_their_statements_read():
    program = run(logistic.logistic).grad_program
    reads = program.reads()
    for k, names in zip(program.kernels, reads, strict=True):
        assert names == {x.name for s in k.stmts for e in s.inputs for x in e.free_symbols}
    assert "X" in set().union(*reads)
