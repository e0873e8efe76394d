"""Errors name the user's expressions, never SymPy's internals (issue 17 item 6): no
``_Dummy_338`` for an operand of an elementwise function, no ``Lambda(_z0, ...)`` for
``symgen.exp(X)``; and where SymPy knows a rewrite into what a loss may contain, the
message says it."""

from __future__ import annotations

import re

import pytest
import sympy as sp
from sympy.codegen.cfunctions import log2, log10

import symgen
from symgen.compiler.shown import shown

x, y = sp.symbols("x y")
M, K = sp.symbols("M K", integer=True, positive=True)
X, W = sp.MatrixSymbol("X", M, K), sp.MatrixSymbol("W", M, K)
w = sp.MatrixSymbol("w", K, 1)

#: SymPy's internal names: dummies, Lambda variables.
INTERNAL = re.compile(r"_Dummy|Lambda|_z\d|_u\d|_v\d")


def _message(build) -> str:
    with pytest.raises(symgen.SpecError) as info:
        build()
    text = str(info.value)
    assert not INTERNAL.search(text), text
    return text


def test_an_unsupported_function_of_an_operand_names_the_operand():
    def elementwise():
        loss = symgen.sum(symgen.elementwise(lambda u: sp.gamma(u), X - W))
        return symgen.Problem(loss, params=[W], data=[X])

    assert "(gamma(-W + X))" in _message(elementwise)

    def applied():
        return symgen.Problem(symgen.sum((X - W).applyfunc(sp.gamma)), params=[W], data=[X])

    assert "(gamma(-W + X))" in _message(applied)

    def of_two_operands():
        t = sp.MatrixSymbol("t", M, 1)
        loss = symgen.sum(symgen.elementwise(lambda u, v: sp.gamma(u * v), X * w, t))
        return symgen.Problem(loss, params=[w], data=[X, t])

    assert "(gamma((X*w)*t))" in _message(of_two_operands)

    def of_a_reduction():
        return symgen.Problem(sp.gamma(symgen.sum(X * w)), params=[w], data=[X])

    assert "(gamma(sum(X*w)))" in _message(of_a_reduction)


def test_a_matrix_expression_is_shown_as_written():
    def trace():
        return symgen.Problem(sp.Trace(symgen.exp(X)), params=[X])

    assert "unsupported Trace(exp(X))" in _message(trace)


@pytest.mark.parametrize(
    ("loss", "rewrite"),
    [
        (sp.sec(x) * y, "write it as 1/cos(x)"),
        (sp.cot(x) * y, "write it as 1/tan(x)"),
        (sp.sinc(x) * y, "write it as Piecewise((sin(x)/x, Ne(x, 0)), (1, True))"),
        # SymPy's C-function spellings: a rewrite that contains another unsupported function
        # (log2 -> ... -> log2) once recursed without end
        (log2(1 + x**2) * y, "write it as log(x**2 + 1)/log(2)"),
        (log10(1 + x**2) * y, "write it as log(x**2 + 1)/log(10)"),
    ],
)
def test_an_unsupported_function_says_the_rewrite_sympy_knows(loss, rewrite):
    assert rewrite in _message(lambda: symgen.Problem(loss, params=[x], data=[y]))


def test_a_rewrite_is_said_in_terms_of_the_operand():
    def sec_of_a_product():
        return symgen.Problem(
            symgen.sum(symgen.elementwise(lambda u: sp.sec(u), X * w)), params=[w], data=[X]
        )

    assert "(sec(X*w)); write it as 1/cos(X*w)" in _message(sec_of_a_product)


def test_no_rewrite_no_suggestion():
    text = _message(lambda: symgen.Problem(sp.floor(x) * x, params=[x]))
    assert "unsupported function 'floor'" in text and "write it as" not in text


def test_an_unsupported_condition_says_its_comparisons():
    def contains():
        loss = sp.Piecewise((x**2, sp.Contains(x, sp.Interval(0, 1))), (x, True))
        return symgen.Problem(loss, params=[x])

    text = _message(contains)
    assert "unsupported condition Contains(x, Interval(0, 1))" in text
    assert "write it as (0 <= x) & (x <= 1)" in text


def test_shown_parenthesizes_an_operand_only_where_needed():
    u, v = sp.Dummy("u"), sp.Dummy("v")
    operands = {u: X - W, v: X * w}
    assert shown(sp.gamma(u), operands) == "gamma(-W + X)"
    assert shown(2 * u, operands) == "2*(-W + X)"
    assert shown(v**2, operands) == "(X*w)**2"
    assert shown(symgen.exp(X)) == "exp(X)"
    assert shown(symgen.sum(X, axis=1)) == "sum(X, axis=1)"
