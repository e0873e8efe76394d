"""Generated optimizers: momentum (classical, Nesterov) and Adam against hand-written updates."""

import numpy as np
import pytest

import symgen
from examples import curve_fit, mlp, rosenbrock


def reference_momentum(params, grads, velocities, lr, mu, nesterov):
    out_p, out_v = [], []
    for p, g, v in zip(params, grads, velocities, strict=True):
        v = mu * v - lr * g
        out_p.append(p + (mu * v - lr * g if nesterov else v))
        out_v.append(v)
    return out_p, out_v


def reference_adam(params, grads, m, s, k, lr, b1=0.9, b2=0.999, eps=1e-8):
    out = []
    for i, (p, g) in enumerate(zip(params, grads, strict=True)):
        m[i] = b1 * m[i] + (1 - b1) * g
        s[i] = b2 * s[i] + (1 - b2) * g * g
        mhat, shat = m[i] / (1 - b1**k), s[i] / (1 - b2**k)
        out.append(p - lr * mhat / (np.sqrt(shat) + eps))
    return out


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_matches_reference_scalar_and_matrix(nesterov):
    rosen = symgen.compile(rosenbrock.rosenbrock)
    params, state = (-1.0, 1.5), rosen.momentum_state(-1.0, 1.5)
    ref_p, ref_v = [-1.0, 1.5], [0.0, 0.0]
    for _ in range(50):
        grads = rosen.grad(*ref_p)
        ref_p, ref_v = reference_momentum(ref_p, grads, ref_v, 1e-4, 0.9, nesterov)
        _, params, state = rosen.momentum_step(*params, state=state, lr=1e-4, nesterov=nesterov)
    np.testing.assert_allclose(params, ref_p, rtol=1e-12)
    np.testing.assert_allclose(state, ref_v, rtol=1e-12)

    net = symgen.compile(symgen.Problem(mlp.mlp.loss, mlp.mlp.params, mlp.mlp.data, name="m64"))
    x, y, w1, w2 = (a.astype(np.float64) for a in mlp.seed_data(m=16, n_i=12, n_h=8, n_o=3))
    ref_p, ref_v = [w1.copy(), w2.copy()], [np.zeros_like(w1), np.zeros_like(w2)]
    state = net.momentum_state(w1, w2)
    for _ in range(50):
        grads = net.grad(*ref_p, x, y)
        ref_p, ref_v = reference_momentum(ref_p, grads, ref_v, 1e-4, 0.9, nesterov)
        _, (n1, n2), state = net.momentum_step(
            w1, w2, x, y, state=state, lr=1e-4, nesterov=nesterov
        )
        assert n1 is w1 and n2 is w2  # in place
    np.testing.assert_allclose(w1, ref_p[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(w2, ref_p[1], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(state[0], ref_v[0], rtol=1e-12, atol=1e-12)


def test_adam_matches_reference_per_sample_and_matrix():
    fit = symgen.compile(curve_fit.curve_fit)
    t, y = curve_fit.synthetic(n=2000)
    params, state = curve_fit.START, fit.adam_state(*curve_fit.START)
    ref = list(curve_fit.START)
    m, s = [0.0] * 6, [0.0] * 6
    for k in range(1, 51):
        ref = reference_adam(ref, fit.grad(*ref, t, y), m, s, k, lr=0.01)
        _, params, state = fit.adam_step(*params, t, y, state=state, lr=0.01)
    np.testing.assert_allclose(params, ref, rtol=1e-12)
    assert state[0] == 50

    net = symgen.compile(symgen.Problem(mlp.mlp.loss, mlp.mlp.params, mlp.mlp.data, name="m64"))
    x, yy, w1, w2 = (a.astype(np.float64) for a in mlp.seed_data(m=16, n_i=12, n_h=8, n_o=3))
    ref = [w1.copy(), w2.copy()]
    m, s = [np.zeros_like(w1), np.zeros_like(w2)], [np.zeros_like(w1), np.zeros_like(w2)]
    state = net.adam_state(w1, w2)
    for k in range(1, 51):
        ref = reference_adam(ref, net.grad(*ref, x, yy), m, s, k, lr=1e-3)
        _, _, state = net.adam_step(w1, w2, x, yy, state=state, lr=1e-3)
    np.testing.assert_allclose(w1, ref[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(w2, ref[1], rtol=1e-12, atol=1e-12)


def test_rosenbrock_with_adam_reaches_the_minimum():
    rosen = symgen.compile(rosenbrock.rosenbrock)
    params = (2.0, 2.0)
    state = rosen.adam_state(*params)
    for _ in range(20000):
        _, params, state = rosen.adam_step(*params, state=state, lr=0.01)
    assert abs(params[0] - 1) < 1e-3 and abs(params[1] - 1) < 1e-3


def test_w3_adam_beats_sgd_after_300_steps():
    module = symgen.compile(mlp.mlp)
    sgd_history = mlp.train(module)
    x, y, w1, w2 = mlp.seed_data()
    state = module.adam_state(w1, w2)
    for _ in range(300):
        loss, _, state = module.adam_step(w1, w2, x, y, state=state, lr=0.01)
    assert module.loss(w1, w2, x, y) < sgd_history[-1]
    assert w1.dtype == np.float32 and state[1][0].dtype == np.float32


def test_steps_never_write_into_the_callers_data():
    import sympy as sp

    m = sp.Symbol("M", integer=True, positive=True)
    w, x = sp.MatrixSymbol("W", 3, m), sp.MatrixSymbol("X", m, 3)
    # the gradient is X.T itself: it must be copied before the step uses it as scratch
    module = symgen.compile(
        symgen.Problem(symgen.sum(sp.HadamardProduct(w, x.T)), params=[w], data=[x], name="al")
    )
    data = np.arange(6.0).reshape(2, 3)
    before = data.copy()
    weights = np.ones((3, 2))
    module.adam_step(weights, data, state=module.adam_state(weights))
    module.momentum_step(weights, data, state=module.momentum_state(weights), lr=0.1, nesterov=True)
    np.testing.assert_array_equal(data, before)
    assert module.grad(weights, data)[0] is not data
