"""A float32 module adds its values up in float64 in every backend (issue 15 item 5): sums
whose float32 accumulation overflows or loses digits give the float64 sum of the float32
values (rounded to float32 where an array holds it), and NumPy, C and CUDA (through the
emulator) agree. The NumPy module used to sum in float32 and return inf where C and CUDA
returned 3e40."""

import math

import numpy as np
import pytest
import sympy as sp

import symgen
from symgen.testing import fake_cupy_installed

BACKENDS = ["numpy", "c", "cuda"]

w, x, y = sp.symbols("w x y", real=True)
M, K = sp.symbols("M K", integer=True, positive=True)
X = sp.MatrixSymbol("X", M, K)
V = sp.MatrixSymbol("V", M, K)
C = sp.MatrixSymbol("C", 1, K)

#: Per-sample: the mean of w*x (a whole sum of the samples, and of x for dL/dw).
MEAN = symgen.Problem(w * x, params=[w], data=[x], reduce="mean", dtype="float32", name="mean32")
#: Per-sample: a sum of squares (a dot product of the residuals with themselves).
SQUARES = symgen.Problem(
    (w * x - y) ** 2, params=[w], data=[x, y], reduce="sum", dtype="float32", name="squares32"
)
#: Matrix: a whole sum, and column sums (dL/dC is the column sums of X).
COLUMNS = symgen.Problem(
    symgen.sum(sp.hadamard_product(X, V)) + symgen.sum(sp.hadamard_product(symgen.sum(X, 0), C)),
    params=[V, C],
    data=[X],
    dtype="float32",
    name="columns32",
)
#: Matrix: a whole sum.
WHOLE = symgen.Problem(
    symgen.sum(sp.hadamard_product(X, V)), params=[V], data=[X], dtype="float32", name="whole32"
)
#: Matrix: row sums (a mean per row), then their whole sum.
ROWS = symgen.Problem(
    symgen.sum(symgen.square(symgen.mean(sp.hadamard_product(X, V), 1))),
    params=[V],
    data=[X],
    dtype="float32",
    name="rows32",
)


def _run(problem, backend, function, *args, **data):
    """``function`` of the module of ``problem`` for ``backend``, on host arrays; its
    results on the host (gradients as float64 arrays or floats)."""
    if backend != "cuda":
        module = symgen.compile(problem, backend)
        return _host(getattr(module, function)(*args, **data))
    with fake_cupy_installed():
        import cupy as cp

        def device(a):
            return cp.asarray(a) if isinstance(a, np.ndarray) else a

        module = symgen.compile(problem, "cuda")
        on_device = {k: device(v) for k, v in data.items()}
        return _host(getattr(module, function)(*map(device, args), **on_device))


def _host(value):
    if isinstance(value, tuple):
        return tuple(_host(v) for v in value)
    if hasattr(value, "get"):
        value = value.get()
    return np.asarray(value) if isinstance(value, np.ndarray) else value


def exact(values) -> float:
    """The exact sum of float32 values, rounded once to float64."""
    return math.fsum(np.asarray(values, dtype=np.float64).ravel())


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_mean_whose_float32_sum_overflows(backend):
    xs = np.full(1000, 3e37, dtype=np.float32)  # the sum, 3e40, is beyond float32's 3.4e38
    loss, (dw,) = _run(MEAN, backend, "loss_and_grad", 1.0, x=xs)
    assert loss == pytest.approx(float(xs[0]), rel=1e-12)
    assert dw == pytest.approx(float(xs[0]), rel=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_sum_of_squares_whose_float32_sum_overflows(backend):
    xs = np.full(5000, 1e19, dtype=np.float32)  # each square 1e38 fits float32, the sum not
    ys = np.zeros(5000, dtype=np.float32)
    loss = _run(SQUARES, backend, "loss", 1.0, x=xs, y=ys)
    square = np.float32(xs[0]) * np.float32(xs[0])  # the square is taken in float32
    assert math.isfinite(loss)
    assert loss == pytest.approx(5000 * float(square), rel=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_many_values_are_summed_with_float64_rounding(backend):
    """200,000 values near 1: a float32 accumulator is off in the 6th digit or so; a float64
    one by about 1e-12."""
    rng = np.random.default_rng(1)
    xs = (1 + 1e-3 * rng.standard_normal(200_000)).astype(np.float32)
    ys = (0.5 * rng.standard_normal(200_000)).astype(np.float32)
    loss, (dw,) = _run(MEAN, backend, "loss_and_grad", 1.0, x=xs)
    assert loss == pytest.approx(exact(xs) / xs.size, rel=1e-10)
    assert dw == pytest.approx(exact(xs) / xs.size, rel=1e-10)
    residuals = np.float32(1.0) * xs - ys  # as the module computes them, in float32
    got = _run(SQUARES, backend, "loss", 1.0, x=xs, y=ys)
    assert got == pytest.approx(exact(residuals * residuals), rel=1e-10)


def _matrix_data(rows, cols, seed=2):
    rng = np.random.default_rng(seed)
    xs = (1 + 1e-3 * rng.standard_normal((rows, cols))).astype(np.float32)
    vs = (1 + 1e-3 * rng.standard_normal((rows, cols))).astype(np.float32)
    return xs, vs


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.filterwarnings("ignore:overflow encountered in cast")  # column sums of 6e40
def test_matrix_whole_and_column_sums(backend):
    xs, vs = _matrix_data(60_000, 3)
    cs = np.ones((1, 3), dtype=np.float32)
    loss, (dv, dc) = _run(COLUMNS, backend, "loss_and_grad", vs, cs, X=xs)
    columns = [exact(xs[:, j]) for j in range(3)]
    products = xs * vs  # in float32, as every backend multiplies
    assert loss == pytest.approx(exact(products) + math.fsum(np.float32(columns)), rel=1e-10)
    # the column sums are a float32 array: the float64 sums, rounded once
    np.testing.assert_array_equal(dc, np.float32(columns)[None, :])
    np.testing.assert_array_equal(dv, xs)

    huge = np.full((2000, 3), 3e37, dtype=np.float32)  # column sums 6e40: inf in float32
    loss, (dv, dc) = _run(COLUMNS, backend, "loss_and_grad", np.ones_like(huge), cs, X=huge)
    assert loss == np.inf  # the whole sum is finite, the column sums are not
    assert np.isinf(dc).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_matrix_whole_sum_that_overflows_float32(backend):
    huge = np.full((2000, 3), 3e37, dtype=np.float32)  # the sum, 1.8e41, needs float64
    loss = _run(WHOLE, backend, "loss", np.ones_like(huge), X=huge)
    assert loss == pytest.approx(6000 * float(np.float32(3e37)), rel=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_matrix_row_sums(backend):
    xs, vs = _matrix_data(50, 40_000, seed=3)
    loss = _run(ROWS, backend, "loss", vs, X=xs)
    means = [np.float32(exact(r) / xs.shape[1]) for r in xs * vs]  # row means are float32
    assert loss == pytest.approx(math.fsum(np.float64(m) ** 2 for m in means), rel=1e-6)


@pytest.mark.parametrize(
    "problem, make",
    [
        (MEAN, lambda rng: ((1.5,), {"x": rng.standard_normal(30_001).astype(np.float32)})),
        (
            SQUARES,
            lambda rng: (
                (0.7,),
                {
                    "x": rng.standard_normal(30_001).astype(np.float32),
                    "y": rng.standard_normal(30_001).astype(np.float32),
                },
            ),
        ),
        (
            COLUMNS,
            lambda rng: (
                tuple(rng.standard_normal(s).astype(np.float32) for s in ((3001, 7), (1, 7))),
                {"X": rng.standard_normal((3001, 7)).astype(np.float32)},
            ),
        ),
        (
            ROWS,
            lambda rng: (
                (rng.standard_normal((301, 70)).astype(np.float32),),
                {"X": rng.standard_normal((301, 70)).astype(np.float32)},
            ),
        ),
    ],
    ids=["mean", "squares", "columns", "rows"],
)
def test_backends_agree_to_float32_rounding(problem, make):
    args, data = make(np.random.default_rng(4))
    results = {b: _run(problem, b, "loss_and_grad", *args, **data) for b in BACKENDS}
    want_loss, want_grads = results["numpy"]
    for backend in ("c", "cuda"):
        loss, grads = results[backend]
        assert loss == pytest.approx(want_loss, rel=1e-6)
        for got, want in zip(grads, want_grads, strict=True):
            np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-6)


def test_column_sums_of_a_loop_over_row_blocks_add_up_in_float64():
    """The NumPy module's row groups (softmax: the bias gradient is the column sums of a
    pass after the row maxima and sums) add the blocks' column sums in float64."""
    from examples.softmax import softmax

    p32 = symgen.Problem(softmax.loss, softmax.params, softmax.data, dtype="float32", name="s")
    body = symgen.generate(p32).split("def _loss_and_grad(")[1].split("\ndef ")[0]
    assert "x13 = np.zeros((1, K), dtype=np.float64)" in body  # the accumulator
    assert "x13 = x13.astype(DTYPE)" in body  # the module's dtype after the loop
    rng = np.random.default_rng(0)
    n, d, k = 60000, 3, 5  # 5 blocks of rows
    x = rng.standard_normal((n, d)).astype(np.float32)
    y = np.eye(k, dtype=np.float32)[rng.integers(0, k, n)]
    w = (rng.standard_normal((d, k)) * 0.3).astype(np.float32)
    b = rng.standard_normal((1, k)).astype(np.float32)
    _, (_, gb32) = symgen.compile(p32).loss_and_grad(w, b, x, y)
    _, (_, gb64) = symgen.compile(softmax).loss_and_grad(
        *(a.astype(np.float64) for a in (w, b, x, y))
    )
    assert gb32.dtype == np.float32
    np.testing.assert_allclose(gb32, gb64, rtol=1e-5, atol=1e-7)
