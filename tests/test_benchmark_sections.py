"""The multi-thread and shapes sections of ``python -m benchmarks``: their hand-written
contenders compute what symgen's modules do, and the sections render."""

import numpy as np
import pytest

import symgen
from benchmarks import shapes, threads


def test_the_theano_tutorials_expert_step_is_symgens():
    problem = shapes.problem()
    w, b, X, y = shapes.data(300, 9, seed=2)
    loss, (gw, gb) = symgen.compile(problem).loss_and_grad(w, b, X, y)
    want_loss, (want_w, want_b) = shapes.expert_loss_and_grad(w, b, X, y)
    assert loss == pytest.approx(want_loss, rel=1e-12)
    np.testing.assert_allclose(gw, want_w, rtol=1e-10)
    np.testing.assert_allclose(gb, want_b, rtol=1e-10)
    module = symgen.compile(problem)
    w2, b2 = w.copy(), b.copy()
    module.sgd_step(w2, b2, X, y, lr=0.1)
    shapes.expert_step(w, b, X, y, 0.1)
    np.testing.assert_allclose(w2, w, rtol=1e-12)
    np.testing.assert_allclose(b2, b, rtol=1e-12)


def test_the_expert_softmax_regression_is_symgens():
    from examples.softmax import blobs, softmax

    x, y, _ = blobs(500, 4, 5, seed=1)
    rng = np.random.default_rng(0)
    W, b = rng.standard_normal((4, 5)), rng.standard_normal((1, 5))
    loss, grads = symgen.compile(softmax).loss_and_grad(W, b, x, y)
    want_loss, want = threads._softmax_numpy(W, b, x, y)
    assert loss == pytest.approx(want_loss, rel=1e-12)
    for g, h in zip(grads, want, strict=True):
        np.testing.assert_allclose(g, h, rtol=1e-9, atol=1e-15)


def test_the_row_wise_contenders_agree():
    """benchmarks/labels.py's second table: the NumPy module, the expert's NumPy (labels
    and one-hot), scikit-learn (when installed) and the C module agree before they are
    timed."""
    from benchmarks import labels

    for kind, d in (("multinomial", 0), ("softmax regression", 6)):
        contenders = labels.versus(kind, 300, d, 5)  # exits unless all agree (rtol 1e-10)
        assert len(contenders) == (7 if kind == "multinomial" else 6)
        assert [c.name for c in contenders[-2:]] == ["symgen C, labels", "symgen C, one-hot"]
    loss, (g,) = labels.expert_multinomial(np.zeros((3, 4)), y=np.array([0, 1, 3]))
    assert loss == pytest.approx(np.log(4.0))
    np.testing.assert_allclose(g.sum(axis=1), 0.0, atol=1e-15)


def test_the_sections_render():
    rows = [
        {"n": n, "d": d, "step": step, shapes.C_MODULE: 1e-3, shapes.NUMPY_MODULE: 2e-3,
         shapes.EXPERT: 1.5e-3}
        for n, d, step in [(400, 16, False), (400, 784, True)]
    ]  # fmt: skip
    heading, lines = shapes.section({"rows": rows})
    assert heading.startswith("Shapes") and "| `sgd_step` | 400 | 784 | 2.4 MiB |" in "\n".join(
        lines
    )
    result = {
        "cores": 2,
        "bandwidth_all": 20e9,
        "bandwidth_one": 12e9,
        "vectorised": {"exp": 1e-9, "log": 1.3e-9, "sin": 1e-9, "cos": 1e-9},
        "workloads": [
            {
                "key": key,
                "title": key,
                "rows": [
                    {"name": threads.SYMGEN_C, "note": "", "missing": None, "median": 0.01,
                     "spread": 0.02},
                    {"name": threads.SYMGEN_C_ONE, "note": "", "missing": None, "median": 0.019,
                     "spread": float("nan")},
                    {"name": "JAX", "note": "", "missing": None, "median": 0.02, "spread": 0.1},
                    {"name": "torch", "note": "", "missing": "not installed", "median": None,
                     "spread": None},
                ],
            }
            for key in threads.WORKLOADS
        ],
    }  # fmt: skip
    heading, lines = threads.section(result)
    text = "\n".join(lines)
    assert heading == "Multi-thread (2 cores)"
    assert text.count("speedup 1.90× from 1 to 2 threads") == 3
    assert "**ahead**" in text and "| torch | not installed |" in text
