"""Index notation: losses over ``IndexedBase`` arrays written with ``Sum``s compile to the
same program as their per-sample or matrix spelling (so they run the same passes, equally
fast), and compute what they say in every backend."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import sympy as sp

import symgen
from symgen.compiler.pipeline import run
from symgen.errors import SpecError

i, j, k, c = sp.symbols("i j k c", integer=True)
n, d, K, r = sp.symbols("n d K r", integer=True, positive=True)
a, b = sp.symbols("a b")
x, y, w = sp.IndexedBase("x"), sp.IndexedBase("y"), sp.IndexedBase("w")
X, W, bias, labels = (sp.IndexedBase(s) for s in ("X", "W", "b", "labels"))


def same_program(p: symgen.Problem, q: symgen.Problem) -> None:
    """``p`` and ``q`` compile to the same statements, for the loss and for its gradients."""
    assert p.kind == q.kind
    compiled_p, compiled_q = run(p), run(q)
    assert compiled_p.loss_program == compiled_q.loss_program
    assert compiled_p.grad_program == compiled_q.grad_program


def test_a_per_sample_sum_is_the_per_sample_problem():
    p = symgen.Problem(sp.Sum((y[i] - a * x[i] - b) ** 2, (i, 0, n - 1)), [a, b], [x, y])
    xs, ys = sp.symbols("x y")
    q = symgen.Problem((ys - a * xs - b) ** 2, [a, b], [xs, ys])
    assert p.kind == "per_sample" and p.reduce == "sum"
    same_program(p, q)
    mean = symgen.Problem(sp.Sum((y[i] - a * x[i] - b) ** 2, (i, 0, n - 1)) / n, [a, b], [x, y])
    assert mean.reduce == "mean"
    same_program(mean, symgen.Problem((ys - a * xs - b) ** 2, [a, b], [xs, ys], reduce="mean"))


def test_terms_outside_the_sum_and_several_sums():
    """A Gaussian negative log-likelihood: n*log(s) is log(s) per sample."""
    mu, s = sp.symbols("mu s", positive=True)
    nll = n * sp.log(s) + sp.Sum((y[i] - mu) ** 2, (i, 0, n - 1)) / (2 * s**2)
    p = symgen.Problem(nll, [mu, s], [y])
    ys = sp.Symbol("y")
    same_program(p, symgen.Problem(sp.log(s) + (ys - mu) ** 2 / (2 * s**2), [mu, s], [ys]))
    rng = np.random.default_rng()
    data = rng.standard_normal(50)
    module = symgen.compile(p)
    value, (g_mu, g_s) = module.loss_and_grad(0.3, 1.7, data)
    assert value == pytest.approx(50 * np.log(1.7) + ((data - 0.3) ** 2).sum() / (2 * 1.7**2))
    assert g_mu == pytest.approx(-(data - 0.3).sum() / 1.7**2)
    two = symgen.Problem(
        (sp.Sum(x[i] ** 2 * a, (i, 0, n - 1)) + sp.Sum(sp.exp(b * x[i]), (i, 0, n - 1))) / n,
        [a, b],
        [x],
    )
    xs = sp.Symbol("x")
    same_program(two, symgen.Problem(xs**2 * a + sp.exp(b * xs), [a, b], [xs], reduce="mean"))


def test_idx_indices():
    index = sp.Idx("t", n)
    p = symgen.Problem(sp.Sum((y[index] - a) ** 2, index), [a], [y])
    ys = sp.Symbol("y")
    same_program(p, symgen.Problem((ys - a) ** 2, [a], [ys]))


def test_a_vector_parameter_is_a_column():
    """Linear regression with w[j], j < d: the matrix problem over X (n, d), w (d, 1) and
    y (n, 1), whose gradient is a (d, 1) column."""
    loss = sp.Sum((y[i] - sp.Sum(w[j] * X[i, j], (j, 0, d - 1))) ** 2, (i, 0, n - 1))
    p = symgen.Problem(loss, [w], [X, y])
    Xm, wm, ym = sp.MatrixSymbol("X", n, d), sp.MatrixSymbol("w", d, 1), sp.MatrixSymbol("y", n, 1)
    assert p.params == (wm,) and p.data == (Xm, ym)
    same_program(p, symgen.Problem(symgen.sum(symgen.square(ym - Xm * wm)), [wm], [Xm, ym]))
    rng = np.random.default_rng()
    xv, wv, yv = (
        rng.standard_normal((30, 4)),
        rng.standard_normal((4, 1)),
        rng.standard_normal((30, 1)),
    )
    value, (g,) = symgen.compile(p).loss_and_grad(wv, xv, yv)
    assert g.shape == (4, 1)
    np.testing.assert_allclose(g, -2 * xv.T @ (yv - xv @ wv), rtol=1e-12)
    assert value == pytest.approx(((yv - xv @ wv) ** 2).sum(), rel=1e-12)


def test_double_sums_over_entries():
    p = symgen.Problem(sp.Sum(sp.Sum(W[i, j] * X[i, j], (j, 0, d - 1)), (i, 0, n - 1)), [W], [X])
    Wm, Xm = sp.MatrixSymbol("W", n, d), sp.MatrixSymbol("X", n, d)
    same_program(p, symgen.Problem(symgen.sum(sp.HadamardProduct(Wm, Xm)), [Wm], [Xm]))
    # the other way round: W[j, i] is W.T
    q = symgen.Problem(sp.Sum(W[j, i] * X[i, j], (i, 0, n - 1), (j, 0, d - 1)), [W], [X])
    assert q.params == (sp.MatrixSymbol("W", d, n),)


def test_matrix_factorization_with_entries_of_a_product():
    U, V = sp.MatrixSymbol("U", n, r), sp.MatrixSymbol("V", d, r)
    Xm = sp.MatrixSymbol("X", n, d)
    loss = sp.Sum(sp.Sum((X[i, j] - (U * V.T)[i, j]) ** 2, (j, 0, d - 1)), (i, 0, n - 1))
    p = symgen.Problem(loss, [U, V], [X])
    same_program(p, symgen.Problem(symgen.sum(symgen.square(Xm - U * V.T)), [U, V], [Xm]))


def test_multinomial_with_labels_is_take():
    Z = sp.IndexedBase("Z", shape=(n, K))
    loss = sp.Sum(sp.log(sp.Sum(sp.exp(Z[i, k]), (k, 0, K - 1))) - Z[i, labels[i]], (i, 0, n - 1))
    p = symgen.Problem(loss, [Z], [labels])
    Zm, ym = sp.MatrixSymbol("Z", n, K), sp.MatrixSymbol("labels", n, 1)
    q = symgen.Problem(symgen.sum(symgen.logsumexp(Zm, axis=1) - symgen.take(Zm, ym)), [Zm], [ym])
    same_program(p, q)


def softmax_in_index_notation():
    def logits(cls):
        return sp.Sum(X[i, c] * W[c, cls], (c, 0, d - 1)) + bias[cls]

    lse = sp.log(sp.Sum(sp.exp(logits(k)), (k, 0, K - 1)))
    return symgen.Problem(
        sp.Sum(lse - logits(labels[i]), (i, 0, n - 1)) / n, [W, bias], [X, labels], name="p"
    )


def test_softmax_regression_in_index_notation_is_take_of_the_logits():
    """The labelled terms are taken together: take(X*W + b.T), the logits logsumexp reads."""
    Xm, Wm = sp.MatrixSymbol("X", n, d), sp.MatrixSymbol("W", d, K)
    bm, ym = sp.MatrixSymbol("b", K, 1), sp.MatrixSymbol("labels", n, 1)
    logits = Xm * Wm + sp.OneMatrix(n, 1) * bm.T
    q = symgen.Problem(
        symgen.sum(symgen.logsumexp(logits, axis=1) - symgen.take(logits, ym)) / n,
        [Wm, bm],
        [Xm, ym],
        name="q",
    )
    same_program(softmax_in_index_notation(), q)


@pytest.mark.parametrize("backend", ["numpy", "c", "cuda"])
def test_index_notation_in_every_backend(backend):
    rng = np.random.default_rng()
    nv, dv, kv = 40, 3, 4
    xv = rng.standard_normal((nv, dv)) * 300
    wv, bv = rng.standard_normal((dv, kv)), rng.standard_normal((kv, 1))
    lab = rng.integers(0, kv, nv)
    z = xv @ wv + bv.T
    zmax = z.max(axis=1, keepdims=True)
    softmax = np.exp(z - zmax) / np.exp(z - zmax).sum(axis=1, keepdims=True)
    expected = np.mean(zmax[:, 0] + np.log(np.exp(z - zmax).sum(axis=1)) - z[np.arange(nv), lab])
    dz = (softmax - np.eye(kv)[lab]) / nv
    problem = softmax_in_index_notation()
    if backend == "cuda":
        if shutil.which("g++") is None:
            pytest.skip("the CUDA emulator needs g++")
        from symgen.testing import fake_cupy_installed

        with fake_cupy_installed() as cp:
            module = symgen.compile(problem, "cuda")
            value, grads = module.loss_and_grad(*(cp.asarray(v) for v in (wv, bv, xv, lab)))
            grads = [cp.asnumpy(g) for g in grads]
    else:
        value, grads = symgen.compile(problem, backend).loss_and_grad(wv, bv, xv, lab)
    assert value == pytest.approx(expected, rel=1e-10)
    np.testing.assert_allclose(grads[0], xv.T @ dz, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(grads[1], dz.sum(axis=0)[:, None], rtol=1e-8, atol=1e-12)


def test_a_sum_over_everything_inside_an_elementwise_expression():
    """Centering: x[i] - mean(x), the mean a 1 x 1 matrix broadcast over the column."""
    p = symgen.Problem(
        sp.Sum((x[i] - sp.Sum(x[k], (k, 0, n - 1)) / n) ** 2, (i, 0, n - 1)), [x], []
    )
    rng = np.random.default_rng()
    v = rng.standard_normal((25, 1))
    value, (g,) = symgen.compile(p).loss_and_grad(v)
    assert value == pytest.approx(((v - v.mean()) ** 2).sum(), rel=1e-12)
    np.testing.assert_allclose(g, 2 * (v - v.mean()), rtol=1e-10, atol=1e-14)


def test_show_prints_the_loss_as_written():
    from symgen.cli.show import text

    shown = text(softmax_in_index_notation())
    assert "# written: Sum(" in shown and "take(" in shown


@pytest.mark.parametrize(
    ("loss", "params", "data", "message"),
    [
        (sp.Sum(x[i] * a, (i, 1, n)), [a], [x], r"starts at 1; a sum runs over a whole axis"),
        (x[i] * a, [a], [x], r"index i is neither the index of an enclosing Sum"),
        (sp.Sum(X[i, i] * a, (i, 0, n - 1)), [a], [X], r"a diagonal"),
        (sp.Sum(X[i, j] * a, (i, 0, n - 1)), [a], [X], r"index j is neither"),
        (
            sp.Sum(sp.Sum(X[i, j] * a, (j, 0, d - 1)), (i, 0, n - 1))
            + sp.Sum(X[i, j], (i, 0, n - 1), (j, 0, K - 1)),
            [a],
            [X],
            r"axis 1 of X has length d elsewhere but is summed over here with length K",
        ),
        (sp.Sum(X[i, labels[i]] * a, (i, 0, n - 1)), [a], [X, labels], r"length of axis 1 of X"),
        (sp.Sum(x[i] * y[i] * a, (i, 0, n - 1)), [a], [x], r"y is neither a param nor data"),
        (sp.Sum(X[i, labels[i]], (i, 0, n - 1)), [X, labels], [], r"labels labels must be data"),
    ],
)
def test_mistakes_are_spec_errors(loss, params, data, message):
    with pytest.raises(SpecError, match=message):
        symgen.Problem(loss, params, data)


def test_reduce_is_for_per_sample_spellings():
    with pytest.raises(SpecError, match=r"reduce= does not apply.*divide the Sum by n"):
        symgen.Problem(sp.Sum(x[i] * a, (i, 0, n - 1)), [a], [x], reduce="mean")


def test_generated_source_does_not_depend_on_the_hash_seed(root):
    """Translation, gathers and scatters: the same bytes in every backend, whatever the
    hash seed."""
    import os
    import subprocess
    import sys

    script = (
        "import hashlib, symgen\n"
        "from tests.test_indexed import softmax_in_index_notation\n"
        "p = softmax_in_index_notation()\n"
        "for backend in ('numpy', 'c', 'cuda'):\n"
        "    print(hashlib.sha256(symgen.generate(p, backend).encode()).hexdigest())\n"
    )
    outputs = set()
    for seed in ("0", "1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", script], cwd=root, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        outputs.add(done.stdout)
    assert len(outputs) == 1 and len(outputs.pop().split()) == 3


def test_an_array_the_loss_does_not_read_is_named():
    with pytest.raises(SpecError, match=r"param 'w' does not appear in the loss"):
        symgen.Problem(sp.Sum(X[i, j] * a, (i, 0, n - 1), (j, 0, d - 1)), [a, w], [X])
