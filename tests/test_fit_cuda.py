"""symgen.fit with generated CUDA (CuPy) modules, run on the CPU through the emulator
(symgen.testing.fakecupy): the same histories and parameters as the NumPy modules,
device arrays in and out, and the non-finite stop on the device.

The emulator runs kernels on CPU fibers, so the data are tiny and the fits short.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import sympy as sp

import symgen
from examples import curve_fit, logistic, mlp
from symgen.runtime.training.result import NonFiniteError
from symgen.testing import fake_cupy_installed, fakecupy

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="the emulator needs g++")

cp = fakecupy
RTOL = 1e-9


def as_float64(problem):
    return symgen.Problem(
        problem.loss,
        problem.params,
        problem.data,
        reduce=problem.reduce,
        dtype="float64",
        name=problem.name,
    )


def both(problem):
    """(CUDA module on the fake cupy, NumPy module) of ``problem``."""
    with fake_cupy_installed():
        cuda = symgen.compile(problem, "cuda")
    assert cuda.cp is fakecupy
    return cuda, symgen.compile(problem)


@pytest.fixture(scope="module")
def curve():
    return both(curve_fit.curve_fit)


@pytest.fixture(scope="module")
def curve_data():
    ts, ys = curve_fit.synthetic(200, seed=3)
    return {"t": ts, "y": ys}


@pytest.fixture(scope="module")
def logit():
    return both(as_float64(logistic.logistic))


@pytest.fixture(scope="module")
def logit_data():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((120, 4))
    targets = (rng.random((120, 1)) < 1 / (1 + np.exp(-x @ np.ones((4, 1))))).astype(float)
    return {"X": x, "t": targets}


@pytest.fixture(scope="module")
def net():
    return both(as_float64(mlp.mlp))


@pytest.fixture(scope="module")
def linreg():
    """Least squares sum((X w - Y)**2): diverges with a large lr."""
    m, d = sp.symbols("M D", integer=True, positive=True)
    x, yy = sp.MatrixSymbol("X", m, d), sp.MatrixSymbol("Y", m, 1)
    w = sp.MatrixSymbol("w", d, 1)
    return both(symgen.Problem(symgen.sum(symgen.square(x * w - yy)), [w], [x, yy], name="linreg"))


def host(value):
    return value.get() if isinstance(value, cp.ndarray) else value


def assert_same_fit(got, want):
    assert got.steps == want.steps and got.stopped == want.stopped
    assert got.epochs == want.epochs
    np.testing.assert_allclose(got.history, want.history, rtol=RTOL)
    np.testing.assert_allclose(got.loss, want.loss, rtol=RTOL)
    assert len(got.params) == len(want.params)
    for g, w in zip(got.params, want.params, strict=True):
        if isinstance(w, np.ndarray):
            assert isinstance(g, cp.ndarray) and g.shape == w.shape and g.dtype == w.dtype
            assert g.flags.c_contiguous
        else:
            assert isinstance(g, float)
        np.testing.assert_allclose(host(g), w, rtol=RTOL, atol=1e-12)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("batch_size", [None, 64])
def test_curve_fit_matches_the_numpy_module(curve, curve_data, optimizer, batch_size):
    cuda, numpy_module = curve
    options = dict(optimizer=optimizer, lr=0.02, steps=8, batch_size=batch_size, progress=False)
    got = symgen.fit(cuda, curve_fit.START, curve_data, **options)
    want = symgen.fit(numpy_module, curve_fit.START, curve_data, **options)
    assert_same_fit(got, want)
    if batch_size is not None:
        assert got.epochs == 2.0  # batches of 64, 64, 64, 8 rows each epoch


def test_curve_fit_takes_device_data(curve, curve_data):
    cuda, numpy_module = curve
    device = {k: cp.asarray(v) for k, v in curve_data.items()}
    options = dict(optimizer="adam", lr=0.02, steps=4, batch_size=50, seed=7, progress=False)
    got = symgen.fit(cuda, dict(zip(cuda.PARAMS, curve_fit.START, strict=True)), device, **options)
    want = symgen.fit(numpy_module, curve_fit.START, curve_data, **options)
    assert_same_fit(got, want)


def test_matrix_minibatches_match_the_numpy_module(logit, logit_data):
    cuda, numpy_module = logit
    w0 = np.zeros((4, 1))
    options = dict(optimizer="adam", lr=0.05, steps=6, batch_size=32, progress=False)
    got = symgen.fit(cuda, (w0,), logit_data, **options)
    want = symgen.fit(numpy_module, (w0,), logit_data, **options)
    assert_same_fit(got, want)
    assert not w0.any()  # the caller's (host) array is not modified
    sgd = dict(options, optimizer="sgd", lr=0.01)
    assert_same_fit(
        symgen.fit(cuda, (w0,), logit_data, **sgd),
        symgen.fit(numpy_module, (w0,), logit_data, **sgd),
    )


def test_two_array_params_and_device_initial_values(net):
    cuda, numpy_module = net
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((40, 6)), rng.standard_normal((40, 2))
    w1, w2 = 0.3 * rng.standard_normal((6, 5)), 0.3 * rng.standard_normal((5, 2))
    options = dict(optimizer="momentum", lr=0.05, steps=5, batch_size=16, progress=False)
    want = symgen.fit(numpy_module, (w1, w2), {"X": x, "Y": y}, **options)
    # device initial values (one in Fortran order), device data (one a strided view)
    d1, d2 = cp.asarray(np.asfortranarray(w1)), cp.asarray(w2)
    seen = []
    got = symgen.fit(
        cuda,
        {"W1": d1, "W2": d2},
        {"X": cp.asarray(x), "Y": cp.asarray(np.asfortranarray(y))},
        callback=lambda step, loss, params: seen.append(params),
        **options,
    )
    assert_same_fit(got, want)
    # the caller's device arrays are copied, not trained in place
    np.testing.assert_array_equal(d1.get(), w1)
    np.testing.assert_array_equal(d2.get(), w2)
    assert got.params[0] is not d1 and got.params[1] is not d2
    assert all(isinstance(p, cp.ndarray) for params in seen for p in params)
    # lists are accepted too
    listed = symgen.fit(cuda, (w1.tolist(), w2.tolist()), {"X": x, "Y": y}, **options)
    assert_same_fit(listed, want)


def test_non_finite_parameter_is_named_and_the_initial_params_kept(logit, logit_data):
    cuda, _ = logit
    w0 = np.full((4, 1), 0.5)
    with pytest.raises(NonFiniteError, match=r"step 1 .*parameter 'w'.*w\[\d, 0\]") as info:
        symgen.fit(cuda, (w0,), logit_data, optimizer="sgd", lr=1e308, steps=5, progress=False)
    result = info.value.result
    assert result.steps == 0 and result.stopped == "non-finite" and info.value.step == 1
    (w,) = result.params
    assert isinstance(w, cp.ndarray)
    np.testing.assert_array_equal(w.get(), w0)


def test_non_finite_stop_keeps_the_last_finite_params(linreg):
    cuda, numpy_module = linreg
    rng = np.random.default_rng(0)
    x, yy = rng.standard_normal((20, 2)), rng.standard_normal((20, 1))
    w0 = np.ones((2, 1))
    options = dict(optimizer="sgd", lr=10.0, steps=200, progress=False)
    with pytest.raises(NonFiniteError) as info:
        symgen.fit(cuda, (w0,), {"X": x, "Y": yy}, **options)
    err = info.value
    with pytest.raises(NonFiniteError) as expected:
        symgen.fit(numpy_module, (w0,), {"X": x, "Y": yy}, **options)
    assert err.step == expected.value.step > 1 and f"step {err.step} " in str(err)
    (w,) = err.result.params
    assert isinstance(w, cp.ndarray) and np.isfinite(w.get()).all()
    np.testing.assert_allclose(w.get(), expected.value.result.params[0], rtol=RTOL)
    np.testing.assert_allclose(err.result.history, expected.value.result.history, rtol=RTOL)


def test_bad_initial_values_and_dask_data(logit, logit_data):
    cuda, _ = logit
    with pytest.raises(ValueError, match="initial parameter 'w' has non-finite entries"):
        symgen.fit(cuda, (cp.asarray([[np.nan]] * 4),), logit_data, steps=1, progress=False)
    with pytest.raises(ValueError, match="initial parameter 'w' has non-finite entries"):
        symgen.fit(cuda, (np.full((4, 1), np.inf),), logit_data, steps=1, progress=False)
    da = pytest.importorskip("dask.array")
    lazy = {k: da.from_array(v, chunks=(60, -1)) for k, v in logit_data.items()}
    with pytest.raises(TypeError, match="cannot run a CUDA module on Dask arrays"):
        symgen.fit(cuda, (np.zeros((4, 1)),), lazy, steps=1, progress=False)
