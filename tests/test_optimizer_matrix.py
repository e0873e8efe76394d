"""Every backend x every optimizer x baked or keyword hyperparameters x every kind of problem,
against one reference: the optimizer's definition (``symgen/codegen/optimizers.py``) run by
``optimizers.Updater`` in plain NumPy float64, on the gradients of the float64 NumPy module.

Two checks per case:

* the trajectory (loss, parameters, state after each of ``STEPS`` steps) against the
  reference: bit for bit where the backend computes the gradient as the reference does
  (the NumPy module in float64, the host modules of scalar losses), else to a tolerance
  for the dtype (the C passes and the CUDA kernels sum in another order);
* the update alone, bit for bit: the reference rule applied to the backend's own gradient
  (in the module's dtype) gives exactly the parameters and state of its step function;
  that is the generated update (NumPy statements, C kernels run by the CUDA emulator)
  doing the definition's operations in the definition's order.
"""

from __future__ import annotations

import functools
import shutil
from dataclasses import dataclass

import numpy as np
import pytest

import symgen
from examples import curve_fit, logistic, mlp, rosenbrock
from symgen.codegen import optimizers
from symgen.codegen.optimizers import STEP_FUNCTIONS, Updater
from symgen.testing import emulator_available, fake_cupy_installed

STEPS = 4
#: Hyperparameters other than the defaults, so that a default cannot pass for a value.
HYPER = {
    "sgd": {},
    "momentum": {"momentum": 0.8},
    "nesterov": {"momentum": 0.8},
    "adam": {"beta1": 0.85, "beta2": 0.99, "eps": 1e-7},
}


@dataclass(frozen=True)
class Case:
    problem: symgen.Problem
    params: tuple
    data: dict
    lr: float


def _logistic_case() -> Case:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 3))
    targets = (rng.random((40, 1)) < 0.5).astype(float)
    return Case(logistic.logistic, (rng.normal(size=(3, 1)) * 0.3,), {"X": x, "t": targets}, 0.05)


def _mlp_case() -> Case:
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(16, 12)), rng.normal(size=(16, 3))
    w1, w2 = rng.normal(size=(12, 8)) * 0.3, rng.normal(size=(8, 3)) * 0.3
    data = {"X": x.astype(np.float32), "Y": y.astype(np.float32)}
    return Case(mlp.mlp, (w1.astype(np.float32), w2.astype(np.float32)), data, 0.01)


def _curve_fit_case() -> Case:
    t, y = curve_fit.synthetic(n=300)
    return Case(curve_fit.curve_fit, curve_fit.START, {"t": t, "y": y}, 0.01)


CASES = {
    "scalar": lambda: Case(rosenbrock.rosenbrock, (-1.2, 1.0), {}, 1e-3),
    "per_sample": _curve_fit_case,
    "matrix": _logistic_case,
    "matrix_float32": _mlp_case,
}


def _settings(optimizer: str, lr: float) -> dict:
    return {"lr": lr, **HYPER[optimizer]}


def _float64(problem: symgen.Problem) -> symgen.Problem:
    p = problem
    return symgen.Problem(p.loss, p.params, p.data, reduce=p.reduce, binary=p.binary, name=p.name)


@functools.cache
def _case(kind: str) -> Case:
    return CASES[kind]()


@functools.cache
def _module(kind: str, backend: str, optimizer: str | None):
    case = _case(kind)
    baked = _settings(optimizer, case.lr) if optimizer else {}
    if backend == "cuda":
        with fake_cupy_installed():
            return symgen.compile(case.problem, "cuda", optimizer=optimizer, **baked)
    return symgen.compile(case.problem, backend, optimizer=optimizer, **baked)


def _copy(values) -> list:
    return [np.array(v) if isinstance(v, np.ndarray) else float(v) for v in values]


def _host(value):
    """Device arrays (the emulator's) and tuples of them as NumPy arrays, floats as floats."""
    if isinstance(value, (tuple, list)):
        return tuple(_host(v) for v in value)
    if hasattr(value, "get"):
        return np.array(value.get())
    return np.array(value) if isinstance(value, np.ndarray) else value


@functools.cache
def _reference(kind: str, optimizer: str) -> list[tuple]:
    """(loss, params, state) after each step: the definition's update in float64 on the
    gradients of the float64 NumPy module."""
    case = _case(kind)
    module = symgen.compile(_float64(case.problem))
    data = {k: np.asarray(v, dtype=np.float64) for k, v in case.data.items()}
    params = [np.array(p, dtype=np.float64) if np.ndim(p) else float(p) for p in case.params]
    update = Updater(optimizer, _settings(optimizer, case.lr), params)
    out = []
    for _ in range(STEPS):
        loss, grads = module.loss_and_grad(*params, **data)
        params = list(update(params, grads))
        out.append((loss, tuple(_copy(params)), _host(update.state)))
    return out


def _step(module, backend: str, kind: str, optimizer: str, baked: bool):
    """The module's step for ``optimizer`` as a function of (params, state), and the
    params, data and initial state on the module's device."""
    case = _case(kind)
    device = (lambda v: module.cp.asarray(v)) if backend == "cuda" else np.array
    params = [device(p) if isinstance(p, np.ndarray) else float(p) for p in case.params]
    data = {k: device(v) for k, v in case.data.items()}
    function = getattr(module, STEP_FUNCTIONS[optimizer])
    keywords = {} if baked else _settings(optimizer, case.lr)
    if optimizer in ("momentum", "nesterov") and not baked:
        keywords["nesterov"] = optimizer == "nesterov"
    state_function = optimizers.STATE_FUNCTIONS[optimizer]
    state = getattr(module, state_function)(*params) if state_function else None

    def step(params, state):
        if state is None:
            loss, new = function(*params, **data, **keywords)
            return loss, list(new), None
        loss, new, state = function(*params, **data, state=state, **keywords)
        return loss, list(new), state

    return step, params, data, state


def _exact(kind: str, backend: str) -> bool:
    """Whether the backend computes the gradient as the reference does: the NumPy module
    in float64, and every backend's module of a scalar loss (plain Python floats)."""
    return kind == "scalar" or (backend == "numpy" and _case(kind).problem.dtype == "float64")


def _same(got, want, rtol: float, where: str) -> None:
    got, want = _host(got), _host(want)
    if want is None:
        assert got is None, where
    elif isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want), where
        for i, (a, b) in enumerate(zip(got, want, strict=True)):
            _same(a, b, rtol, f"{where}[{i}]")
    elif rtol == 0:
        assert np.array_equal(np.asarray(got), np.asarray(want)), where
        assert np.asarray(got).dtype == np.asarray(want).dtype or not np.ndim(want), where
    else:  # relative to the largest entry: rounding, not cancellation in small ones
        scale = float(np.max(np.abs(want))) or 1.0
        np.testing.assert_allclose(
            np.asarray(got, dtype=np.float64), want, rtol=0, atol=rtol * scale, err_msg=where
        )


def _needs(backend: str) -> None:
    if backend == "c" and not any(shutil.which(c) for c in ("cc", "gcc", "clang")):
        pytest.skip("no C compiler")
    if backend == "cuda" and not emulator_available():
        pytest.skip("the CUDA emulator needs g++")


PARAMETERS = [
    pytest.param(kind, backend, optimizer, baked, id=f"{kind}-{backend}-{optimizer}-{how}")
    for kind in CASES
    for backend in ("numpy", "c", "cuda")
    for optimizer in optimizers.OPTIMIZERS
    for baked, how in ((False, "keywords"), (True, "baked"))
]


@pytest.mark.parametrize(("kind", "backend", "optimizer", "baked"), PARAMETERS)
def test_steps_follow_the_reference(kind, backend, optimizer, baked):
    _needs(backend)
    module = _module(kind, backend, optimizer if baked else None)
    step, params, _, state = _step(module, backend, kind, optimizer, baked)
    float32 = _case(kind).problem.dtype == "float32"
    rtol = 0.0 if _exact(kind, backend) else 1e-4 if float32 else 1e-10
    for k, (loss, want_params, want_state) in enumerate(_reference(kind, optimizer)):
        got_loss, params, state = step(params, state)
        where = f"step {k + 1}"
        _same(got_loss, loss, rtol, f"{where}: loss")
        _same(tuple(params), want_params, rtol, f"{where}: params")
        _same(state, want_state, rtol, f"{where}: state")


@pytest.mark.parametrize(("kind", "backend", "optimizer", "baked"), PARAMETERS)
def test_update_is_the_definition_bit_for_bit(kind, backend, optimizer, baked):
    _needs(backend)
    module = _module(kind, backend, optimizer if baked else None)
    step, params, data, state = _step(module, backend, kind, optimizer, baked)
    mine = _copy(_host(tuple(params)))
    update = Updater(optimizer, _settings(optimizer, _case(kind).lr), mine)
    for k in range(STEPS):
        _, grads = module.loss_and_grad(*params, **data)
        mine = list(update(mine, _copy(_host(grads))))
        _, params, state = step(params, state)
        _same(tuple(params), tuple(mine), 0.0, f"step {k + 1}: params")
        _same(state, update.state, 0.0, f"step {k + 1}: state")


def test_cuda_sgd_baked_is_valid_python():
    """It used to print ``def sgd_step(w, X, t, *, ):``, a SyntaxError."""
    source = symgen.generate(logistic.logistic, "cuda", optimizer="sgd")
    compile(source, "logistic_cuda.py", "exec")
    assert "def sgd_step(w, X, t):" in source


def test_array_updates_reuse_the_gradient_buffer():
    """The NumPy module's Adam on an array: augmented assignments and ``out=`` into the
    gradient (the rule's scratch), no temporaries beyond one product per ``+=``."""
    source = symgen.generate(mlp.mlp)
    body = source.split("def adam_step(")[1].split("    return ")[0]
    lines = [line.strip() for line in body.splitlines() if "W1" in line and "=" in line]
    assert lines[-11:] == [
        "_m_W1 *= beta1",
        "_m_W1 += (1.0 - beta1)*grad_W1",
        "grad_W1 *= grad_W1",
        "_s_W1 *= beta2",
        "_s_W1 += (1.0 - beta2)*grad_W1",
        "np.multiply(_s_W1, _c2, out=grad_W1)",
        "np.sqrt(grad_W1, out=grad_W1)",
        "grad_W1 += eps",
        "np.divide(_m_W1, grad_W1, out=grad_W1)",
        "grad_W1 *= _c1",
        "W1 -= grad_W1",
    ]
