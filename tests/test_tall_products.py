"""Tall, thin matrix products a block of rows at a time (``backends/numpy/tall_products.py``)
and column sums by BLAS (``row_reductions._column_sums``), in the NumPy and C modules:
the softmax regression of ``examples/softmax.py`` at sizes whose products are cut into
blocks, checked against HIPS autograd, central differences, float64 for float32, and at
|z| = 1000."""

import autograd
import autograd.numpy as anp
import numpy as np
import pytest

import symgen
from examples.softmax import softmax
from symgen.backends.numpy import row_reductions, tall_products
from tests.gradcheck import central_differences


def helpers() -> dict:
    """The helpers as a generated module defines them (DTYPE: float64)."""
    namespace = {"np": np, "DTYPE": np.float64}
    for source in (*tall_products.HELPERS.values(), row_reductions.HELPERS["_column_sums"]):
        exec(source, namespace)
    return namespace


def rows_per_block(d: int, k: int) -> int:
    return tall_products.SMALL // (d * k)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n, d, k", [(5000, 64, 10), (2001, 600, 3), (300, 20, 10), (9000, 1, 1)])
def test_tall_products_are_the_products(n, d, k, dtype):
    h = helpers()
    rng = np.random.default_rng(n + d + k)
    a, w, g = (rng.standard_normal(s).astype(dtype) for s in ((n, d), (d, k), (n, k)))
    rtol = 1e-12 if dtype == np.float64 else 2e-5
    product, inner = h["_tall_product"](a, w), h["_tall_inner"](a, g)
    assert product.dtype == inner.dtype == dtype
    want = a.astype(np.float64) @ w  # an entry near 0 is the difference of larger terms
    np.testing.assert_allclose(product, want, rtol=rtol, atol=rtol * np.abs(want).max())
    want = a.astype(np.float64).T @ g
    np.testing.assert_allclose(inner, want, rtol=rtol, atol=rtol * np.abs(want).max())
    # views as operands (a transposed right factor, rows of a larger array)
    want = a[1:].astype(np.float64) @ w
    got = h["_tall_product"](a[1:], w.T.copy().T)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.abs(want).max())


def test_blocks_are_cut_as_the_rule_says():
    """The first two shapes above are cut into blocks (a last one shorter); (300, 20, 10)
    fits one block, and a product of 600 columns by 3 into 291 rows per block."""
    assert rows_per_block(64, 10) == 819 and 5000 % 819
    assert rows_per_block(600, 3) == 291 and 2001 > 291
    assert rows_per_block(20, 10) > 300
    assert rows_per_block(4096, 10) < tall_products.MIN_ROWS  # wide: one call


@pytest.mark.parametrize("k", [1, 3, 16, 17])
def test_column_sums(k):
    a = np.random.default_rng(k).standard_normal((1001, k))
    got = helpers()["_column_sums"](a)
    assert got.shape == (1, k)
    np.testing.assert_allclose(got, a.sum(axis=0, keepdims=True), rtol=1e-12, atol=1e-12)


def reference(W, b, X, Y):
    Z = X @ W + b
    m = anp.max(Z, axis=1, keepdims=True)
    lse = m + anp.log(anp.sum(anp.exp(Z - m), axis=1, keepdims=True))
    return -anp.sum(Y * (Z - lse)) / X.shape[0]


def data(n, d, k, seed, scale=0.3):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    Y = np.eye(k)[rng.integers(0, k, n)]
    return [scale * rng.standard_normal((d, k)), scale * rng.standard_normal((1, k))], X, Y


#: N, D, K: blocks of 819 and 873 rows (the last shorter), the column sums by BLAS.
SIZES = [(5000, 64, 10), (2000, 60, 10)]


@pytest.mark.parametrize("backend", ["numpy", "c"])
@pytest.mark.parametrize("n, d, k", SIZES)
def test_softmax_regression_in_blocks_against_autograd(backend, n, d, k):
    assert rows_per_block(d, k) < n
    module = symgen.compile(softmax, backend)
    params, X, Y = data(n, d, k, seed=n + d)
    loss, grads = module.loss_and_grad(*params, X, Y)
    assert loss == pytest.approx(float(reference(*params, X, Y)), rel=1e-12)
    want = autograd.grad(reference, (0, 1))(*params, X, Y)
    for got, expected in zip(grads, want, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-7, atol=1e-12)
    assert module.loss(*params, X, Y) == loss


@pytest.mark.parametrize("backend", ["numpy", "c"])
def test_softmax_regression_in_blocks_against_central_differences(backend):
    module = symgen.compile(softmax, backend)
    (W, b), X, Y = data(2000, 60, 10, seed=7)
    _, (gW, gb) = module.loss_and_grad(W, b, X, Y)
    picks = [(0, 0), (17, 3), (59, 9)]  # a few entries of W, every entry of b

    def at_W(*values):
        w = W.copy()
        for (i, j), v in zip(picks, values, strict=True):
            w[i, j] = v
        return module.loss(w, b, X, Y)

    fd = central_differences(at_W, [W[i, j] for i, j in picks])
    np.testing.assert_allclose([gW[i, j] for i, j in picks], fd, rtol=1e-7, atol=1e-12)
    fd = central_differences(lambda *v: module.loss(W, np.reshape(v, b.shape), X, Y), b.ravel())
    np.testing.assert_allclose(gb.ravel(), fd, rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("backend", ["numpy", "c"])
def test_softmax_regression_in_blocks_float32_and_at_1000(backend):
    p32 = symgen.Problem(softmax.loss, softmax.params, softmax.data, dtype="float32", name="s")
    m32, m64 = symgen.compile(p32, backend), symgen.compile(softmax, backend)
    params, X, Y = data(5000, 64, 10, seed=2)
    loss64, grads64 = m64.loss_and_grad(*params, X, Y)
    loss32, grads32 = m32.loss_and_grad(*(p.astype(np.float32) for p in params), X, Y)
    assert loss32 == pytest.approx(loss64, rel=1e-5)
    for g32, g64 in zip(grads32, grads64, strict=True):
        assert g32.dtype == np.float32
        np.testing.assert_allclose(g32, g64, rtol=1e-3, atol=1e-5 * np.abs(g64).max())
    # scores of about 1000: the stable form (shifted by the row maxima) stays finite
    params, X, Y = data(5000, 64, 10, seed=3, scale=1.0)
    scale = 1000 / np.abs(X @ params[0]).mean()
    big = [p * scale for p in params]
    loss, grads = m64.loss_and_grad(*big, X, Y)
    assert np.isfinite(loss) and loss == pytest.approx(float(reference(*big, X, Y)), rel=1e-12)
    want = autograd.grad(reference, (0, 1))(*big, X, Y)
    for got, expected in zip(grads, want, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-7, atol=1e-12)
