"""Reverse mode over the IR, checked by interpreting the IR graphs numerically.

The frontend lowers only scalar and per-sample losses so far; these tests
build matrix graphs (MatMul, Transpose, broadcasting, a node used twice)
directly, so the adjoint rules are verified before any frontend uses them.
"""

import autograd
import autograd.numpy as anp
import numpy as np
import sympy as sp

from symgen.compiler.autodiff import gradients
from symgen.compiler.ir import Const, Input, Map, MatMul, Node, Reduce, Transpose, map_, topological


def evaluate(outputs: list[Node], values: dict[str, np.ndarray]) -> list[np.ndarray]:
    """A direct NumPy interpreter of IR graphs (a reference, not the code generator)."""
    cache: dict[Node, np.ndarray] = {}
    for node in topological(outputs):
        if isinstance(node, Input):
            out = np.asarray(values[node.name], dtype=float)
        elif isinstance(node, Const):
            out = np.full([int(d) for d in node.shape], float(node.value))
        elif isinstance(node, Map):
            f = sp.lambdify(node.fn.variables, node.fn.expr, "numpy")
            shape = [int(d) for d in node.shape]
            out = np.broadcast_to(np.asarray(f(*(cache[a] for a in node.args)), float), shape)
        elif isinstance(node, Reduce):
            out = cache[node.arg].sum(axis=node.axes, keepdims=bool(node.shape))
        elif isinstance(node, MatMul):
            out = cache[node.a] @ cache[node.b]
        elif isinstance(node, Transpose):
            out = cache[node.arg].T
        cache[node] = out
    return [cache[o] for o in outputs]


def lam(n, body):
    vs = sp.symbols(f"v0:{n}", real=True)
    return sp.Lambda(vs, body(*vs))


def test_matmul_transpose_broadcast_and_reuse():
    m, k, n = (sp.Integer(v) for v in (5, 3, 4))
    X = Input("X", (m, k), "data")
    W = Input("W", (k, n), "param")
    b = Input("b", (sp.S.One, n), "param")
    s = Input("s", (), "param")
    Y = Input("Y", (m, n), "data")
    H = MatMul(X, W, (m, n))
    Z = map_(lam(3, lambda h, bb, ss: sp.tanh(h + bb) * ss), (H, b, s), (m, n))
    # W is used twice: once as W, once as W.T (Z @ W.T @ W)
    back = MatMul(MatMul(Z, Transpose(W, (n, k)), (m, k)), W, (m, n))
    R = map_(lam(2, lambda z, y: (z - y) ** 2), (back, Y), (m, n))
    loss = Reduce(R, (0, 1), ())
    grads = gradients(loss, (W, b, s))

    rng = np.random.default_rng()
    vals = {
        "X": rng.standard_normal((5, 3)),
        "W": rng.standard_normal((3, 4)),
        "b": rng.standard_normal((1, 4)),
        "s": 0.7,
        "Y": rng.standard_normal((5, 4)),
    }

    def reference(Wv, bv, sv):
        Zv = anp.tanh(vals["X"] @ Wv + bv) * sv
        return anp.sum((Zv @ Wv.T @ Wv - vals["Y"]) ** 2)

    got = evaluate([loss, *grads], vals)
    assert np.isclose(got[0], reference(vals["W"], vals["b"], vals["s"]), rtol=1e-13)
    for i, g in enumerate(got[1:]):
        expected = autograd.grad(reference, i)(vals["W"], vals["b"], vals["s"])
        np.testing.assert_allclose(g, expected, rtol=1e-10)
        assert g.shape == np.shape(expected)


def test_gradient_cost_grows_linearly_with_depth():
    n = sp.Integer(4)

    def chain(depth):
        W = Input("W", (n, n), "param")
        x = Input("x", (n, n), "data")
        h = x
        for _ in range(depth):
            h = map_(lam(1, lambda v: sp.tanh(v)), (MatMul(h, W, (n, n)),), (n, n))
        loss = Reduce(h, (0, 1), ())
        (g,) = gradients(loss, (W,))
        return len(topological([g]))

    sizes = [chain(d) for d in (10, 20, 30)]
    assert sizes[2] - sizes[1] == sizes[1] - sizes[0]  # exactly linear in depth
    assert sizes[2] < 12 * 30


def test_unused_input_gets_zero_gradient():
    x = Input("x", (), "param")
    y = Input("y", (), "param")
    loss = map_(lam(1, lambda v: v**3), (x,), ())
    gx, gy = gradients(loss, (x, y))
    assert isinstance(gy, Const) and gy.value == 0
    assert evaluate([gx], {"x": 2.0, "y": 0.0})[0] == 12.0
