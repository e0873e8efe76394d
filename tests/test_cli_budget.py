"""``symgen diff`` and ``symgen show`` under a budget (issue 15 item 4): every input of the
probe list answers within seconds with a result or one line and exit 2; ``--at`` values
are right to float64; an expression may start with "-"."""

from __future__ import annotations

import os
import time

import mpmath
import pytest

from symgen.cli import budget
from symgen.cli.commands import main
from symgen.codegen.formulas import expanded_terms, value_at
from symgen.compiler.exprparse import parse_expression

#: Generous for a loaded two-core machine; the budget itself is 5 s.
WALL = 10.0


def _nested(function: str, depth: int) -> str:
    return f"{function}(" * depth + "x" + ")" * depth


def _tower(depth: int) -> str:
    text = "x"
    for _ in range(depth):
        text = f"x**({text})"
    return text


def _diff(capsys, *argv: str) -> tuple[int, str, str, float]:
    start = time.perf_counter()
    status = main(["diff", *argv])
    elapsed = time.perf_counter() - start
    captured = capsys.readouterr()
    return status, captured.out, captured.err, elapsed


@pytest.mark.parametrize(
    ("argv", "answer"),
    [
        (["(x+1)**10**9", "--wrt", "x"], "1000000000*(x + 1)**999999999"),
        (["(x+y)**10000", "--wrt", "x"], "10000*(x + y)**9999"),
        (["(x+2)**-100000", "--wrt", "x"], "-100000/(x + 2)**100001"),
        (["2**(2**x)", "--wrt", "x", "--at", "x=100"], "overflows float64"),
        ([_nested("sigmoid", 30), "--wrt", "x"], "(1 - sigmoid(x))*"),
        ([_tower(100), "--wrt", "x"], "x**(x**(x**"),
        ([_nested("sin", 190), "--wrt", "x"], "nested too deeply"),
        (["exp(exp(exp(x)))", "--wrt", "x", "--at", "x=1000"], "overflows float64"),
        (["-x**2", "--wrt", "x"], "-2*x"),
    ],
    ids=[
        "power-10**9",
        "binomial-10000",
        "negative-power",
        "double-exponential-at-100",
        "30-sigmoids",
        "power-tower-100",
        "190-deep",
        "exp-exp-exp-at-1000",
        "leading-minus",
    ],
)
def test_probe_answers_in_time(capsys, argv, answer):
    status, out, err, elapsed = _diff(capsys, *argv)
    assert elapsed < WALL
    assert "Traceback" not in err
    if status == 0:
        assert answer in out and err == ""
    else:
        assert status == 2 and out == ""
        assert len(err.splitlines()) == 1 and err.startswith("symgen: error: ")
        assert answer in err


def test_expansion_that_fits_is_still_done(capsys):
    assert _diff(capsys, "(x-4)*(x**2+6)", "--wrt", "x")[1] == "3*x**2 - 8*x + 6\n"
    assert expanded_terms(parse_expression("(x+y)**10000")) == 10001
    assert expanded_terms(parse_expression("(x+y+z)**3*(x+1)")) == 20


def test_out_of_memory_is_one_line():
    """The worker may not use more than the budget: a 2 GB allocation fails in it."""
    start = time.perf_counter()
    with pytest.raises(budget.SpecError, match=r"^needs more than 500 MB of memory; gave up$"):
        budget.run(lambda: str(len(bytearray(2 * 2**30))), "allocating")
    assert time.perf_counter() - start < WALL


def test_a_worker_that_dies_is_one_line():
    with pytest.raises(
        budget.SpecError, match=r"^dying stopped without an answer \(exit status 1\)"
    ):
        budget.run(lambda: os._exit(1), "dying")


def test_out_of_time_is_one_line(capsys, monkeypatch):
    monkeypatch.setattr(budget, "SECONDS", 0.5)

    def forever() -> str:
        while True:
            pass

    start = time.perf_counter()
    with pytest.raises(budget.SpecError, match=r"took longer than 0.5 s"):
        budget.run(forever, "spinning")
    assert time.perf_counter() - start < WALL


def test_show_runs_under_the_budget(capsys, monkeypatch):
    monkeypatch.setenv("SYMGEN_TIME_BUDGET", "0.001")
    assert main(["show", "examples/curve_fit.py"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "took longer than 0.001 s" in err


def _exact(f, x: int) -> float:
    """``f(x)`` with mpmath at 60 digits, rounded to float64 (mpmath rounds correctly)."""
    with mpmath.workdps(60):
        return float(f(mpmath.mpf(x)))


@pytest.mark.parametrize(
    ("expr", "x", "expected"),
    [
        ("sigmoid(x)", 400, lambda x: mpmath.exp(-x) / (1 + mpmath.exp(-x)) ** 2),  # 1.9e-174
        ("sigmoid(x)", -400, lambda x: mpmath.exp(x) / (1 + mpmath.exp(x)) ** 2),
        ("sigmoid(x)", 1000, lambda x: 0.0),  # 5e-435: 0 in float64
        ("tanh(x)", 400, lambda x: 0.0),  # 1.5e-347: 0 in float64
        ("tanh(x)", 350, lambda x: mpmath.sech(x) ** 2),  # 3.9e-304
        ("softplus(x)", -740, lambda x: 1 / (1 + mpmath.exp(-x))),  # a subnormal
        ("exp(x)", 2, mpmath.exp),
        ("relu(x)", 2, lambda x: 1.0),
    ],
)
def test_at_is_right_to_float64(capsys, expr, x, expected):
    status, out, err, _ = _diff(capsys, expr, "--wrt", "x", "--at", f"x={x}")
    assert status == 0, err
    assert float(out) == _exact(expected, x)


def test_value_at_rounds_to_float64():
    import math

    import sympy as sp

    x = sp.Symbol("x")
    expr = 1 - sp.tanh(x) ** 2
    assert value_at(expr, {x: sp.Integer(400)}) == 0.0
    assert value_at(sp.exp(x), {x: sp.Integer(710)}) == math.inf
    assert value_at(sp.exp(x), {x: sp.Integer(709)}) == math.exp(709)


def test_overflow_is_an_error_not_inf(capsys):
    status, out, err, _ = _diff(capsys, "exp(x)", "--wrt", "x", "--at", "x=1000")
    assert status == 2 and out == ""
    assert err == "symgen: error: the derivative overflows float64 at that point (inf in float64)\n"


@pytest.mark.parametrize(
    "argv",
    [
        ["-x**2", "--wrt", "x"],
        ["--wrt", "x", "-x**2"],
        ["-x**2", "--wr", "x"],
        ["-x**2", "--wrt=x", "--at", "x=-3"],
    ],
)
def test_expression_may_start_with_minus(capsys, argv):
    status, out, err, _ = _diff(capsys, *argv)
    assert status == 0, err
    assert out in ("-2*x\n", "6\n")


def test_a_second_expression_is_still_an_error(capsys):
    status, _, err, _ = _diff(capsys, "-x**2", "-y", "--wrt", "x")
    assert status == 2 and "unrecognized arguments: -y" in err
