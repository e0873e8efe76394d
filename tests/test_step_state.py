"""Step functions check the optimizer state before anything changes (issue 15): a state
entry of the wrong shape, dtype or kind is an error, and parameters and state stay as they
were. On CUDA a (1,) moment for a (1, 4) parameter used to be written past its end."""

import numpy as np
import pytest
import sympy as sp

import symgen
from examples import rosenbrock
from symgen.testing import fake_cupy_installed

N, D = sp.symbols("N D", integer=True, positive=True)
X = sp.MatrixSymbol("X", N, D)
W = sp.MatrixSymbol("W", D, 4)
LOSS = symgen.sum(symgen.square(X * W)) / N
PROBLEM = symgen.Problem(LOSS, params=[W], data=[X], name="state_check")


def _arrays(xp):
    rng = np.random.default_rng(0)
    return xp.asarray(rng.normal(size=(1, 4))), xp.asarray(rng.normal(size=(5, 1)))


def _bad_states(m, w, xp):
    good_m, good_s = m.adam_state(w)[1:]
    yield "adam_step", (0, (xp.zeros((1,)),), good_s), ValueError
    yield "adam_step", (0, good_m, (xp.zeros((2, 4)),)), ValueError
    yield "adam_step", (0, good_m, (xp.zeros((1, 4), dtype=np.float32),)), ValueError
    yield "adam_step", (0, good_m), TypeError
    yield "adam_step", (-1, good_m, good_s), TypeError
    yield "adam_step", (0, [good_m[0]], good_s), TypeError
    yield "momentum_step", (xp.zeros((2, 4)),), ValueError
    yield "momentum_step", (np.zeros((1, 4)).tolist(),), ValueError


def _check(m, xp, to_host):
    w, x = _arrays(xp)
    for step, state, error in _bad_states(m, w, xp):
        before = to_host(w).copy()
        kwargs = {"lr": 0.1} if step == "adam_step" else {"lr": 0.1, "momentum": 0.9}
        with pytest.raises(error, match="state"):
            getattr(m, step)(w, X=x, state=state, **kwargs)
        np.testing.assert_array_equal(to_host(w), before)  # nothing changed


@pytest.mark.parametrize("backend", ["numpy", "c"])
def test_bad_state_is_refused_before_the_step(backend):
    _check(symgen.compile(PROBLEM, backend), np, lambda a: a)


def test_bad_state_is_refused_on_cuda():
    with fake_cupy_installed():
        import cupy as cp

        m = symgen.compile(PROBLEM, "cuda")
        _check(m, cp, lambda a: a.get())
        w, x = _arrays(cp)
        moment = cp.zeros((1, 8))[:, ::2]  # the right shape, not C-contiguous
        with pytest.raises(ValueError, match="C-contiguous"):
            m.momentum_step(w, X=x, state=(moment,), lr=0.1, momentum=0.9)


def test_scalar_steps_refuse_a_bad_state_without_a_check():
    """A step on floats updates nothing in place, and its own arithmetic and unpacking
    refuse a wrong state: no separate check costs its microsecond steps anything."""
    m = symgen.compile(rosenbrock.rosenbrock)
    assert not hasattr(m, "_check_state")
    with pytest.raises(TypeError):
        m.momentum_step(1.0, 2.0, state=("0", 0.0), lr=1e-3, momentum=0.9)
    with pytest.raises(ValueError):
        m.adam_step(1.0, 2.0, state=(0, (0.0, 0.0)), lr=1e-3)
    loss, params, state = m.adam_step(1.0, 2.0, state=m.adam_state(1.0, 2.0), lr=1e-3)
    assert state[0] == 1 and len(params) == 2
