"""Matrix losses: every operation against HIPS autograd and central differences."""

import math
import shutil
import warnings

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
import sympy as sp

import symgen
from examples import logistic, mlp, softmax
from symgen import SpecError
from tests.gradcheck import central_differences

M, N, K = sp.symbols("M N K", integer=True, positive=True)
A, B = sp.MatrixSymbol("A", M, N), sp.MatrixSymbol("B", N, K)
C, S = sp.MatrixSymbol("C", M, K), sp.MatrixSymbol("S", N, N)
r, c = sp.MatrixSymbol("r", 1, N), sp.MatrixSymbol("c", M, 1)
a = sp.Symbol("a")
SIZES = {"M": 4, "N": 3, "K": 2}


def alse(z, axis=None):
    mx = anp.max(z) if axis is None else anp.max(z, axis=axis, keepdims=True)
    total = (
        anp.sum(anp.exp(z - mx))
        if axis is None
        else anp.sum(anp.exp(z - mx), axis=axis, keepdims=True)
    )
    return mx + anp.log(total)


def sig(z):
    return 0.5 * (anp.tanh(0.5 * z) + 1)


# name: (loss, params, data, autograd reference over a dict of arrays)
CASES = {
    "matmul_chain": (
        symgen.sum(A * B * B.T),
        [A, B],
        [],
        lambda v: anp.sum(v["A"] @ v["B"] @ v["B"].T),
    ),
    "matadd_scalar_times": (
        symgen.sum(symgen.square(3 * A - 2 * a * (A * S))),
        [A, S, a],
        [],
        lambda v: anp.sum((3 * v["A"] - 2 * v["a"] * (v["A"] @ v["S"])) ** 2),
    ),
    "transpose_and_reuse": (
        symgen.sum(symgen.tanh(S * S.T + S.T)),
        [S],
        [],
        lambda v: anp.sum(anp.tanh(v["S"] @ v["S"].T + v["S"].T)),
    ),
    "hadamard_product_power": (
        symgen.sum(sp.HadamardProduct(A * B, C) + sp.HadamardPower(A * B, 3)),
        [A, B],
        [C],
        lambda v: anp.sum((v["A"] @ v["B"]) * v["C"] + (v["A"] @ v["B"]) ** 3),
    ),
    "applyfunc_lambda": (
        symgen.sum((A * B).applyfunc(lambda z: sp.sin(a * z) + z**2)),
        [A, a],
        [B],
        lambda v: anp.sum(anp.sin(v["a"] * (v["A"] @ v["B"])) + (v["A"] @ v["B"]) ** 2),
    ),
    "helpers": (
        symgen.sum(
            symgen.relu(A)
            + symgen.sigmoid(A)
            + symgen.softplus(A)
            + symgen.exp(A)
            + symgen.log(symgen.elementwise(lambda z: z**2 + 1, A))
            + symgen.sqrt(symgen.elementwise(lambda z: z**2 + 1, A))
            + symgen.abs(A)
        ),
        [A],
        [],
        lambda v: anp.sum(
            anp.maximum(v["A"], 0)
            + sig(v["A"])
            + anp.logaddexp(0, v["A"])
            + anp.exp(v["A"])
            + anp.log(v["A"] ** 2 + 1)
            + anp.sqrt(v["A"] ** 2 + 1)
            + anp.abs(v["A"])
        ),
    ),
    "elementwise_broadcast_row_column": (
        symgen.sum(symgen.elementwise(lambda x, y, z: x * y - z**2, A, r, c)),
        [A, r, c],
        [],
        lambda v: anp.sum(v["A"] * v["r"] - v["c"] ** 2),
    ),
    "sum_mean_axes_broadcast": (
        symgen.sum(symgen.square(A - symgen.mean(A, axis=0)))
        + symgen.sum(symgen.square(A - symgen.sum(A, axis=1)))
        + symgen.mean(A),
        [A],
        [],
        lambda v: (
            anp.sum((v["A"] - anp.mean(v["A"], axis=0, keepdims=True)) ** 2)
            + anp.sum((v["A"] - anp.sum(v["A"], axis=1, keepdims=True)) ** 2)
            + anp.mean(v["A"])
        ),
    ),
    "logsumexp_axes": (
        symgen.logsumexp(A)
        + symgen.sum(symgen.logsumexp(A, axis=0))
        + symgen.sum(sp.HadamardProduct(C, (A * B) - symgen.logsumexp(A * B, axis=1))),
        [A, B],
        [C],
        lambda v: (
            alse(v["A"])
            + anp.sum(alse(v["A"], 0))
            + anp.sum(v["C"] * (v["A"] @ v["B"] - alse(v["A"] @ v["B"], 1)))
        ),
    ),
    "trace": (
        sp.Trace(A.T * A) + 2 * sp.Trace(S * S + S * S.T),
        [A, S],
        [],
        lambda v: anp.trace(v["A"].T @ v["A"]) + 2 * anp.trace(v["S"] @ v["S"] + v["S"] @ v["S"].T),
    ),
    "trace_of_lone_matrices": (
        sp.Trace(S) + 3 * sp.Trace(S.T * S + S),
        [S],
        [],
        lambda v: anp.trace(v["S"]) + 3 * anp.trace(v["S"].T @ v["S"] + v["S"]),
    ),
    "identity_in_sums_and_hadamard": (
        symgen.sum(symgen.square(S * S + sp.Identity(N)))
        + symgen.sum(sp.HadamardProduct(sp.Identity(N), S * S.T))
        + sp.Trace(S - 2 * sp.Identity(N)),
        [S],
        [],
        lambda v: (
            anp.sum((v["S"] @ v["S"] + anp.eye(3)) ** 2)
            + anp.sum(anp.eye(3) * (v["S"] @ v["S"].T))
            + anp.trace(v["S"] - 2 * anp.eye(3))
        ),
    ),
    "element_00_of_1x1": (
        (r * S * r.T)[0, 0] * 3,
        [r, S],
        [],
        lambda v: 3 * (v["r"] @ v["S"] @ v["r"].T)[0, 0],
    ),
    "ones_identity_zero": (
        symgen.sum(sp.OneMatrix(M, M) * A * sp.Identity(N) + sp.ZeroMatrix(M, N) + A * 2),
        [A],
        [],
        lambda v: anp.sum(anp.ones((4, 4)) @ v["A"] + 2 * v["A"]),
    ),
    "scalar_param_and_1x1_loss": (
        a**2 * (r * r.T),
        [a, r],
        [],
        lambda v: v["a"] ** 2 * anp.sum(v["r"] ** 2),
    ),
}


def _shape(sym):
    if isinstance(sym, sp.MatrixSymbol):
        return tuple(SIZES[d.name] if d.is_Symbol else int(d) for d in sym.shape)
    return ()


@pytest.mark.parametrize("name", sorted(CASES))
def test_operation_against_autograd_and_differences(name):
    loss, params, data, reference = CASES[name]
    module = symgen.compile(symgen.Problem(loss, params=params, data=data, name=name))
    rng = np.random.default_rng()
    # away from 0, where relu and abs have kinks that central differences would straddle
    values = {
        s.name: rng.choice([-1.0, 1.0], _shape(s)) * rng.uniform(0.1, 1, _shape(s))
        for s in (*params, *data)
    }
    if "S" in values:
        values["S"] = values["S"] + 0.0
    args = [values[s.name] for s in (*params, *data)]
    value, grads = module.loss_and_grad(*[np.copy(x) for x in args])
    assert value == pytest.approx(float(reference(values)), rel=1e-12, abs=1e-12)
    for p, g in zip(params, grads, strict=True):

        def f(x, p=p):
            return reference({**values, p.name: x})

        expected = autograd.grad(f)(values[p.name])
        assert np.shape(g) == np.shape(values[p.name])
        np.testing.assert_allclose(g, expected, rtol=1e-7, atol=1e-12)
        flat = np.ravel(values[p.name]).copy()

        def loss_of(*entries, p=p):
            vals = {**values, p.name: np.reshape(np.array(entries), np.shape(values[p.name]))}
            return module.loss(*[vals[s.name] for s in (*params, *data)])

        fd = central_differences(loss_of, flat)
        np.testing.assert_allclose(np.ravel(g), fd, rtol=1e-7, atol=1e-8)


def test_w2_tiny_numbers():
    module = symgen.compile(logistic.logistic)
    first, last, weights = logistic.train_tiny(module)
    assert first == pytest.approx(2.77258872224, abs=1e-11)
    assert last == pytest.approx(1.06727067579, abs=1e-11)
    np.testing.assert_allclose(weights, [0.48307, -0.37057, 1.06937], atol=1e-5)


def naive_logistic(w, x, t):
    p = 1 / (1 + anp.exp(-(x @ w)))
    return -anp.sum(anp.log(p * t + (1 - p) * (1 - t)))


def test_w2_gradient_against_autograd():
    module = symgen.compile(logistic.logistic)
    rng = np.random.default_rng()
    x = rng.standard_normal((200, 5))
    t = rng.integers(0, 2, (200, 1)).astype(float)
    w = rng.standard_normal((5, 1))
    value, (g,) = module.loss_and_grad(w, x, t)
    assert value == pytest.approx(naive_logistic(w, x, t), rel=1e-12)
    np.testing.assert_allclose(g, autograd.grad(naive_logistic)(w, x, t), rtol=1e-9)
    soft = rng.uniform(0, 1, (200, 1))  # the same formula for soft targets, undeclared
    with pytest.raises(ValueError, match="'t' is declared binary, but not all its entries"):
        module.grad(w, x, soft)
    general = symgen.compile(undeclared(logistic.logistic))
    np.testing.assert_allclose(
        general.grad(w, x, soft)[0], autograd.grad(naive_logistic)(w, x, soft), rtol=1e-9
    )
    assert general.loss(w, x, t) == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize("backend", ["numpy", "c"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_binary_labels_are_exactly_0_or_1(backend, dtype):
    """The check of declared labels takes 0 and 1 (and -0.0) only: not NaN, infinities,
    values next to 0 or 1, or values whose product with (value - 1) overflows."""
    if backend == "c" and not any(shutil.which(c) for c in ("cc", "gcc", "clang")):
        pytest.skip("no C compiler")
    problem = logistic.logistic
    if dtype == "float32":
        problem = symgen.Problem(
            problem.loss, problem.params, problem.data, binary=problem.binary, dtype=dtype
        )
    module = symgen.compile(problem, backend)
    x, w = np.ones((3, 2), dtype=dtype), np.zeros((2, 1), dtype=dtype)
    tiny = np.finfo(dtype).smallest_subnormal
    one_up, one_down = np.nextafter(np.array(1, dtype), 2), np.nextafter(np.array(1, dtype), 0)
    module.loss(w, x, np.array([[0.0], [1.0], [-0.0]], dtype=dtype))
    for wrong in (np.nan, np.inf, -np.inf, tiny, -tiny, one_up, one_down, 0.5, 2.0, -1.0, 1e30):
        t = np.array([[1.0], [wrong], [0.0]], dtype=dtype)
        with pytest.raises(ValueError, match="declared binary"):
            module.loss(w, x, t)


def undeclared(problem):
    return symgen.Problem(problem.loss, problem.params, problem.data, name=problem.name + "_soft")


def test_binary_data_turn_the_likelihood_into_the_cross_entropy():
    from symgen.cli.show import program

    declared = program(logistic.logistic)
    general = program(undeclared(logistic.logistic))
    # one exponential per element, shared by the loss's softplus and the gradient's sigmoid
    # (the same statements on one block of rows, whole, or in the loop over blocks)
    for branch in declared.split("else:"):
        assert branch.count("np.exp(") == 1 and branch.count("np.log1p(") == 1
    assert declared.count("else:") == 1
    assert "np.logaddexp" not in declared and "np.tanh" not in declared
    assert "_safelog" not in declared and "_safelog" in general
    f = symgen.gradients(logistic.logistic)[logistic.w]
    assert "sigmoid" in str(f) and "log" not in str(f)
    # per-sample problems too: the Bernoulli likelihood of 0/1 labels y
    a, x, y = sp.symbols("a x y")
    q = symgen.sigmoid(a * x)
    bern = symgen.Problem(
        -sp.log(q * y + (1 - q) * (1 - y)), [a], [x, y], reduce="mean", binary=[y], name="b"
    )
    module = symgen.compile(bern)
    xs = np.random.default_rng(3).standard_normal(1000) * 30
    ys = (xs > 0).astype(float)
    loss, (g,) = module.loss_and_grad(0.7, xs, ys)
    z = 0.7 * xs
    assert loss == pytest.approx(np.mean(np.logaddexp(0, z) - ys * z), rel=1e-12)
    assert g == pytest.approx(np.mean((0.5 * np.tanh(0.5 * z) + 0.5 - ys) * xs), rel=1e-10)
    with pytest.raises(ValueError, match="'y' is declared binary"):
        module.loss(0.7, xs, ys * 0.5)
    with pytest.raises(symgen.SpecError, match="only data can be declared binary"):
        symgen.Problem(-sp.log(q), [a], [x], binary=[a])


def test_w3_seed_trajectory():
    history = mlp.train(symgen.compile(mlp.mlp))
    np.testing.assert_allclose(
        [history[0], history[99], history[299]], [53178.40, 749.07, 18.676], rtol=1e-3
    )


def test_w3_float32_stays_float32():
    module = symgen.compile(mlp.mlp)
    x, y, w1, w2 = mlp.seed_data(m=8, n_i=5, n_h=4, n_o=3)
    value, (g1, g2) = module.loss_and_grad(w1, w2, x, y)
    assert type(value) is float
    assert g1.dtype == np.float32 and g2.dtype == np.float32
    ref = mlp.mlp
    p64 = symgen.Problem(ref.loss, params=ref.params, data=ref.data, name="mlp64")
    v64, (h1, h2) = symgen.compile(p64).loss_and_grad(
        *(a.astype(np.float64) for a in (w1, w2, x, y))
    )
    assert value == pytest.approx(v64, rel=1e-5)
    np.testing.assert_allclose(g1, h1, rtol=1e-4, atol=1e-4 * np.abs(h1).max())


def test_w3_sgd_updates_in_place():
    module = symgen.compile(mlp.mlp)
    x, y, w1, w2 = mlp.seed_data(m=8, n_i=5, n_h=4, n_o=3)
    before = w1.copy()
    _, g2 = module.grad(w1, w2, x, y)
    loss, (n1, n2) = module.sgd_step(w1, w2, x, y, lr=1e-3)
    assert n1 is w1 and n2 is w2
    assert not np.array_equal(w1, before)


def test_softmax_against_autograd_and_training():
    module = symgen.compile(softmax.softmax)
    x, y, labels = softmax.blobs(n=300)
    rng = np.random.default_rng()
    w, b = rng.standard_normal((2, 3)), rng.standard_normal((1, 3))

    def ref(w, b):
        z = x @ w + b
        return -anp.sum(y * (z - alse(z, 1))) / 300

    value, (gw, gb) = module.loss_and_grad(w, b, x, y)
    assert value == pytest.approx(ref(w, b), rel=1e-12)
    np.testing.assert_allclose(gw, autograd.grad(ref, 0)(w, b), rtol=1e-9)
    np.testing.assert_allclose(gb, autograd.grad(ref, 1)(w, b), rtol=1e-9)
    _, _, history = softmax.train(module, x, y, steps=100)
    assert history[-1] < 0.6 * history[0]


Z = sp.MatrixSymbol("Z", M, 1)
STABLE = {
    "log_sigmoid": (symgen.sum(symgen.log(symgen.sigmoid(Z))), lambda z: -np.logaddexp(0, -z)),
    "log_one_minus_sigmoid": (
        symgen.sum(symgen.elementwise(lambda s: sp.log(1 - s), symgen.sigmoid(Z))),
        lambda z: -np.logaddexp(0, z),
    ),
    "log_one_plus_exp": (
        symgen.sum(symgen.elementwise(lambda z: sp.log(1 + sp.exp(z)), Z)),
        lambda z: np.logaddexp(0, z),
    ),
    "logsumexp": (symgen.logsumexp(Z), None),
}


@pytest.mark.parametrize("name", sorted(STABLE))
def test_stable_forms_at_extremes(name):
    loss, per_element = STABLE[name]
    module = symgen.compile(symgen.Problem(loss, params=[Z], name=name))
    z = np.array([[1000.0], [-1000.0], [0.0], [3.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow or divide-by-zero warnings either
        value, (g,) = module.loss_and_grad(z)
    assert np.isfinite(value) and np.all(np.isfinite(g))
    if per_element is not None:
        assert value == pytest.approx(per_element(z).sum(), rel=1e-12)
    else:
        assert value == pytest.approx(1000.0, rel=1e-12)
        np.testing.assert_allclose(g.ravel(), [1.0, 0.0, 0.0, 0.0], atol=1e-300)


def test_naive_logistic_loss_is_stable_at_extremes():
    module = symgen.compile(logistic.logistic)
    x = np.array([[1000.0], [-1000.0], [1000.0], [-1000.0]])
    t = np.array([[1.0], [1.0], [0.0], [0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value, (g,) = module.loss_and_grad(np.array([[1.0]]), x, t)
    assert value == pytest.approx(2000.0, rel=1e-12)  # two samples wrong by a margin of 1000
    # d/dw of the loss: the sum over samples of (sigmoid(x w) - t) * x
    assert g[0, 0] == pytest.approx(0 + (0 - 1) * -1000 + (1 - 0) * 1000 + 0, abs=1e-9)


def test_relu_derivative_at_zero_in_matrices():
    module = symgen.compile(symgen.Problem(symgen.sum(symgen.relu(A)), params=[A], name="r"))
    (g,) = module.grad(np.array([[0.0, 1.0, -1.0]]))
    np.testing.assert_array_equal(g, [[0.0, 1.0, 0.0]])


@pytest.mark.parametrize(
    ("build", "fragment"),
    [
        (lambda: symgen.Problem(sp.Determinant(S), params=[S]), "Determinant"),
        (lambda: symgen.Problem(symgen.sum(sp.Inverse(S)), params=[S]), "Inverse"),
        (lambda: symgen.Problem(A * B, params=[A, B]), "must be a scalar"),
        (lambda: symgen.Problem(symgen.sum(A) * A, params=[A]), "must be a scalar"),
        (
            lambda: symgen.Problem(
                symgen.sum(symgen.elementwise(lambda x, y: x * y, A, B)), params=[A, B]
            ),
            "do not broadcast",
        ),
        (
            lambda: symgen.Problem(symgen.sum(A), params=[sp.MatrixSymbol("A", M, 2 * N)]),
            "dimensions must be symbols",
        ),
        (lambda: symgen.Problem(sp.Trace(A), params=[A]), "not square"),
    ],
)
def test_matrix_spec_errors(build, fragment):
    with pytest.raises(SpecError) as info:
        build()
    assert fragment in str(info.value)


def test_generated_code_checks_dimensions():
    module = symgen.compile(mlp.mlp)
    x, y, w1, w2 = mlp.seed_data(m=8, n_i=5, n_h=4, n_o=3)
    with pytest.raises(ValueError, match=r"'X' has 6 columns but 'W1' has 5 rows; both are .*N_I"):
        module.loss(w1, w2, np.ones((8, 6), np.float32), y)
    with pytest.raises(ValueError, match=r"'W2' must be a 2-D array of shape \(N_H, N_O\)"):
        module.loss(w1, np.ones(4), x, y)
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'Y'"):
        module.loss(w1, w2, x)


def test_deep_chain_is_linear_and_quick():
    import time

    n = sp.Symbol("n", integer=True, positive=True)
    X = sp.MatrixSymbol("X", n, n)
    weights = [sp.MatrixSymbol(f"W{i}", n, n) for i in range(30)]

    def problem(depth):
        h = X
        for w in weights[:depth]:
            h = symgen.tanh(h * w)
        return symgen.Problem(symgen.sum(h), params=weights[:depth], data=[X], name=f"d{depth}")

    def op_count(depth):
        src = symgen.generate(problem(depth))
        body = src[src.index("def loss_and_grad") : src.index("def grad(")]
        return body.count(" @ ") + body.count("np.tanh")

    start = time.perf_counter()
    counts = [op_count(d) for d in (10, 20, 30)]
    assert time.perf_counter() - start < 30
    assert counts[2] - counts[1] == counts[1] - counts[0] > 0


def test_show_prints_matrix_notation(root, monkeypatch, capsys):
    from symgen.cli.commands import main

    monkeypatch.chdir(root)
    assert main(["show", "examples/mlp.py"]) == 0
    out = capsys.readouterr().out
    assert "∂L/∂W2 = 2/(M*N_O) * relu(X*W1).T*(relu(X*W1)*W2 - Y)" in out
    assert "∂L/∂W1 = X.T*((2/(M*N_O) * (relu(X*W1)*W2 - Y)*W2.T) ⊙ heaviside(X*W1))" in out
    assert main(["show", "examples/mlp.py", "--format", "latex"]) == 0
    assert r"\odot \operatorname{heaviside}\left(X W_{1}\right)" in capsys.readouterr().out
    assert main(["show", "examples/mlp.py", "--program"]) == 0
    program = capsys.readouterr().out
    assert "x9 = x8*(x0 > 0)" in program  # the ReLU mask, fused into one pass
    # products by BLAS, tall ones a block of rows at a time (``tall_products``), transposes
    # as views: X.T @ x9 is _tall_inner(X, x9)
    products = [program.count(f) for f in (" @ ", "_tall_product(", "_tall_inner(")]
    assert sum(products) == 5 and "_tall_inner(X, x9)" in program
    assert "np.transpose" not in program


def test_gradients_are_sympy_matrix_expressions():
    grads = symgen.gradients(mlp.mlp)
    assert list(grads) == [mlp.W1, mlp.W2]
    g2 = grads[mlp.W2]
    assert isinstance(g2, sp.MatrixExpr) and g2.has(mlp.X, mlp.Y, mlp.W1)


def _linear_with_bias():
    M, D = sp.symbols("M D", integer=True, positive=True)
    X, y, w = sp.MatrixSymbol("X", M, D), sp.MatrixSymbol("y", M, 1), sp.MatrixSymbol("w", D, 1)
    b = sp.Symbol("b")
    loss = symgen.sum(symgen.square(X * w + b * sp.OneMatrix(M, 1) - y))
    return symgen.Problem(loss, params=[w, b], data=[X, y], name="linear")


UNREADABLE = ("Lambda", "_z", "_Broadcast", "ElementwiseMap", "HadamardProduct", "AxisReduce")


@pytest.mark.parametrize(
    "problem",
    [mlp.mlp, logistic.logistic, softmax.softmax, _linear_with_bias()],
    ids=lambda p: p.name,
)
def test_gradients_print_as_symgen_show_does(problem):
    from symgen.cli.show import latex, text

    shown = text(problem).splitlines()
    grads = symgen.gradients(problem)
    for p, formula in grads.items():
        assert f"∂L/∂{p.name} = {formula}" in shown
        assert f"∂L/∂{p.name} = {formula!r}" in shown
        assert f"{{\\partial {sp.latex(p)}}} = {sp.latex(formula)}" in latex(problem)
        assert not any(word in str(formula) for word in UNREADABLE), str(formula)
    assert not any(word in repr(grads) for word in UNREADABLE), repr(grads)
    # the generated modules' docstrings show the loss as `symgen show` does
    loss_line = next(line for line in shown if line.startswith("L = "))
    for backend in ("numpy", "cuda"):
        source = symgen.generate(problem, backend)
        assert f"\n    {loss_line[4:]}\n" in source.split('"""')[1]


# -- formulas of integer dimensions --------------------------------------------------------

DIMS = sp.symbols("n d k", integer=True, positive=True)


def _losses_over(n, d, k) -> dict[str, symgen.Problem]:
    """Losses over X (n x d), W (d x k), Y (n x k): elementwise functions of products, a
    bias row ``b`` and a bias entry ``c`` broadcast over the rows, a column spread over
    the columns, a row-wise logsumexp, a row ``r`` spread over the rows of a product.
    None has a coefficient that holds a dimension, so their formulas read the same
    whatever the dimensions are."""
    X, Y = sp.MatrixSymbol("X", n, d), sp.MatrixSymbol("Y", n, k)
    W, b = sp.MatrixSymbol("W", d, k), sp.MatrixSymbol("b", 1, k)
    w, t, c = sp.MatrixSymbol("w", d, 1), sp.MatrixSymbol("t", n, 1), sp.MatrixSymbol("c", 1, 1)
    r = sp.MatrixSymbol("r", 1, d)
    Z, z = X * W + symgen.ones(n) * b, X * w + symgen.ones(n) * c
    shifted = symgen.elementwise(lambda u, y: symgen.sigmoid(u) + 1 - y, X * W, Y)
    spread = sp.HadamardProduct(symgen.sigmoid(X * w) * sp.OneMatrix(1, k), X * W)
    losses = {
        "tanh": (symgen.sum(symgen.square(symgen.tanh(X * W) - Y)), [W], [X, Y]),
        "tanh_bias": (symgen.sum(symgen.square(symgen.tanh(Z) - Y)), [W, b], [X, Y]),
        "shifted": (symgen.sum(symgen.square(shifted)), [W], [X, Y]),
        "softmax": (
            -symgen.sum(sp.HadamardProduct(Y, Z - symgen.logsumexp(Z, axis=1))),
            [W, b],
            [X, Y],
        ),
        "logistic_bias": (
            symgen.sum(symgen.softplus(z) - sp.HadamardProduct(t, z)),
            [w, c],
            [X, t],
        ),
        "column_spread": (symgen.sum(symgen.square(spread - Y)), [w, W], [X, Y]),
        "row_product": (symgen.sum(symgen.square(symgen.ones(n) * r * W - Y)), [r, W], [Y]),
    }
    return {
        name: symgen.Problem(loss, params=params, data=data, name=name)
        for name, (loss, params, data) in losses.items()
    }


def _texts(formulas: dict) -> dict[str, tuple[str, str]]:
    return {str(key): (str(f), sp.latex(f)) for key, f in formulas.items()}


INTEGER_DIMS = {
    "rows": (5, DIMS[1], DIMS[2]),
    "inner": (DIMS[0], 3, DIMS[2]),
    "columns": (DIMS[0], DIMS[1], 2),
    "all": (5, 3, 2),
}


@pytest.mark.parametrize("dims", INTEGER_DIMS.values(), ids=INTEGER_DIMS)
@pytest.mark.parametrize("name", sorted(_losses_over(*DIMS)))
def test_formulas_of_integer_dimensions_read_as_those_of_symbolic_ones(name, dims):
    """SymPy checks the shapes of sums and elementwise products only in the dimensions
    that are integers: the formulas of a row or column broadcast over a matrix (the
    bias row of ``tanh(X*W + b)``, the 1 x 1 stand-in for a scalar in ``tanh(X*W) - Y``)
    raised its ShapeError there, and only there. Each formula has the shape of what it
    computes (the gradient that of its parameter)."""
    problem, symbolic = _losses_over(*dims)[name], _losses_over(*DIMS)[name]
    grads, hessians = symgen.gradients(problem), symgen.hessians(problem)
    assert _texts(grads) == _texts(symgen.gradients(symbolic))
    assert _texts(hessians) == _texts(symgen.hessians(symbolic))
    assert all(g.shape == p.shape for p, g in grads.items())
    assert all(h.shape[0] == p.shape[0] for (p, _), h in hessians.items())


def test_tanh_of_a_product_of_integer_dimensions():
    """The reported case: ``W`` 3 x 2, ``N`` symbolic."""
    n = sp.Symbol("N", integer=True, positive=True)
    X, W, Y = sp.MatrixSymbol("X", n, 3), sp.MatrixSymbol("W", 3, 2), sp.MatrixSymbol("Y", n, 2)
    problem = symgen.Problem(symgen.sum(symgen.square(symgen.tanh(X * W) - Y)), [W], [X, Y])
    assert str(symgen.gradients(problem)[W]) == "2 * X.T*((-tanh(X*W)**2 + 1) ⊙ (tanh(X*W) - Y))"
    assert str(symgen.hessians(problem)[W, W]) == (
        "2 * X.T*((-tanh(X*W)**2 + 1) ⊙ (-tanh(X*W)**2 - 2 * ((tanh(X*W) - Y) ⊙ tanh(X*W)) + 1)"
        " ⊙ (X*v_W))"
    )


def test_cross_entropy_spelling_simplifies_to_sigmoid_minus_t():
    p = symgen.sigmoid(logistic.X * logistic.w)
    ce = symgen.Problem(
        -symgen.sum(
            symgen.elementwise(lambda p, t: t * sp.log(p) + (1 - t) * sp.log(1 - p), p, logistic.t)
        ),
        params=[logistic.w],
        data=[logistic.X, logistic.t],
        name="ce",
    )
    from symgen.cli.show import program

    code = program(ce)
    # gradient sigmoid(z) - t; loss softplus(z) - t*z: the two share one exp(-|z|) (in
    # the pass on one block of rows, whole, and in its loop over blocks)
    for branch in code.split("else:"):
        assert branch.count("np.exp(") == 1 and branch.count("np.log1p(") == 1
    assert code.count("else:") == 1
    assert "np.tanh" not in code and "np.logaddexp" not in code
    module = symgen.compile(ce)
    rng = np.random.default_rng()
    x = rng.standard_normal((100, 4)) * 3
    t = rng.integers(0, 2, (100, 1)).astype(float)
    w = rng.standard_normal((4, 1))

    def stable_reference(w, x, t):  # autograd of the naive form loses digits for |z| > 10
        z = x @ w
        return anp.sum(t * anp.logaddexp(0, -z) + (1 - t) * anp.logaddexp(0, z))

    value, (g,) = module.loss_and_grad(w, x, t)
    assert value == pytest.approx(stable_reference(w, x, t), rel=1e-12)
    np.testing.assert_allclose(g, autograd.grad(stable_reference)(w, x, t), rtol=1e-9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        big, (gb,) = module.loss_and_grad(
            np.array([[1.0]]), np.array([[1000.0], [-1000.0]]), np.array([[0.0], [0.0]])
        )
    assert big == pytest.approx(1000.0) and gb[0, 0] == pytest.approx(1000.0)


@pytest.mark.parametrize(
    "name", ["sum_mean_axes_broadcast", "logsumexp_axes", "elementwise_broadcast_row_column"]
)
def test_row_blocked_passes_across_block_boundaries(name):
    """Matrices with more rows than one block (8192 elements): the row-blocked passes of the
    NumPy backend agree with autograd, including the last, partial block."""
    loss, params, data, reference = CASES[name]
    module = symgen.compile(symgen.Problem(loss, params=params, data=data, name=name))
    assert "_start:_start + _rows" in symgen.generate(
        symgen.Problem(loss, params=params, data=data, name=name)
    )
    big = {"M": 5003, "N": 7, "K": 3}  # 1170 rows per block of A
    rng = np.random.default_rng(5)

    def shape(sym):
        return tuple(big[d.name] if d.is_Symbol else int(d) for d in sym.shape)

    values = {s.name: rng.uniform(-1, 1, shape(s)) for s in (*params, *data)}
    args = [values[s.name] for s in (*params, *data)]
    value, grads = module.loss_and_grad(*[np.copy(x) for x in args])
    assert value == pytest.approx(float(reference(values)), rel=1e-11)
    for p, g in zip(params, grads, strict=True):
        expected = autograd.grad(lambda x, p=p: reference({**values, p.name: x}))(values[p.name])
        np.testing.assert_allclose(g, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kind", ["scalar", "per-sample"])
def test_sigmoid_and_softplus_of_one_argument_share_the_exponential(kind):
    """softplus(z) and sigmoid(z) (the loss and its derivative) meet in one kernel: they are
    computed from one exp(-|z|), and stay exact from z = -1000 to 1000."""
    a, x = sp.symbols("a x")
    if kind == "scalar":
        z = a
        problem = symgen.Problem(symgen.softplus(z) + symgen.softplus(-2 * z), [a], name="sp1")
    else:
        z = a * x
        problem = symgen.Problem(symgen.softplus(z) + symgen.softplus(-2 * z), [a], [x], name="sp2")
    from symgen.cli.show import program

    code = program(problem)
    assert "tanh" not in code and "logaddexp" not in code and code.count("exp(") == 2
    module = symgen.compile(problem)
    zs = np.array([-1000.0, -40.0, -3.0, -1e-3, 0.0, 2e-3, 5.0, 40.0, 1000.0])

    def reference(av, xv):
        u = av * xv
        loss = np.logaddexp(0, u) + np.logaddexp(0, -2 * u)
        sig = np.vectorize(
            lambda v: 1 / (1 + math.exp(-v)) if v >= 0 else math.exp(v) / (1 + math.exp(v))
        )
        return loss, xv * sig(u) - 2 * xv * sig(-2 * u)

    with np.errstate(over="raise", invalid="raise", divide="raise"):
        if kind == "scalar":
            for value in zs:
                loss, (g,) = module.loss_and_grad(float(value))
                want_loss, want_g = reference(value, 1.0)
                assert loss == pytest.approx(want_loss, rel=1e-14)
                assert g == pytest.approx(want_g, rel=1e-14, abs=1e-300)
        else:
            loss, (g,) = module.loss_and_grad(1.0, zs)
            want_loss, want_g = reference(1.0, zs)
            assert loss == pytest.approx(want_loss.sum(), rel=1e-14)
            assert g == pytest.approx(want_g.sum(), rel=1e-12)
