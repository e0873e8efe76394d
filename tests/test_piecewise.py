"""Piecewise losses (issue 17 items 1 and 7): the losses as their libraries document them,
against their closed forms, HIPS autograd and central differences, at ordinary inputs and
at raw predictions of +-1000, in the NumPy, C and CUDA (emulated) backends; conditions and
boundaries as SymPy decides them; no branch that does not hold computes anything (no
warning, no NaN: the JAX ``where`` trap)."""

from __future__ import annotations

import shutil
import warnings

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
import sympy as sp

import symgen
from symgen.cli.show import text as show_text
from tests.gradcheck import central_differences

a, b, x, y, t = sp.symbols("a b x y t")
z = a * x + b  # the raw prediction of a linear model

BACKENDS = [
    "numpy",
    pytest.param(
        "c",
        marks=pytest.mark.skipif(
            not any(shutil.which(c) for c in ("cc", "gcc", "clang")), reason="no C compiler"
        ),
    ),
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(shutil.which("g++") is None, reason="the emulator needs g++"),
    ),
]

DELTA = sp.Rational(27, 20)  # 1.35, scikit-learn's HuberRegressor epsilon
QUANTILE = sp.Rational(3, 10)
BETA = sp.Rational(1, 2)
_d, _q, _beta = float(DELTA), float(QUANTILE), float(BETA)


def _huber(r):
    """The textbook Huber loss."""
    return sp.Piecewise((r**2 / 2, sp.Abs(r) <= DELTA), (DELTA * (sp.Abs(r) - DELTA / 2), True))


def _half_huber(y_true, raw):
    """scikit-learn's ``closs_half_huber`` as its Cython reads."""
    abserr = sp.Abs(y_true - raw)
    return sp.Piecewise((abserr**2 / 2, abserr <= DELTA), (DELTA * (abserr - DELTA / 2), True))


def _pinball(y_true, raw):
    """scikit-learn's ``closs_pinball_loss``."""
    return sp.Piecewise(
        (QUANTILE * (y_true - raw), y_true >= raw), ((1 - QUANTILE) * (raw - y_true), True)
    )


def _smooth_l1(raw, target):
    """torch.nn.functional.smooth_l1_loss(input, target, beta), elementwise."""
    d = raw - target
    return sp.Piecewise((d**2 / (2 * BETA), sp.Abs(d) < BETA), (sp.Abs(d) - BETA / 2, True))


def _kl_log_input(log_p, target):
    """torch.nn.functional.kl_div(input, target), elementwise: input holds log-probabilities,
    and a zero target contributes 0."""
    return sp.Piecewise((0, sp.Eq(target, 0)), (target * (sp.log(target) - log_p), True))


# name: (loss, data, loss per sample in NumPy, its derivative in the raw prediction z), each
# closed form written as its library computes it
LOSSES = {
    "huber": (
        _huber(y - z),
        [x, y],
        lambda zz, v: np.where(
            abs(v["y"] - zz) <= _d, (v["y"] - zz) ** 2 / 2, _d * (abs(v["y"] - zz) - _d / 2)
        ),
        lambda zz, v: np.where(abs(v["y"] - zz) <= _d, zz - v["y"], _d * np.sign(zz - v["y"])),
    ),
    "half_huber": (
        _half_huber(y, z),
        [x, y],
        lambda zz, v: np.where(
            abs(v["y"] - zz) <= _d,
            0.5 * (v["y"] - zz) ** 2,
            _d * (abs(v["y"] - zz) - 0.5 * _d),
        ),
        # cgradient_half_huber: diff if |diff| <= delta, else delta or -delta by its sign
        lambda zz, v: np.where(
            abs(zz - v["y"]) <= _d, zz - v["y"], np.where(zz - v["y"] >= 0, _d, -_d)
        ),
    ),
    "pinball": (
        _pinball(y, z),
        [x, y],
        lambda zz, v: np.where(v["y"] >= zz, _q * (v["y"] - zz), (1 - _q) * (zz - v["y"])),
        lambda zz, v: np.where(v["y"] >= zz, -_q, 1 - _q),  # cgradient_pinball_loss
    ),
    "smooth_l1": (
        _smooth_l1(z, y),
        [x, y],
        lambda zz, v: np.where(
            abs(zz - v["y"]) < _beta,
            0.5 * (zz - v["y"]) ** 2 / _beta,
            abs(zz - v["y"]) - 0.5 * _beta,
        ),
        lambda zz, v: np.where(
            abs(zz - v["y"]) < _beta, (zz - v["y"]) / _beta, np.sign(zz - v["y"])
        ),
    ),
    "kl_div": (
        _kl_log_input(z, t),
        [x, t],
        lambda zz, v: np.where(
            v["t"] == 0, 0.0, v["t"] * (np.log(np.where(v["t"] == 0, 1.0, v["t"])) - zz)
        ),
        lambda zz, v: -v["t"],
    ),
}


def _problem(name: str, dtype: str = "float64") -> symgen.Problem:
    loss, data, _, _ = LOSSES[name]
    return symgen.Problem(loss, params=[a, b], data=data, dtype=dtype, name=f"{name}_{dtype}")


_MODULES: dict = {}


def _module(problem: symgen.Problem, backend: str):
    key = (problem.spec_hash(), backend)
    if key not in _MODULES:
        if backend == "cuda":
            from symgen.testing import fakecupy
            from tests.test_cuda_backend import load

            _MODULES[key] = (load(problem, fakecupy), fakecupy)
        else:
            _MODULES[key] = (symgen.compile(problem, backend), None)
    return _MODULES[key]


def _host(v):
    return np.asarray(v.get() if hasattr(v, "get") else v, dtype=np.float64)


def evaluate(problem, backend, params, data):
    """(loss, gradients) of ``problem`` in ``backend``, with warnings as errors: no branch
    that does not hold may warn."""
    module, cp = _module(problem, backend)
    args = [*params, *data]
    if cp is not None:
        args = [cp.asarray(v) if isinstance(v, np.ndarray) else v for v in args]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, grads = module.loss_and_grad(*args)
    return float(loss), [_host(g) for g in grads]


def _data(rng, n=64):
    """Samples whose residuals at (a, b) = (0.5, 0) spread over every piece but stay 0.05
    or more from every kink (so that no central difference straddles one); 30 % of the
    targets ``t`` are 0."""
    values = {"x": rng.uniform(-1, 1, n)}
    r = rng.uniform(-3, 3, n)
    for kink in (0.0, _d, -_d, _beta, -_beta):
        r = np.where(abs(r - kink) < 0.05, r + 0.1, r)
    values["y"] = 0.5 * values["x"] + r
    values["t"] = np.where(rng.random(n) < 0.3, 0.0, rng.uniform(0.05, 1.0, n))
    return values


def _reference(name, params, values):
    """The closed form's loss and gradient (the chain rule through z = a*x + b)."""
    _, _, loss, dz = LOSSES[name]
    zz = params[0] * values["x"] + params[1]
    g = dz(zz, values)
    return float(np.sum(loss(zz, values))), [float(np.sum(g * values["x"])), float(np.sum(g))]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("offset", [0.0, 1000.0, -1000.0])
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_library_losses_against_closed_forms(name, offset, backend):
    """At ordinary raw predictions, and at z = +-1000 (residuals of about 1000)."""
    rng = np.random.default_rng()
    values = _data(rng)
    problem = _problem(name)
    params = (0.5, offset)
    data = [values[d.name] for d in problem.data]
    loss, grads = evaluate(problem, backend, params, data)
    want_loss, want_grads = _reference(name, params, values)
    assert np.isfinite(loss) and all(np.isfinite(g) for g in grads)
    assert loss == pytest.approx(want_loss, rel=1e-12)
    np.testing.assert_allclose(grads, want_grads, rtol=1e-7, atol=1e-9)


def _autograd_loss(name):
    """The loss of each library in autograd's NumPy, as an expert writes it with np.where
    (the log of a zero target kept out of the computation by a second where)."""

    def loss(params, v):
        zz = params[0] * v["x"] + params[1]
        if name in ("huber", "half_huber"):
            r = anp.abs(v["y"] - zz)
            return anp.sum(anp.where(r <= _d, 0.5 * r**2, _d * (r - 0.5 * _d)))
        if name == "pinball":
            return anp.sum(anp.where(v["y"] >= zz, _q * (v["y"] - zz), (1 - _q) * (zz - v["y"])))
        if name == "smooth_l1":
            d = zz - v["y"]
            small = anp.abs(d) < _beta
            return anp.sum(anp.where(small, 0.5 * d**2 / _beta, anp.abs(d) - 0.5 * _beta))
        safe = anp.where(v["t"] == 0, 1.0, v["t"])
        return anp.sum(anp.where(v["t"] == 0, 0.0, v["t"] * (anp.log(safe) - zz)))

    return loss


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("offset", [0.0, 1000.0, -1000.0])
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_library_losses_against_autograd_and_central_differences(name, offset, backend):
    rng = np.random.default_rng()
    values = _data(rng)
    problem = _problem(name)
    params = np.array([0.5, offset]) + rng.uniform(-0.01, 0.01, 2)  # residuals off kinks
    data = [values[d.name] for d in problem.data]
    loss, grads = evaluate(problem, backend, params, data)
    reference = _autograd_loss(name)
    assert loss == pytest.approx(float(reference(params, values)), rel=1e-12)
    np.testing.assert_allclose(grads, autograd.grad(reference)(params, values), rtol=1e-7)
    numpy_module, _ = _module(problem, "numpy")
    fd = central_differences(lambda *p: numpy_module.loss(*p, *data), params)
    # the stencil's rounding error, eps*|loss|/step: at offsets of 1000 the loss is ~1e5
    # and a gradient entry that sums terms of both signs is ~1e-2 (seen: 1.2e-8 apart)
    rounding = 16 * np.finfo(float).eps * abs(loss) / 1e-3
    np.testing.assert_allclose(grads, fd, rtol=1e-7, atol=max(1e-8, rounding))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_float32_against_float64(name, backend):
    rng = np.random.default_rng()
    values = _data(rng, n=300)
    params = (0.5, 0.0)
    single = [values[d.name].astype(np.float32) for d in _problem(name).data]
    loss, grads = evaluate(_problem(name, "float32"), backend, params, single)
    want_loss, want_grads = evaluate(
        _problem(name), "numpy", params, [d.astype(np.float64) for d in single]
    )
    assert loss == pytest.approx(want_loss, rel=1e-5)
    np.testing.assert_allclose(grads, want_grads, rtol=1e-4, atol=1e-4)


# -- the where trap: a branch that does not hold computes nothing ---------------------------

TRAPS = {
    # sqrt where z <= 0, and its derivative 1/(2*sqrt(z)) at z = 0, must not be computed
    "sqrt": sp.Piecewise((sp.sqrt(z), z > 0), (0, True)),
    # three pieces: a log in two of them, a later condition
    "logs": sp.Piecewise((sp.log(z), z > 1), (sp.log(-z), z < -1), (z**2, True)),
    # the KL, with its zero targets: t*log(t/p) is 0*log(0) = NaN there
    "kl": sp.Piecewise((0, sp.Eq(t, 0)), (t * sp.log(t / sp.exp(z)), True)),
    # a function of a Piecewise: sqrt(0) outside, whose derivative would be inf*0
    "sqrt_of": sp.sqrt(sp.Piecewise((z, z > 0), (0, True))),
    # a division by a data value that is 0 where the branch does not hold
    "ratio": sp.Piecewise((z / x, sp.Ne(x, 0)), (z, True)),
}


def _trap_reference(name, p, v):
    """Loss and dloss/dz per sample, by cases in NumPy (each case computed where it holds)."""
    zz = p[0] * v["x"] + p[1]
    out, dz = np.zeros_like(zz), np.zeros_like(zz)
    if name in ("sqrt", "sqrt_of"):
        pos = zz > 0
        out[pos], dz[pos] = np.sqrt(zz[pos]), 0.5 / np.sqrt(zz[pos])
    elif name == "logs":
        hi, lo = zz > 1, zz < -1
        mid = ~(hi | lo)
        out[hi], dz[hi] = np.log(zz[hi]), 1 / zz[hi]
        out[lo], dz[lo] = np.log(-zz[lo]), 1 / zz[lo]
        out[mid], dz[mid] = zz[mid] ** 2, 2 * zz[mid]
    elif name == "kl":
        nz = v["t"] != 0
        out[nz], dz[nz] = v["t"][nz] * (np.log(v["t"][nz]) - zz[nz]), -v["t"][nz]
    else:
        nz = v["x"] != 0
        out[nz], dz[nz] = zz[nz] / v["x"][nz], 1 / v["x"][nz]
        out[~nz], dz[~nz] = zz[~nz], 1.0
    return float(np.sum(out)), [float(np.sum(dz * v["x"])), float(np.sum(dz))]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(TRAPS))
def test_branches_that_do_not_hold_compute_nothing(name, backend):
    rng = np.random.default_rng()
    n = 200
    v = {
        # z = 2*x - 1 takes every piece, exactly 0 (the sqrt's boundary) and +-1 included
        "x": np.concatenate([rng.uniform(-3, 3, n - 4), [0.5, 0.0, 1.0, 0.25]]),
        "t": np.where(rng.random(n) < 0.3, 0.0, rng.uniform(0.05, 1.0, n)),
    }
    problem = symgen.Problem(
        TRAPS[name], params=[a, b], data=[s for s in (x, t) if TRAPS[name].has(s)], name=name
    )
    params = (2.0, -1.0)
    loss, grads = evaluate(problem, backend, params, [v[d.name] for d in problem.data])
    want_loss, want_grads = _trap_reference(name, params, v)
    assert np.isfinite(loss) and np.all(np.isfinite(grads))
    assert loss == pytest.approx(want_loss, rel=1e-12)
    np.testing.assert_allclose(grads, want_grads, rtol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
def test_scalar_losses_compute_only_the_branch_that_holds(backend):
    """Scalar losses run on Python floats, where math.sqrt(-1) and math.log(0) raise."""
    u = sp.Symbol("u")
    loss = sp.Piecewise((sp.sqrt(u) + sp.log(u), u > 0), (u**2 / 2, True)) + u
    problem = symgen.Problem(loss, params=[u], name="scalar_trap")
    for at in (-2.0, 0.0, 0.25, 3.0):
        value, (g,) = evaluate(problem, backend, (at,), [])
        exact = {u: sp.nsimplify(at)}
        assert value == pytest.approx(float(loss.subs(exact)), rel=1e-14)
        assert g == pytest.approx(float(sp.diff(loss, u).subs(exact)), rel=1e-14)


# -- conditions, boundaries -----------------------------------------------------------------

w = a * x
CONDITIONS = {
    "lt": w < 1,
    "le": w <= 1,
    "gt": w > 1,
    "ge": w >= 1,
    "eq": sp.Eq(w, 1),
    "ne": sp.Ne(w, 1),
    "and_": (w > 0) & (y < sp.Rational(1, 2)),
    "or_": (w > 1) | sp.Eq(y, 0),
    "not_": ~(w < 1),
    "not_and": ~((w > 0) & (y > 0)),
    "ite": sp.ITE(y > 0, w > 1, w < -1),
    "xor": sp.Xor(w > 0, y > 0),
    "implies": sp.Implies(y > 0, w >= 1),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(CONDITIONS))
def test_conditions_hold_where_sympy_says(name, backend):
    """Each condition at points on both sides of it and on its boundary (a*x == 1, y == 0):
    the value and the derivative of the piece SymPy picks."""
    loss = sp.Piecewise((w**2 + y, CONDITIONS[name]), (3 * w - y, True))
    problem = symgen.Problem(loss, params=[a], data=[x, y], name=f"cond_{name}")
    xs = np.array([1.0, 0.5, 2.0, -1.0, 0.0, 3.0, -2.0, 1.0, -0.5])
    ys = np.array([0.0, 1.0, -1.0, 0.3, 0.7, -0.2, 0.0, 0.5, -1.0])
    value, (g,) = evaluate(problem, backend, (1.0,), [xs, ys])
    points = [
        {a: 1, x: sp.nsimplify(xv), y: sp.nsimplify(yv)} for xv, yv in zip(xs, ys, strict=True)
    ]
    want = sum(loss.subs(point) for point in points)
    dwant = sum(sp.diff(loss, a).subs(point) for point in points)
    assert value == pytest.approx(float(want), rel=1e-14, abs=1e-14)
    assert g == pytest.approx(float(dwant), rel=1e-14, abs=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_at_a_boundary_the_first_piece_that_holds(backend):
    """A jump at x = 1: the first piece whose condition holds gives value and gradient."""
    u = sp.Symbol("u")
    first = sp.Piecewise((2 * u * x, u * x >= 1), (u**2 * x**2 + 5, True))
    second = sp.Piecewise((u**2 * x**2 + 5, u * x < 1), (2 * u * x, True))
    for i, loss in enumerate((first, second)):
        problem = symgen.Problem(loss, params=[u], data=[x], name=f"jump{i}")
        value, (g,) = evaluate(problem, backend, (1.0,), [np.array([1.0, 0.5])])
        assert value == pytest.approx(2.0 + 5.25)  # x = 1: 2*u*x; x = 0.5: u**2*x**2 + 5
        assert g == pytest.approx(2.0 + 0.5)


def test_piecewise_and_min_max_abs_spellings_agree():
    """Huber as a Piecewise and as Min/Abs (its best spelling before Piecewise)."""
    r = y - z
    m = sp.Min(sp.Abs(r), DELTA)
    by_min = symgen.compile(symgen.Problem(m * (sp.Abs(r) - m / 2), [a, b], [x, y], name="min"))
    by_cases = symgen.compile(_problem("huber"))
    values = _data(np.random.default_rng())
    for params in ((0.5, 0.0), (0.5, 1000.0), (0.3, -2.0)):
        loss, grads = by_cases.loss_and_grad(*params, values["x"], values["y"])
        want, want_grads = by_min.loss_and_grad(*params, values["x"], values["y"])
        assert loss == pytest.approx(want, rel=1e-13)
        np.testing.assert_allclose(grads, want_grads, rtol=1e-12)


# -- matrix losses: Piecewise inside an elementwise function ---------------------------------


def _sqrt_where_positive(u):
    """sqrt(u) where u > 0, else 0, as autograd needs it: the sqrt of a safe input (the
    double where), or its gradient is NaN where u <= 0."""
    positive = u > 0
    return anp.sum(anp.where(positive, anp.sqrt(anp.where(positive, u, 1.0)), 0.0))


M, D, K = sp.symbols("M D K", integer=True, positive=True)
X, W, Y = sp.MatrixSymbol("X", M, D), sp.MatrixSymbol("W", D, K), sp.MatrixSymbol("Y", M, K)
C = sp.MatrixSymbol("c", 1, K)
delta = sp.Symbol("delta")
_z = sp.Symbol("z")
MATRIX = {
    # Huber of every residual, delta a parameter too
    "huber": (
        symgen.sum(
            symgen.elementwise(
                sp.Lambda(
                    _z,
                    sp.Piecewise(
                        (_z**2 / 2, sp.Abs(_z) <= delta), (delta * (sp.Abs(_z) - delta / 2), True)
                    ),
                ),
                X * W - Y,
            )
        ),
        [W, delta],
        lambda v: anp.sum(
            anp.where(
                anp.abs(v["X"] @ v["W"] - v["Y"]) <= v["delta"],
                0.5 * (v["X"] @ v["W"] - v["Y"]) ** 2,
                v["delta"] * (anp.abs(v["X"] @ v["W"] - v["Y"]) - 0.5 * v["delta"]),
            )
        ),
    ),
    # a sqrt of the residual plus a row bias, 0 where it is not positive
    "sqrt": (
        symgen.sum(
            symgen.elementwise(
                lambda u: sp.Piecewise((sp.sqrt(u), u > 0), (0, True)), X * W - Y + C
            )
        ),
        [W, C],
        lambda v: _sqrt_where_positive(v["X"] @ v["W"] - v["Y"] + v["c"]),
    ),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(MATRIX))
def test_matrix_piecewise_against_autograd_and_differences(name, backend):
    loss, params, reference = MATRIX[name]
    problem = symgen.Problem(loss, params=params, data=[X, Y], name=f"matrix_{name}")
    rng = np.random.default_rng()
    values = {
        "X": rng.standard_normal((23, 3)),
        "W": rng.standard_normal((3, 4)) * 0.5,
        "c": rng.standard_normal((1, 4)) * 0.1,
        "delta": 0.8,
    }
    # residuals on both sides of each kink (0, +-delta) and 0.1 or more away from it, so
    # that no central difference straddles one (nor meets the sqrt's steep start)
    r = rng.choice([-1.0, 1.0], (23, 4)) * rng.uniform(0.1, 0.7, (23, 4))
    r = r + rng.choice([0.0, 1.0], (23, 4)) * np.sign(r) * 0.8  # beyond delta, for some
    bias = values["c"] if name == "sqrt" else 0.0  # (the Huber loss has none)
    values["Y"] = values["X"] @ values["W"] + bias - r
    order = [p.name for p in params] + ["X", "Y"]
    params_values = [values[n] for n in order[:-2]]
    value, grads = evaluate(problem, backend, params_values, [values["X"], values["Y"]])
    assert value == pytest.approx(float(reference(values)), rel=1e-12)
    numpy_module, _ = _module(problem, "numpy")
    for p, g in zip(params, grads, strict=True):

        def f(q, p=p):
            return reference({**values, p.name: q})

        np.testing.assert_allclose(g, autograd.grad(f)(values[p.name]), rtol=1e-7, atol=1e-12)
        flat = np.ravel(values[p.name]).copy()

        def loss_of(*entries, p=p):
            vals = {**values, p.name: np.reshape(np.array(entries), np.shape(values[p.name]))}
            return numpy_module.loss(*[vals[n] for n in order])

        # a small step: the sqrt's branch bends steeply near its start (residuals of 0.1),
        # where the fourth-order stencil's error at the default step reached 2e-8
        fd = central_differences(loss_of, flat, h=1e-4)
        np.testing.assert_allclose(np.ravel(g), fd, rtol=1e-7, atol=1e-9)


# -- the generated code ------------------------------------------------------------------


def test_safe_branches_are_selected_and_failing_ones_masked():
    """Huber's branches are safe anywhere: one np.where, no masks. The KL's log is computed
    on the elements where the target is not 0 only (``t*log(t*exp(-z))`` is the stable
    ``xlogy(t, t) - z*t``, whose log is still not safe anywhere)."""
    huber = symgen.generate(_problem("huber"))
    assert "np.where(" in huber and "_mask" not in huber
    kl = symgen.generate(symgen.Problem(TRAPS["kl"], params=[a, b], data=[x, t], name="kl"))
    assert "[_rest] = _xlogy(_t[_rest], _t[_rest])" in kl
    functions = kl.split("\ndef loss(", 1)[1]  # the module's functions, past its helpers
    assert not [
        line for line in functions.splitlines() if "np.where(" in line and "np.log(" in line
    ]


def test_common_subexpressions_stay_inside_their_branch():
    """The value's sqrt(u) and the gradient's 1/(2*sqrt(u)) share sqrt(u); computed before
    the conditional it would raise at u < 0 (math.sqrt)."""
    u = sp.Symbol("u")
    source = symgen.generate(symgen.Problem(sp.Piecewise((sp.sqrt(u), u > 0), (0, True)), [u]))
    body = source.split("def loss_and_grad", 1)[1].split("def grad", 1)[0]
    assert "= math.sqrt(" not in body
    assert "math.sqrt(u) if" in body


def test_show_writes_cases():
    shown = show_text(_problem("huber"))
    assert "ℓ = { (-a*x - b + y)**2/2 if Abs(a*x + b - y) <= 27/20; " in shown
    assert "otherwise }" in shown


def test_a_factor_of_every_piece_is_taken_out():
    """Both partials of the Huber loss of a line are Piecewise with the factor x (or 1) in
    every piece: taken out, one np.where serves both, and x's sum is a dot product."""
    source = symgen.generate(_problem("huber"))
    body = source.split("def _loss_and_grad", 1)[1].split("def grad", 1)[0]
    assert body.count("np.where(") == 2  # the loss's, and the gradients' shared one
    assert "np.dot(_x, " in body


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_pieces_that_are_numbers_keep_the_dtype(dtype, backend):
    """The gradient of a ramp is a Piecewise of numbers, an array of the problem's dtype."""
    ramp = symgen.elementwise(lambda u: sp.Piecewise((u, u > 0), (0, True)), X * W - Y)
    problem = symgen.Problem(
        symgen.sum(ramp), params=[W], data=[X, Y], dtype=dtype, name=f"ramp_{dtype}"
    )
    rng = np.random.default_rng()
    xs, ws = rng.standard_normal((9, 3)).astype(dtype), rng.standard_normal((3, 4)).astype(dtype)
    ys = rng.standard_normal((9, 4)).astype(dtype)
    module, cp = _module(problem, backend)
    args = (ws, xs, ys) if cp is None else tuple(cp.asarray(v) for v in (ws, xs, ys))
    _, (g,) = module.loss_and_grad(*args)
    g = g.get() if hasattr(g, "get") else g
    assert g.dtype == np.dtype(dtype)
    r = xs.astype(float) @ ws.astype(float) - ys
    np.testing.assert_allclose(
        g, xs.T.astype(float) @ (r > 0), rtol=1e-5 if dtype == "float32" else 1e-12
    )
