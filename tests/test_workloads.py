"""The reference workloads (W0, W1, W4) reproduced through the generated code."""

import math

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
import sympy as sp

import symgen
from examples import curve_fit, derivatives, rosenbrock
from tests.gradcheck import central_differences

W0 = {
    # name: (printed derivative(s), points, values per param)
    "d_square": (["2*x"], [(2,), (3,), (4,)], [[4, 6, 8]]),
    "d_exp": (["exp(x)"], [(2,), (3,), (4,)], [[7.38905609893, 20.0855369232, 54.5981500331]]),
    "d_sin": (["cos(x)"], [(0,), (math.pi / 2,), (math.pi,)], [[1, 6.123233995736766e-17, -1]]),
    "d_cubic": (["3*x**2 - 8*x + 6"], [(0,), (1,), (2,)], [[6, 1, 2]]),
    "d_cubic2": (["6*x**2 - 16*x + 6"], [(0,), (1,), (2,)], [[6, -4, -2]]),
    "d_sqrt_cube": (
        ["3*(sqrt(x) + 1)**2/(2*sqrt(x))"],
        [(2,), (3,)],
        [[6.18198051534, 6.46410161514]],
    ),
    "d_binomial": (["2*x + 4*y", "4*x + 8*y"], [(1, 2), (2, 2)], [[10, 12], [20, 24]]),
}


@pytest.mark.parametrize("problem", derivatives.TABLE, ids=lambda p: p.name)
def test_w0_formulas_and_values(problem):
    printed, points, values = W0[problem.name]
    formulas = symgen.gradients(problem)
    assert [sp.sstr(f) for f in formulas.values()] == printed
    assert list(formulas) == list(problem.params)
    module = symgen.compile(problem)
    for j, point in enumerate(points):
        grads = module.grad(*point)
        for i, param_values in enumerate(values):
            assert grads[i] == pytest.approx(param_values[j], rel=1e-11, abs=1e-15)


def test_w0_formula_equals_sympy_derivative():
    for problem in derivatives.TABLE:
        for p, formula in symgen.gradients(problem).items():
            assert sp.simplify(formula - sp.diff(problem.loss, p)) == 0


def test_w1_rosenbrock_endpoint():
    module = symgen.compile(rosenbrock.rosenbrock)
    path = rosenbrock.descend(module)
    x, y = path[-1]
    assert (round(x, 5), round(y, 5)) == (1.00806, 1.01622)
    assert isinstance(x, float) and isinstance(y, float)


def test_w1_quartic_from_minus_one():
    x = sp.Symbol("x")
    module = symgen.compile(symgen.Problem((x - 1) ** 4, params=[x], name="quartic"))
    p = ref = -1.0
    for _ in range(2000):
        _, (p,) = module.sgd_step(p, lr=0.01)
        ref -= 0.01 * 4 * (ref - 1) ** 3
    assert p == pytest.approx(ref, rel=1e-12)
    assert 0.9 < p < 1  # approaches the flat minimum slowly, from below
    assert module.grad(3.0) == (32.0,)


def rosen_autograd(p):
    x, y = p[0], p[1]
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def test_w1_gradient_against_autograd_and_differences():
    module = symgen.compile(rosenbrock.rosenbrock)
    rng = np.random.default_rng()
    for _ in range(20):
        p = rng.uniform(-2, 2, 2)
        loss, grads = module.loss_and_grad(*p)
        assert loss == pytest.approx(rosen_autograd(p), rel=1e-13)
        np.testing.assert_allclose(grads, autograd.grad(rosen_autograd)(p), rtol=1e-12)
        np.testing.assert_allclose(grads, central_differences(module.loss, p), rtol=1e-7, atol=1e-7)


def curve_autograd(params, t, y):
    a, b, c, d, e, g = params
    r = anp.exp(-a * t) * anp.sin(b * t + c) + d * t**2 + e * t + g - y
    return anp.mean(r**2)


@pytest.fixture(scope="module")
def w4_module():
    return symgen.compile(curve_fit.curve_fit)


def test_w4_gradient_against_autograd_and_differences(w4_module):
    rng = np.random.default_rng()
    t, y = curve_fit.synthetic(n=100_000, seed=int(rng.integers(1 << 30)))
    for _ in range(3):
        params = rng.uniform(-1, 1, 6) + np.array([1, 3, 0, 0, 0, 0])
        loss, grads = w4_module.loss_and_grad(*params, t=t, y=y)
        assert loss == pytest.approx(curve_autograd(params, t, y), rel=1e-12)
        reference = autograd.grad(curve_autograd)(params, t, y)
        np.testing.assert_allclose(grads, reference, rtol=1e-7)
        fd = central_differences(lambda *p: w4_module.loss(*p, t, y), params)
        # The stencil's truncation error grows with t**5 in the b direction: a partial that
        # happens to be near 0 is compared against the gradient's scale, not its own
        # (the autograd comparison above is exact and stays per component).
        np.testing.assert_allclose(grads, fd, rtol=1e-7, atol=1e-10 + 1e-9 * np.abs(fd).max())
        assert w4_module.grad(*params, t, y) == grads


def test_w4_sum_reduction_and_keywords():
    problem = symgen.Problem(
        curve_fit.curve_fit.loss,
        params=curve_fit.curve_fit.params,
        data=curve_fit.curve_fit.data,
        reduce="sum",
        name="curve_sum",
    )
    module = symgen.compile(problem)
    t, y = curve_fit.synthetic(n=1000, seed=3)
    params = (0.5, 2.0, 0.1, 0.02, -0.1, 0.3)
    loss, grads = module.loss_and_grad(*params, t=t, y=y)
    assert loss == pytest.approx(1000 * curve_autograd(params, t, y), rel=1e-12)
    np.testing.assert_allclose(
        grads, 1000 * autograd.grad(curve_autograd)(np.array(params), t, y), rtol=1e-10
    )
    kw = dict(zip(module.PARAMS + module.DATA, (*params, t, y), strict=True))
    assert module.loss(**kw) == loss


def test_w4_recovers_parameters(w4_module):
    t, y = curve_fit.synthetic(n=20_000)
    params, history = curve_fit.fit(w4_module, t, y, steps=2000)
    assert history[-1] < 1.2e-4  # the noise floor is 1e-4
    np.testing.assert_allclose(params, curve_fit.TRUE, atol=5e-3)


def test_w4_float32_against_float64():
    p64 = curve_fit.curve_fit
    p32 = symgen.Problem(
        p64.loss, params=p64.params, data=p64.data, reduce="mean", dtype="float32", name="curve32"
    )
    m32, m64 = symgen.compile(p32), symgen.compile(p64)
    t, y = curve_fit.synthetic(n=10_000, seed=1)
    params = (0.9, 2.8, 0.2, 0.01, -0.2, 0.5)
    l32, g32 = m32.loss_and_grad(*params, t.astype(np.float32), y.astype(np.float32))
    l64, g64 = m64.loss_and_grad(*params, t, y)
    assert l32 == pytest.approx(l64, rel=1e-5)
    np.testing.assert_allclose(g32, g64, rtol=1e-4, atol=1e-6)


def test_sgd_step_returns_loss_before_step(w4_module):
    t, y = curve_fit.synthetic(n=500)
    params = curve_fit.START
    loss, grads = w4_module.loss_and_grad(*params, t, y)
    before, new = w4_module.sgd_step(*params, t, y, lr=0.1)
    assert before == loss
    np.testing.assert_allclose(new, np.array(params) - 0.1 * np.array(grads), rtol=1e-15)


@pytest.mark.parametrize("n", [8191, 8192, 8193, 3 * 8192 + 17])
def test_w4_block_boundaries(w4_module, n):
    """The per-sample pass runs in blocks of 8192 samples; every size gives the same sums."""
    from symgen.backends.numpy.module import BLOCK

    assert BLOCK == 8192
    t, y = curve_fit.synthetic(n=n, seed=n)
    params = np.array([0.8, 2.9, 0.3, 0.02, -0.2, 0.6])
    loss, grads = w4_module.loss_and_grad(*params, t, y)
    assert loss == pytest.approx(curve_autograd(params, t, y), rel=1e-12)
    np.testing.assert_allclose(grads, autograd.grad(curve_autograd)(params, t, y), rtol=1e-10)
