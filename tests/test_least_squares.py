"""Least-squares losses: ``residuals`` and ``jacobian`` of the modules whose loss is a sum of
squares as users write it, against HIPS autograd's ``jacobian`` and central differences, in
the NumPy and C modules, float64 and float32; the forms recognised and the ones that are not."""

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
import sympy as sp

import symgen
from examples import curve_fit, logistic, mlp
from tests.gradcheck import central_differences

a, b, c, t, y, w8 = sp.symbols("a b c t y w8")
M, D, K = sp.symbols("M D K", integer=True, positive=True)
X, Y = sp.MatrixSymbol("X", M, D), sp.MatrixSymbol("Y", M, K)
Z = sp.MatrixSymbol("Z", M, K)
w, v = sp.MatrixSymbol("w", D, 1), sp.MatrixSymbol("v", 1, D)
col = sp.MatrixSymbol("y", M, 1)

BACKENDS = ["numpy", "c"]
RNG = np.random.default_rng(20240919)


def _glm(z, bias, target):
    return (sp.exp(z / 4) + bias - target) ** 2


CASES = {
    "curve_fit": curve_fit.curve_fit,
    "half_squares": symgen.Problem(
        (y - a * sp.exp(-b * t) - c) ** 2 / 2, params=[a, b, c], data=[t, y], name="half_squares"
    ),
    "linear": symgen.Problem(symgen.sum(symgen.square(X * w - col)), [w], [X, col], name="lin"),
    "glm_bias": symgen.Problem(
        symgen.mean(symgen.elementwise(lambda z, u: _glm(z, a, u), X * w, col)),
        params=[w, a],
        data=[X, col],
        name="glm_bias",
    ),
    "row": symgen.Problem(
        symgen.sum(sp.HadamardPower(v * X.T - col.T, 2)) / 3, [v], [X, col], name="row"
    ),
    "gram": symgen.Problem((X * w - col).T * (X * w - col), [w], [X, col], name="gram"),
    "gram_element": symgen.Problem(
        ((X * w - col).T * (X * w - col))[0, 0] / 2, [w], [X, col], name="gram_element"
    ),
    "matrix_scalars": symgen.Problem(
        symgen.sum(symgen.square(symgen.elementwise(lambda u, s: sp.sin(a * u) + b * s, Z, Y)))
        / (M * K),
        params=[a, b],
        data=[Z, Y],
        name="matrix_scalars",
    ),
}

#: The residuals of each case in autograd.numpy, from the parameters flattened in PARAMS
#: order and the data by name.
REFERENCES = {
    "curve_fit": lambda p, d: (
        anp.exp(-p[0] * d["t"]) * anp.sin(p[1] * d["t"] + p[2])
        + p[3] * d["t"] ** 2
        + p[4] * d["t"]
        + p[5]
        - d["y"]
    ),
    "half_squares": lambda p, d: d["y"] - p[0] * anp.exp(-p[1] * d["t"]) - p[2],
    "linear": lambda p, d: anp.dot(d["X"], p) - d["y"][:, 0],
    "glm_bias": lambda p, d: anp.exp(anp.dot(d["X"], p[:-1]) / 4) + p[-1] - d["y"][:, 0],
    "row": lambda p, d: anp.dot(d["X"], p) - d["y"][:, 0],
    "gram": lambda p, d: anp.dot(d["X"], p) - d["y"][:, 0],
    "gram_element": lambda p, d: anp.dot(d["X"], p) - d["y"][:, 0],
    "matrix_scalars": lambda p, d: (anp.sin(p[0] * d["Z"]) + p[1] * d["Y"]).ravel(),
}

#: loss == scale * reduce(residuals**2) for each case.
SCALING = {
    "curve_fit": (1.0, "mean"),
    "half_squares": (0.5, "sum"),
    "linear": (1.0, "sum"),
    "glm_bias": (1.0, "mean"),
    "row": (1 / 3, "sum"),
    "gram": (1.0, "sum"),
    "gram_element": (0.5, "sum"),
    "matrix_scalars": (1.0, "mean"),
}


def values_for(problem, rng, rows=37, dtype="float64"):
    """Fresh parameters (flat, in PARAMS order, with their shapes) and data."""
    shapes = {M: rows, D: 3, K: 4}
    params, flat = [], []
    for p in problem.params:
        if isinstance(p, sp.MatrixSymbol):
            value = rng.normal(0, 0.5, tuple(shapes.get(s, s) for s in p.shape)).astype(dtype)
            flat.extend(value.ravel())
        else:
            value = float(rng.uniform(0.3, 1.2))
            flat.append(value)
        params.append(value)
    data = {}
    for d in problem.data:
        if isinstance(d, sp.MatrixSymbol):
            data[d.name] = rng.normal(0, 1, tuple(int(shapes.get(s, s)) for s in d.shape))
        else:
            data[d.name] = np.sort(rng.uniform(0, 4, rows))
        data[d.name] = data[d.name].astype(dtype)
    return params, np.array(flat), data


def unflatten(problem, flat, like):
    """Parameters from a flat vector, shaped like ``like``."""
    out, at = [], 0
    for value in like:
        size = np.size(value)
        piece = flat[at : at + size]
        out.append(piece.reshape(np.shape(value)) if np.ndim(value) else float(piece[0]))
        at += size
    return out


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(CASES))
def test_jacobian_against_autograd_and_central_differences(name, backend):
    problem = CASES[name]
    module = symgen.compile(problem, backend)
    params, flat, data = values_for(problem, RNG)
    r = module.residuals(*params, **data)
    jac = module.jacobian(*params, **data)
    assert r.shape == (r.size,) and r.dtype == np.float64
    assert jac.shape == (r.size, flat.size) and jac.dtype == np.float64
    reference = REFERENCES[name]
    np.testing.assert_allclose(r, reference(flat, data), rtol=1e-12, atol=1e-13)
    # the Jacobian's pass hands back the residuals it evaluates on the way, and the same
    # Jacobian
    again = np.full_like(r, np.nan)
    np.testing.assert_array_equal(module.jacobian(*params, **data, residuals=again), jac)
    np.testing.assert_allclose(again, r, rtol=1e-14, atol=1e-14)
    expected = autograd.jacobian(reference)(flat, data)
    np.testing.assert_allclose(jac, expected, rtol=1e-7, atol=1e-12)

    def at(*flat_values):
        return module.residuals(*unflatten(problem, np.array(flat_values), params), **data)

    differences = central_differences(at, flat).T
    np.testing.assert_allclose(jac, differences, rtol=1e-7, atol=1e-9)
    scale, reduce = SCALING[name]
    assert module.RESIDUAL_SCALE == pytest.approx(scale, rel=1e-15)
    assert module.RESIDUAL_REDUCE == reduce
    squares = np.sum(r**2) / (r.size if reduce == "mean" else 1)
    assert module.loss(*params, **data) == pytest.approx(scale * squares, rel=1e-12)
    # the gradient is 2 c J.T r: residuals and Jacobian agree with the module's gradient
    grads = module.grad(*params, **data)
    flat_grad = np.concatenate([np.ravel(g) for g in grads])
    count = r.size if reduce == "mean" else 1
    np.testing.assert_allclose(2 * scale / count * jac.T @ r, flat_grad, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["curve_fit", "glm_bias", "matrix_scalars"])
def test_float32_against_float64(name, backend):
    problem = CASES[name]
    single = symgen.Problem(
        problem.loss, problem.params, problem.data, problem.reduce, "float32", name=f"{name}32"
    )
    params, _, data = values_for(problem, RNG)
    module64 = symgen.compile(problem, backend)
    module32 = symgen.compile(single, backend)
    params32 = [p.astype(np.float32) if isinstance(p, np.ndarray) else p for p in params]
    data32 = {k: x.astype(np.float32) for k, x in data.items()}
    r32, jac32 = module32.residuals(*params32, **data32), module32.jacobian(*params32, **data32)
    assert r32.dtype == np.float32 and jac32.dtype == np.float32
    r64 = module64.residuals(*params32, **{k: x.astype(np.float64) for k, x in data32.items()})
    jac64 = module64.jacobian(*params32, **{k: x.astype(np.float64) for k, x in data32.items()})
    np.testing.assert_allclose(r32, r64, rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(jac32, jac64, rtol=2e-5, atol=2e-5)
    again = np.empty_like(r32)
    module32.jacobian(*params32, **data32, residuals=again)
    np.testing.assert_allclose(again, r32, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_jacobian_residuals_keyword_takes_only_an_array_of_their_shape_and_dtype(backend):
    module = symgen.compile(CASES["curve_fit"], backend)
    params, _, data = values_for(CASES["curve_fit"], RNG)
    n = data["t"].size
    for wrong in (np.empty(n + 1), np.empty(n, dtype=np.float32), list(range(n))):
        with pytest.raises(ValueError, match="residuals must be a float64 array of shape"):
            module.jacobian(*params, **data, residuals=wrong)


@pytest.mark.parametrize("backend", BACKENDS)
def test_jacobian_writes_no_residuals_into_read_only_or_argument_memory(backend):
    module = symgen.compile(CASES["curve_fit"], backend)
    params, _, data = values_for(CASES["curve_fit"], RNG)
    read_only = np.empty(data["t"].size)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="residuals is read-only"):
        module.jacobian(*params, **data, residuals=read_only)
    t_before = data["t"].copy()
    with pytest.raises(ValueError, match="residuals shares memory with 't'"):
        module.jacobian(*params, **data, residuals=data["t"])
    np.testing.assert_array_equal(data["t"], t_before)


def test_numpy_and_c_modules_agree_at_many_samples():
    """Blocks of the NumPy pass (8192 samples) and the C loop (tasks of 16384 samples on
    two threads): one Jacobian, its passes writing the columns of one C-ordered array."""
    ts, ys = curve_fit.synthetic(40_001)
    numpy_module = symgen.compile(curve_fit.curve_fit)
    c_module = symgen.compile(curve_fit.curve_fit, "c")
    start = curve_fit.START
    jac = numpy_module.jacobian(*start, ts, ys)
    c_module.set_num_threads(2)
    two = c_module.jacobian(*start, ts, ys)
    c_module.set_num_threads(1)
    one = c_module.jacobian(*start, ts, ys)
    c_module.set_num_threads(None)
    assert jac.shape == two.shape == (40_001, 6)
    assert jac.flags.c_contiguous and two.flags.c_contiguous
    np.testing.assert_allclose(jac, two, rtol=1e-14)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_allclose(
        numpy_module.residuals(*start, ts, ys), c_module.residuals(*start, ts, ys), rtol=1e-14
    )


@pytest.mark.parametrize(
    "problem",
    [
        logistic.logistic,  # not a square
        mlp.mlp,  # matrix parameters: no room for their directions in a 2-D IR
        symgen.Problem((a * t - y) ** 2 + (b * t) ** 2, [a, b], [t, y], name="two_squares"),
        symgen.Problem(-((a * t - y) ** 2), [a], [t, y], name="negative"),
        symgen.Problem(w8 * (a * t - y) ** 2, [a], [t, y, w8], name="weighted"),
        symgen.Problem(a * (a * t - y) ** 2, [a], [t, y], name="parameter_factor"),
        symgen.Problem(symgen.sum(symgen.square(X * w)) * symgen.sum(X), [w], [X], name="prod"),
        symgen.Problem((1 - a) ** 2 + (b - a**2) ** 2, [a, b], name="scalar"),
    ],
    ids=lambda p: p.name,
)
def test_losses_that_are_not_least_squares_have_no_residuals(problem):
    module = symgen.compile(problem)
    assert not hasattr(module, "residuals") and not hasattr(module, "jacobian")
    assert not hasattr(module, "RESIDUAL_SCALE")


def test_generated_curve_fit_module_has_them():
    from generated import curve_fit_c, curve_fit_numpy

    ts, ys = curve_fit.synthetic(1000)
    for module in (curve_fit_numpy, curve_fit_c):
        assert module.jacobian(*curve_fit.TRUE, ts, ys).shape == (1000, 6)
        assert module.RESIDUAL_SCALE == 1.0 and module.RESIDUAL_REDUCE == "mean"
