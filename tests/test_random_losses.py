"""Random scalar and per-sample losses: generated gradients against independent references.

Each random loss is differentiated by symgen (reverse mode, CSE, hoisting,
sum splitting, printing) and checked against SymPy's own ``diff`` evaluated
by ``lambdify`` (no CSE, no symgen code) and against central differences.
"""

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import symgen
from tests.gradcheck import central_differences

a, b, c = PARAMS = sp.symbols("a b c")
t, y = DATA = sp.symbols("t y")

# Functions applied to bounded arguments, so every value stays finite.
UNARY = [
    sp.sin,
    sp.cos,
    sp.tanh,
    symgen.sigmoid,
    symgen.softplus,
    lambda z: sp.exp(sp.sin(z)),
    lambda z: sp.log(1 + z**2),
    lambda z: sp.sqrt(1 + z**2),
    lambda z: sp.atan(z),
    lambda z: z**2,
    lambda z: z**3,
]


def trees(leaves):
    base = st.one_of(st.sampled_from(leaves), st.integers(-3, 3).map(sp.Integer))
    return st.recursive(
        base,
        lambda sub: st.one_of(
            st.tuples(st.sampled_from(UNARY), sub).map(lambda fa: fa[0](fa[1])),
            st.tuples(sub, sub).map(lambda xy: xy[0] + xy[1]),
            st.tuples(sub, sub).map(lambda xy: xy[0] * xy[1]),
            st.tuples(sub, sub).map(lambda xy: xy[0] - xy[1]),
            st.tuples(sub, sub).map(lambda xy: xy[0] / (2 + sp.cos(xy[1]))),
        ),
        max_leaves=10,
    )


def reference(loss, params, data, values, samples):
    """Loss and gradient by SymPy's diff + lambdify, summed over samples."""
    args = [*params, *data]
    modules = [
        {"sigmoid": lambda z: 1 / (1 + np.exp(-z)), "softplus": lambda z: np.logaddexp(0, z)},
        "numpy",
    ]
    f = sp.lambdify(args, loss, modules)
    grads = [sp.lambdify(args, sp.diff(loss, p), modules) for p in params]
    full = [*values, *samples]
    total = lambda fn: float(
        np.sum(np.broadcast_to(fn(*full), samples[0].shape if samples else ()))
    )
    return total(f), [total(g) for g in grads]


SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=False
)


@SETTINGS
@given(expr=trees([a, b, c]), point=st.lists(st.floats(-1.5, 1.5), min_size=3, max_size=3))
def test_random_scalar_loss(expr, point):
    params = [p for p in PARAMS if p in expr.free_symbols]
    if not params:
        return
    problem = symgen.Problem(expr, params=params, name="rand")
    module = symgen.compile(problem)
    values = [float(v) for v in point[: len(params)]]
    loss, grads = module.loss_and_grad(*values)
    ref_loss, ref_grads = reference(expr, params, [], values, [])
    assert loss == pytest.approx(ref_loss, rel=1e-10, abs=1e-12)
    np.testing.assert_allclose(grads, ref_grads, rtol=1e-9, atol=1e-11)
    fd = central_differences(module.loss, values)
    np.testing.assert_allclose(grads, fd, rtol=1e-6, atol=1e-7)


@SETTINGS
@given(
    expr=trees([a, b, c, t, y, a * t, b * y]),
    point=st.lists(st.floats(-1.5, 1.5), min_size=3, max_size=3),
    n=st.integers(1, 300),
    seed=st.integers(0, 2**31),
    reduce=st.sampled_from(["sum", "mean"]),
)
def test_random_per_sample_loss(expr, point, n, seed, reduce):
    params = [p for p in PARAMS if p in expr.free_symbols]
    data = [d for d in DATA if d in expr.free_symbols]
    if not params or not data:
        return
    module = symgen.compile(
        symgen.Problem(expr, params=params, data=data, reduce=reduce, name="rand_ps")
    )
    rng = np.random.default_rng(seed)
    samples = [rng.uniform(-1.5, 1.5, n) for _ in data]
    values = [float(v) for v in point[: len(params)]]
    loss, grads = module.loss_and_grad(*values, *samples)
    ref_loss, ref_grads = reference(expr, params, data, values, samples)
    scale = n if reduce == "mean" else 1
    assert loss == pytest.approx(ref_loss / scale, rel=1e-9, abs=1e-11)
    np.testing.assert_allclose(grads, np.array(ref_grads) / scale, rtol=1e-8, atol=1e-10)
