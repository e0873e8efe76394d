"""Matrix models as people write them (issue 17, item 5): a bias added with ``symgen.ones``,
column and row vectors given as 1-D arrays, SymPy's scalar functions of a matrix refused
with the helper to write instead; in the NumPy, C and (emulated) CUDA backends, against
HIPS autograd and central differences."""

from __future__ import annotations

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
