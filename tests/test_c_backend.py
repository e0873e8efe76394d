"""The C backend: per-sample passes compiled to C, checked against the NumPy module,
HIPS autograd and central differences; its build (cache, compiler fallback, errors)."""

import os
import shutil
import stat
import subprocess
import sys

import autograd.numpy as anp
import numpy as np
import pytest
import sympy as sp
from autograd import grad as agrad
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import symgen
from examples import curve_fit, logistic, rosenbrock
from tests.gradcheck import central_differences
from tests.test_cuda_backend import MATRIX
from tests.test_random_losses import DATA, PARAMS, reference, trees

pytestmark = pytest.mark.skipif(
    not any(shutil.which(c) for c in ("cc", "gcc", "clang")), reason="no C compiler"
)

a, b, c, t, y, w = sp.symbols("a b c t y w")

#: Per-sample losses that exercise every kind of statement a pass can hold.
CASES = {
    "curve_fit": curve_fit.curve_fit,
    "logistic_pieces": symgen.Problem(
        symgen.softplus(a * t + b) - y * (a * t + b) + c**2 * symgen.sigmoid(b * y),
        params=[a, b, c],
        data=[t, y],
        reduce="mean",
        name="logistic_pieces",
    ),
    "weighted_robust": symgen.Problem(
        w * sp.log(1 + (a * t + b - y) ** 2) + sp.sqrt(1 + c**2 * t**2) + sp.atan(a * y),
        params=[a, b, c],
        data=[t, y, w],
        name="weighted_robust",
    ),
    "relu_and_powers": symgen.Problem(
        symgen.relu(a * t - b) ** 3 + sp.exp(-(c**2) * t) * sp.cos(a * y) + (t - y) / (2 + b**2),
        params=[a, b, c],
        data=[t, y],
        name="relu_and_powers",
    ),
}


def data_for(problem, n, rng, dtype="float64"):
    names = [d.name for d in problem.data]
    out = {}
    for name in names:
        if name == "w":
            out[name] = rng.uniform(0.1, 2.0, n)
        elif name == "y" and problem.name in ("logistic_pieces",):
            out[name] = (rng.uniform(size=n) < 0.5).astype(float)
        else:
            out[name] = rng.uniform(-2.0, 2.0, n)
    return {k: v.astype(dtype) for k, v in out.items()}


def point_for(problem, rng):
    return [float(v) for v in rng.uniform(-1.0, 1.0, len(problem.params))]


def with_dtype(problem, dtype):
    return symgen.Problem(
        problem.loss,
        params=problem.params,
        data=problem.data,
        reduce=problem.reduce,
        dtype=dtype,
        name=problem.name,
    )


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("n", [1, 7, 8193, 20011])
def test_c_module_matches_numpy_module(name, n):
    problem = CASES[name]
    rng = np.random.default_rng(n)
    c_module = symgen.compile(problem, "c")
    np_module = symgen.compile(problem)
    point, data = point_for(problem, rng), data_for(problem, n, rng)
    loss, grads = c_module.loss_and_grad(*point, **data)
    ref_loss, ref_grads = np_module.loss_and_grad(*point, **data)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    np.testing.assert_allclose(grads, ref_grads, rtol=1e-11, atol=1e-13)
    assert c_module.loss(*point, **data) == pytest.approx(ref_loss, rel=1e-12)
    np.testing.assert_allclose(c_module.grad(*point, **data), ref_grads, rtol=1e-11, atol=1e-13)


def test_curve_fit_gradient_against_autograd_and_central_differences():
    module = symgen.compile(curve_fit.curve_fit, "c")
    rng = np.random.default_rng(11)
    ts, ys = curve_fit.synthetic(5000, seed=3)
    point = list(rng.uniform(-0.5, 0.5, 6) + np.array(curve_fit.TRUE))

    def f(p):
        model = anp.exp(-p[0] * ts) * anp.sin(p[1] * ts + p[2]) + p[3] * ts**2 + p[4] * ts + p[5]
        return anp.mean((model - ys) ** 2)

    loss, grads = module.loss_and_grad(*point, t=ts, y=ys)
    assert loss == pytest.approx(float(f(np.array(point))), rel=1e-12)
    np.testing.assert_allclose(grads, agrad(f)(np.array(point)), rtol=1e-10, atol=1e-13)
    fd = central_differences(lambda *p: module.loss(*p, t=ts, y=ys), point)
    np.testing.assert_allclose(grads, fd, rtol=1e-6, atol=1e-9 * max(1.0, np.abs(fd).max()))


@pytest.mark.parametrize("name", ["curve_fit", "logistic_pieces"])
def test_float32_against_a_float64_reference(name):
    problem = CASES[name]
    rng = np.random.default_rng(5)
    point = point_for(problem, rng)
    data = data_for(problem, 30011, rng)
    ref_loss, ref_grads = symgen.compile(problem).loss_and_grad(*point, **data)
    module = symgen.compile(with_dtype(problem, "float32"), "c")
    assert "expf(" in module._SOURCE or "log1pf(" in module._SOURCE
    data32 = {k: v.astype(np.float32) for k, v in data.items()}
    loss, grads = module.loss_and_grad(*point, **data32)
    assert loss == pytest.approx(ref_loss, rel=1e-5)
    scale = max(1.0, np.abs(ref_grads).max())
    np.testing.assert_allclose(grads, ref_grads, rtol=1e-4, atol=1e-5 * scale)


def test_float32_branches_summed_in_double_against_a_float64_reference():
    """gcc 12.2 with -fno-trapping-math miscompiled this pass in float32 (the Huber loss's
    newton_step: six double sums of float branches came out as garbage); float32 modules
    compile without it (``compiler_flags``)."""
    a, b, t, y = sp.symbols("a b t y")
    r = a * t + b - y
    huber = sp.Piecewise((r**2 / 2, sp.Abs(r) <= 1), (sp.Abs(r) - sp.Rational(1, 2), True))
    rng = np.random.default_rng()
    ts, ys = rng.standard_normal(400), 2 * rng.standard_normal(400)
    problems = {
        dtype: symgen.Problem(huber, [a, b], [t, y], reduce="mean", dtype=dtype, name="h")
        for dtype in ("float32", "float64")
    }
    want_g = np.empty(2)
    want = symgen.compile(problems["float64"]).newton_step(0.3, -0.2, ts, ys, gradient=want_g)
    module = symgen.compile(problems["float32"], "c")
    assert "-fno-trapping-math" not in module._FLAGS
    got_g = np.empty(2)
    got = module.newton_step(
        0.3, -0.2, ts.astype(np.float32), ys.astype(np.float32), gradient=got_g
    )
    assert got[0] == pytest.approx(want[0], rel=1e-5)
    np.testing.assert_allclose(got_g, want_g, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-3, atol=1e-4)


def test_optimizer_steps_match_numpy_module():
    problem = curve_fit.curve_fit
    ts, ys = curve_fit.synthetic(3001)
    c_module, np_module = symgen.compile(problem, "c"), symgen.compile(problem)
    for m in (c_module, np_module):
        m.p = curve_fit.START
        m.mstate = m.momentum_state(*curve_fit.START)
        m.astate = m.adam_state(*curve_fit.START)
    for _ in range(5):
        results = []
        for m in (c_module, np_module):
            loss, m.p = m.sgd_step(*m.p, t=ts, y=ys, lr=0.01)
            _, _, m.mstate = m.momentum_step(*m.p, t=ts, y=ys, state=m.mstate, lr=0.01)
            _, _, m.astate = m.adam_step(*m.p, t=ts, y=ys, state=m.astate, lr=0.01)
            results.append((loss, m.p, m.mstate, m.astate[1]))
        for left, right in zip(*results, strict=True):
            np.testing.assert_allclose(left, right, rtol=1e-10)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    expr=trees([*PARAMS, *DATA, PARAMS[0] * DATA[0], PARAMS[1] * DATA[1]]),
    point=st.lists(st.floats(-1.5, 1.5), min_size=3, max_size=3),
    n=st.integers(1, 300),
    seed=st.integers(0, 2**31),
)
def test_random_per_sample_losses(expr, point, n, seed):
    params = [p for p in PARAMS if p in expr.free_symbols]
    data = [d for d in DATA if d in expr.free_symbols]
    if not params or not data:
        return
    module = symgen.compile(symgen.Problem(expr, params=params, data=data, name="rand_c"), "c")
    rng = np.random.default_rng(seed)
    samples = [rng.uniform(-1.5, 1.5, n) for _ in data]
    values = [float(v) for v in point[: len(params)]]
    loss, grads = module.loss_and_grad(*values, *samples)
    ref_loss, ref_grads = reference(expr, params, data, values, samples)
    assert loss == pytest.approx(ref_loss, rel=1e-9, abs=1e-11)
    np.testing.assert_allclose(grads, ref_grads, rtol=1e-8, atol=1e-10)


def test_nan_and_infinity_behave_as_in_numpy():
    module = symgen.compile(CASES["logistic_pieces"], "c")
    reference_module = symgen.compile(CASES["logistic_pieces"])
    t_ = np.array([0.5, np.nan, 1.0])
    y_ = np.array([1.0, 0.0, 1.0])
    assert np.isnan(module.loss(0.3, 0.2, 0.1, t=t_, y=y_))
    big = np.array([1e300, -1e300, 3.0])  # softplus of ±huge: no overflow to inf or nan
    loss = module.loss(1.0, 0.0, 0.0, t=big, y=y_)
    assert loss == pytest.approx(reference_module.loss(1.0, 0.0, 0.0, t=big, y=y_), rel=1e-14)


def test_strided_and_integer_data_are_accepted():
    module = symgen.compile(curve_fit.curve_fit, "c")
    ts, ys = curve_fit.synthetic(4001)
    wide = np.stack([ts, ys], axis=1)  # columns are strided views
    p = curve_fit.START
    expected = module.loss_and_grad(*p, t=ts, y=ys)
    got = module.loss_and_grad(*p, t=wide[:, 0], y=wide[:, 1])
    assert got == expected
    ints = np.arange(10)
    assert module.loss(*p, t=ints, y=ints) == pytest.approx(
        symgen.compile(curve_fit.curve_fit).loss(*p, t=ints, y=ints), rel=1e-13
    )


def test_argument_errors_are_the_numpy_modules():
    module = symgen.compile(curve_fit.curve_fit, "c")
    with pytest.raises(ValueError, match="1-D array of samples"):
        module.loss(*curve_fit.START, t=np.ones((2, 2)), y=np.ones(2))
    with pytest.raises(ValueError, match="has 3 samples but 't' has 2"):
        module.loss(*curve_fit.START, t=np.ones(2), y=np.ones(3))
    with pytest.raises(TypeError, match="parameter 'a' must be a real number"):
        module.loss("x", *curve_fit.START[1:], t=np.ones(2), y=np.ones(2))


def test_scalar_losses_compute_on_python_floats():
    source = symgen.generate(rosenbrock.rosenbrock, "c")
    assert "(C backend)" in source and "_SOURCE" not in source and "ctypes" not in source
    module = symgen.compile(rosenbrock.rosenbrock, "c")
    reference_module = symgen.compile(rosenbrock.rosenbrock)
    assert module.sgd_step(2.0, 2.0, lr=1e-3) == reference_module.sgd_step(2.0, 2.0, lr=1e-3)


def fresh_module(tmp_path, monkeypatch, name="fresh"):
    """A C module whose build starts from an empty cache in tmp_path."""
    monkeypatch.setenv("SYMGEN_CACHE_DIR", str(tmp_path / "cache"))
    problem = symgen.Problem(
        (a * t - y) ** 2 + sp.sin(b * t), params=[a, b], data=[t, y], name=name
    )
    return symgen.compile(problem, "c")


def test_the_library_is_built_once_and_then_found_in_the_cache(tmp_path, monkeypatch):
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    builds = tmp_path / "builds"
    wrapper = tmp_path / "countingcc"  # counts the builds (-shared), not the probes (-E)
    wrapper.write_text(
        f'#!/bin/sh\ncase " $* " in *" -shared "*) echo build >> {builds};; esac\n'
        f'exec {compiler} "$@"\n'
    )
    wrapper.chmod(0o755)
    monkeypatch.setenv("CC", str(wrapper))
    module = fresh_module(tmp_path, monkeypatch)
    assert module.loss(1.0, 2.0, t=np.ones(3), y=np.zeros(3)) == pytest.approx(
        3 * (1 + np.sin(2.0))
    )
    (built,) = (tmp_path / "cache").glob("fresh_*.so")
    # Another process (a new import) finds it: the compiler is asked only for the key.
    again = fresh_module(tmp_path, monkeypatch)
    assert again.loss(1.0, 2.0, t=np.ones(3), y=np.zeros(3)) == pytest.approx(3 * (1 + np.sin(2.0)))
    assert builds.read_text() == "build\n"
    # the library and its sha256; no leftovers
    names = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert names == [built.name, f"{built.name}.sha256"]


def test_no_compiler_is_a_clear_error(tmp_path, monkeypatch):
    module = fresh_module(tmp_path, monkeypatch, name="nocc")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("CC", raising=False)
    with pytest.raises(RuntimeError, match="found no C compiler.*set CC, or use the NumPy"):
        module.loss(1.0, 2.0, t=np.ones(3), y=np.zeros(3))


def test_a_compiler_rejecting_the_fast_flags_gets_the_portable_ones(tmp_path, monkeypatch):
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    wrapper = tmp_path / "oldcc"
    wrapper.write_text(
        "#!/bin/sh\n"
        'for arg in "$@"; do [ "$arg" = "-march=native" ] && exit 1; done\n'
        f'exec {compiler} "$@"\n'
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("CC", str(wrapper))
    module = fresh_module(tmp_path, monkeypatch, name="portable")
    assert module.loss(1.0, 0.0, t=np.arange(4.0), y=np.arange(4.0)) == pytest.approx(0.0)


def test_compile_errors_show_the_compiler_output(tmp_path, monkeypatch):
    wrapper = tmp_path / "badcc"
    wrapper.write_text("#!/bin/sh\necho 'passes.c:1: error: broken compiler' >&2\nexit 1\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("CC", str(wrapper))
    module = fresh_module(tmp_path, monkeypatch, name="broken")
    with pytest.raises(RuntimeError, match="compiling the C passes failed(.|\n)*broken compiler"):
        module.loss(1.0, 0.0, t=np.ones(2), y=np.ones(2))


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or shutil.which("nm") is None, reason="needs nm"
)
def test_math_functions_are_vectorised_with_gcc_and_glibc(tmp_path, monkeypatch):
    """The pass calls libmvec's vector exp, sin and cos (``_ZGV...``), not one value at a time."""
    gcc = shutil.which("gcc")
    version = subprocess.run([gcc, "--version"], capture_output=True).stdout if gcc else b""
    if b"Free Software" not in version:
        pytest.skip("needs GCC")
    monkeypatch.setenv("CC", gcc)
    monkeypatch.setenv("SYMGEN_CACHE_DIR", str(tmp_path))
    module = symgen.compile(curve_fit.curve_fit, "c")
    library = module._lib()
    symbols = subprocess.run(
        ["nm", "-D", "--undefined-only", library._name], capture_output=True, text=True
    ).stdout
    vector = {line.split()[-1].split("@")[0] for line in symbols.splitlines() if "_ZGV" in line}
    if not vector:
        pytest.skip("this CPU/compiler pair has no vector math variants")
    assert {name.rsplit("_", 1)[-1] for name in vector} >= {"exp", "sin", "cos"}


# -- matrix losses: BLAS products, compiled passes between them ---------------------------


@pytest.mark.parametrize("name", sorted(MATRIX))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_matrix_losses_match_numpy_module(name, dtype):
    problem, data = MATRIX[name]
    problem = with_dtype(problem, dtype)
    c_module = symgen.compile(problem, "c")
    assert c_module._SIGNATURES  # its passes are compiled
    reference_module = symgen.compile(with_dtype(problem, "float64"))
    args = data(np.random.default_rng(len(name)))
    loss, grads = c_module.loss_and_grad(*[a.astype(dtype) for a in args])
    want_loss, want_grads = reference_module.loss_and_grad(*args)
    rtol = 1e-12 if dtype == "float64" else 2e-5
    assert loss == pytest.approx(want_loss, rel=rtol)
    for g, w in zip(grads, want_grads, strict=True):
        assert g.dtype == np.dtype(dtype) and g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=rtol * 10, atol=rtol * np.abs(w).max())


@pytest.mark.parametrize("name", sorted(MATRIX))
def test_matrix_gradients_against_central_differences(name):
    problem, data = MATRIX[name]
    module = symgen.compile(with_dtype(problem, "float64"), "c")
    args = data(np.random.default_rng(3))
    n = len(problem.params)
    _, grads = module.loss_and_grad(*args)
    for k in range(n):
        flat = args[k].ravel()
        for e in np.random.default_rng(k).choice(flat.size, size=min(4, flat.size), replace=False):

            def f(v, k=k, e=e):
                moved = [a.copy() for a in args]
                moved[k].ravel()[e] = v
                return module.loss(*moved)

            (fd,) = central_differences(f, [flat[e]])
            assert grads[k].ravel()[e] == pytest.approx(fd, rel=1e-6, abs=1e-8)


@pytest.mark.parametrize("name", sorted(MATRIX))
def test_matrix_optimizer_steps_match_numpy_module(name):
    problem, data = MATRIX[name]
    problem = with_dtype(problem, "float64")
    c_module, reference_module = symgen.compile(problem, "c"), symgen.compile(problem)
    args = data(np.random.default_rng(7))
    n = len(problem.params)
    ours, theirs = [a.copy() for a in args], [a.copy() for a in args]
    s, r = c_module.adam_state(*ours[:n]), reference_module.adam_state(*theirs[:n])
    for _ in range(3):
        loss, _ = c_module.sgd_step(*ours, lr=0.01)
        want, _ = reference_module.sgd_step(*theirs, lr=0.01)
        assert loss == pytest.approx(want, rel=1e-12)
        loss, _, s = c_module.adam_step(*ours, state=s, lr=0.01)
        want, _, r = reference_module.adam_step(*theirs, state=r, lr=0.01)
    for a, b in zip(ours[:n], theirs[:n], strict=True):  # updated in place, both
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)


def test_fortran_ordered_and_strided_matrices_are_read_correctly():
    problem, data = MATRIX["softmax"]
    c_module, reference_module = symgen.compile(problem, "c"), symgen.compile(problem)
    args = data(np.random.default_rng(1))
    odd = [np.asfortranarray(args[0]), args[1], args[2][::1].copy(order="F"), args[3]]
    loss, grads = c_module.loss_and_grad(*odd)
    want_loss, want_grads = reference_module.loss_and_grad(*args)
    assert loss == pytest.approx(want_loss, rel=1e-12)
    for g, w in zip(grads, want_grads, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-11, atol=1e-13)


def test_names_the_c_code_reserves_are_refused():
    from symgen.errors import SpecError

    clash = sp.Symbol("sg_scale")  # the prefix of the C helper functions
    problem = symgen.Problem((clash * t - y) ** 2, params=[clash], data=[t, y], name="clash")
    with pytest.raises(SpecError, match="reserves the name prefix of 'sg_scale'"):
        symgen.generate(problem, "c")


def test_fit_and_symgen_train_run_on_the_c_module(tmp_path, root, monkeypatch, capsys):
    from symgen.cli.commands import main

    ts, ys = curve_fit.synthetic(2000)
    result = symgen.fit(
        symgen.compile(curve_fit.curve_fit, "c"),
        curve_fit.START,
        {"t": ts, "y": ys},
        steps=300,
        lr=0.02,
        progress=False,
    )
    reference = symgen.fit(
        symgen.compile(curve_fit.curve_fit),
        curve_fit.START,
        {"t": ts, "y": ys},
        steps=300,
        lr=0.02,
        progress=False,
    )
    np.testing.assert_allclose(result.history, reference.history, rtol=1e-9)
    monkeypatch.chdir(root)
    np.savez(tmp_path / "data.npz", t=ts, y=ys)
    np.savez(tmp_path / "init.npz", **dict(zip("abcdeg", curve_fit.START, strict=True)))
    out = tmp_path / "params.npz"
    argv = (
        f"train examples/curve_fit.py --data {tmp_path}/data.npz --init {tmp_path}/init.npz"
        " --steps 50 --lr 0.02"
    )
    assert main([*argv.split(), "--backend", "c", "--out", str(out), "-q"]) == 0
    assert "after 50 adam steps" in capsys.readouterr().out
    with np.load(out) as params:
        assert sorted(params.files) == ["a", "b", "c", "d", "e", "g"]


# -- matrix-vector products fused into the pass over the rows ----------------------------

_N, _D = sp.symbols("N D", integer=True, positive=True)
_Xm, _wv, _yv = (
    sp.MatrixSymbol("X", _N, _D),
    sp.MatrixSymbol("w", _D, 1),
    sp.MatrixSymbol("y", _N, 1),
)
_bv = sp.MatrixSymbol("b", 1, 1)


def _glm(loss, name, dtype="float64"):
    return symgen.Problem(loss, params=[_wv], data=[_Xm, _yv], name=name, dtype=dtype)


GLMS = {
    "least_squares": lambda dtype: _glm(
        symgen.sum(symgen.square(_Xm * _wv - _yv)) / _N, "least_squares", dtype
    ),
    "poisson": lambda dtype: _glm(
        symgen.sum(symgen.elementwise(sp.exp, _Xm * _wv) - sp.HadamardProduct(_yv, _Xm * _wv)),
        "poisson",
        dtype,
    ),
    "logistic": lambda dtype: with_dtype(logistic.logistic, dtype),
}


@pytest.mark.parametrize("name", sorted(GLMS))
@pytest.mark.parametrize("n, d", [(1, 3), (37, 5), (2000, 16), (300, 3000), (4099, 7)])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_products_by_the_data_matrix_run_inside_the_pass(name, n, d, dtype, monkeypatch):
    """X @ w and X.T @ r read X once, a chunk of rows at a time, for every chunk size (more
    rows than a chunk, fewer, one row per chunk when a row is wider than a chunk, a last
    group of rows shorter than the others)."""
    problem = GLMS[name](dtype)
    source = symgen.generate(problem, "c")
    assert "with the products by X" in source and " @ " not in source.split('_SOURCE = r"""')[0]
    c_module = symgen.compile(problem, "c")
    monkeypatch.setattr(c_module, "_FUSED_AT_MOST", 1 << 62)  # fused at every size
    reference_module = symgen.compile(with_dtype(problem, "float64"))
    rng = np.random.default_rng(n + d)
    X_ = rng.standard_normal((n, d)) / np.sqrt(d)
    w_ = rng.standard_normal((d, 1)) * 0.5
    y_ = (rng.random((n, 1)) < 0.5).astype(float)
    if name == "poisson":
        y_ = rng.poisson(1.0, (n, 1)).astype(float)
    args = [a.astype(dtype) for a in (w_, X_, y_)]
    loss, (g,) = c_module.loss_and_grad(*args)
    want_loss, (want,) = reference_module.loss_and_grad(w_, X_, y_)
    rtol = 1e-12 if dtype == "float64" else 3e-5
    assert loss == pytest.approx(want_loss, rel=rtol, abs=rtol)
    assert g.shape == (d, 1) and g.dtype == np.dtype(dtype)
    np.testing.assert_allclose(g, want, rtol=rtol * 10, atol=rtol * max(1.0, np.abs(want).max()))
    assert c_module.loss(*args) == pytest.approx(want_loss, rel=rtol, abs=rtol)


class _Calls:
    """The compiled passes of a module, recording the name of each one called."""

    def __init__(self, library):
        self.library, self.names = library, []

    def __getattr__(self, name):
        self.names.append(name)
        return getattr(self.library, name)


@pytest.mark.parametrize("name", sorted(GLMS))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_fused_products_or_blas_by_the_size_of_the_matrix(name, dtype, monkeypatch):
    """Small (<= _FUSED_AT_MOST bytes) and large (>= _FUSED_AT_LEAST) matrices are read by
    the pass itself; in between, BLAS computes the products around a pass without them.
    Both ways give the reference's numbers."""
    problem = GLMS[name](dtype)
    c_module = symgen.compile(problem, "c")
    reference_module = symgen.compile(with_dtype(problem, "float64"))
    calls = _Calls(c_module._lib())
    monkeypatch.setattr(c_module, "_lib", lambda: calls)
    assert (c_module._FUSED_AT_MOST, c_module._FUSED_AT_LEAST) == (64 << 10, 16 << 20)
    rng = np.random.default_rng(4)
    for n, d, fused in [(40, 16, True), (4000, 16, False), (300, 300, False)]:
        X_ = rng.standard_normal((n, d)) / np.sqrt(d)
        w_ = rng.standard_normal((d, 1)) * 0.5
        y_ = (rng.random((n, 1)) < 0.5).astype(float)
        if name == "poisson":
            y_ = rng.poisson(1.0, (n, 1)).astype(float)
        want_loss, (want,) = reference_module.loss_and_grad(w_, X_, y_)
        args = [a.astype(dtype) for a in (w_, X_, y_)]
        for threshold in (None, n * d * np.dtype(dtype).itemsize):  # as chosen; the other way
            if threshold is not None:  # the larger threshold down to this matrix: fused
                monkeypatch.setattr(c_module, "_FUSED_AT_LEAST", threshold)
            calls.names.clear()
            loss, (g,) = c_module.loss_and_grad(*args)
            assert calls.names == ["loss_and_grad_0" if fused or threshold else "loss_and_grad_1"]
            rtol = 1e-12 if dtype == "float64" else 3e-5
            assert loss == pytest.approx(want_loss, rel=rtol, abs=rtol)
            np.testing.assert_allclose(
                g, want, rtol=rtol * 10, atol=rtol * max(1.0, np.abs(want).max())
            )
            monkeypatch.setattr(c_module, "_FUSED_AT_LEAST", 16 << 20)


def test_a_second_product_by_the_same_matrix_stays_in_blas():
    """One pass takes over one product by X (and its transposed partner); the products by
    X of a second parameter run in BLAS, around the same pass."""
    w2 = sp.MatrixSymbol("v", _D, 1)
    loss = symgen.sum(symgen.square(_Xm * _wv - _yv)) + symgen.sum(symgen.softplus(_Xm * w2))
    problem = symgen.Problem(loss, params=[_wv, w2], data=[_Xm, _yv], name="two_products")
    source = symgen.generate(problem, "c")
    python_part = source.split('_SOURCE = r"""')[0] + source.split('"""\n\n#: Argument')[-1]
    assert "with the products by X" in source and "X @ " in python_part and "X.T @ " in python_part
    c_module, reference_module = symgen.compile(problem, "c"), symgen.compile(problem)
    rng = np.random.default_rng(2)
    args = [rng.standard_normal((4, 1)), rng.standard_normal((4, 1))]
    args += [rng.standard_normal((300, 4)), rng.standard_normal((300, 1))]
    loss, grads = c_module.loss_and_grad(*args)
    want_loss, want = reference_module.loss_and_grad(*args)
    assert loss == pytest.approx(want_loss, rel=1e-12)
    for g, w in zip(grads, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-11)


@pytest.mark.parametrize("name", ["least_squares", "poisson"])
def test_fused_products_against_autograd(name):
    module = symgen.compile(GLMS[name]("float64"), "c")
    rng = np.random.default_rng(9)
    X_ = rng.standard_normal((700, 6)) / 3
    y_ = rng.poisson(1.0, (700, 1)).astype(float)
    w_ = rng.standard_normal((6, 1)) * 0.3

    def f(w):
        z = anp.dot(X_, w)
        if name == "least_squares":
            return anp.sum((z - y_) ** 2) / X_.shape[0]
        return anp.sum(anp.exp(z) - y_ * z)

    loss, (g,) = module.loss_and_grad(w_, X_, y_)
    assert loss == pytest.approx(float(f(w_)), rel=1e-12)
    np.testing.assert_allclose(g, agrad(f)(w_), rtol=1e-11, atol=1e-13)


def test_an_unwritable_cache_is_a_clear_error(tmp_path, monkeypatch):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    module = fresh_module(tmp_path, monkeypatch, name="nowrite")
    monkeypatch.setenv("SYMGEN_CACHE_DIR", str(blocked / "cache"))
    with pytest.raises(RuntimeError, match="cannot write the cache.*set SYMGEN_CACHE_DIR"):
        module.loss(1.0, 2.0, t=np.ones(3), y=np.zeros(3))


def test_a_cached_library_that_does_not_load_is_built_again(tmp_path, monkeypatch):
    module = fresh_module(tmp_path, monkeypatch, name="stale")
    built = module._build()  # compiled into the cache, not loaded yet
    built.write_bytes(b"not a shared library")
    with pytest.warns(UserWarning, match="sha256 is not the one recorded.*building it again"):
        assert module.loss(1.0, 2.0, t=np.ones(3), y=np.zeros(3)) == pytest.approx(
            3 * (1 + np.sin(2.0))
        )
    assert built.read_bytes() != b"not a shared library"


def test_baked_optimizer_in_a_c_module():
    ts, ys = curve_fit.synthetic(1001)
    baked = symgen.compile(curve_fit.curve_fit, "c", optimizer="adam", lr=0.02, beta1=0.8)
    plain = symgen.compile(curve_fit.curve_fit, "c")
    assert baked.OPTIMIZER == "adam" and "ctypes" in symgen.generate(
        curve_fit.curve_fit, "c", optimizer="adam", lr=0.02
    )
    p, q = curve_fit.START, curve_fit.START
    s, r = baked.step_state(*p), plain.adam_state(*q)
    for _ in range(4):
        loss, p, s = baked.step(*p, t=ts, y=ys, state=s)
        want, q, r = plain.adam_step(*q, t=ts, y=ys, state=r, lr=0.02, beta1=0.8)
        assert loss == want and p == q


def test_the_curve_fit_example_runs_on_the_c_module(root):
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run(
        [sys.executable, "examples/curve_fit.py", "c"],
        cwd=root, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "loss: 0.274620 -> 0.000100 after 3000 Adam steps" in done.stdout


def test_train_with_the_c_backend_on_lazy_data_says_what_to_do(tmp_path, root, monkeypatch, capsys):
    from symgen.cli.commands import main

    monkeypatch.chdir(root)
    ts, ys = curve_fit.synthetic(100)
    folder = tmp_path / "data"
    folder.mkdir()
    np.save(folder / "t.npy", ts)
    np.save(folder / "y.npy", ys)
    np.savez(tmp_path / "init.npz", **dict(zip("abcdeg", curve_fit.START, strict=True)))
    argv = f"train examples/curve_fit.py --data {folder} --init {tmp_path}/init.npz --steps 5"
    code = main([*argv.split(), "--backend", "c", "--out", str(tmp_path / "p.npz"), "-q"])
    assert code == 2
    assert "data read lazily (dask)" in capsys.readouterr().err
