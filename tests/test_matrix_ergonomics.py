"""Matrix models as people write them (issue 17, item 5): a bias added with ``symgen.ones``,
column and row vectors given as 1-D arrays, SymPy's scalar functions of a matrix refused
with the helper to write instead; in the NumPy, C and (emulated) CUDA backends, against
HIPS autograd and central differences."""

from __future__ import annotations

import math
import shutil

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
import sympy as sp

import symgen
from symgen import SpecError
from symgen.testing import fake_cupy_installed
from tests.gradcheck import central_differences

N, D, K = sp.symbols("N D K", integer=True, positive=True)
X, t = sp.MatrixSymbol("X", N, D), sp.MatrixSymbol("t", N, 1)
Y = sp.MatrixSymbol("Y", N, K)
w, b = sp.MatrixSymbol("w", D, 1), sp.Symbol("b")
W, c = sp.MatrixSymbol("W", D, K), sp.MatrixSymbol("c", 1, K)
h = sp.MatrixSymbol("h", N, 1)
SIZES = {"N": 7, "D": 3, "K": 4}

BACKENDS = [
    "numpy",
    pytest.param(
        "c",
        marks=pytest.mark.skipif(
            not any(shutil.which(x) for x in ("cc", "gcc", "clang")), reason="no C compiler"
        ),
    ),
    pytest.param("cuda", marks=pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")),
]


class Built:
    """A generated module and how its arrays go in and come out (CuPy for CUDA)."""

    def __init__(self, problem, backend):
        self.backend = backend
        if backend == "cuda":
            with fake_cupy_installed() as cp:
                self.module = symgen.compile(problem, "cuda")
            self.put, self.get = cp.asarray, lambda a: a.get() if hasattr(a, "get") else a
        else:
            self.module = symgen.compile(problem, backend)
            self.put, self.get = np.asarray, lambda a: a

    def __getattr__(self, name):
        return getattr(self.module, name)


def logsumexp_rows(z):
    m = anp.max(z, axis=1, keepdims=True)
    return m + anp.log(anp.sum(anp.exp(z - m), axis=1, keepdims=True))


def softplus(z):
    return anp.logaddexp(0, z)


# name: (loss, params, data, autograd reference over a dict of arrays)
BIASES = {
    "scalar_bias": (
        symgen.sum(symgen.softplus(X * w + symgen.ones(N) * b) - sp.HadamardProduct(t, X * w))
        - b * symgen.sum(t),
        [w, b],
        [X, t],
        lambda v: (
            anp.sum(softplus(v["X"] @ v["w"] + v["b"]) - v["t"] * (v["X"] @ v["w"]))
            - v["b"] * anp.sum(v["t"])
        ),
    ),
    "row_bias": (
        -symgen.sum(
            sp.HadamardProduct(
                Y,
                X * W + symgen.ones(N) * c - symgen.logsumexp(X * W + symgen.ones(N) * c, axis=1),
            )
        )
        / N,
        [W, c],
        [X, Y],
        lambda v: (
            -anp.sum(v["Y"] * (v["X"] @ v["W"] + v["c"] - logsumexp_rows(v["X"] @ v["W"] + v["c"])))
            / SIZES["N"]
        ),
    ),
    "column_and_scalar_bias_over_a_matrix": (
        symgen.sum(symgen.square(X * W + h * symgen.ones(1, K) + b * symgen.ones(N, K) - Y)),
        [W, h, b],
        [X, Y],
        lambda v: anp.sum((v["X"] @ v["W"] + v["h"] + v["b"] - v["Y"]) ** 2),
    ),
}


def _shape(sym):
    if isinstance(sym, sp.MatrixSymbol):
        return tuple(SIZES[d.name] if d.is_Symbol else int(d) for d in sym.shape)
    return ()


def _values(symbols, rng):
    values = {s.name: rng.uniform(-1, 1, _shape(s)) for s in symbols}
    return {n: (float(v) if np.ndim(v) == 0 else v) for n, v in values.items()}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(BIASES))
def test_biases_against_autograd_and_differences(name, backend):
    loss, params, data, reference = BIASES[name]
    module = Built(symgen.Problem(loss, params=params, data=data, name=name), backend)
    rng = np.random.default_rng()
    values = _values((*params, *data), rng)
    order = [s.name for s in (*params, *data)]

    def call(fn, vals):
        return fn(*[vals[n] if np.ndim(vals[n]) == 0 else module.put(vals[n]) for n in order])

    value, grads = call(module.loss_and_grad, values)
    assert value == pytest.approx(float(reference(values)), rel=1e-12)
    for p, g in zip(params, grads, strict=True):
        expected = autograd.grad(lambda x, p=p: reference({**values, p.name: x}))(values[p.name])
        np.testing.assert_allclose(module.get(g), expected, rtol=1e-7, atol=1e-12)
        shape = np.shape(values[p.name])

        def loss_of(*entries, p=p, shape=shape):
            entry = np.reshape(np.array(entries), shape)
            return call(module.loss, {**values, p.name: float(entry) if not shape else entry})

        fd = central_differences(loss_of, np.ravel(values[p.name]))
        np.testing.assert_allclose(np.ravel(module.get(g)), fd, rtol=1e-7, atol=1e-8)


# -- vectors given as 1-D arrays ----------------------------------------------------------------
LOGREG = symgen.Problem(
    symgen.sum(symgen.softplus(X * w + symgen.ones(N) * b) - sp.HadamardProduct(t, X * w))
    - b * symgen.sum(t),
    params=[w, b],
    data=[X, t],
    name="logreg",
)
SOFTMAX = symgen.Problem(BIASES["row_bias"][0], params=[W, c], data=[X, Y], name="softmax_rows")


def _logreg_data(rng, n=40):
    return rng.standard_normal((n, 3)), (rng.random(n) < 0.5).astype(float)


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_dimensional_vectors_give_one_dimensional_gradients(backend):
    module = Built(LOGREG, backend)
    rng = np.random.default_rng()
    x, labels = _logreg_data(rng)
    w0 = rng.standard_normal(3)
    put = module.put
    value, (gw, gb) = module.loss_and_grad(put(w0), 0.3, put(x), put(labels))
    column, (gw2, gb2) = module.loss_and_grad(put(w0[:, None]), 0.3, put(x), put(labels[:, None]))
    assert value == column
    assert gw.shape == (3,) and gw2.shape == (3, 1) and gb == gb2
    np.testing.assert_array_equal(module.get(gw), module.get(gw2).ravel())

    def reference(weights, bias):
        z = x @ weights + bias
        return anp.sum(softplus(z) - labels * (x @ weights)) - bias * anp.sum(labels)

    assert value == pytest.approx(reference(w0, 0.3), rel=1e-12)
    np.testing.assert_allclose(module.get(gw), autograd.grad(reference)(w0, 0.3), rtol=1e-7)
    (g,) = module.grad(put(w0), 0.3, put(x), put(labels))[:1]
    assert g.shape == (3,)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_steps_update_one_dimensional_parameters_in_place(backend, optimizer):
    module = Built(LOGREG, backend)
    rng = np.random.default_rng()
    x, labels = _logreg_data(rng)
    start = rng.standard_normal(3)
    step = getattr(module, f"{optimizer}_step")
    make_state = getattr(module, f"{optimizer}_state", None)
    flat, column = module.put(start.copy()), module.put(start[:, None].copy())
    data = (module.put(x), module.put(labels))
    states = [make_state(p, 0.3) if make_state else None for p in (flat, column)]
    bias = [0.3, 0.3]
    for _ in range(3):
        for i, p in enumerate((flat, column)):
            extra = {"state": states[i]} if make_state else {}
            out = step(p, bias[i], *data, lr=0.05, **extra)
            new_w, bias[i] = out[1]
            assert new_w is p  # the array given, updated in place
            if make_state:
                states[i] = out[2]
    assert flat.shape == (3,) and column.shape == (3, 1)
    np.testing.assert_array_equal(module.get(flat), module.get(column).ravel())
    assert bias[0] == bias[1]
    if optimizer == "adam":
        assert states[0][1][0].shape == (3,)  # the state is shaped like the parameter given
    assert not np.array_equal(module.get(flat), start)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_row_parameter_given_one_dimensional(backend):
    module = Built(SOFTMAX, backend)
    rng = np.random.default_rng()
    x = rng.standard_normal((9, 3))
    y = np.eye(4)[rng.integers(0, 4, 9)]
    weights, bias = rng.standard_normal((3, 4)), rng.standard_normal(4)
    put = module.put
    value, (gw, gc) = module.loss_and_grad(put(weights), put(bias), put(x), put(y))
    row, (gw2, gc2) = module.loss_and_grad(put(weights), put(bias[None, :]), put(x), put(y))
    assert value == row and gc.shape == (4,) and gc2.shape == (1, 4)
    np.testing.assert_array_equal(module.get(gc), module.get(gc2).ravel())
    given = put(bias.copy())
    _, (_, updated) = module.sgd_step(put(weights.copy()), given, put(x), put(y), lr=0.1)
    assert updated is given and given.shape == (4,)
    np.testing.assert_allclose(module.get(given), bias - 0.1 * module.get(gc), rtol=1e-12)


def test_one_dimensional_arguments_are_checked():
    module = symgen.compile(LOGREG)
    rng = np.random.default_rng(0)
    x, labels = _logreg_data(rng)
    with pytest.raises(ValueError, match=r"'X' has 3 columns but 'w' has 4 rows"):
        module.loss(np.zeros(4), 0.0, x, labels)
    with pytest.raises(ValueError, match=r"'t' has 39 rows but 'X' has 40 rows"):
        module.loss(np.zeros(3), 0.0, x, labels[1:])
    with pytest.raises(ValueError, match=r"'X' must be a 2-D array of shape \(N, D\), got shape"):
        module.loss(np.zeros(3), 0.0, x.ravel(), labels)
    with pytest.raises(ValueError, match=r"'w' must be a 2-D array of shape \(D, 1\) \(or 1-D"):
        module.loss(np.zeros((3, 1, 1)), 0.0, x, labels)
    assert module.loss([0.0, 0.0, 0.0], 0.0, x, list(labels)) == pytest.approx(40 * np.log(2))
    state = module.adam_state(np.zeros((3, 1)), 0.0)
    with pytest.raises(ValueError, match=r"the state of 'w' must be an array of shape \(3,\)"):
        module.adam_step(np.zeros(3), 0.0, x, labels, state=state)
    with pytest.raises(TypeError, match="updates parameters in place"):
        module.sgd_step([0.0, 0.0, 0.0], 0.0, x, labels, lr=0.1)


def test_fit_with_one_dimensional_vectors():
    module = symgen.compile(LOGREG)
    rng = np.random.default_rng(1)
    x, labels = _logreg_data(rng, n=200)
    result = symgen.fit(
        module, (np.zeros(3), 0.0), {"X": x, "t": labels}, lr=0.1, steps=50, progress=False
    )
    assert result.params[0].shape == (3,)
    assert result.history[-1] < result.history[0]


# -- SymPy's functions of a matrix ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: symgen.sum(1 / (1 + sp.exp(-X * w))), r"write symgen.sigmoid\(X\*w\)"),
        (lambda: symgen.sum(sp.log(1 + sp.exp(X * w))), r"write symgen.softplus\(X\*w\)"),
        (lambda: symgen.Problem(sp.exp(X * w), [w], [X]), r"sympy.exp .*symgen.exp\(X\*w\)"),
        (lambda: symgen.mean(2 * sp.tanh(X * w)), r"symgen.tanh\(X\*w\)"),
        (lambda: symgen.log(1 / (1 + sp.exp(-X * w))), r"symgen.sigmoid\(X\*w\)"),
        (
            lambda: symgen.elementwise(lambda u, v: u * v, sp.sin(X * w), t),
            r"symgen.elementwise\(sp.sin, X\*w\)",
        ),
        (
            lambda: symgen.Problem(symgen.sum(sp.sqrt(X * w)), [w], [X]),
            r"X\*w is N x 1, not square.*write symgen.sqrt\(X\*w\)",
        ),
        (
            lambda: symgen.Problem(symgen.sum((X * w) ** 2), [w], [X]),
            r"\(X\*w\)\*\*2 is a matrix power.*write symgen.square\(X\*w\)",
        ),
        (
            lambda: symgen.Problem(symgen.sum((X * W) ** 3), [W], [X]),
            r"not square.*sp.HadamardPower\(X\*W, 3\)",
        ),
    ],
)
def test_sympy_functions_of_matrices_name_the_helper(build, message):
    with pytest.raises(SpecError, match=message):
        build()


def test_the_helpers_named_compute_what_was_meant():
    rng = np.random.default_rng(2)
    x, weights = rng.standard_normal((6, 3)), rng.standard_normal((3, 1))
    loss = symgen.sum(symgen.sigmoid(X * w)) + symgen.sum(symgen.square(X * w))
    module = symgen.compile(symgen.Problem(loss, [w], [X], name="meant"))
    z = x @ weights
    assert module.loss(weights, x) == pytest.approx(np.sum(1 / (1 + np.exp(-z)) + z**2))


# -- integer dimensions ----------------------------------------------------------------------
X5, t5, w3 = sp.MatrixSymbol("X", 5, 3), sp.MatrixSymbol("t", 5, 1), sp.MatrixSymbol("w", 3, 1)
W34, Y4 = sp.MatrixSymbol("W", 3, 4), sp.MatrixSymbol("Y", N, 4)
XN = sp.MatrixSymbol("X", N, 3)
R = X5 * w3 + symgen.ones(5) * b - t5

# name: (loss, params, data, autograd reference over a dict of arrays, sizes)
INTEGER = {
    "least_squares_with_bias": (
        symgen.sum(symgen.square(R)),
        [w3, b],
        [X5, t5],
        lambda v: anp.sum((v["X"] @ v["w"] + v["b"] - v["t"]) ** 2),
    ),
    "one_by_one_product_and_trace": (
        symgen.sum(R.T * R) + sp.Trace(w3 * w3.T) / 2,
        [w3, b],
        [X5, t5],
        lambda v: anp.sum((v["X"] @ v["w"] + v["b"] - v["t"]) ** 2) + anp.sum(v["w"] ** 2) / 2,
    ),
    "mixed_symbolic_rows_integer_columns": (
        -symgen.sum(sp.HadamardProduct(Y4, XN * W34 - symgen.logsumexp(XN * W34, axis=1))),
        [W34],
        [XN, Y4],
        lambda v: -anp.sum(v["Y"] * (v["X"] @ v["W"] - logsumexp_rows(v["X"] @ v["W"]))),
    ),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(INTEGER))
def test_integer_dimensions_against_autograd_and_differences(name, backend):
    loss, params, data, reference = INTEGER[name]
    module = Built(symgen.Problem(loss, params=params, data=data, name=name), backend)
    rng = np.random.default_rng()
    values = _values((*params, *data), rng)
    order = [s.name for s in (*params, *data)]

    def call(fn, vals):
        return fn(*[vals[n] if np.ndim(vals[n]) == 0 else module.put(vals[n]) for n in order])

    value, grads = call(module.loss_and_grad, values)
    assert value == pytest.approx(float(reference(values)), rel=1e-12)
    for p, g in zip(params, grads, strict=True):
        expected = autograd.grad(lambda x, p=p: reference({**values, p.name: x}))(values[p.name])
        np.testing.assert_allclose(module.get(g), expected, rtol=1e-7, atol=1e-12)
        shape = np.shape(values[p.name])

        def loss_of(*entries, p=p, shape=shape):
            entry = np.reshape(np.array(entries), shape)
            return call(module.loss, {**values, p.name: float(entry) if not shape else entry})

        fd = central_differences(loss_of, np.ravel(values[p.name]))
        np.testing.assert_allclose(np.ravel(module.get(g)), fd, rtol=1e-7, atol=1e-8)


def test_integer_dimensions_are_checked_and_vectors_may_be_one_dimensional():
    module = symgen.compile(
        symgen.Problem(INTEGER["least_squares_with_bias"][0], [w3, b], [X5, t5])
    )
    rng = np.random.default_rng(3)
    x, target, weights = rng.standard_normal((5, 3)), rng.standard_normal(5), np.zeros(3)
    value, (g, _) = module.loss_and_grad(weights, 0.5, x, target)
    assert value == pytest.approx(np.sum((0.5 - target) ** 2)) and g.shape == (3,)
    with pytest.raises(ValueError, match=r"'X' must have 5 rows, got shape \(4, 3\)"):
        module.loss(weights, 0.5, x[:4], target[:4])
    with pytest.raises(ValueError, match=r"'w' must have 3 rows"):
        module.loss(np.zeros(2), 0.5, x, target)


# -- a sum scaled by a scalar ---------------------------------------------------------------------
# The adjoint of a sum is a scalar spread over an array: a product reads it as a filled array
# (it once went into X.T @ b as a float); in CUDA the kernel filling it waits for the host
# value, and the product waits for the kernel.
SCALED = {
    "parameter_times_a_sum": (
        b * symgen.sum(X * w) + b**2,
        [w, b],
        [X],
        lambda v: v["b"] * anp.sum(v["X"] @ v["w"]) + v["b"] ** 2,
    ),
    "sum_times_a_sum": (
        symgen.sum(X * w) * symgen.sum(symgen.exp(X * w)) / N,
        [w],
        [X],
        lambda v: anp.sum(v["X"] @ v["w"]) * anp.sum(anp.exp(v["X"] @ v["w"])) / SIZES["N"],
    ),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(SCALED))
def test_a_sum_scaled_by_a_scalar_against_autograd(name, backend):
    loss, params, data, reference = SCALED[name]
    module = Built(symgen.Problem(loss, params=params, data=data, name=name), backend)
    values = _values((*params, *data), np.random.default_rng())
    order = [s.name for s in (*params, *data)]
    value, grads = module.loss_and_grad(
        *[values[n] if np.ndim(values[n]) == 0 else module.put(values[n]) for n in order]
    )
    assert value == pytest.approx(float(reference(values)), rel=1e-12)
    for p, g in zip(params, grads, strict=True):
        expected = autograd.grad(lambda x, p=p: reference({**values, p.name: x}))(values[p.name])
        np.testing.assert_allclose(module.get(g), expected, rtol=1e-7, atol=1e-12)


# -- data-only terms ------------------------------------------------------------------------------
a_, b_, x_, y_ = sp.symbols("a b x y")
POISSON = symgen.Problem(  # torch's poisson_nll_loss(log_input=True, full=True), exactly
    sp.exp(a_ * x_ + b_) - y_ * (a_ * x_ + b_) + sp.loggamma(y_ + 1),
    params=[a_, b_],
    data=[x_, y_],
    reduce="mean",
    name="poisson",
)
Z1 = X * w + symgen.ones(N) * b
POISSON_MATRIX = symgen.Problem(
    symgen.sum(
        symgen.exp(Z1)
        - sp.HadamardProduct(t, Z1)
        + symgen.elementwise(lambda y: sp.loggamma(y + 1), t)
    ),
    params=[w, b],
    data=[X, t],
    name="poisson_rows",
)


def _counts(rng, n=50):
    x = rng.standard_normal(n)
    return x, rng.poisson(np.exp(0.4 * x + 1.0)).astype(float)


def poisson_nll(a, b, x, y):
    eta = a * x + b
    return anp.mean(anp.exp(eta) - y * eta) + np.mean([math.lgamma(v + 1) for v in y])


@pytest.mark.parametrize("backend", BACKENDS)
def test_poisson_nll_with_its_data_only_term(backend):
    module = Built(POISSON, backend)
    rng = np.random.default_rng()
    x, y = _counts(rng)
    y[:3] = [0.0, 1.0, 170.0]  # log(0!) = log(1!) = 0; a large count
    value, grads = module.loss_and_grad(0.4, 1.0, module.put(x), module.put(y))
    assert value == pytest.approx(poisson_nll(0.4, 1.0, x, y), rel=1e-12)
    for i in range(2):
        expected = autograd.grad(poisson_nll, i)(0.4, 1.0, x, y)
        assert grads[i] == pytest.approx(expected, rel=1e-7)
    fd = central_differences(
        lambda a, b: module.loss(a, b, module.put(x), module.put(y)), [0.4, 1.0]
    )
    np.testing.assert_allclose(grads, fd, rtol=1e-7)
    as32 = symgen.Problem(POISSON.loss, POISSON.params, POISSON.data, "mean", "float32", "p32")
    single = Built(as32, backend)
    put32 = lambda a: single.put(a.astype(np.float32))  # noqa: E731
    assert single.loss(0.4, 1.0, put32(x), put32(y)) == pytest.approx(value, rel=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_data_only_term_in_a_matrix_loss(backend):
    module = Built(POISSON_MATRIX, backend)
    rng = np.random.default_rng()
    x = rng.standard_normal((30, 3))
    counts = rng.poisson(2.0, 30).astype(float)
    weights, bias = 0.3 * rng.standard_normal(3), 0.2

    def reference(wv, bv):
        eta = x @ wv + bv
        return anp.sum(anp.exp(eta) - counts * eta) + sum(math.lgamma(v + 1) for v in counts)

    value, (gw, gb) = module.loss_and_grad(
        module.put(weights), bias, module.put(x), module.put(counts)
    )
    assert value == pytest.approx(reference(weights, bias), rel=1e-12)
    np.testing.assert_allclose(
        module.get(gw), autograd.grad(reference, 0)(weights, bias), rtol=1e-7
    )
    assert gb == pytest.approx(autograd.grad(reference, 1)(weights, bias), rel=1e-7)


def test_data_only_functions_of_parameters_are_refused_with_the_reason():
    r = sp.Symbol("r")
    with pytest.raises(SpecError, match=r"loggamma\(r\) depends on the parameter r.*make r data"):
        symgen.Problem(sp.loggamma(y_ + r) - sp.loggamma(r) + r * x_, [r], [x_, y_])
    with pytest.raises(SpecError, match=r"loggamma\(X\*w \+ 1\) depends on the parameter w"):
        symgen.Problem(
            symgen.sum(symgen.elementwise(lambda v: sp.loggamma(v + 1), X * w)), [w], [X]
        )
    with pytest.raises(SpecError, match=r"'factorial'.*for log\(y!\) write loggamma\(y \+ 1\)"):
        symgen.Problem(sp.log(sp.factorial(y_)) + a_ * x_, [a_], [x_, y_])
    with pytest.raises(SpecError, match=r"'gamma' in the loss \(gamma\(t\)\)"):
        symgen.Problem(symgen.sum(X * w) + symgen.sum(symgen.elementwise(sp.gamma, t)), [w], [X, t])


def test_loggamma_at_its_poles_is_infinite_as_in_c():
    module = symgen.compile(symgen.Problem(a_ * x_ + sp.loggamma(y_), [a_], [x_, y_], name="pole"))
    assert module.loss(1.0, np.array([1.0, 2.0]), np.array([1.0, 0.0])) == math.inf


@pytest.mark.parametrize("backend", BACKENDS)
def test_bias_and_one_dimensional_vectors_at_extremes_and_in_float32(backend):
    module = Built(LOGREG, backend)
    x = np.array([[1000.0, 0.0, 0.0], [-1000.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -2.0]])
    labels = np.array([0.0, 1.0, 1.0, 0.0])
    weights = np.array([1.0, 0.5, -0.5])
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        value, (gw, gb) = module.loss_and_grad(
            module.put(weights), 3.0, module.put(x), module.put(labels)
        )
    z = x @ weights + 3.0
    sig = 0.5 * np.tanh(0.5 * z) + 0.5
    assert value == pytest.approx(np.sum(np.logaddexp(0, z) - labels * z), rel=1e-12)
    np.testing.assert_allclose(module.get(gw), x.T @ (sig - labels), rtol=1e-12, atol=1e-12)
    assert gb == pytest.approx(np.sum(sig - labels), rel=1e-12)
    as32 = symgen.Problem(LOGREG.loss, LOGREG.params, LOGREG.data, dtype="float32", name="l32")
    single = Built(as32, backend)
    value32, (gw32, _) = single.loss_and_grad(
        *(single.put(v.astype(np.float32)) for v in (weights,)),
        3.0,
        *(single.put(v.astype(np.float32)) for v in (x, labels)),
    )
    assert gw32.dtype == np.float32 and gw32.shape == (3,)
    assert value32 == pytest.approx(value, rel=1e-5)
    np.testing.assert_allclose(single.get(gw32), module.get(gw), rtol=1e-5, atol=1e-3)


LOGREG_SPEC = """\
import sympy as sp
import symgen

N, D = sp.symbols("N D", integer=True, positive=True)
X, t = sp.MatrixSymbol("X", N, D), sp.MatrixSymbol("t", N, 1)
w, b = sp.MatrixSymbol("w", D, 1), sp.Symbol("b")
z = X*w + symgen.ones(N)*b
logreg = symgen.Problem(symgen.sum(symgen.softplus(z) - sp.HadamardProduct(t, z)) / N,
                        params=[w, b], data=[X, t], name="logreg")
"""


def test_train_from_the_command_line_with_one_dimensional_vectors(tmp_path, capsys):
    from symgen.cli.commands import main

    rng = np.random.default_rng(4)
    x, labels = _logreg_data(rng, n=100)
    (tmp_path / "logreg.py").write_text(LOGREG_SPEC)
    np.savez(tmp_path / "data.npz", X=x, t=labels)  # t 1-D, as (N, 1)
    np.savez(tmp_path / "init.npz", w=np.zeros(3), b=0.0)  # w 1-D, as (D, 1)
    argv = ["train", str(tmp_path / "logreg.py"), "--data", str(tmp_path / "data.npz")]
    argv += ["--init", str(tmp_path / "init.npz"), "--steps", "20", "--lr", "0.1"]
    assert main([*argv, "--out", str(tmp_path / "out.npz"), "--quiet"]) == 0
    with np.load(tmp_path / "out.npz") as out:
        assert out["w"].shape == (3,)
    np.savez(tmp_path / "data.npz", X=x, t=labels[:99])
    assert main([*argv, "--out", str(tmp_path / "out.npz"), "--quiet"]) == 2
    assert "data 't' in" in capsys.readouterr().err
