"""Entries at integer indices (issue 17, item 5): with integer dimensions SymPy writes
``(r.T*r)[0, 0]`` out entry by entry (``X[0, 0]*w[0, 0] + ...``) before symgen sees it, and
users write ``w[0, 0]`` themselves. Each loss here is checked in the NumPy, C and (emulated)
CUDA backends against HIPS autograd and central differences on fresh random inputs (value,
gradient, hvp; the Hessian and a Newton step where the module has them), float32 against
float64, and against the same loss with symbolic dimensions where one exists. Over symbolic
dimensions SymPy writes ``[0, 0]`` of a product out as a ``Sum`` over dummy indices; those it
cannot turn back into the product (``(w.T*w)[0, 0]``) are read as index notation."""

from __future__ import annotations

import shutil

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
import sympy as sp
from sympy.matrices.expressions.matexpr import MatrixElement

import symgen
from symgen import SpecError
from symgen.compiler.optimize import Place
from symgen.compiler.pipeline import run
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

N, D = sp.symbols("N D", integer=True, positive=True)
X, y, w = sp.MatrixSymbol("X", 5, 3), sp.MatrixSymbol("y", 5, 1), sp.MatrixSymbol("w", 3, 1)
A = sp.MatrixSymbol("A", 3, 3)
XN, yN = sp.MatrixSymbol("X", N, 3), sp.MatrixSymbol("y", N, 1)
s = sp.MatrixSymbol("s", 1, 2)
b = sp.Symbol("b")
r = X * w - y


def _softplus(z):
    return anp.logaddexp(0, z)


# name: (loss, params, data, autograd reference over a dict of arrays, symbolic twin or None)
# The twin: (loss, params, data, sizes) with symbolic dimensions, the same numbers expected.
XS, yS, wS, AS = (
    sp.MatrixSymbol("X", N, D),
    sp.MatrixSymbol("y", N, 1),
    sp.MatrixSymbol("w", D, 1),
    sp.MatrixSymbol("A", D, D),
)
LOSSES = {
    "least_squares": (
        (r.T * r)[0, 0],
        [w],
        [X, y],
        lambda v: anp.sum((v["X"] @ v["w"] - v["y"]) ** 2),
        (((XS * wS - yS).T * (XS * wS - yS))[0, 0], [wS], [XS, yS]),
    ),
    "quadratic_form": (
        (w.T * A * w)[0, 0] / 2 - (y.T * X * w)[0, 0],
        [w],
        [A, X, y],
        lambda v: (v["w"].T @ v["A"] @ v["w"])[0, 0] / 2 - (v["y"].T @ v["X"] @ v["w"])[0, 0],
        ((wS.T * AS * wS)[0, 0] / 2 - (yS.T * XS * wS)[0, 0], [wS], [AS, XS, yS]),
    ),
    "mixed_entries_and_sums": (
        symgen.sum(symgen.softplus(XN * w))
        + b * symgen.sum(XN * w)
        + 3 * w[0, 0] ** 2
        - w[2, 0] * w[1, 0]
        + sp.log(1 + w[1, 0] ** 2)
        + b**2,
        [w, b],
        [XN],
        lambda v: (
            anp.sum(_softplus(v["X"] @ v["w"]))
            + v["b"] * anp.sum(v["X"] @ v["w"])
            + 3 * v["w"][0, 0] ** 2
            - v["w"][2, 0] * v["w"][1, 0]
            + anp.log(1 + v["w"][1, 0] ** 2)
            + v["b"] ** 2
        ),
        None,
    ),
    "data_entries_weigh_the_terms": (
        s[0, 0] * symgen.sum(symgen.square(XN * w - yN)) + s[0, 1] * symgen.sum(symgen.square(w)),
        [w],
        [XN, yN, s],
        lambda v: (
            v["s"][0, 0] * anp.sum((v["X"] @ v["w"] - v["y"]) ** 2)
            + v["s"][0, 1] * anp.sum(v["w"] ** 2)
        ),
        None,
    ),
    # entries inside an elementwise function: a per-row scale w[0, 0] and shift w[1, 0]
    "entries_inside_an_elementwise_function": (
        symgen.sum(
            (XN * w).applyfunc(lambda u: sp.log(1 + sp.exp(w[0, 0] * u - w[1, 0])))
            + symgen.elementwise(lambda u: (u - w[2, 0]) ** 2, yN)
        ),
        [w],
        [XN, yN],
        lambda v: anp.sum(
            _softplus(v["w"][0, 0] * (v["X"] @ v["w"]) - v["w"][1, 0])
            + (v["y"] - v["w"][2, 0]) ** 2
        ),
        None,
    ),
    # SymPy writes [0, 0] of a product over a symbolic dimension out as a Sum over dummy
    # indices; these it cannot turn back into the product, so they are read as index
    # notation: a ridge penalty, a norm inside a function, a norm of a product
    "ridge_penalty_as_an_entry": (
        symgen.sum(symgen.softplus(XS * wS))
        - symgen.sum(sp.HadamardProduct(yS, XS * wS))
        + sp.Rational(3, 10) * (wS.T * wS)[0, 0] / 2,
        [wS],
        [XS, yS],
        lambda v: (
            anp.sum(_softplus(v["X"] @ v["w"]) - v["y"] * (v["X"] @ v["w"]))
            + 0.3 * anp.sum(v["w"] ** 2) / 2
        ),
        None,
    ),
    "log_of_a_squared_norm": (
        sp.log(1 + (wS.T * wS)[0, 0]) + symgen.sum(symgen.square(XS * wS - yS)),
        [wS],
        [XS, yS],
        lambda v: anp.log(1 + anp.sum(v["w"] ** 2)) + anp.sum((v["X"] @ v["w"] - v["y"]) ** 2),
        None,
    ),
    "squared_norm_of_a_product": (
        ((XS * wS).T * (XS * wS))[0, 0] / 2 + symgen.sum(sp.HadamardProduct(yS, XS * wS)),
        [wS],
        [XS, yS],
        lambda v: anp.sum((v["X"] @ v["w"]) ** 2) / 2 + anp.sum(v["y"] * (v["X"] @ v["w"])),
        None,
    ),
    # the ridge normal equations' quadratic form: SymPy's Sum holds a KroneckerDelta (the
    # identity) beside a sum over N; its expanded terms turn back into products
    "ridge_quadratic_form_with_an_identity": (
        (wS.T * (XS.T * XS + 2 * sp.Identity(D)) * wS)[0, 0] - 2 * (yS.T * XS * wS)[0, 0],
        [wS],
        [XS, yS],
        lambda v: (
            (v["w"].T @ (v["X"].T @ v["X"] + 2 * anp.eye(3)) @ v["w"])[0, 0]
            - 2 * (v["y"].T @ v["X"] @ v["w"])[0, 0]
        ),
        None,
    ),
}
SIZES = {"N": 5, "D": 3}


def _shape(sym) -> tuple[int, ...]:
    if isinstance(sym, sp.MatrixSymbol):
        return tuple(SIZES[d.name] if d.is_Symbol else int(d) for d in sym.shape)
    return ()


def _values(symbols, rng) -> dict:
    values = {}
    for sym in symbols:
        v = rng.uniform(-1, 1, _shape(sym))
        if sym.name == "A":  # a symmetric positive definite A: the quadratic form's Hessian
            v = v @ v.T + 3 * np.eye(3)
        if sym.name == "s":  # positive weights
            v = np.abs(v) + 0.5
        values[sym.name] = float(v) if np.ndim(v) == 0 else v
    return values


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
        self.order = [x.name for x in (*problem.params, *problem.data)]

    def args(self, values):
        return [values[n] if np.ndim(values[n]) == 0 else self.put(values[n]) for n in self.order]

    def loss_and_grad(self, values):
        loss, grads = self.module.loss_and_grad(*self.args(values))
        return loss, [np.asarray(self.get(g)) for g in grads]

    def loss(self, values):
        return self.module.loss(*self.args(values))

    def hvp(self, values, directions):
        v = tuple(d if np.ndim(d) == 0 else self.put(d) for d in directions)
        return [np.asarray(self.get(h)) for h in self.module.hvp(*self.args(values), v=v)]


def _problem(name, dtype="float64"):
    loss, params, data, _, _ = LOSSES[name]
    return symgen.Problem(loss, params=params, data=data, name=name, dtype=dtype)


def _flat_reference(name, values):
    """The autograd reference as a function of the parameters flattened in PARAMS order."""
    _, params, _, reference, _ = LOSSES[name]
    shapes = [np.shape(values[p.name]) for p in params]

    def f(flat):
        at, parts = 0, {}
        for p, shape in zip(params, shapes, strict=True):
            size = int(np.prod(shape))
            parts[p.name] = flat[at] if not shape else anp.reshape(flat[at : at + size], shape)
            at += size
        return reference({**values, **parts})

    flat = np.concatenate([np.ravel(values[p.name]) for p in params])
    return f, flat


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_entries_against_autograd_and_central_differences(name, backend):
    _, params, data, reference, _ = LOSSES[name]
    module = Built(_problem(name), backend)
    values = _values((*params, *data), np.random.default_rng())
    value, grads = module.loss_and_grad(values)
    assert value == pytest.approx(float(reference(values)), rel=1e-12)
    f, flat = _flat_reference(name, values)
    expected = autograd.grad(f)(flat)
    got = np.concatenate([np.ravel(g) for g in grads])
    np.testing.assert_allclose(got, expected, rtol=1e-7, atol=1e-12)
    shapes = [np.shape(values[p.name]) for p in params]

    def loss_of(*entries):
        at, parts = 0, {}
        for p, shape in zip(params, shapes, strict=True):
            size = int(np.prod(shape))
            piece = np.array(entries[at : at + size])
            parts[p.name] = float(piece[0]) if not shape else piece.reshape(shape)
            at += size
        return module.loss({**values, **parts})

    np.testing.assert_allclose(got, central_differences(loss_of, flat), rtol=1e-7, atol=1e-8)
    for p, g in zip(params, grads, strict=True):
        assert g.shape == np.shape(values[p.name])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_hvp_against_autograd(name, backend):
    _, params, data, _, _ = LOSSES[name]
    module = Built(_problem(name), backend)
    rng = np.random.default_rng()
    values = _values((*params, *data), rng)
    directions = [rng.standard_normal(np.shape(values[p.name])) for p in params]
    directions = [float(d) if np.ndim(d) == 0 else d for d in directions]
    f, flat = _flat_reference(name, values)
    v = np.concatenate([np.ravel(d) for d in directions])
    expected = autograd.hessian(f)(flat) @ v
    got = np.concatenate([np.ravel(h) for h in module.hvp(values, directions)])
    np.testing.assert_allclose(got, expected, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS[:2])
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_hessian_and_newton_step_against_autograd(name, backend):
    _, params, data, _, _ = LOSSES[name]
    module = Built(_problem(name), backend)
    values = _values((*params, *data), np.random.default_rng())
    f, flat = _flat_reference(name, values)
    expected = autograd.hessian(f)(flat)
    np.testing.assert_allclose(
        module.module.hessian(*module.args(values)), expected, rtol=1e-7, atol=1e-10
    )
    loss, new = module.module.newton_step(*module.args(values))
    assert loss == pytest.approx(f(flat), rel=1e-12)
    moved = np.concatenate([np.ravel(p) for p in new])
    if np.linalg.eigvalsh(expected).min() > 0:  # else the step is damped until H + lam*I is
        step = np.linalg.solve(expected, autograd.grad(f)(flat))
        np.testing.assert_allclose(moved, flat - step, rtol=1e-7, atol=1e-9)
    else:
        assert np.all(np.isfinite(moved))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_float32_against_float64(name, backend):
    _, params, data, _, _ = LOSSES[name]
    values = _values((*params, *data), np.random.default_rng())
    single = Built(_problem(name, "float32"), backend)
    value64, grads64 = Built(_problem(name), backend).loss_and_grad(values)
    as32 = {k: v if np.ndim(v) == 0 else v.astype(np.float32) for k, v in values.items()}
    value32, grads32 = single.loss_and_grad(as32)
    assert value32 == pytest.approx(value64, rel=1e-5)
    for g32, g64 in zip(grads32, grads64, strict=True):
        assert g32.dtype == np.float32 or g32.ndim == 0  # a scalar's partial: a float
        np.testing.assert_allclose(g32, g64, rtol=1e-4, atol=1e-5)


TWINS = sorted(name for name, case in LOSSES.items() if case[4] is not None)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", TWINS)
def test_integer_dimensions_give_the_numbers_of_symbolic_ones(name, backend):
    """``(r.T*r)[0, 0]`` written out entry by entry computes what the 1 x 1 product of
    symbolic dimensions computes."""
    loss, params, data = LOSSES[name][4]
    twin = Built(symgen.Problem(loss, params=params, data=data, name=f"{name}_twin"), backend)
    module = Built(_problem(name), backend)
    _, own_params, own_data, _, _ = LOSSES[name]
    values = _values((*own_params, *own_data), np.random.default_rng())
    value, grads = module.loss_and_grad(values)
    twin_value, twin_grads = twin.loss_and_grad(values)
    assert value == pytest.approx(twin_value, rel=1e-12)
    for g, t in zip(grads, twin_grads, strict=True):
        np.testing.assert_allclose(g, t, rtol=1e-12, atol=1e-13)


def test_the_entries_of_a_parameter_are_placed_in_one_array():
    """The gradient of ``(r.T*r)[0, 0]`` with respect to w: three values placed at their
    entries by one step (no sum of three arrays of zeros with one entry each)."""
    program = run(_problem("least_squares")).grad_program
    places = [stmt for stmt in program.stmts if isinstance(stmt, Place)]
    assert len(places) == 1
    assert places[0].positions == ((0, 0), (1, 0), (2, 0)) and places[0].base == 0
    source = symgen.generate(_problem("least_squares"))
    assert "grad_w[[0, 1, 2], [0, 0, 0]] = (" in source
    assert "float(X[0, 1])" in source


def test_a_column_given_one_dimensional_keeps_its_shape():
    module = symgen.compile(_problem("least_squares"))
    rng = np.random.default_rng(5)
    x, target, weights = rng.standard_normal((5, 3)), rng.standard_normal(5), np.zeros(3)
    value, (g,) = module.loss_and_grad(weights, x, target)
    assert value == pytest.approx(np.sum(target**2))
    np.testing.assert_allclose(g, -2 * x.T @ target, rtol=1e-12)
    assert g.shape == (3,)


def test_gradients_and_show_print_the_entries():
    grads = symgen.gradients(_problem("mixed_entries_and_sums"))
    text = str(grads[w])
    assert "w[0, 0]" in text and "w[1, 0]" in text
    assert str(grads[b]) == "2*b + sum(X*w)"


def test_an_entry_outside_the_matrix_or_of_a_symbolic_dimension_is_refused():
    with pytest.raises(SpecError, match=r"w\[-1, 0\] is outside w, of shape \(3, 1\)"):
        symgen.Problem(w[-1, 0] + symgen.sum(X * w), [w], [X])
    # SymPy itself refuses w[3, 0]; an entry made without its check is refused by symgen
    beyond = sp.Basic.__new__(MatrixElement, w, sp.Integer(3), sp.Integer(0))
    with pytest.raises(SpecError, match=r"w\[3, 0\] is outside w"):
        symgen.Problem(beyond + symgen.sum(X * w), [w], [X])
    with pytest.raises(SpecError, match=r"X\[0, 1\] reads an entry of X, of shape \(N, 3\)"):
        symgen.Problem(XN[0, 1] * w[0, 0] + symgen.sum(XN * w), [w], [XN])


def test_a_product_over_a_symbolic_dimension_written_as_a_sum_says_what_to_write():
    mixed = XN * w - yN
    with pytest.raises(SpecError, match=r"pass the 1 x 1 product itself"):
        symgen.Problem((mixed.T * mixed)[0, 0], [w], [XN, yN])


@pytest.mark.parametrize("backend", BACKENDS[:2])
def test_residuals_and_jacobian_of_residuals_that_read_entries(backend):
    """A least-squares loss whose residuals read entries of the weights: forward mode takes
    an entry's tangent (a row of the weights' block) and the residuals' Jacobian is exact."""
    residual = X * w + symgen.ones(5) * (w[0, 0] ** 2 + b * w[2, 0]) - y
    problem = symgen.Problem(symgen.sum(symgen.square(residual)), [w, b], [X, y], name="lsq")
    module = symgen.compile(problem, backend)
    values = _values((w, b, X, y), np.random.default_rng())

    def residuals(flat):
        weights = anp.reshape(flat[:3], (3, 1))
        shift = weights[0, 0] ** 2 + flat[3] * weights[2, 0]
        return anp.ravel(values["X"] @ weights + shift - values["y"])

    flat = np.concatenate([np.ravel(values["w"]), [values["b"]]])
    args = (values["w"], values["b"], values["X"], values["y"])
    np.testing.assert_allclose(module.residuals(*args), residuals(flat), rtol=1e-12, atol=1e-14)
    jacobian = autograd.jacobian(residuals)(flat)
    np.testing.assert_allclose(module.jacobian(*args), jacobian, rtol=1e-12, atol=1e-14)
