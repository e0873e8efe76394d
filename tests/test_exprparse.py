"""Tests for symgen.exprparse: a safe, eval-free expression parser."""

import builtins

import pytest
import sympy as sp
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from symgen.compiler.exprparse import FUNCTIONS, parse_assignment, parse_expression
from symgen.compiler.scalar_functions import relu, sigmoid, softplus
from symgen.errors import SpecError

x, y = sp.symbols("x y")


def _forbidden(*args, **kwargs):
    raise AssertionError("eval/exec called")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("(x-4)*(x**2+6)", (x - 4) * (x**2 + 6)),
        ("x^2", x**2),
        ("x^2 + 1", x**2 + 1),  # ^ binds like **, not like Python's xor
        ("-x^2", -(x**2)),
        ("0.5*x", x / 2),
        ("1e-3", sp.Rational(1, 1000)),
        ("2.5E2 - 0.125", sp.Rational(1999, 8)),
        ("1_000", sp.Integer(1000)),
        ("pi", sp.pi),
        ("E", sp.E),
        ("E**x", sp.exp(x)),
        ("sigmoid(x)", sigmoid(x)),
        ("relu(x) + softplus(y)", relu(x) + softplus(y)),
        ("log(8, 2)", sp.Integer(3)),
        ("log(x, 2)", sp.log(x, 2)),
        ("log(x)", sp.log(x)),
        ("abs(x - y)", sp.Abs(x - y)),
        ("square(x + 1)", (x + 1) ** 2),
        ("sqrt(x) * erf(y)", sp.sqrt(x) * sp.erf(y)),
        ("tanh(asin(x)) / cosh(atan(y))", sp.tanh(sp.asin(x)) / sp.cosh(sp.atan(y))),
        ("+x - -y", x + y),
        ("(x\n + y)", x + y),
        ("alpha_1 * beta", sp.Symbol("alpha_1") * sp.Symbol("beta")),
    ],
)
def test_parses(text, expected):
    result = parse_expression(text)
    assert result == expected
    assert isinstance(result, sp.Basic)


def test_decimal_literals_are_exact_rationals():
    assert parse_expression("0.1") == sp.Rational(1, 10)
    assert parse_expression("0.1").is_Rational
    assert not parse_expression("0.5*x").atoms(sp.Float)


def test_sigmoid_is_the_symgen_function():
    result = parse_expression("sigmoid(x)")
    assert result.func is sigmoid
    assert result == sigmoid(sp.Symbol("x"))


def test_functions_constant_is_sorted_tuple():
    assert isinstance(FUNCTIONS, tuple)
    assert list(FUNCTIONS) == sorted(FUNCTIONS)
    assert {"exp", "log", "relu", "sigmoid", "softplus", "square", "erf", "abs"} <= set(FUNCTIONS)


@pytest.mark.parametrize(
    ("text", "piece"),
    [
        ("x +", "column 4"),
        ("x.__class__", "x.__class__"),
        ("x.real", "attribute access"),
        ("x[0]", "x[0]"),
        ("lambda: 1", "lambda"),
        ("[i for i in x]", "comprehension"),
        ("'abc'", "abc"),
        ("b'abc'", "abc"),
        ("f'{x}'", "f-string"),
        ("sin(x=1)", "keyword"),
        ("gamma(x)", "gamma"),
        ("__import__('os')", "__import__"),
        ("open('f')", "open"),
        ("_x + 1", "_x"),
        ("x < 1", "comparison"),
        ("x and y", "boolean"),
        ("(y := 2)", "y := 2"),
        ("x.f(1)", "x.f"),
        ("(lambda: 1)()", "lambda"),
        ("", "empty"),
        ("   ", "empty"),
        ("1j", "1j"),
        ("3 + 2j", "2j"),
        ("True", "True"),
        ("x // 2", "x // 2"),
        ("x % 2", "x % 2"),
        ("~x", "~x"),
        ("x, y", "tuple"),
        ("x if y else 1", "conditional"),
        ("sin(*x)", "*x"),
        ("sin(x, y)", "sin"),
        ("log(x, 2, 3)", "log"),
        ("sqrt()", "sqrt"),
        ("sin", "sin"),
        ("x" * 10_001, "too long"),
        ("1/0", "undefined"),
        ("log(0)", "undefined"),
        ("10**10**10", "too large"),
        ("1e99999999", "1e99999999"),
        ("x\0", "null"),
        ("x^^2", "column 3"),
    ],
)
def test_rejects_with_one_line_message(text, piece):
    with pytest.raises(SpecError) as info:
        parse_expression(text)
    message = str(info.value)
    assert "\n" not in message
    assert piece in message


def test_unsupported_function_lists_supported_ones():
    with pytest.raises(SpecError, match=r"unsupported function 'gamma' in 'gamma\(x\)'") as info:
        parse_expression("gamma(x)")
    assert ", ".join(FUNCTIONS) in str(info.value)


def test_syntax_error_reports_column():
    with pytest.raises(SpecError, match=r"^cannot parse 'x \+': invalid syntax at column 4$"):
        parse_expression("x +")


def test_malicious_input_runs_nothing(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    attacks = [
        f"__import__('os').system('touch {marker}')",
        f"open('{marker}', 'w')",
        f"exp(x).__class__.__init__.__globals__['os'].system('touch {marker}')",
        f"[c for c in ().__class__.__base__.__subclasses__()](open('{marker}', 'w'))",
        "__import__('os').system('echo hi')",
    ]
    parse_expression("x^2 + sin(x)")  # lazy imports happen before eval/exec are patched
    monkeypatch.setattr(builtins, "eval", _forbidden)
    monkeypatch.setattr(builtins, "exec", _forbidden)
    assert parse_expression("x^2 + sin(x)") == x**2 + sp.sin(x)
    for attack in attacks:
        with pytest.raises(SpecError) as info:
            parse_expression(attack)
        assert "\n" not in str(info.value)
    monkeypatch.undo()
    assert not marker.exists()


@pytest.mark.parametrize(
    "text",
    [
        "(" * 5000 + "x" + ")" * 5000,
        "-" * 9000 + "x",
        "-" * 500 + "x",
        "sqrt(" * 300 + "x" + ")" * 300,
        "x" + "+x" * 4000,
        "x**" * 1000 + "x",
    ],
)
def test_deep_nesting_is_spec_error(text):
    with pytest.raises(SpecError) as info:
        parse_expression(text)
    assert "\n" not in str(info.value)
    assert len(str(info.value)) < 200


def test_huge_numbers_are_refused_not_computed():
    for text in ["9" * 3000 + "**9" * 5, "2**2**2**2**2**2", "(" + "9" * 3000 + ")**5"]:
        with pytest.raises(SpecError, match="too large"):
            parse_expression(text)


def test_non_string_input():
    with pytest.raises(SpecError):
        parse_expression(None)  # type: ignore[arg-type]


def test_parse_assignment():
    assert parse_assignment("x=pi/2") == ("x", sp.pi / 2)
    assert parse_assignment("x=2") == ("x", sp.Integer(2))
    assert parse_assignment(" lr = 1e-3 ") == ("lr", sp.Rational(1, 1000))
    name, value = parse_assignment("w=-0.25")
    assert (name, value) == ("w", sp.Rational(-1, 4))


@pytest.mark.parametrize(
    ("text", "piece"),
    [
        ("x=y", "y"),
        ("x=2*z+1", "z"),
        ("x", "NAME=VALUE"),
        ("x=", "empty"),
        ("1=2", "'1'"),
        ("x y=2", "'x y'"),
        ("pi=3", "'pi'"),
        ("sin=3", "'sin'"),
        ("_x=3", "'_x'"),
        ("lambda=3", "'lambda'"),
        ("x==2", "x==2"),
        ("x=__import__('os')", "__import__"),
        ("x=1/0", "undefined"),
    ],
)
def test_parse_assignment_rejects(text, piece):
    with pytest.raises(SpecError) as info:
        parse_assignment(text)
    assert "\n" not in str(info.value)
    assert piece in str(info.value)


# --- property: str() of a SymPy expression parses back to the same expression ---

_UNARY = [
    sp.exp,
    sp.log,
    sp.sqrt,
    sp.sin,
    sp.cos,
    sp.tan,
    sp.asin,
    sp.acos,
    sp.atan,
    sp.sinh,
    sp.cosh,
    sp.tanh,
    sp.Abs,
    sp.erf,
    relu,
    sigmoid,
    softplus,
    lambda z: z**2,
]
_BINARY = [
    lambda a, b: a + b,
    lambda a, b: a - b,
    lambda a, b: a * b,
    lambda a, b: a / b,
    lambda a, b: sp.log(a, b),
]
_leaves = st.one_of(
    st.sampled_from([x, y, sp.pi, sp.E]),
    st.integers(min_value=-5, max_value=5).map(sp.Integer),
)


def _extend(children):
    return st.one_of(
        st.builds(lambda f, a: f(a), st.sampled_from(_UNARY), children),
        st.builds(lambda f, a, b: f(a, b), st.sampled_from(_BINARY), children, children),
        st.builds(lambda a, n: a**n, children, st.integers(min_value=-3, max_value=3)),
    )


_PARSED_FUNCTIONS = {f for f in _UNARY if isinstance(f, type)} | {sp.log}
_expressions = st.recursive(_leaves, _extend, max_leaves=8)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(_expressions)
def test_str_round_trip(expr):
    assume(not expr.has(sp.zoo, sp.nan, sp.oo, -sp.oo, sp.I, sp.AccumBounds))
    # SymPy may rewrite e.g. Abs(exp(x)) as exp(re(x)); keep to the functions we parse
    assume(all(f.func in _PARSED_FUNCTIONS for f in expr.atoms(sp.Function)))
    text = str(expr).replace("Abs(", "abs(")  # SymPy prints abs as Abs
    parsed = parse_expression(text)
    # SymPy's automatic evaluation is not confluent in rare cases (about 1 in 1000 here):
    # -(x + y)/x prints as "-(x + y)/x" but re-evaluates to (-x - y)/x.
    assert parsed == expr or sp.simplify(parsed - expr) == 0, (text, parsed)
