"""Integer class labels (``symgen.take``): gathers, the scatter of their gradient, and the
checks on the labels, in every backend (CUDA through the CPU emulator).

The multinomial (softmax cross-entropy) loss is written as scikit-learn's
``HalfMultinomialLoss`` and torch's ``cross_entropy`` take their targets (integer labels),
and checked against its one-hot spelling and HIPS autograd, at ordinary logits and at
logits of +-1000 (``symgen.logsumexp`` is stable there).
"""

from __future__ import annotations

import shutil

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
import sympy as sp
from autograd.scipy.special import logsumexp as a_logsumexp

import symgen
from symgen.compiler.optimize import Scatter, gathered
from symgen.compiler.pipeline import run
from symgen.errors import SpecError
from tests.gradcheck import central_differences

BACKENDS = ["numpy", "c", "cuda"]

N, D, K = sp.symbols("N D K", integer=True, positive=True)
X, W = sp.MatrixSymbol("X", N, D), sp.MatrixSymbol("W", D, K)
b, y, Y = sp.MatrixSymbol("b", 1, K), sp.MatrixSymbol("y", N, 1), sp.MatrixSymbol("Y", N, K)
Z = sp.MatrixSymbol("Z", N, K)


def multinomial(dtype="float64", one_hot=False):
    """scikit-learn's HalfMultinomialLoss (mean over samples): logsumexp(z) - z[y]."""
    if one_hot:
        loss = symgen.sum(symgen.logsumexp(Z, axis=1)) - symgen.sum(sp.HadamardProduct(Y, Z))
        return symgen.Problem(loss / N, [Z], [Y], dtype=dtype, name="onehot")
    loss = symgen.sum(symgen.logsumexp(Z, axis=1) - symgen.take(Z, y)) / N
    return symgen.Problem(loss, [Z], [y], dtype=dtype, name="labels")


def softmax_regression(dtype="float64", one_hot=False):
    """torch's cross_entropy(X @ W + b, y) (mean), or its one-hot spelling."""
    logits = X * W + sp.OneMatrix(N, 1) * b
    if one_hot:
        loss = symgen.sum(symgen.logsumexp(logits, axis=1)) - symgen.sum(
            sp.HadamardProduct(Y, logits)
        )
        return symgen.Problem(loss / N, [W, b], [X, Y], dtype=dtype, name="onehot")
    loss = symgen.sum(symgen.logsumexp(logits, axis=1) - symgen.take(logits, y)) / N
    return symgen.Problem(loss, [W, b], [X, y], dtype=dtype, name="labels")


def compiled(problem, backend):
    """``call(*arrays)``: the module's loss_and_grad on NumPy arrays, results as NumPy."""
    if backend == "cuda":
        if shutil.which("g++") is None:
            pytest.skip("the CUDA emulator needs g++")
        from symgen.testing import fake_cupy_installed

        with fake_cupy_installed() as cp:
            module = symgen.compile(problem, "cuda")

            def call(*arrays):
                loss, grads = module.loss_and_grad(*(cp.asarray(a) for a in arrays))
                return loss, tuple(cp.asnumpy(g) for g in grads)

            return call, module
    module = symgen.compile(problem, backend)
    return module.loss_and_grad, module


def reference_multinomial(z, labels):
    """The loss as torch.nn.functional.cross_entropy computes it (mean), for autograd."""
    return anp.mean(a_logsumexp(z, axis=1) - z[np.arange(len(labels)), labels])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("scale", [1.0, 1000.0])
def test_multinomial_with_labels_matches_one_hot_and_autograd(backend, scale):
    rng = np.random.default_rng()
    n, k = 257, 7
    z = rng.standard_normal((n, k)) * scale
    labels = rng.integers(0, k, n)
    call, _ = compiled(multinomial(), backend)
    value, (grad,) = call(z, labels)
    expected = reference_multinomial(z, labels)
    assert value == pytest.approx(expected, rel=1e-7)
    np.testing.assert_allclose(
        grad, autograd.grad(reference_multinomial)(z, labels), rtol=1e-7, atol=1e-15
    )
    one_hot, _ = compiled(multinomial(one_hot=True), backend)
    value2, (grad2,) = one_hot(z, np.eye(k)[labels])
    assert value == pytest.approx(value2, rel=1e-12)
    np.testing.assert_allclose(grad, grad2, rtol=1e-12, atol=1e-15)
    assert np.isfinite(grad).all()


def reference_softmax(w, bias, x, labels):
    return reference_multinomial(x @ w + bias, labels)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("scale", [1.0, 1000.0])
def test_softmax_regression_with_labels_matches_one_hot_and_autograd(backend, scale):
    rng = np.random.default_rng()
    n, d, k = 300, 4, 5
    x = rng.standard_normal((n, d)) * scale
    w, bias = rng.standard_normal((d, k)), rng.standard_normal((1, k))
    labels = rng.integers(0, k, n)
    call, _ = compiled(softmax_regression(), backend)
    value, grads = call(w, bias, x, labels)
    assert value == pytest.approx(reference_softmax(w, bias, x, labels), rel=1e-7)
    for g, argnum in zip(grads, (0, 1), strict=True):
        expected = autograd.grad(reference_softmax, argnum)(w, bias, x, labels)
        np.testing.assert_allclose(g, expected, rtol=1e-7, atol=1e-12)
    one_hot, _ = compiled(softmax_regression(one_hot=True), backend)
    value2, grads2 = one_hot(w, bias, x, np.eye(k)[labels])
    assert value == pytest.approx(value2, rel=1e-12)
    for g, g2 in zip(grads, grads2, strict=True):
        np.testing.assert_allclose(g, g2, rtol=1e-10, atol=1e-12)


def test_gradient_matches_central_differences():
    rng = np.random.default_rng()
    n, d, k = 20, 3, 4
    x = rng.standard_normal((n, d))
    w, bias = rng.standard_normal((d, k)), rng.standard_normal((1, k))
    labels = rng.integers(0, k, n)
    module = symgen.compile(softmax_regression())
    _, (gw, gb) = module.loss_and_grad(w, bias, x, labels)

    def f(*flat):
        ww = np.array(flat[: d * k]).reshape(d, k)
        bb = np.array(flat[d * k :]).reshape(1, k)
        return module.loss(ww, bb, x, labels)

    numeric = central_differences(f, [*w.ravel(), *bias.ravel()])
    np.testing.assert_allclose(np.concatenate([gw.ravel(), gb.ravel()]), numeric, rtol=1e-7)


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_against_float64_reference(backend):
    rng = np.random.default_rng()
    n, d, k = 500, 4, 6
    x = rng.standard_normal((n, d))
    w, bias = rng.standard_normal((d, k)), rng.standard_normal((1, k))
    labels = rng.integers(0, k, n).astype(np.int32)
    call, _ = compiled(softmax_regression("float32"), backend)
    f32 = [a.astype(np.float32) for a in (w, bias, x)]
    value, grads = call(*f32, labels)
    assert all(g.dtype == np.float32 for g in grads)
    ref = [a.astype(np.float64) for a in f32]
    assert value == pytest.approx(reference_softmax(*ref, labels), rel=1e-5)
    for g, argnum in zip(grads, (0, 1), strict=True):
        expected = autograd.grad(reference_softmax, argnum)(*ref, labels)
        np.testing.assert_allclose(g, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_take_through_functions_and_of_a_row(backend):
    """A function of the gathered entries, and a 1 x K row read by every label (a per-class
    bias): the same values and gradients as the one-hot spelling."""
    logits = X * W
    gathered_form = symgen.sum(symgen.elementwise(sp.tanh, symgen.take(logits, y))) + symgen.sum(
        symgen.exp(symgen.take(b, y))
    )
    one_hot_form = symgen.sum(
        symgen.elementwise(sp.tanh, symgen.sum(sp.HadamardProduct(Y, logits), axis=1))
    ) + symgen.sum(symgen.exp(Y * b.T))
    rng = np.random.default_rng()
    n, d, k = 60, 3, 5
    x = rng.standard_normal((n, d))
    w, bias = rng.standard_normal((d, k)), rng.standard_normal((1, k))
    labels = rng.integers(0, k, n)
    call, _ = compiled(symgen.Problem(gathered_form, [W, b], [X, y], name="g"), backend)
    one_hot, _ = compiled(symgen.Problem(one_hot_form, [W, b], [X, Y], name="h"), backend)
    value, grads = call(w, bias, x, labels)
    value2, grads2 = one_hot(w, bias, x, np.eye(k)[labels])
    assert value == pytest.approx(value2, rel=1e-12)
    for g, g2 in zip(grads, grads2, strict=True):
        np.testing.assert_allclose(g, g2, rtol=1e-12, atol=1e-14)


def test_no_one_hot_matrix_is_made():
    """The gather is an indexed load; the gradient adds into one entry per row of the
    softmax, in place: no (N, K) array of zeros, no comparison of every entry with its
    label."""
    program = run(softmax_regression()).grad_program
    scatters = [s for s in program.stmts if isinstance(s, Scatter)]
    assert len(scatters) == 1 and scatters[0].base != 0 and scatters[0].in_place
    assert any(s.has(gathered) for st in program.stmts for s in st.inputs)
    numpy_source = symgen.generate(softmax_regression())
    assert "np.take_along_axis(" in numpy_source and "np.put_along_axis(" in numpy_source
    first_order = numpy_source.split("\ndef _loss_and_grad(", 1)[1].split("\ndef ", 1)[0]
    assert "np.zeros((N, K)" not in first_order and "np.eye" not in first_order
    c_source = symgen.generate(softmax_regression(), "c")
    assert "x0[_i*K + y[_i]]" in c_source  # the logit of the sample's class, loaded
    assert "_w_out[_i*K + y[_i]] +=" in c_source and "np.put_along_axis" not in c_source
    cuda_source = symgen.generate(softmax_regression(), "cuda")
    assert "x0[_i*K + y[_i]]" in cuda_source and "_w_out[_i*K + y[_i]] +=" in cuda_source


@pytest.mark.parametrize("backend", BACKENDS)
def test_labels_are_checked_before_anything_changes(backend):
    n, k = 10, 3
    rng = np.random.default_rng()
    z = rng.standard_normal((n, k))
    labels = rng.integers(0, k, n)
    if backend == "cuda":
        if shutil.which("g++") is None:
            pytest.skip("the CUDA emulator needs g++")
        from symgen.testing import fake_cupy_installed

        with fake_cupy_installed() as cp:
            module = symgen.compile(multinomial(), "cuda")
            _check_labels(module, cp.asarray, cp.asnumpy, z, labels, k)
        return
    module = symgen.compile(multinomial(), backend)
    _check_labels(module, np.asarray, np.asarray, z, labels, k)


def _check_labels(module, to_device, to_host, z, labels, k):
    params = to_device(z.copy())
    for good in (labels, labels.reshape(-1, 1), labels.astype(np.int32), labels.astype(np.uint8)):
        module.loss(params, to_device(good))
    with pytest.raises(TypeError, match=r"labels 'y' must be an array of integers.*float64"):
        module.loss(params, to_device(labels.astype(float)))
    with pytest.raises(TypeError, match=r"labels 'y'.*integers.*bool"):
        module.loss(params, to_device(labels > 0))
    for bad, value in ((-1, -1), (k, k)):
        wrong = labels.copy()
        wrong[3] = bad
        with pytest.raises(
            ValueError,
            match=rf"labels 'y' must be class indices in \[0, K\) = \[0, {k}\), got {value}",
        ):
            module.sgd_step(params, to_device(wrong), lr=0.1)
        np.testing.assert_array_equal(to_host(params), z)  # nothing changed
    with pytest.raises(ValueError, match=r"labels 'y' must have shape \(N,\) or \(N, 1\)"):
        module.loss(params, to_device(labels.reshape(2, -1)))
    with pytest.raises(ValueError, match=r"'y' has 9 rows but 'Z' has 10"):
        module.loss(params, to_device(labels[:-1]))


def test_labels_are_data_used_only_to_index():
    with pytest.raises(SpecError, match=r"labels y must be data"):
        symgen.Problem(symgen.sum(symgen.take(Z, y)), [Z, y], [])
    with pytest.raises(SpecError, match=r"'y' holds class labels.*also used as numbers"):
        symgen.Problem(symgen.sum(symgen.take(Z, y)) + symgen.sum(y), [Z], [y])
    with pytest.raises(SpecError, match=r"labels must be a data MatrixSymbol of shape N x 1"):
        symgen.take(Z, Y)
    with pytest.raises(SpecError, match=r"has N rows but the labels L have M"):
        symgen.take(Z, sp.MatrixSymbol("L", sp.Symbol("M", integer=True, positive=True), 1))


def test_show_and_fit_take_labels():
    from symgen.cli.show import text

    shown = text(softmax_regression())
    assert "take(X*W + b, y)" in shown and "scatter(-1/N, y)" in shown
    rng = np.random.default_rng(0)
    n, d, k = 200, 2, 3
    centers = 4 * rng.standard_normal((k, d))
    labels = rng.integers(0, k, n)
    x = centers[labels] + rng.standard_normal((n, d))
    module = symgen.compile(softmax_regression())
    assert module.LABELS == ("y",)
    start = {"W": np.zeros((d, k)), "b": np.zeros((1, k))}
    fitted = symgen.fit(module, start, {"X": x, "y": labels}, steps=100, lr=0.5, progress=False)
    one_hot = symgen.compile(softmax_regression(one_hot=True))
    reference = symgen.fit(
        one_hot, start, {"X": x, "Y": np.eye(k)[labels]}, steps=100, lr=0.5, progress=False
    )
    assert fitted.loss < 0.5 * np.log(k)
    assert fitted.loss == pytest.approx(reference.loss, rel=1e-12)
    for p, q in zip(fitted.params, reference.params, strict=True):
        np.testing.assert_allclose(p, q, rtol=1e-10, atol=1e-12)


def test_the_labels_benchmark_times_modules_that_agree():
    from benchmarks.labels import CASES, contenders

    for kind, _, d, k in CASES:
        found = contenders(kind, 50, d, k, "numpy")  # checks that they agree, or exits
        assert [c.name for c in found] == ["labels", "one-hot"]
        loss, _ = found[0].evaluate()
        assert loss == pytest.approx(found[1].evaluate()[0], rel=1e-12)
