"""The NumPy module's passes over rows: consecutive passes run in one loop over row blocks
(``backends/numpy/row_groups.py``), row sums and maxima column by column
(``row_reductions.py``); checked against HIPS autograd and central differences."""

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
import sympy as sp

import symgen
from symgen.backends.numpy import row_groups, row_reductions
from tests.gradcheck import central_differences

N, K = sp.symbols("N K", integer=True, positive=True)
Z, Y = sp.MatrixSymbol("Z", N, K), sp.MatrixSymbol("Y", N, K)


def multinomial(dtype="float64"):
    """scikit-learn's HalfMultinomialLoss summed: logsumexp of each row less the target's
    score; its gradient is softmax(Z) - Y."""
    loss = symgen.sum(symgen.logsumexp(Z, axis=1)) - symgen.sum(sp.HadamardProduct(Y, Z))
    return symgen.Problem(loss, params=[Z], data=[Y], dtype=dtype, name="multinomial")


def centred(dtype="float64"):
    """A pass reading a whole sum of an earlier one (the mean of Z): it cannot join the
    earlier pass's loop; the row maxima after it can."""
    mean = symgen.sum(Z) / (N * K)
    shifted = Z - mean * sp.OneMatrix(N, K)
    loss = symgen.sum(symgen.logsumexp(shifted, axis=1)) + symgen.sum(symgen.square(shifted))
    return symgen.Problem(loss, params=[Z], data=[], dtype=dtype, name="centred")


def reference_multinomial(z, y):
    m = anp.max(z, axis=1, keepdims=True)
    return anp.sum(m + anp.log(anp.sum(anp.exp(z - m), axis=1, keepdims=True))) - anp.sum(y * z)


def reference_centred(z):
    s = z - anp.mean(z)
    m = anp.max(s, axis=1, keepdims=True)
    lse = m + anp.log(anp.sum(anp.exp(s - m), axis=1, keepdims=True))
    return anp.sum(lse) + anp.sum(s**2)


def one_hot(rng, n, k):
    return np.eye(k)[rng.integers(0, k, n)]


def test_consecutive_passes_over_rows_share_one_loop_and_one_exp():
    source = symgen.generate(multinomial())
    body = source.split("def _loss_and_grad(")[1].split("\ndef ")[0]
    assert "4 passes over the rows of (N, K) in one loop" in body
    one, loop = body.split("for _start")  # one block of rows (whole), or the loop over blocks
    assert "if N <= _rows:" in one and "_start" not in one
    for branch in (one, loop):  # the sums and the gradient read the same values
        assert branch.count("np.exp(") == 1
    assert "_row_maxima(" in body and "_row_sums(" in body


def test_one_block_of_rows_runs_the_loops_body_whole():
    """Rows that fit one block run the loop's body on the whole arrays: the same numbers as
    the loop, here over two blocks that are the same rows."""
    module = symgen.compile(multinomial())
    rng = np.random.default_rng()
    k = 8
    z, y = (
        rng.standard_normal((row_groups.BLOCK // k, k)) * 3,
        one_hot(rng, row_groups.BLOCK // k, k),
    )
    loss, (g,) = module.loss_and_grad(z, y)
    twice, (g2,) = module.loss_and_grad(np.vstack([z, z]), np.vstack([y, y]))
    assert twice == 2 * loss
    assert np.array_equal(g2, np.vstack([g, g]))


@pytest.mark.parametrize("n, k", [(1, 1), (3, 2), (37, 4), (5000, 7), (2000, 10), (700, 40)])
def test_multinomial_against_autograd(n, k):
    module = symgen.compile(multinomial())
    rng = np.random.default_rng(n * k)
    z, y = rng.standard_normal((n, k)) * 3, one_hot(rng, n, k)
    loss, (g,) = module.loss_and_grad(z, y)
    assert loss == pytest.approx(float(reference_multinomial(z, y)), rel=1e-12)
    np.testing.assert_allclose(
        g, autograd.grad(reference_multinomial)(z, y), rtol=1e-10, atol=1e-14
    )
    assert module.loss(z, y) == loss


def test_multinomial_against_central_differences_and_at_1000():
    module = symgen.compile(multinomial())
    rng = np.random.default_rng(3)
    z, y = rng.standard_normal((6, 5)), one_hot(rng, 6, 5)
    _, (g,) = module.loss_and_grad(z, y)
    flat = list(z.ravel())
    fd = central_differences(lambda *v: module.loss(np.reshape(v, z.shape), y), flat)
    np.testing.assert_allclose(g.ravel(), fd, rtol=1e-6, atol=1e-8)
    big = z * 1000  # the stable form: no overflow, the gradient softmax - y
    loss, (g,) = module.loss_and_grad(big, y)
    assert np.isfinite(loss) and np.all(np.isfinite(g))
    assert loss == pytest.approx(float(reference_multinomial(big, y)), rel=1e-12)
    np.testing.assert_allclose(g, autograd.grad(reference_multinomial)(big, y), atol=1e-12)


def test_multinomial_float32_against_float64():
    rng = np.random.default_rng(8)
    z, y = rng.standard_normal((3000, 6)), one_hot(rng, 3000, 6)
    loss64, (g64,) = symgen.compile(multinomial()).loss_and_grad(z, y)
    loss32, (g32,) = symgen.compile(multinomial("float32")).loss_and_grad(
        z.astype(np.float32), y.astype(np.float32)
    )
    assert g32.dtype == np.float32
    assert loss32 == pytest.approx(loss64, rel=1e-5)
    np.testing.assert_allclose(g32, g64, atol=1e-6)


def test_a_pass_reading_a_whole_sum_starts_a_new_loop():
    module = symgen.compile(centred())
    body = symgen.generate(centred()).split("def _loss_and_grad(")[1].split("\ndef ")[0]
    assert "np.add.reduce(Z, axis=None)" in body  # the mean, before the loop
    rng = np.random.default_rng(4)
    z = rng.standard_normal((5000, 7)) + 2
    loss, (g,) = module.loss_and_grad(z)
    assert loss == pytest.approx(float(reference_centred(z)), rel=1e-12)
    np.testing.assert_allclose(g, autograd.grad(reference_centred)(z), rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("k", range(0, 20))
def test_row_sums_and_maxima(k):
    namespace = {"np": np}
    for source in row_reductions.HELPERS.values():
        exec(source, namespace)
    rng = np.random.default_rng(k)
    a = rng.standard_normal((301, k)) * 10 ** rng.uniform(-8, 8, (301, k))
    sums = namespace["_row_sums"](a)
    assert sums.shape == (301, 1)
    if k <= 7:  # the order np.sum adds short rows in: the same numbers
        assert np.array_equal(sums, np.sum(a, axis=1, keepdims=True))
    else:
        np.testing.assert_allclose(sums, np.sum(a, axis=1, keepdims=True), rtol=1e-12, atol=1e-6)
    if k:
        maxima = namespace["_row_maxima"](a)
        assert np.array_equal(maxima, np.max(a, axis=1, keepdims=True))
        a[5, k - 1] = np.nan  # a NaN anywhere in a row is that row's maximum and sum
        assert np.isnan(namespace["_row_maxima"](a)[5, 0])
        assert np.isnan(namespace["_row_sums"](a)[5, 0])
        assert not np.isnan(namespace["_row_maxima"](a)[6, 0])


def labels_multinomial():
    """The multinomial loss with integer labels (``symgen.take``): gathered loads."""
    y = sp.MatrixSymbol("y", N, 1)
    loss = symgen.sum(symgen.logsumexp(Z, axis=1) - symgen.take(Z, y)) / N
    return symgen.Problem(loss, params=[Z], data=[y], name="labels")


def test_gathered_labels_join_the_loop_over_rows():
    source = symgen.generate(labels_multinomial())
    body = source.split("def _loss_and_grad(")[1].split("\ndef ")[0]
    assert "passes over the rows of (N, K) in one loop" in body
    for branch in body.split("for _start"):  # one block (whole), or the loop over blocks
        assert branch.count("np.exp(") == 1  # the loss and the gradient read the same exp(z - max)
    assert "np.take_along_axis(_Z, _y, 1)" in body  # the labels of the block's rows
    module = symgen.compile(labels_multinomial())
    rng = np.random.default_rng(5)
    z, labels = rng.standard_normal((5000, 7)) * 3, rng.integers(0, 7, 5000)

    def reference(z):
        return reference_multinomial(z, np.eye(7)[labels]) / len(labels)

    loss, (g,) = module.loss_and_grad(z, labels)
    assert loss == pytest.approx(float(reference(z)), rel=1e-12)
    np.testing.assert_allclose(g, autograd.grad(reference)(z), rtol=1e-10, atol=1e-15)


def test_a_sum_reads_its_first_terms_by_name():
    """``z + b - max`` adds ``z + b`` first: the row maxima's argument, computed once (with
    b, a row, tiled to the shape of a block of rows once, before the loop)."""
    from examples.softmax import softmax

    body = symgen.generate(softmax).split("def _loss_and_grad(")[1].split("\ndef ")[0]
    loop = body[body.index("for _start") :]
    assert loop.count(" + _b") == 1  # b tiled to a block's rows once, before the loop
    assert "np.broadcast_to(b, (min(N, _rows), K)).copy()" in body
    module = symgen.compile(softmax)
    rng = np.random.default_rng(6)
    x, w, b = (
        rng.standard_normal((3000, 4)),
        rng.standard_normal((4, 6)),
        rng.standard_normal((1, 6)),
    )
    y = one_hot(rng, 3000, 6)

    def reference(w, b):
        return reference_multinomial(x @ w + b, y) / len(y)

    loss, (gw, gb) = module.loss_and_grad(w, b, x, y)
    assert loss == pytest.approx(float(reference(w, b)), rel=1e-12)
    np.testing.assert_allclose(gw, autograd.grad(reference, 0)(w, b), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(gb, autograd.grad(reference, 1)(w, b), rtol=1e-10, atol=1e-14)


def test_block_values_are_written_in_place():
    """A stored value straight into its rows of the whole array, and a value into the
    block of an operand nothing reads after it: no block allocated or copied for them."""
    from examples.softmax import softmax

    body = symgen.generate(softmax).split("def _loss_and_grad(")[1].split("\ndef ")[0]
    assert "out=x11[_start:_start + _rows])" in body  # the gradient of the scores
    assert "x11[_start:_start + _rows] = " not in body  # no copy
    assert "np.subtract(_1, _x6, out=_1)" in body  # z + b - max into the block of z + b
    source = symgen.generate(multinomial())
    assert "np.exp(_0, out=_0)" in source.split("def _loss_and_grad(")[1]
