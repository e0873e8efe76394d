"""Building a Problem: every mistake is a SpecError naming the piece."""

import pytest
import sympy as sp

import symgen
from symgen import SpecError

x, y, z, t = sp.symbols("x y z t")


@pytest.mark.parametrize(
    ("build", "fragment"),
    [
        (lambda: symgen.Problem(x**2, params=[x, y]), "param 'y' does not appear in the loss"),
        (lambda: symgen.Problem(x * z, params=[x]), "'z', which is neither a param nor data"),
        (lambda: symgen.Problem(x * t, params=[x], data=[t, y]), "data 'y' does not appear"),
        (lambda: symgen.Problem(sp.Matrix([x, y]), params=[x, y]), "must be a scalar"),
        (
            lambda: symgen.Problem(sp.MatrixSymbol("A", 2, 2), params=[x]),
            "must be a scalar",
        ),
        (lambda: symgen.Problem(sp.gamma(x), params=[x]), "unsupported function 'gamma'"),
        (lambda: symgen.Problem(sp.besselj(1, x), params=[x]), "unsupported function 'besselj'"),
        (
            lambda: symgen.Problem(sp.Integral(x * t, (t, 0, 1)), params=[x]),
            "unsupported SymPy node 'Integral'",
        ),
        (lambda: symgen.Problem(sp.Eq(x, 1), params=[x]), "scalar expression"),
        (lambda: symgen.Problem(x + sp.I, params=[x]), "imaginary"),
        (lambda: symgen.Problem(x + sp.zoo, params=[x]), "non-finite"),
        (lambda: symgen.Problem(x**2, params=[]), "at least one parameter"),
        (lambda: symgen.Problem(x**2, params=x), "list of symbols"),
        (lambda: symgen.Problem(x**2, params=[x], reduce="max"), "reduce must be"),
        (lambda: symgen.Problem(x**2, params=[x], dtype="float16"), "dtype must be"),
        (lambda: symgen.Problem(x**2, params=[x], name="not a name"), "Python identifier"),
        (lambda: symgen.Problem(x**2, params=[x, x]), "more than once"),
        (lambda: symgen.Problem(x**2 + 2 * x, params=[2 * x]), "must be a sympy.Symbol"),
        (lambda: symgen.Problem("x**2", params=[x]), "must be a SymPy expression"),
    ],
)
def test_spec_errors(build, fragment):
    with pytest.raises(SpecError) as info:
        build()
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_unsupported_function_lists_supported():
    with pytest.raises(SpecError, match=r"supported: .*exp.*sigmoid.*tanh"):
        symgen.Problem(sp.gamma(x), params=[x])


@pytest.mark.parametrize("name", ["lr", "np", "math", "sum", "len", "lambda", "_x", "a b"])
def test_names_that_would_break_generated_code(name):
    s = sp.Symbol(name)
    with pytest.raises(SpecError, match="rename it"):
        symgen.Problem(s**2, params=[s])


def test_supported_functions_differentiate_and_run():
    """Every supported function goes through diff, CSE and both printers."""
    import autograd
    import autograd.numpy as anp
    import numpy as np

    a, b = sp.symbols("a b")
    loss = (
        sp.exp(a) * sp.sin(b)
        + sp.cos(a * b)
        + sp.tan(a / 3)
        + sp.asin(a / 4)
        + sp.acos(b / 5)
        + sp.atan(a * b)
        + sp.atan2(a, b + 3)
        + sp.sinh(a)
        + sp.cosh(b)
        + sp.tanh(a - b)
        + sp.asinh(a)
        + sp.acosh(b + 3)
        + sp.atanh(a / 5)
        + sp.Abs(a - 2 * b)
        + sp.log(b + 3)
        + symgen.relu(a - b)
        + symgen.sigmoid(a * b)
        + symgen.softplus(2 * a - b)
        + sp.Max(a, b) ** 2
        + sp.Min(a, b) ** 2
        + sp.sqrt(a + 3)
    )

    def reference(p):
        a_, b_ = p[0], p[1]
        return (
            anp.exp(a_) * anp.sin(b_)
            + anp.cos(a_ * b_)
            + anp.tan(a_ / 3)
            + anp.arcsin(a_ / 4)
            + anp.arccos(b_ / 5)
            + anp.arctan(a_ * b_)
            + anp.arctan2(a_, b_ + 3)
            + anp.sinh(a_)
            + anp.cosh(b_)
            + anp.tanh(a_ - b_)
            + anp.arcsinh(a_)
            + anp.arccosh(b_ + 3)
            + anp.arctanh(a_ / 5)
            + anp.abs(a_ - 2 * b_)
            + anp.log(b_ + 3)
            + anp.maximum(a_ - b_, 0)
            + 1 / (1 + anp.exp(-a_ * b_))
            + anp.logaddexp(0, 2 * a_ - b_)
            + anp.maximum(a_, b_) ** 2
            + anp.minimum(a_, b_) ** 2
            + anp.sqrt(a_ + 3)
        )

    scalar = symgen.compile(symgen.Problem(loss, params=[a, b], name="many"))
    t_ = sp.Symbol("t")
    per_sample = symgen.compile(
        symgen.Problem(loss.subs(b, b * t_), params=[a, b], data=[t_], name="many_t")
    )
    rng = np.random.default_rng()
    for _ in range(10):
        p = rng.uniform(-1.5, 1.5, 2)
        value, grads = scalar.loss_and_grad(*p)
        assert value == pytest.approx(float(reference(p)), rel=1e-12)
        np.testing.assert_allclose(grads, autograd.grad(reference)(p), rtol=1e-10)
        ts = rng.uniform(0.5, 1.0, 7)
        total, g2 = per_sample.loss_and_grad(*p, ts)
        expected = sum(float(reference(np.array([p[0], p[1] * tk]))) for tk in ts)
        assert total == pytest.approx(expected, rel=1e-12)
        gb = sum(autograd.grad(reference)(np.array([p[0], p[1] * tk]))[1] * tk for tk in ts)
        assert g2[1] == pytest.approx(gb, rel=1e-9)


def test_relu_derivative_at_zero_is_zero():
    m = symgen.compile(symgen.Problem(symgen.relu(x), params=[x], name="r"))
    assert m.grad(0.0) == (0.0,)
    assert m.grad(1e-300) == (1.0,)
    assert m.grad(-1.0) == (0.0,)


def test_constant_gradient_is_a_float():
    m = symgen.compile(symgen.Problem(3 * x + y**2, params=[x, y], name="lin"))
    gx, gy = m.grad(1, 2)
    assert (gx, gy) == (3.0, 4.0) and type(gx) is float and type(gy) is float


def test_relu_of_special_numbers():
    assert symgen.relu(sp.nan) is sp.nan  # found by the parser's property test
    assert symgen.relu(sp.oo) is sp.oo and symgen.relu(-sp.oo) == 0
    assert symgen.relu(sp.Integer(3)) == 3 and symgen.relu(sp.Rational(-1, 2)) == 0
