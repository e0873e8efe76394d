"""The C backend's Gram sum (``backends/c/gram.py``): a GLM's Hessian ``B.T @ B`` summed in
the pass over the rows of X, checked against the module's other path (B written out, BLAS
``syrk``), against autograd's ``hessian``, in float32 against float64, and as the one pass
of ``newton_step``."""

import inspect
import shutil

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import hessian

import symgen
from examples import logistic
from symgen.backends.c.gram import GRAM_AT_MOST
from tests.test_hessian import CASES

pytestmark = pytest.mark.skipif(
    not any(shutil.which(c) for c in ("cc", "gcc", "clang")), reason="no C compiler"
)

#: Problems whose Hessian has a Gram product (logistic, Poisson: one block; biased: with an
#: off-diagonal block and a bias beside it).
GRAM = ["logistic", "poisson", "biased"]
_MODULES: dict = {}


def module(name, dtype="float64"):
    if (name, dtype) not in _MODULES:
        problem = CASES[name].problem
        if dtype != problem.dtype:
            problem = symgen.Problem(
                problem.loss, problem.params, problem.data, dtype=dtype, name=problem.name,
                binary=problem.binary,
            )  # fmt: skip
        _MODULES[name, dtype] = symgen.compile(problem, "c")
    return _MODULES[name, dtype]


def arguments(name, rng, n, d, dtype=np.float64):
    X = rng.standard_normal((n, d)).astype(dtype)
    w = (rng.standard_normal((d, 1)) / np.sqrt(d)).astype(dtype)
    if name == "poisson":
        return [0.3 * w], [X, rng.poisson(2.0, (n, 1)).astype(dtype)]
    t = (rng.random((n, 1)) < 0.5).astype(dtype)
    if name == "biased":
        return [w, rng.standard_normal((1, 1)).astype(dtype)], [X, t]
    return [w], [X, t]


def by_blas(mod, function, *args):
    """``function`` of ``mod`` with B written out and multiplied by BLAS (the other path)."""
    limit = mod._GRAM_AT_MOST
    mod._GRAM_AT_MOST = 0
    try:
        return function(*args)
    finally:
        mod._GRAM_AT_MOST = limit


def test_the_module_chooses_by_the_number_of_columns():
    mod = module("logistic")
    assert mod._GRAM_AT_MOST == GRAM_AT_MOST
    source = inspect.getsource(mod.newton_step)
    fused, _, apart = source.partition("if X.shape[1] <= _GRAM_AT_MOST:")[2].partition("else:")
    # loss, gradient and Hessian from one C call; the other path also writes B (N x D)
    assert fused.count("_lib().") == 1 and "x6.T @ x6" not in fused
    assert "np.empty((N, D)" in apart


@pytest.mark.parametrize("name", GRAM)
@pytest.mark.parametrize(("n", "d"), [(1, 1), (37, 3), (3001, 13), (700, 16), (150, 40)])
def test_gram_sum_matches_the_blas_path(name, n, d):
    mod, rng = module(name), np.random.default_rng()
    params, data = arguments(name, rng, n, d)
    got = mod.hessian(*params, *data)
    want = by_blas(mod, mod.hessian, *params, *data)
    assert got.shape == want.shape and got.dtype == np.float64
    assert np.array_equal(got, got.T)  # mirrored: symmetric exactly
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-13 * np.abs(want).max())
    fused = [p.copy() for p in params]
    apart = [p.copy() for p in params]
    loss = mod.newton_step(*fused, *data)[0]
    assert loss == pytest.approx(by_blas(mod, mod.newton_step, *apart, *data)[0], rel=1e-12)
    for a, b in zip(fused, apart, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(("n", "d"), [(2001, 13), (5000, 24)])
def test_gram_sum_matches_autograd(n, d):
    rng = np.random.default_rng()
    (w,), (X, t) = arguments("logistic", rng, n, d)

    def loss(v):
        z = X @ v
        return anp.sum(anp.logaddexp(0.0, z) - t.ravel() * z)

    want = hessian(loss)(w.ravel())
    got = module("logistic").hessian(w, X, t)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-13 * np.abs(want).max())


@pytest.mark.parametrize("name", GRAM)
def test_float32_gram_sum_against_float64(name):
    """Rows of B summed in double: the float32 module's Hessian is the float64 one's at the
    float32 point, to the rounding of the roots (float32)."""
    rng = np.random.default_rng()
    params, data = arguments(name, rng, 3001, 13, np.float32)
    got = module(name, "float32").hessian(*params, *data)
    assert got.dtype == np.float32 and np.array_equal(got, got.T)
    as64 = [np.float64(a) for a in (*params, *data)]
    want = module(name).hessian(*as64)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


def test_newton_step_reaches_the_maximum_likelihood():
    """W2 at N = 3000, D = 5 from w = 0: the generated newton_step, its Hessian summed in
    its one pass, reaches the optimum that Newton's method written out here reaches."""
    mod = module("logistic")
    x, t = logistic.large(n=3000, d=5, seed=3)
    weights = np.zeros((5, 1))
    for _ in range(30):
        p = 1 / (1 + np.exp(-x @ weights))
        weights -= np.linalg.solve(x.T @ (p * (1 - p) * x), x.T @ (p - t))
    w = np.zeros((5, 1))
    losses = [mod.newton_step(w, x, t)[0] for _ in range(8)]
    assert all(b <= a * (1 + 1e-14) for a, b in zip(losses, losses[1:], strict=False))
    np.testing.assert_allclose(w, weights, rtol=1e-12)
    assert np.abs(mod.grad(w, x, t)[0]).max() < 1e-9
