"""The error function in losses: the normal CDF ``(1 + erf(z/sqrt(2)))/2`` of probit models
and the exact GELU ``z*(1 + erf(z/sqrt(2)))/2`` (torch's ``gelu``, approximate="none").
NumPy has no erf: the NumPy module calls ``math.erf`` on each element, C and CUDA their
own ``erf``. Each loss is checked in every backend against HIPS autograd (whose erf is
SciPy's) and central differences on fresh random inputs, the Hessian-vector product too,
and float32 against float64."""

from __future__ import annotations

import math
import shutil

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
import sympy as sp
from autograd.scipy.special import erf as anp_erf
from autograd.scipy.special import erfc as anp_erfc

import symgen
from symgen.testing import fake_cupy_installed
from tests.gradcheck import central_differences

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

z, y, a, b = sp.symbols("z y a b")
M, D, H = sp.symbols("M D H", integer=True, positive=True)
X, W, v, t = (
    sp.MatrixSymbol("X", M, D),
    sp.MatrixSymbol("W", D, H),
    sp.MatrixSymbol("c", H, 1),
    sp.MatrixSymbol("t", M, 1),
)
SQRT2 = math.sqrt(2)


def _gelu(u):
    return u * (1 + sp.erf(u / sp.sqrt(2))) / 2


def _anp_gelu(u):
    return u * (1 + anp_erf(u / SQRT2)) / 2


# name: (problem, autograd reference over (flat params, data dict), parameter shapes)
CASES = {
    # a probit regression's likelihood, the CDF written with erf and erfc as textbooks do
    "probit": (
        symgen.Problem(
            -y * sp.log((1 + sp.erf((a * z + b) / sp.sqrt(2))) / 2)
            - (1 - y) * sp.log(sp.erfc((a * z + b) / sp.sqrt(2)) / 2),
            [a, b],
            [z, y],
            name="probit",
        ),
        lambda p, d: anp.sum(
            -d["y"] * anp.log((1 + anp_erf((p[0] * d["z"] + p[1]) / SQRT2)) / 2)
            - (1 - d["y"]) * anp.log(anp_erfc((p[0] * d["z"] + p[1]) / SQRT2) / 2)
        ),
        [(), ()],
    ),
    # a one-hidden-layer network with the exact GELU, squared error
    "gelu_network": (
        symgen.Problem(
            symgen.sum(symgen.square(symgen.elementwise(_gelu, X * W) * v - t)) / M,
            [W, v],
            [X, t],
            name="gelu_network",
        ),
        lambda p, d: anp.mean(
            (_anp_gelu(d["X"] @ anp.reshape(p[:12], (3, 4))) @ anp.reshape(p[12:], (4, 1)) - d["t"])
            ** 2
        ),
        [(3, 4), (4, 1)],
    ),
}


def _data(name, rng):
    if name == "probit":
        return {"z": rng.normal(size=40), "y": rng.integers(0, 2, 40).astype(float)}
    return {"X": rng.normal(size=(20, 3)), "t": rng.normal(size=(20, 1))}


def _params(name, rng):
    return [0.7, -0.2] if name == "probit" else [rng.normal(size=s) for s in CASES[name][2]]


def _flat(params):
    return np.concatenate([np.ravel(p) for p in params])


def _unflat(flat, shapes):
    out, at = [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        out.append(float(flat[at]) if not shape else flat[at : at + size].reshape(shape))
        at += size
    return out


class Module:
    def __init__(self, problem, backend):
        if backend == "cuda":
            with fake_cupy_installed() as cp:
                self.module = symgen.compile(problem, "cuda")
            self.put, self.get = cp.asarray, lambda x: x.get() if hasattr(x, "get") else x
        else:
            self.module = symgen.compile(problem, backend)
            self.put, self.get = (lambda x: x), (lambda x: x)

    def _args(self, params, data):
        values = [p if np.ndim(p) == 0 else self.put(np.array(p)) for p in params]
        return values + [self.put(data[name]) for name in self.module.DATA]

    def loss_and_grad(self, params, data):
        loss, grads = self.module.loss_and_grad(*self._args(params, data))
        return float(loss), _flat([np.asarray(self.get(g)) for g in grads])

    def hvp(self, params, data, directions):
        v_ = tuple(d if np.ndim(d) == 0 else self.put(d) for d in directions)
        return _flat(
            [np.asarray(self.get(h)) for h in self.module.hvp(*self._args(params, data), v=v_)]
        )


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_against_autograd_and_central_differences(name, backend):
    problem, reference, shapes = CASES[name]
    rng = np.random.default_rng()
    data, params = _data(name, rng), _params(name, rng)
    module = Module(problem, backend)
    loss, grad = module.loss_and_grad(params, data)
    flat = _flat(params)
    assert loss == pytest.approx(float(reference(flat, data)), rel=1e-12)
    np.testing.assert_allclose(grad, autograd.grad(reference)(flat, data), rtol=1e-7, atol=1e-12)
    numeric = central_differences(
        lambda *e: module.loss_and_grad(_unflat(np.array(e), shapes), data)[0], flat
    )
    np.testing.assert_allclose(grad, numeric, rtol=1e-7, atol=1e-8)
    directions = [rng.normal(size=s) if s else float(rng.normal()) for s in shapes]
    expected = autograd.hessian(reference)(flat, data) @ _flat(directions)
    np.testing.assert_allclose(
        module.hvp(params, data, directions), expected, rtol=1e-7, atol=1e-10
    )


@pytest.mark.parametrize("backend", BACKENDS[:2])
@pytest.mark.parametrize("name", sorted(CASES))
def test_hessian_against_autograd(name, backend):
    problem, reference, _ = CASES[name]
    rng = np.random.default_rng()
    data, params = _data(name, rng), _params(name, rng)
    module = symgen.compile(problem, backend)
    hessian = module.hessian(*params, *(data[n] for n in module.DATA))
    expected = autograd.hessian(reference)(_flat(params), data)
    np.testing.assert_allclose(hessian, expected, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_float32_against_float64(name, backend):
    problem, _, _ = CASES[name]
    rng = np.random.default_rng()
    data, params = _data(name, rng), _params(name, rng)
    single = symgen.Problem(
        problem.loss, problem.params, problem.data, dtype="float32", name=f"{name}32"
    )
    loss64, grad64 = Module(problem, backend).loss_and_grad(params, data)
    as32 = {k: x.astype(np.float32) for k, x in data.items()}
    params32 = [p if np.ndim(p) == 0 else p.astype(np.float32) for p in params]
    loss32, grad32 = Module(single, backend).loss_and_grad(params32, as32)
    assert loss32 == pytest.approx(loss64, rel=1e-5)
    np.testing.assert_allclose(grad32, grad64, rtol=1e-4, atol=1e-5)


def test_the_numpy_module_spells_erf_with_the_standard_library():
    """Generated modules import only NumPy and the standard library: erf is math.erf."""
    source = symgen.generate(CASES["gelu_network"][0])
    assert "np.frompyfunc(math.erf, 1, 1)" in source
    assert "scipy" not in source
    module = symgen.compile(CASES["gelu_network"][0])
    values = np.linspace(-30, 30, 601).reshape(-1, 1) * np.ones((1, 2))
    np.testing.assert_array_equal(module._erf(values), np.vectorize(math.erf)(values))
    assert module._erf(values.astype(np.float32)).dtype == np.float32
