"""Second order (issue 19): the generated hvp, hessian and newton_step, checked against HIPS
autograd's ``hessian`` and ``hessian_vector_product`` on fresh random inputs, against
central differences of the generated gradient, in every backend (NumPy, C; hvp in CUDA
through the emulator), in float32 against float64, and where the stable forms matter
(|z| = 1000)."""

from __future__ import annotations

import inspect
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import autograd.numpy as anp
import numpy as np
import pytest
import sympy as sp
from autograd import elementwise_grad, hessian, hessian_vector_product

import symgen
from examples import curve_fit, logistic, mlp, rosenbrock, softmax
from symgen.backends.numpy.module import BLOCK
from symgen.compiler.optimize import MatrixProduct, Reduction, transposed
from symgen.compiler.pipeline import run
from tests.test_cuda_backend import load

HAS_CC = any(shutil.which(c) for c in ("cc", "gcc", "clang"))
NO_CC = pytest.mark.skipif(not HAS_CC, reason="no C compiler")
BACKENDS = ["numpy", pytest.param("c", marks=NO_CC)]


def stable_sigmoid(z):
    return anp.exp(-anp.logaddexp(0.0, -z))


@dataclass
class Case:
    """A problem, random arguments for it, and its loss written with autograd.numpy."""

    problem: symgen.Problem
    arguments: Callable  # rng -> (params, data)
    reference: Callable  # (*params, *data) -> loss
    form: str  # the Hessian's form


x, y = sp.symbols("x y")
a, b, c, t, u = sp.symbols("a b c t u")
N, D, K = sp.symbols("N D K", integer=True, positive=True)
Xm, tm, ym = sp.MatrixSymbol("X", N, D), sp.MatrixSymbol("t", N, 1), sp.MatrixSymbol("y", N, 1)
wm, bm = sp.MatrixSymbol("w", D, 1), sp.MatrixSymbol("b", 1, 1)
Ym, Wm, brow = sp.MatrixSymbol("Y", N, K), sp.MatrixSymbol("W", D, K), sp.MatrixSymbol("b", 1, K)
Am = sp.MatrixSymbol("A", D, D)


def floats(rng, n, scale=1.0):
    return [float(v) for v in scale * rng.standard_normal(n)]


def scalar_case():
    loss = symgen.softplus(3 * x - y) + x**2 * sp.exp(-(y**2))
    loss += sp.log(1 + x**2) * symgen.sigmoid(y)
    return Case(
        symgen.Problem(loss, params=[x, y], name="scalar_mix"),
        lambda rng: (floats(rng, 2), []),
        lambda x, y: (
            anp.logaddexp(0.0, 3 * x - y)
            + x**2 * anp.exp(-(y**2))
            + anp.log(1 + x**2) * stable_sigmoid(y)
        ),
        "entries",
    )


def per_sample_logistic():
    z = a * t + b
    loss = symgen.softplus(z) - u * z + c**2 * symgen.sigmoid(b * u)
    return Case(
        symgen.Problem(loss, params=[a, b, c], data=[t, u], reduce="mean", name="pieces"),
        lambda rng: (floats(rng, 3), [rng.standard_normal(40), rng.random(40)]),
        lambda a, b, c, t, u: anp.mean(
            anp.logaddexp(0.0, a * t + b) - u * (a * t + b) + c**2 * stable_sigmoid(b * u)
        ),
        "entries",
    )


def curve_fit_case():
    def arguments(rng):
        ts, ys = curve_fit.synthetic(n=60, seed=int(rng.integers(1000)))
        return [p + 0.1 * rng.standard_normal() for p in curve_fit.START], [ts, ys]

    def reference(a, b, c, d, e, g, t, y):
        model = anp.exp(-a * t) * anp.sin(b * t + c) + d * t**2 + e * t + g
        return anp.mean((model - y) ** 2)

    return Case(curve_fit.curve_fit, arguments, reference, "entries")


def glm_data(rng, n=30, d=4, targets="binary"):
    X = rng.standard_normal((n, d))
    w = rng.standard_normal((d, 1))
    if targets == "binary":
        t = (rng.random((n, 1)) < 0.5).astype(float)
    elif targets == "soft":
        t = rng.random((n, 1))
    else:  # counts
        t = rng.poisson(2.0, (n, 1)).astype(float)
    return w, X, t


def logistic_case():
    def arguments(rng):
        w, X, t = glm_data(rng)
        return [w], [X, t]

    def reference(w, X, t):
        z = X @ w
        return anp.sum(anp.logaddexp(0.0, z) - t * z)

    return Case(logistic.logistic, arguments, reference, "blocks")


def naive_logistic_case():
    """W2 with soft targets: no binary declaration, the stable logaddexp form."""
    p = symgen.sigmoid(Xm * wm)
    loss = -symgen.sum(symgen.elementwise(lambda p, t: sp.log(p * t + (1 - p) * (1 - t)), p, tm))
    problem = symgen.Problem(loss, params=[wm], data=[Xm, tm], name="naive")

    def arguments(rng):
        w, X, t = glm_data(rng, targets="soft")
        return [w], [X, t]

    def reference(w, X, t):
        z = X @ w
        sig = stable_sigmoid(z)
        return -anp.sum(anp.log(sig * t + (1 - sig) * (1 - t)))

    return Case(problem, arguments, reference, "blocks")


def bias_case():
    """Two vector parameters (a column and a 1 x 1 bias) and an L2 penalty: off-diagonal
    blocks, and a diagonal block with an identity."""
    z = Xm * wm + sp.OneMatrix(N, 1) * bm
    loss = symgen.sum(symgen.softplus(z) - sp.HadamardProduct(tm, z)) + 0.3 * symgen.sum(
        symgen.square(wm)
    )
    problem = symgen.Problem(loss, params=[wm, bm], data=[Xm, tm], name="biased")

    def arguments(rng):
        w, X, t = glm_data(rng)
        return [w, rng.standard_normal((1, 1))], [X, t]

    def reference(w, b, X, t):
        z = X @ w + b
        return anp.sum(anp.logaddexp(0.0, z) - t * z) + 0.3 * anp.sum(w**2)

    return Case(problem, arguments, reference, "blocks")


def poisson_case():
    z = Xm * wm
    problem = symgen.Problem(
        symgen.sum(symgen.exp(z) - sp.HadamardProduct(ym, z)),
        params=[wm],
        data=[Xm, ym],
        name="poisson",
    )

    def arguments(rng):
        w, X, counts = glm_data(rng, targets="counts")
        return [0.3 * w], [X, counts]

    return Case(problem, arguments, lambda w, X, y: anp.sum(anp.exp(X @ w) - y * (X @ w)), "blocks")


def least_squares_case():
    problem = symgen.Problem(
        symgen.sum(symgen.square(Xm * wm - ym)), params=[wm], data=[Xm, ym], name="lsq"
    )

    def arguments(rng):
        w, X, _ = glm_data(rng)
        return [w], [X, rng.standard_normal((X.shape[0], 1))]

    return Case(problem, arguments, lambda w, X, y: anp.sum((X @ w - y) ** 2), "blocks")


def quadratic_case():
    """x.T*A*x: rows and columns of directions (transposes)."""
    xv = sp.MatrixSymbol("x", D, 1)
    problem = symgen.Problem(xv.T * Am * xv, params=[xv], data=[Am], name="quadratic")

    def arguments(rng):
        return [rng.standard_normal((5, 1))], [rng.standard_normal((5, 5))]

    return Case(problem, arguments, lambda x, A: anp.sum(x.T @ A @ x), "blocks")


def softmax_bias_case():
    """A row parameter (1, K) under a row-wise logsumexp: its directions spread over an
    (N, K) matrix, so the Hessian comes from hvps along unit vectors."""
    Z = Xm * Wm + sp.OneMatrix(N, 1) * brow
    loss = -symgen.sum(sp.HadamardProduct(Ym, Z - symgen.logsumexp(Z, axis=1)))
    problem = symgen.Problem(loss, params=[brow], data=[Xm, Wm, Ym], name="rowbias")

    def arguments(rng):
        n, d, k = 25, 3, 4
        Y = np.eye(k)[rng.integers(0, k, n)]
        return [rng.standard_normal((1, k))], [
            rng.standard_normal((n, d)),
            rng.standard_normal((d, k)),
            Y,
        ]

    def reference(b, X, W, Y):
        Z = X @ W + b
        m = anp.max(Z, axis=1, keepdims=True)
        lse = m + anp.log(anp.sum(anp.exp(Z - m), axis=1, keepdims=True))
        return -anp.sum(Y * (Z - lse))

    return Case(problem, arguments, reference, "directions")


def softmax_case():
    def arguments(rng):
        xs, ys, _ = softmax.blobs(n=30, d=3, k=4, seed=int(rng.integers(1000)))
        return [rng.standard_normal((3, 4)), rng.standard_normal((1, 4))], [xs, ys]

    def reference(W, b, X, Y):
        Z = X @ W + b
        m = anp.max(Z, axis=1, keepdims=True)
        lse = m + anp.log(anp.sum(anp.exp(Z - m), axis=1, keepdims=True))
        return -anp.sum(Y * (Z - lse)) / X.shape[0]

    return Case(softmax.softmax, arguments, reference, "directions")


def mlp_case():
    problem = symgen.Problem(
        mlp.mlp.loss, mlp.mlp.params, mlp.mlp.data, dtype="float64", name="mlp64"
    )

    def arguments(rng):
        X, Y = rng.standard_normal((6, 5)), rng.standard_normal((6, 2))
        return [rng.standard_normal((5, 3)), rng.standard_normal((3, 2))], [X, Y]

    def reference(W1, W2, X, Y):
        return anp.sum((anp.maximum(X @ W1, 0) @ W2 - Y) ** 2) / (X.shape[0] * Y.shape[1])

    return Case(problem, arguments, reference, "directions")


def factorization_case():
    """GENO's matrix factorization sum((Omega ⊙ (T - U*V.T))**2), with respect to U and V."""
    M_, R_ = sp.symbols("M R", integer=True, positive=True)
    U, V = sp.MatrixSymbol("U", M_, R_), sp.MatrixSymbol("V", N, R_)
    T, Om = sp.MatrixSymbol("T", M_, N), sp.MatrixSymbol("Omega", M_, N)
    loss = symgen.sum(symgen.square(sp.HadamardProduct(Om, T - U * V.T)))
    problem = symgen.Problem(loss, params=[U, V], data=[T, Om], name="factorization")

    def arguments(rng):
        m, n, r = 5, 4, 2
        mask = (rng.random((m, n)) < 0.7).astype(float)
        return [rng.standard_normal((m, r)), rng.standard_normal((n, r))], [
            rng.standard_normal((m, n)),
            mask,
        ]

    return Case(
        problem, arguments, lambda U, V, T, Om: anp.sum((Om * (T - U @ V.T)) ** 2), "directions"
    )


CASES = {
    "rosenbrock": Case(
        rosenbrock.rosenbrock,
        lambda rng: (floats(rng, 2), []),
        lambda x, y: (1 - x) ** 2 + 100 * (y - x**2) ** 2,
        "entries",
    ),
    "scalar_mix": scalar_case(),
    "pieces": per_sample_logistic(),
    "curve_fit": curve_fit_case(),
    "logistic": logistic_case(),
    "naive": naive_logistic_case(),
    "biased": bias_case(),
    "poisson": poisson_case(),
    "lsq": least_squares_case(),
    "quadratic": quadratic_case(),
    "rowbias": softmax_bias_case(),
    "softmax": softmax_case(),
    "mlp": mlp_case(),
    "factorization": factorization_case(),
}

_MODULES: dict = {}


def module(name: str, backend: str, dtype: str = "float64"):
    key = (name, backend, dtype)
    if key not in _MODULES:
        problem = CASES[name].problem
        if dtype != problem.dtype:
            problem = symgen.Problem(
                problem.loss,
                problem.params,
                problem.data,
                reduce=problem.reduce,
                dtype=dtype,
                name=problem.name,
                binary=problem.binary,
            )
        _MODULES[key] = symgen.compile(problem, backend)
    return _MODULES[key]


def flat(values) -> np.ndarray:
    return np.concatenate([np.ravel(v) for v in values])


def pieces(theta, like):
    """``theta`` cut into values shaped like ``like`` (floats for floats)."""
    out, at = [], 0
    for p in like:
        size = int(np.size(p))
        piece = theta[at : at + size]
        out.append(piece[0] if np.ndim(p) == 0 else anp.reshape(piece, np.shape(p)))
        at += size
    return out


def reference_function(case: Case, params, data):
    return lambda theta: case.reference(*pieces(theta, params), *data)


def assert_close(got, want, rtol=1e-7):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    scale = max(np.abs(want).max(), 1e-300)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_hessian_matches_autograd(name, backend):
    case, rng = CASES[name], np.random.default_rng()
    params, data = case.arguments(rng)
    got = module(name, backend).hessian(*params, *data)
    want = hessian(reference_function(case, params, data))(flat(params))
    P = flat(params).size
    assert got.shape == (P, P) and got.dtype == np.float64
    assert_close(got, want)
    assert np.array_equal(got, got.T)  # symmetric exactly, not just to rounding


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_hvp_matches_autograd(name, backend):
    case, rng = CASES[name], np.random.default_rng()
    params, data = case.arguments(rng)
    directions = [
        float(rng.standard_normal()) if np.ndim(p) == 0 else rng.standard_normal(np.shape(p))
        for p in params
    ]
    got = module(name, backend).hvp(*params, *data, v=tuple(directions))
    assert len(got) == len(params)
    for g, p in zip(got, params, strict=True):
        assert np.shape(g) == np.shape(p)
        assert isinstance(g, float) if np.ndim(p) == 0 else g.dtype == np.float64
    want = hessian_vector_product(reference_function(case, params, data))(
        flat(params), flat(directions)
    )
    assert_close(flat(got), want)


@pytest.mark.parametrize("name", sorted(CASES))
def test_hessian_matches_central_differences_of_the_gradient(name):
    """Each column of H against the five-point central difference of the generated gradient."""
    case, rng = CASES[name], np.random.default_rng()
    params, data = case.arguments(rng)
    mod = module(name, "numpy")
    theta = flat(params)

    def gradient(th):
        return flat(mod.grad(*[np.array(p) for p in pieces(th, params)], *data))

    columns = []
    for j in range(theta.size):
        h = 1e-3 * max(1.0, abs(theta[j]))
        at = lambda k, j=j, h=h: gradient(theta + k * h * np.eye(theta.size)[j])  # noqa: E731
        columns.append((-at(2) + 8 * at(1) - 8 * at(-1) + at(-2)) / (12 * h))
    assert_close(mod.hessian(*params, *data), np.array(columns).T, rtol=1e-6)


@pytest.mark.parametrize("name", sorted(CASES))
def test_hessian_form(name):
    assert run(CASES[name].problem).second_order.hessian.kind == CASES[name].form


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["curve_fit", "logistic", "biased", "rowbias", "softmax", "mlp"])
def test_float32_against_float64(name, backend):
    """The float32 module's hvp and Hessian against the float64 reference at the same point."""
    case, rng = CASES[name], np.random.default_rng()
    params, data = case.arguments(rng)
    directions = [
        rng.standard_normal(np.shape(p)) if np.ndim(p) else float(rng.standard_normal())
        for p in params
    ]
    single = module(name, backend, "float32")
    as32 = [np.float32(p) if np.ndim(p) == 0 else p.astype(np.float32) for p in params]
    data32 = [d.astype(np.float32) for d in data]
    v32 = [d if np.ndim(d) == 0 else d.astype(np.float32) for d in directions]
    f = reference_function(case, [np.float64(p) if np.ndim(p) == 0 else p for p in as32], data32)
    theta = flat(as32).astype(np.float64)
    got = single.hessian(*as32, *data32)
    assert got.dtype == np.float32 and np.array_equal(got, got.T)
    assert_close(got, hessian(f)(theta), rtol=2e-4)
    hv = single.hvp(*as32, *data32, v=tuple(v32))
    assert_close(flat(hv), hessian_vector_product(f)(theta, flat(directions)), rtol=2e-4)


@pytest.mark.parametrize("name", ["curve_fit", "logistic", "biased", "rowbias", "softmax", "mlp"])
def test_cuda_hvp_matches_numpy(name):
    pytest.importorskip("autograd")
    if shutil.which("g++") is None:
        pytest.skip("the emulator needs g++")
    from symgen.testing import fakecupy as cp

    case, rng = CASES[name], np.random.default_rng()
    params, data = case.arguments(rng)
    directions = [
        float(rng.standard_normal()) if np.ndim(p) == 0 else rng.standard_normal(np.shape(p))
        for p in params
    ]
    gpu = load(case.problem, cp)
    on_device = lambda values: [v if np.ndim(v) == 0 else cp.asarray(v) for v in values]  # noqa: E731
    got = gpu.hvp(*on_device(params), *on_device(data), v=tuple(on_device(directions)))
    got = [g if isinstance(g, float) else g.get() for g in got]
    want = module(name, "numpy").hvp(*params, *data, v=tuple(directions))
    assert_close(flat(got), flat(want), rtol=1e-10)


# -- stable forms in the second order (item 4) ----------------------------------------------


def extreme_glm(rng, targets="binary", n=12, d=3):
    """Rows with |z| = 1000 (half of them) and ordinary rows."""
    w, X, t = glm_data(rng, n=n, d=d, targets=targets)
    z = X @ w
    big = np.arange(n) % 2 == 0
    X[big] *= 1000.0 / np.abs(z[big]) * np.sign(rng.standard_normal((big.sum(), 1)))
    return w, X, t


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["logistic", "naive"])
def test_logistic_second_order_at_1000(name, backend):
    rng = np.random.default_rng()
    w, X, t = extreme_glm(rng, targets="binary" if name == "logistic" else "soft")
    assert np.isclose(np.abs(X @ w)[::2], 1000.0).all()
    z = X @ w
    if name == "logistic":  # the cross-entropy: s = sigmoid(z)*sigmoid(-z)
        s = np.exp(-np.logaddexp(0.0, -z)) * np.exp(-np.logaddexp(0.0, z))
    else:  # -log(t*p + (1-t)*(1-p)): s by autograd where |z| is small; it is e**-1000 at 1000
        per_row = lambda z, t: -anp.log(t * stable_sigmoid(z) + (1 - t) * stable_sigmoid(-z))  # noqa: E731
        second = elementwise_grad(elementwise_grad(per_row))
        s = np.where(np.abs(z) < 100, second(np.where(np.abs(z) < 100, z, 0.0), t), 0.0)
    want = X.T @ (s * X)
    mod = module(name, backend)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow on the way
        got = mod.hessian(w, X, t)
        v = rng.standard_normal(w.shape)
        (hv,) = mod.hvp(w, X, t, v=(v,))
        mod.hessian(1e5 * w, X, t)  # |z| = 1e8: still no overflow
    assert np.isfinite(got).all()
    assert_close(got, want, rtol=1e-10)
    assert np.isfinite(hv).all()
    assert_close(hv, want @ v, rtol=1e-10)


def test_sigmoid_derivative_keeps_its_digits():
    """H = X.T diag(sigmoid(z) sigmoid(-z)) X where 1 - sigmoid(z) would round to 0 (z = 40)."""
    w = np.array([[40.0]])
    X, t = np.array([[1.0]]), np.array([[1.0]])
    got = module("logistic", "numpy").hessian(w, X, t)
    want = np.exp(-40.0) / (1 + np.exp(-40.0)) ** 2
    assert got[0, 0] == pytest.approx(want, rel=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_softplus_per_sample_at_1000(backend):
    rng = np.random.default_rng()
    params = [1.0, 0.5, 0.3]
    t_ = np.concatenate([np.full(5, 1000.0), np.full(5, -1000.0), rng.standard_normal(10)])
    u_ = rng.random(20)
    mod = module("pieces", backend)
    got = mod.hessian(*params, t_, u_)
    assert np.isfinite(got).all()
    want = hessian(reference_function(CASES["pieces"], params, [t_, u_]))(np.array(params))
    assert_close(got, want, rtol=1e-9)
    hv = mod.hvp(*params, t_, u_, v=(1.0, -1.0, 0.5))
    assert np.isfinite(hv).all()
    assert_close(hv, want @ np.array([1.0, -1.0, 0.5]), rtol=1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
def test_logsumexp_at_1000(backend):
    case, rng = CASES["rowbias"], np.random.default_rng()
    (b,), (X, W, Y) = case.arguments(rng)
    X = 1000.0 * X / np.abs(X @ W).max()  # scores up to |z| = 1000
    b = 1000.0 * b
    got = module("rowbias", backend).hessian(b, X, W, Y)
    assert np.isfinite(got).all()
    # the Hessian with respect to b: sum over rows of diag(p) - p p.T, p = softmax(z)
    Z = X @ W + b
    P = np.exp(Z - Z.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    want = sum(y.sum() * (np.diag(p) - np.outer(p, p)) for p, y in zip(P, Y, strict=True))
    assert_close(got, want, rtol=1e-9)


# -- the programs ---------------------------------------------------------------------------


def test_per_sample_hessian_is_one_pass():
    """W4's 21 second partials: sums of one pass over the samples, with the loss and the
    gradient in newton_step's program."""
    second = run(curve_fit.curve_fit).second_order
    for program in (second.hessian_program, second.newton_program):
        passes = [k for k in program.kernels if k.domain]
        assert len(passes) == 1
        sums = [s for s in passes[0].stmts if isinstance(s, Reduction)]
        assert len(sums) >= 10  # equal sums (mean(t**2) in two entries) computed once


def test_a_sum_with_its_transpose_is_not_symmetrized_again():
    """x.T*A*x: the Hessian A + A.T is exactly symmetric as computed: the module returns it."""
    second = run(CASES["quadratic"].problem).second_order
    assert second.hessian.symmetric == (True,)
    (stmt,) = second.hessian_program.stmts
    assert str(stmt.value) == "A + transposed(A)"


@pytest.mark.parametrize("name", ["logistic", "poisson", "biased"])
def test_numpy_gram_product_in_blocks_of_rows(name):
    """The NumPy module forms B = X * sqrt(s) a block of rows at a time and adds the blocks'
    B.T @ B (backends/numpy/gram.py): N = 25,000, D = 13 is three blocks."""
    case, rng = CASES[name], np.random.default_rng()
    params, data = case.arguments(rng)
    X = rng.standard_normal((25_000, 13))
    if name == "poisson":
        params, data = [0.05 * rng.standard_normal((13, 1))], [X, rng.poisson(2.0, (25_000, 1))]
    else:
        t_ = (rng.random((25_000, 1)) < 0.5).astype(float)
        params = [rng.standard_normal((13, 1)) / 4, *params[1:]]
        data = [X, t_]
    got = module(name, "numpy").hessian(*params, *data)
    assert np.array_equal(got, got.T)
    assert_close(got, hessian(reference_function(case, params, data))(flat(params)), rtol=1e-10)


def gram_path(mod, *arguments):
    """The NumPy module's Hessian by its ``B.T @ B`` (syrk) path, whatever the size."""
    at_most = mod._DIRECT_AT_MOST
    mod._DIRECT_AT_MOST = 0
    try:
        return mod._hessian_of(*mod._arguments(*arguments))
    finally:
        mod._DIRECT_AT_MOST = at_most


@pytest.mark.parametrize(
    ("name", "extreme"),
    [("logistic", False), ("biased", False), ("poisson", False), ("lsq", False)]
    + [("logistic", True), ("biased", True)],  # |z| = 1000: the logistic weight's stable form
)
def test_numpy_hessian_direct_and_gram_paths_agree(name, extreme):
    """Few columns: ``X.T @ (c * X)`` with c from one exponential (gemm, symmetrized);
    else ``B.T @ B``, B = sqrt(c) ⊙ X (syrk). Both against each other and autograd, exactly
    symmetric, also with rows at |z| = 1000 (logistic: no overflow, no NaN)."""
    case, rng = CASES[name], np.random.default_rng()
    params, data = case.arguments(rng)
    if extreme:
        w, X, t_ = extreme_glm(rng, n=40, d=5)
        params, data = [w, *params[1:]], [X, t_]
    mod = module(name, "numpy")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        direct = mod._hessian_direct(*mod._arguments(*params, *data))
        gram = gram_path(mod, *params, *data)
    assert np.array_equal(direct, direct.T) and np.array_equal(gram, gram.T)
    assert np.isfinite(direct).all()
    assert_close(direct, gram, rtol=1e-12)
    assert_close(direct, hessian(reference_function(case, params, data))(flat(params)))


@pytest.mark.parametrize("name", ["logistic", "biased"])
def test_numpy_hessian_direct_path_float32(name):
    case, rng = CASES[name], np.random.default_rng()
    params, data = case.arguments(rng)
    single = module(name, "numpy", "float32")
    as32 = [p.astype(np.float32) for p in params]
    data32 = [d.astype(np.float32) for d in data]
    got = single._hessian_direct(*single._arguments(*as32, *data32))
    assert got.dtype == np.float32 and np.array_equal(got, got.T)
    f = reference_function(case, [p.astype(np.float64) for p in as32], data32)
    assert_close(got, hessian(f)(flat(as32).astype(np.float64)), rtol=2e-4)
    assert_close(gram_path(single, *as32, *data32), got, rtol=2e-5)


def test_numpy_hessian_path_by_size(monkeypatch):
    """``hessian`` takes the direct path for at most ``_DIRECT_AT_MOST`` columns of one
    block of rows (N D <= 131,072), else the Gram product."""
    mod, rng = module("logistic", "numpy"), np.random.default_rng()
    calls = []
    direct = mod._hessian_direct
    monkeypatch.setattr(mod, "_hessian_direct", lambda *a: calls.append(a) or direct(*a))
    for n, d, taken in [(40, 5, True), (4096, 32, True), (4097, 32, False), (400, 33, False)]:
        w, X, t_ = glm_data(rng, n=n, d=d)
        w /= np.sqrt(d)
        calls.clear()
        got = mod.hessian(w, X, t_)
        assert bool(calls) == taken, (n, d)
        assert_close(got, gram_path(mod, w, X, t_), rtol=1e-12)


def test_numpy_pass_on_one_block_is_the_loop_on_it():
    """A pass over N <= one block of rows runs on the whole arrays (no loop): the same
    numbers as the loop, here two blocks that are the same rows (D = 1: X @ w exact)."""
    mod, rng = module("logistic", "numpy"), np.random.default_rng()
    assert "if N <= _rows:" in inspect.getsource(mod.loss)
    w, X, t_ = glm_data(rng, n=BLOCK, d=1)  # a column: BLOCK rows are one block
    one = mod.loss(w, X, t_)
    assert mod.loss(w, np.vstack([X, X]), np.vstack([t_, t_])) == 2 * one


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_factorization_hvp_in_blocks_of_rows(backend, dtype):
    """H dU of sum((Omega ⊙ (T - U V.T))**2) in U: the product dU @ V.T, the mask's pass
    and the product by V run a block of rows at a time (backends/numpy/chains.py); M = 300
    rows of N = 200 are two blocks."""
    M_, R_ = sp.symbols("M R", integer=True, positive=True)
    U, V = sp.MatrixSymbol("U", M_, R_), sp.MatrixSymbol("V", N, R_)
    T, Om = sp.MatrixSymbol("T", M_, N), sp.MatrixSymbol("Omega", M_, N)
    loss = symgen.sum(symgen.square(sp.HadamardProduct(Om, T - U * V.T)))
    problem = symgen.Problem(loss, params=[U], data=[V, T, Om], name="fact", dtype=dtype)
    mod = symgen.compile(problem, backend)
    assert "by blocks of rows" in inspect.getsource(mod._hvp)
    rng = np.random.default_rng()
    u, v, t_ = (rng.standard_normal(s) for s in ((300, 5), (200, 5), (300, 200)))
    mask, du = (rng.random((300, 200)) < 0.3).astype(float), rng.standard_normal((300, 5))
    arrays = [a.astype(dtype) for a in (u, v, t_, mask, du)]
    (got,) = mod.hvp(*arrays[:4], v=(arrays[4],))
    assert got.dtype == dtype and got.shape == (300, 5)
    u, v, t_, mask, du = (a.astype(np.float64) for a in arrays)  # the float32 point, in float64
    want = hessian_vector_product(lambda p: anp.sum((mask * (t_ - p @ v.T)) ** 2))(u, du)
    assert_close(got, want, rtol=1e-10 if dtype == "float64" else 1e-5)
    np.testing.assert_allclose(want, 2 * ((mask * mask * (du @ v.T)) @ v), rtol=1e-10)


def test_glm_hessian_is_a_symmetric_product():
    """logistic: H = B.T @ B with B = sqrt(sigmoid(z)*sigmoid(-z)) ⊙ X (BLAS syrk), nothing
    else of size D x D."""
    program = run(logistic.logistic).second_order.hessian_program
    products = [s for s in program.stmts if isinstance(s, MatrixProduct)]
    assert [(str(p.left), str(p.right)) for p in products] == [
        ("X", "w"),
        (f"transposed({products[1].right})", str(products[1].right)),
    ]
    assert products[1].left == transposed(products[1].right)


def test_hvp_cost_is_a_few_products():
    """The MLP's hvp: the gradient's four products, twice and a half (no dense Hessian)."""
    program = run(mlp.mlp).second_order.hvp_program
    products = [s for s in program.stmts if isinstance(s, MatrixProduct)]
    assert len(products) <= 10


# -- newton_step ----------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_newton_step_is_the_newton_step(backend):
    case, rng = CASES["biased"], np.random.default_rng()
    (w, b_), (X, t_) = case.arguments(rng)
    mod = module("biased", backend)
    H = mod.hessian(w, b_, X, t_)
    g = flat(mod.grad(w, b_, X, t_))
    want = flat([w, b_]) - np.linalg.solve(H, g)
    loss0 = mod.loss(w, b_, X, t_)
    ids = (id(w), id(b_))
    loss, (w2, b2) = mod.newton_step(w, b_, X, t_)
    assert loss == pytest.approx(loss0, rel=1e-12)
    assert (id(w2), id(b2)) == ids  # updated in place, and returned
    assert_close(flat([w, b_]), want, rtol=1e-12)


def test_newton_converges_on_logistic_regression():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((500, 5))
    t_ = (rng.random((500, 1)) < 1 / (1 + np.exp(-X @ rng.standard_normal((5, 1))))).astype(float)
    w = np.zeros((5, 1))
    mod = module("logistic", "numpy")
    for _ in range(8):
        mod.newton_step(w, X, t_)
    assert np.linalg.norm(mod.grad(w, X, t_)[0]) < 1e-10


@pytest.mark.parametrize("backend", BACKENDS)
def test_newton_step_hands_back_its_gradient(backend):
    """``gradient=``: the gradient at the point before the step, from the step's own pass."""
    case, rng = CASES["biased"], np.random.default_rng()
    (w, b_), (X, t_) = case.arguments(rng)
    mod = module("biased", backend)
    want = flat(mod.grad(w, b_, X, t_))
    gradient = np.full(want.size, np.nan)
    mod.newton_step(w, b_, X, t_, gradient=gradient)
    assert_close(gradient, want, rtol=1e-12)
    before = (w.copy(), b_.copy())
    for wrong in (np.empty(want.size + 1), np.empty(want.size, np.float32), list(want)):
        with pytest.raises(ValueError, match="gradient must be a float64 array of shape"):
            mod.newton_step(w, b_, X, t_, gradient=wrong)
    assert np.array_equal(w, before[0]) and np.array_equal(b_, before[1])  # nothing moved


def test_newton_step_on_floats():
    mod = module("rosenbrock", "numpy")
    point = (1.2, 1.3)
    for _ in range(20):
        loss, point = mod.newton_step(*point)
    assert all(isinstance(p, float) for p in point)
    assert point == pytest.approx((1.0, 1.0), abs=1e-12)


def test_newton_step_damps_where_the_hessian_is_indefinite():
    """At a saddle of x**2 - y**2 + y**4 Cholesky fails: the Levenberg damping lam makes
    H + lam*I positive definite (the step goes downhill)."""
    problem = symgen.Problem(x**2 - y**2 + y**4, params=[x, y], name="saddle")
    mod = symgen.compile(problem)
    point = (0.5, 0.1)
    g = np.array(mod.grad(*point))
    H = mod.hessian(*point)
    assert np.linalg.eigvalsh(H).min() < 0
    _, after = mod.newton_step(*point)
    step = np.subtract(point, after)
    assert step @ g > 0  # downhill: (H + lam*I)^-1 is positive definite
    lam = (g / step - np.diag(H))[1]  # H is diagonal here: step = g / (diag(H) + lam)
    assert np.allclose(step, g / (np.diag(H) + lam))
    assert 1.88 < lam < 18.8  # the first of 1e-10*2, 1e-9*2, ... above -min eigenvalue
    _, damped = mod.newton_step(*point, damping=100.0)
    step = np.subtract(point, damped)
    assert np.linalg.norm(step) < 0.02  # a large damping: a short gradient-like step
    with pytest.raises(ValueError, match="damping must be finite and >= 0"):
        mod.newton_step(*point, damping=-1.0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_newton_step_checks_everything_before_anything_moves(backend):
    """A bad damping or gradient= array raises before the step computes or writes anything:
    the parameters and the gradient array keep their values."""
    case, rng = CASES["biased"], np.random.default_rng()
    (w, b_), (X, t_) = case.arguments(rng)
    mod = module("biased", backend)
    before = (w.copy(), b_.copy())
    size = w.size + b_.size
    gradient = np.full(size, np.nan)
    for bad in ("1", None, [1.0], 1j, np.array([1.0, 2.0]), np.array([[1.0]]), True):
        with pytest.raises(TypeError, match="damping must be a real number"):
            mod.newton_step(w, b_, X, t_, damping=bad, gradient=gradient)
    for bad in (-1.0, float("nan"), -np.inf, np.inf):
        with pytest.raises(ValueError, match="damping must be finite and >= 0"):
            mod.newton_step(w, b_, X, t_, damping=bad, gradient=gradient)
    read_only = np.empty(size)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="gradient is read-only"):
        mod.newton_step(w, b_, X, t_, gradient=read_only)
    with pytest.raises(ValueError, match="gradient shares memory with 'X'"):
        mod.newton_step(w, b_, X, t_, gradient=X.reshape(-1)[:size])
    assert np.isnan(gradient).all()
    assert np.array_equal(w, before[0]) and np.array_equal(b_, before[1])
    wide = np.zeros((size + 1, 1))  # the gradient written into w's memory would move w
    w2 = wide[:-1][: w.size]
    w2[...] = w
    with pytest.raises(ValueError, match="gradient shares memory with 'w'"):
        mod.newton_step(w2, b_, X, t_, gradient=wide.reshape(-1)[:size])
    assert np.array_equal(w2, before[0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_newton_step_damps_a_singular_hessian(backend):
    """A singular H can factor by rounding (a last pivot of ~1e-8): the step is then damped
    as for an indefinite one, not a LinAlgError or a step of ~1e16."""
    problem = symgen.Problem((x + y) ** 2, params=[x, y], name="valley")
    loss, (x1, y1) = symgen.compile(problem).newton_step(1.0, 2.0)
    assert loss == 9.0 and abs(x1 + y1) < 1e-8 and abs(x1 - y1 + 1.0) < 1e-8
    mod = module("logistic", backend)
    twice = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])  # H = s X.T X of rank 1
    w = np.full((3, 1), 0.1)
    mod.newton_step(w, twice, np.array([[1.0], [0.0]]))
    assert np.isfinite(w).all() and np.abs(w).max() < 10
    case, rng = CASES["softmax"], np.random.default_rng()
    params, data = case.arguments(rng)  # a softmax's H is singular: logits shift freely
    soft = module("softmax", backend)
    H, g = soft.hessian(*params, *data), flat(soft.grad(*params, *data))
    assert np.linalg.eigvalsh(H)[0] < 1e-12 * np.abs(H).max()
    before = flat(params)
    soft.newton_step(*params, *data)
    # g lies in H's range: the damped step is H's least-norm solution, up to the bias of
    # lam (1e-10 of H's scale against H's smallest positive eigenvalues: 7e-5 seen)
    want = np.linalg.lstsq(H, g, rcond=None)[0]
    assert_close(before - flat(params), want, rtol=1e-3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_second_order_of_no_features(backend):
    mod = module("logistic", backend)
    w, X, t_ = np.zeros((0, 1)), np.zeros((5, 0)), np.zeros((5, 1))
    assert mod.hessian(w, X, t_).shape == (0, 0)
    loss, (w2,) = mod.newton_step(w, X, t_)
    assert loss == pytest.approx(5 * np.log(2)) and w2.shape == (0, 1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_hvp_reads_directions_of_any_layout(backend):
    """Reversed, strided and transposed views as directions: the same product as a copy."""
    case, rng = CASES["softmax"], np.random.default_rng()
    (W, b_), data = case.arguments(rng)
    mod = module("softmax", backend)
    vW, vb = rng.standard_normal(W.shape), rng.standard_normal(b_.shape)
    want = mod.hvp(W, b_, *data, v=(vW, vb))
    views = (
        (np.asfortranarray(vW), vb[:, ::-1].copy()[:, ::-1]),
        (np.repeat(vW, 2, axis=1)[:, ::2], np.repeat(vb, 3, axis=1)[:, ::3]),
        (vW.T.copy().T, vb.T.copy().T),
    )
    for dW, db in views:
        assert not (dW.flags.c_contiguous and db.flags.c_contiguous)
        got = mod.hvp(W, b_, *data, v=(dW, db))
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_vectors_given_1d_in_the_second_order(backend):
    """A vector parameter given 1-D: hvp takes its direction 1-D or 2-D and gives its
    product 1-D (as grad does); newton_step updates and returns the array given."""
    case, rng = CASES["logistic"], np.random.default_rng()
    (w,), (X, t_) = case.arguments(rng)
    mod = module("logistic", backend)
    v = rng.standard_normal(w.shape)
    (want,) = mod.hvp(w, X, t_, v=(v,))
    flat_w = w.ravel().copy()
    for direction in (v, v.ravel()):
        (got,) = mod.hvp(flat_w, X, t_, v=(direction,))
        assert got.shape == flat_w.shape
        np.testing.assert_array_equal(got, want.ravel())
    with pytest.raises(ValueError, match=r"must have its shape \(\d+, 1\) \(or 1-D\)"):
        mod.hvp(flat_w, X, t_, v=(np.ones(w.size + 1),))
    mod.newton_step(w, X, t_)
    loss, (same,) = mod.newton_step(flat_w, X, t_)
    assert same is flat_w and same.shape == (w.size,)
    np.testing.assert_allclose(flat_w, w.ravel(), rtol=1e-12)
    result = symgen.minimize(mod, np.zeros(w.size), (X, t_), method="Newton-CG")
    assert result.params[0].shape == (w.size,) and result.success


def test_hessian_refuses_too_many_parameters():
    d = 4097
    w, X, t_ = np.zeros((d, 1)), np.zeros((1, d)), np.zeros((1, 1))
    mod = module("logistic", "numpy")
    with pytest.raises(ValueError, match="P = 4097 parameters.*at most 4096"):
        mod.hessian(w, X, t_)
    with pytest.raises(ValueError, match="P = 4097"):
        mod.newton_step(w, X, t_)
    (hv,) = mod.hvp(w, X, t_, v=(np.ones((d, 1)),))  # hvp has no limit
    assert hv.shape == (d, 1)


def test_hvp_checks_its_directions():
    mod = module("biased", "numpy")
    (w, b_), (X, t_) = CASES["biased"].arguments(np.random.default_rng(1))
    with pytest.raises(TypeError, match="v must be a tuple of 2 directions"):
        mod.hvp(w, b_, X, t_, v=(w,))
    with pytest.raises(ValueError, match=r"v\[1\], the direction of 'b', must have its shape"):
        mod.hvp(w, b_, X, t_, v=(w, np.ones((2, 1))))
    with pytest.raises(TypeError, match=r"v\[0\]"):
        mod.hvp(w, b_, X, t_, v=(np.array(["a"] * 4), b_))
    floats_module = module("rosenbrock", "numpy")
    with pytest.raises(TypeError, match="the direction of 'y', must be a real number"):
        floats_module.hvp(1.0, 2.0, v=(1.0, "up"))


def test_a_symbol_named_v_renames_the_keyword():
    v = sp.MatrixSymbol("v", D, 1)
    problem = symgen.Problem(symgen.sum(symgen.square(Xm * v - ym)), params=[v], data=[Xm, ym])
    mod = symgen.compile(problem)
    rng = np.random.default_rng(2)
    w, X, yy = rng.standard_normal((3, 1)), rng.standard_normal((7, 3)), rng.standard_normal((7, 1))
    (hv,) = mod.hvp(w, X, yy, v_=(np.ones((3, 1)),))
    assert_close(hv, 2 * X.T @ X @ np.ones((3, 1)), rtol=1e-12)


# -- formulas: symgen.hessians and `symgen show --hessian` ----------------------------------


def test_hessians_of_rosenbrock_are_the_simplified_second_derivatives():
    h = symgen.hessians(rosenbrock.rosenbrock)
    assert {(p.name, q.name): str(e) for (p, q), e in h.items()} == {
        ("x", "x"): "1200*x**2 - 400*y + 2",
        ("x", "y"): "-400*x",
        ("y", "y"): "200",
    }
    point = {x: 0.7, y: -1.3}
    want = module("rosenbrock", "numpy").hessian(0.7, -1.3)
    assert float(h[x, x].subs(point)) == pytest.approx(want[0, 0], rel=1e-14)
    assert float(h[x, y].subs(point)) == pytest.approx(want[0, 1], rel=1e-14)


def test_hessians_of_a_glm_read_as_an_expert_writes_them():
    h = symgen.hessians(logistic.logistic)
    (w,) = logistic.logistic.params
    assert str(h[w, w]) == "X.T*diag(sigmoid(-X*w) ⊙ sigmoid(X*w))*X"
    (block,) = symgen.hessians(CASES["lsq"].problem).values()
    assert str(block) == "2 * X.T*X"
    blocks = {
        (p.name, q.name): str(e) for (p, q), e in symgen.hessians(CASES["biased"].problem).items()
    }
    assert blocks["w", "w"] == "0.6 * I + X.T*diag(sigmoid(-X*w - b) ⊙ sigmoid(X*w + b))*X"
    assert blocks["w", "b"] == "X.T*(sigmoid(-X*w - b) ⊙ sigmoid(X*w + b))"


def test_hessians_of_a_matrix_problem_with_a_scalar_parameter():
    """A scalar parameter beside a matrix one: its direction is a symbol (``v_s0``), the
    blocks applied to it (an AttributeError on the symbol's shape before)."""
    s0 = sp.Symbol("s0")
    loss = symgen.sum(symgen.square(symgen.tanh(Xm * Wm + s0 * sp.OneMatrix(N, K)) - Ym))
    problem = symgen.Problem(loss, params=[Wm, s0], data=[Xm, Ym])
    blocks = {(p.name, q.name): e for (p, q), e in symgen.hessians(problem).items()}
    assert set(blocks) == {("W", "W"), ("W", "s0"), ("s0", "s0")}
    assert sp.Symbol("v_s0", real=True) in blocks["W", "s0"].free_symbols
    assert str(blocks["W", "W"]).endswith("⊙ (X*v_W))")


def test_show_hessian(capsys, root, monkeypatch):
    from symgen.cli.commands import main

    monkeypatch.chdir(root)
    assert main(["show", "examples/rosenbrock.py", "--hessian"]) == 0
    out = capsys.readouterr().out
    assert "∂²L/∂x² = 1200*x**2 - 400*y + 2\n∂²L/∂x∂y = -400*x\n∂²L/∂y² = 200" in out
    assert main(["show", "examples/logistic.py", "--hessian", "--program"]) == 0
    out = capsys.readouterr().out
    assert "∂²L/∂w² = X.T*diag(sigmoid(-X*w) ⊙ sigmoid(X*w))*X" in out
    assert "# logistic: hessian" in out and "h_w_w = _b.T @ _b" in out
    assert main(["show", "examples/mlp.py", "--hessian", "--format", "latex"]) == 0
    out = capsys.readouterr().out
    assert r"\frac{\partial^2 L}{\partial W_{1} \partial W_{2}} \cdot v_W2 = " in out
    assert main(["show", "examples/softmax.py", "--hessian", "--program"]) == 0
    out = capsys.readouterr().out
    assert "hvp (hessian calls it along each unit vector)" in out
    assert main(["show", "examples/logistic.py", "--hessian", "--format", "markdown"]) == 0
    assert r"\operatorname{diag}" in capsys.readouterr().out


def test_a_stored_value_is_its_operand():
    """``Stored`` (a value the optimizer keeps in an array of its own) differentiates as its
    operand, and its pass computes it once per row: the weight column of X.T @ (c ⊙ X)."""
    from symgen.compiler.autodiff import gradients
    from symgen.compiler.ir import Input, Map, Reduce, Stored

    z = Input("z", (N, sp.S.One), "param", sp.Symbol("z", real=True))
    u = sp.Dummy("u")
    square = Map(sp.Lambda(u, u**2), (z,), z.shape)
    (plain,) = gradients(Reduce(square, (0, 1), ()), (z,))
    (stored,) = gradients(Reduce(Stored(square, z.shape), (0, 1), ()), (z,))
    assert str(plain) == str(stored)  # the same graph (up to its lambdas' dummies)
    program = run(logistic.logistic).second_order.hessian_program
    column = [k for k in program.kernels if k.domain == (N, 1) and not k.is_step]
    assert len(column) == 1 and "exp(-x1/2)/(1 + exp(-x1))" in str(column[0].stmts)
