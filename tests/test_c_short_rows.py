"""C passes over rows shorter than a vector (``SHORT_ROW_BYTES``): softmax-type losses at
K = 1..15 classes run down the columns of blocks of rows (``_Pass.short_rows``), so that the
vector exp and log run. Checked against HIPS autograd and central differences, against the
NumPy module, at |z| = 1000, in float32, and bit for bit on 1, 2 and 16 threads."""

import shutil

import autograd.numpy as anp
import numpy as np
import pytest
import sympy as sp
from autograd import grad

import symgen
from examples import softmax

pytestmark = pytest.mark.skipif(
    not any(shutil.which(c) for c in ("cc", "gcc", "clang")), reason="no C compiler"
)

N, K = sp.symbols("N K", integer=True, positive=True)
#: 1003 rows: 15 blocks of 64 rows and one of 43.
ROWS = 1003


def multinomial(dtype="float64") -> symgen.Problem:
    """scikit-learn's multinomial loss over the raw predictions Z (N x K), integer labels."""
    Z, y = sp.MatrixSymbol("Z", N, K), sp.MatrixSymbol("y", N, 1)
    loss = symgen.sum(symgen.logsumexp(Z, axis=1) - symgen.take(Z, y)) / N
    return symgen.Problem(loss, [Z], [y], name="multinomial", dtype=dtype)


def multinomial_reference(z, y):
    top = anp.max(z, axis=1, keepdims=True)
    lse = anp.log(anp.sum(anp.exp(z - top), axis=1)) + top[:, 0]
    return anp.mean(lse - z[np.arange(len(y)), y])


def softmax_reference(w, b, x, y):
    z = anp.dot(x, w) + b
    top = anp.max(z, axis=1, keepdims=True)
    lse = anp.log(anp.sum(anp.exp(z - top), axis=1, keepdims=True)) + top
    return -anp.sum(y * (z - lse)) / x.shape[0]


@pytest.fixture(scope="module")
def modules():
    """(C, NumPy) modules of both losses: compiled once, K is symbolic."""
    return {
        name: (symgen.compile(p, "c"), symgen.compile(p))
        for name, p in (("multinomial", multinomial()), ("softmax", softmax.softmax))
    }


def multinomial_case(rng, n, k, scale=3.0):
    return [scale * rng.standard_normal((n, k))], {"y": rng.integers(0, k, (n, 1))}


def softmax_case(rng, n, k, d=5):
    x, y, _ = softmax.blobs(n=n, d=d, k=k, seed=int(rng.integers(1 << 30)))
    return [0.3 * rng.standard_normal((d, k)), 0.1 * rng.standard_normal((1, k))], {
        "X": x,
        "Y": y,
    }


def reference(name, params, data):
    """The loss and gradients by autograd."""
    if name == "multinomial":
        f, y = multinomial_reference, data["y"][:, 0]
        return f(params[0], y), [grad(f)(params[0], y)]
    f = softmax_reference
    loss = f(*params, data["X"], data["Y"])
    grads = [grad(f, i)(*params, data["X"], data["Y"]) for i in range(2)]
    return loss, grads


CASES = {"multinomial": multinomial_case, "softmax": softmax_case}


@pytest.mark.parametrize("k", [*range(1, 10), 15, 16])  # 16: the row loop
@pytest.mark.parametrize("name", sorted(CASES))
def test_short_rows_match_autograd_and_the_numpy_module(modules, name, k):
    rng = np.random.default_rng(100 + k)
    params, data = CASES[name](rng, ROWS, k)
    c_module, numpy_module = modules[name]
    loss, grads = c_module.loss_and_grad(*params, **data)
    want_loss, want_grads = reference(name, params, data)
    assert loss == pytest.approx(want_loss, rel=1e-7)
    for g, w in zip(grads, want_grads, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-7, atol=1e-12)
    np_loss, np_grads = numpy_module.loss_and_grad(*params, **data)
    assert loss == pytest.approx(np_loss, rel=1e-13)  # float64 rounding: vector exp's ulps
    for g, h in zip(grads, np_grads, strict=True):
        np.testing.assert_allclose(g, h, rtol=1e-12, atol=1e-13)  # sums of ~1e3 terms
    assert c_module.loss(*params, **data) == pytest.approx(loss, rel=1e-13)


@pytest.mark.parametrize("k", [2, 7])
def test_short_rows_match_central_differences(modules, k):
    rng = np.random.default_rng(5 + k)
    (z,), data = multinomial_case(rng, 70, k)
    c_module = modules["multinomial"][0]
    _, (g,) = c_module.loss_and_grad(z, **data)
    h = 1e-4  # truncation ~h**2 / N, rounding ~1e-16 / h
    for i, j in [(0, 0), (33, k - 1), (69, k // 2)]:
        up, down = z.copy(), z.copy()
        up[i, j] += h
        down[i, j] -= h
        numeric = (c_module.loss(up, **data) - c_module.loss(down, **data)) / (2 * h)
        assert g[i, j] == pytest.approx(numeric, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("k", [1, 4, 7])
def test_short_rows_are_stable_at_1000(modules, k):
    rng = np.random.default_rng(k)
    (z,), data = multinomial_case(rng, ROWS, k, scale=1000.0)
    c_module, numpy_module = modules["multinomial"]
    loss, (g,) = c_module.loss_and_grad(z, **data)
    want_loss, (want,) = reference("multinomial", [z], data)
    assert np.isfinite(loss) and np.all(np.isfinite(g))
    assert loss == pytest.approx(want_loss, rel=1e-7)
    np.testing.assert_allclose(g, want, rtol=1e-7, atol=1e-12)
    np_loss, (h,) = numpy_module.loss_and_grad(z, **data)
    assert loss == pytest.approx(np_loss, rel=1e-13)
    np.testing.assert_allclose(g, h, rtol=1e-12, atol=1e-13)  # sums of ~1e3 terms


@pytest.mark.parametrize("k", [3, 15, 31])
def test_float32_short_rows_match_a_float64_reference(k):
    """float32 rows are short below 32 elements."""
    rng = np.random.default_rng(k)
    (z,), data = multinomial_case(rng, ROWS, k)
    module = symgen.compile(multinomial("float32"), "c")
    loss, (g,) = module.loss_and_grad(z.astype(np.float32), **data)
    want_loss, (want,) = reference("multinomial", [z.astype(np.float32).astype(float)], data)
    assert g.dtype == np.float32
    assert loss == pytest.approx(want_loss, rel=1e-5)
    np.testing.assert_allclose(g, want, rtol=1e-4, atol=1e-8)


@pytest.mark.parametrize("k", [1, 4, 7, 9, 15])
@pytest.mark.parametrize("name", sorted(CASES))
def test_short_rows_are_bit_identical_on_1_2_and_16_threads(modules, name, k):
    """40,003 rows: at least two tasks from K = 1 on (``TASK_VALUES``)."""
    params, data = CASES[name](np.random.default_rng(k), 40_003, k)
    module = modules[name][0]
    runs = {}
    try:
        for threads in (1, 2, 16):
            module.set_num_threads(threads)
            loss, grads = module.loss_and_grad(*params, **data)
            runs[threads] = (loss, [np.asarray(g).tobytes() for g in grads])
    finally:
        module.set_num_threads()
    assert runs[2] == runs[1] and runs[16] == runs[1]


def test_passes_that_call_functions_choose_short_rows_below_one_vector():
    """Two vectors are 16 float64 or 32 float32; a pass that calls no function, or only a
    comparison (ReLU), keeps its rows."""
    assert "if (K < 16) {" in symgen.generate(multinomial(), "c")
    assert "if (K < 32) {" in symgen.generate(multinomial("float32"), "c")
    Z = sp.MatrixSymbol("Z", N, K)
    plain = symgen.Problem(symgen.sum(sp.HadamardProduct(Z, Z)) / N, [Z], [], name="plain")
    assert "if (K <" not in symgen.generate(plain, "c")
    relu = symgen.Problem(symgen.sum(symgen.relu(Z)) / N, [Z], [], name="relu")
    assert "if (K <" not in symgen.generate(relu, "c")
