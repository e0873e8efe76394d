"""The CUDA backend: generated CuPy modules compiled with nvcc, run end to end on the CPU
through the emulator (symgen.testing), and compared with the NumPy backend.

With a GPU and CuPy installed, the same comparisons run against real CuPy too
(the ``device`` fixture is parametrized over what this machine has).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import types

import numpy as np
import pytest
import sympy as sp

import symgen
from examples import curve_fit, logistic, mlp, rosenbrock, softmax
from symgen.backends.cuda import module as cuda_backend
from symgen.compiler.pipeline import run

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="the emulator needs g++")


def _real_cupy():
    try:
        import cupy

        cupy.cuda.runtime.getDeviceCount()
        return cupy
    except Exception:  # noqa: BLE001 - no cupy, no driver or no device
        return None


DEVICES = ["emulated"] + (["cupy"] if _real_cupy() is not None else [])


@pytest.fixture(params=DEVICES)
def cp(request):
    if request.param == "cupy":
        return _real_cupy()
    from symgen.testing import fakecupy

    return fakecupy


def load(problem, cp, **baked) -> types.ModuleType:
    """The generated CUDA module of ``problem``, importing ``cp`` as its cupy."""
    source = symgen.generate(problem, "cuda", **baked)
    module = types.ModuleType(f"{problem.name}_cuda")
    saved = sys.modules.get("cupy")
    sys.modules["cupy"] = cp
    try:
        exec(compile(source, f"<{problem.name}_cuda>", "exec"), module.__dict__)
    finally:
        if saved is None:
            del sys.modules["cupy"]
        else:
            sys.modules["cupy"] = saved
    return module


def with_dtype(problem, dtype):
    p = problem
    return symgen.Problem(p.loss, p.params, p.data, reduce=p.reduce, dtype=dtype, name=p.name)


def as32(problem):
    return with_dtype(problem, "float32")


def host(x):
    return x.get() if hasattr(x, "get") else x


def close(a, b, rtol):
    np.testing.assert_allclose(np.asarray(host(a), dtype=np.float64), b, rtol=rtol, atol=0)


def tolerance(problem):
    return 1e-5 if problem.dtype == "float32" else 1e-10


# -- W4: one kernel reads each sample once ----------------------------------------------


@pytest.mark.parametrize("n", [1, 7, 256, 1000, 2049])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_w4_loss_and_grad_matches_numpy(cp, n, dtype):
    problem = with_dtype(curve_fit.curve_fit, dtype)
    gpu = load(problem, cp)
    ref = symgen.compile(problem)
    t, y = curve_fit.synthetic(n, seed=n)
    t, y = t.astype(dtype), y.astype(dtype)
    params = (0.9, 2.8, 0.2, 0.01, -0.1, 0.5)
    loss, grads = gpu.loss_and_grad(*params, cp.asarray(t), cp.asarray(y))
    want_loss, want_grads = ref.loss_and_grad(*params, t, y)
    assert isinstance(loss, float) and all(isinstance(g, float) for g in grads)
    rtol = tolerance(problem)
    close(loss, want_loss, rtol)
    for g, w in zip(grads, want_grads, strict=True):
        close(g, w, rtol * 10 if dtype == "float32" else rtol)
    assert gpu.loss(*params, cp.asarray(t), cp.asarray(y)) == pytest.approx(loss, rel=rtol)


def test_w4_grid_stride_beyond_max_blocks(cp):
    """More samples than threads in the grid: every thread loops (MAX_BLOCKS made small)."""
    gpu = load(curve_fit.curve_fit, cp)
    gpu.MAX_BLOCKS = 3
    ref = symgen.compile(curve_fit.curve_fit)
    t, y = curve_fit.synthetic(3 * 256 * 4 + 5, seed=1)
    params = curve_fit.START
    loss, grads = gpu.loss_and_grad(*params, cp.asarray(t), cp.asarray(y))
    want_loss, want_grads = ref.loss_and_grad(*params, t, y)
    close(loss, want_loss, 1e-10)
    close(grads, want_grads, 1e-10)


def test_w4_float32_sums_accumulate_in_double(cp):
    """A float32 mean over many samples equals the float64 mean of the same float32
    values to float32 accuracy (a float32 running sum would drift)."""
    problem = as32(curve_fit.curve_fit)
    gpu = load(problem, cp)
    ref = symgen.compile(curve_fit.curve_fit)
    t, y = curve_fit.synthetic(100_000, seed=3)
    t32, y32 = t.astype(np.float32), y.astype(np.float32)
    loss, grads = gpu.loss_and_grad(*curve_fit.START, cp.asarray(t32), cp.asarray(y32))
    want_loss, want_grads = ref.loss_and_grad(
        *curve_fit.START, t32.astype(float), y32.astype(float)
    )
    close(loss, want_loss, 2e-6)
    close(grads, want_grads, 2e-5)


def test_w4_steps_match_numpy(cp):
    gpu = load(curve_fit.curve_fit, cp)
    ref = symgen.compile(curve_fit.curve_fit)
    t, y = curve_fit.synthetic(3000, seed=2)
    dt, dy = cp.asarray(t), cp.asarray(y)
    p, q = curve_fit.START, curve_fit.START
    for _ in range(5):
        loss, p = gpu.sgd_step(*p, dt, dy, lr=0.05)
        want, q = ref.sgd_step(*q, t, y, lr=0.05)
        close(loss, want, 1e-10)
    close(p, q, 1e-10)
    state, ref_state = gpu.adam_state(*p), ref.adam_state(*q)
    for _ in range(5):
        _, p, state = gpu.adam_step(*p, dt, dy, state=state, lr=0.01)
        _, q, ref_state = ref.adam_step(*q, t, y, state=ref_state, lr=0.01)
    close(p, q, 1e-10)


# -- matrix problems: cuBLAS products and fused elementwise kernels ---------------------


def mlp_data(rng, m=37, n_i=19, n_h=11, n_o=5):
    return (
        rng.standard_normal((n_i, n_h)) * 0.3,
        rng.standard_normal((n_h, n_o)) * 0.3,
        rng.standard_normal((m, n_i)),
        rng.standard_normal((m, n_o)),
    )


def logistic_data(rng, n=301, d=4):
    x = rng.standard_normal((n, d))
    return rng.standard_normal((d, 1)), x, (rng.random((n, 1)) < 0.5).astype(float)


def softmax_data(rng, n=203, d=3, k=4):
    y = np.eye(k)[rng.integers(0, k, n)]
    return rng.standard_normal((d, k)), rng.standard_normal((1, k)), rng.standard_normal((n, d)), y


_n, _m = sp.symbols("n m", integer=True, positive=True)
_S, _X = sp.MatrixSymbol("S", _n, _n), sp.MatrixSymbol("X", _m, _n)
#: Trace of a lone matrix and an identity in a sum: the identity is made on the device.
TRACE = symgen.Problem(
    sp.Trace(_S) + symgen.sum(symgen.square(_X * (_S + sp.Identity(_n)))) / _m,
    params=[_S],
    data=[_X],
    name="trace_identity",
)


def trace_data(rng, n=7, m=23):
    return rng.standard_normal((n, n)) * 0.3, rng.standard_normal((m, n))


MATRIX = {
    "trace_identity": (TRACE, trace_data),
    "mlp": (mlp.mlp, mlp_data),
    "logistic": (logistic.logistic, logistic_data),
    "softmax": (softmax.softmax, softmax_data),
}


@pytest.mark.parametrize("name", sorted(MATRIX))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_matrix_loss_and_grad_matches_numpy(cp, name, dtype):
    problem, data = MATRIX[name]
    problem = with_dtype(problem, dtype)
    gpu, ref = load(problem, cp), symgen.compile(problem)
    args = [a.astype(dtype) for a in data(np.random.default_rng(len(name)))]
    loss, grads = gpu.loss_and_grad(*[cp.asarray(a) for a in args])
    want_loss, want_grads = ref.loss_and_grad(*args)
    rtol = tolerance(problem)
    close(loss, want_loss, rtol)
    for g, w in zip(grads, want_grads, strict=True):
        assert isinstance(g, cp.ndarray) and g.dtype == np.dtype(dtype) and g.shape == w.shape
        np.testing.assert_allclose(host(g), w, rtol=rtol * 10, atol=rtol * np.abs(w).max())


@pytest.mark.parametrize("name", sorted(MATRIX))
def test_matrix_optimizer_steps_match_numpy(cp, name):
    problem, data = MATRIX[name]
    problem = with_dtype(problem, "float64")
    gpu, ref = load(problem, cp), symgen.compile(problem)
    args = data(np.random.default_rng(7))
    n_params = len(problem.params)
    ours = [cp.asarray(a) for a in args]
    theirs = [a.copy() for a in args]
    for step in ("sgd", "momentum", "nesterov", "adam"):
        if step == "sgd":
            loss, _ = gpu.sgd_step(*ours, lr=0.01)
            want, _ = ref.sgd_step(*theirs, lr=0.01)
        elif step in ("momentum", "nesterov"):
            s, r = gpu.momentum_state(*ours[:n_params]), ref.momentum_state(*theirs[:n_params])
            for _ in range(3):
                loss, _, s = gpu.momentum_step(*ours, state=s, lr=0.01, nesterov=step == "nesterov")
                want, _, r = ref.momentum_step(
                    *theirs, state=r, lr=0.01, nesterov=step == "nesterov"
                )
        else:
            s, r = gpu.adam_state(*ours[:n_params]), ref.adam_state(*theirs[:n_params])
            for _ in range(3):
                loss, _, s = gpu.adam_step(*ours, state=s, lr=0.01)
                want, _, r = ref.adam_step(*theirs, state=r, lr=0.01)
        close(loss, want, 1e-10)
        for a, b in zip(ours[:n_params], theirs[:n_params], strict=True):
            np.testing.assert_allclose(host(a), b, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("optimizer", ["nesterov", "adam"])
@pytest.mark.parametrize("name", ["mlp", "curve_fit"])
def test_baked_steps_equal_keyword_steps(cp, optimizer, name):
    if name == "curve_fit":
        problem, data = (
            curve_fit.curve_fit,
            lambda rng: (*curve_fit.START, *curve_fit.synthetic(999)),
        )
    else:
        problem, data = with_dtype(mlp.mlp, "float64"), mlp_data
    hyper = {"lr": 0.02, "momentum": 0.8} if optimizer == "nesterov" else {"lr": 0.02, "beta1": 0.8}
    baked = load(problem, cp, optimizer=optimizer, **hyper)
    plain = load(problem, cp)
    assert baked.OPTIMIZER == optimizer and baked.step is getattr(baked, baked.step.__name__)
    assert "0.02" in symgen.generate(problem, "cuda", optimizer=optimizer, **hyper)
    args = [
        cp.asarray(a) if isinstance(a, np.ndarray) else a for a in data(np.random.default_rng(0))
    ]
    ours, theirs = list(args), [a.copy() if hasattr(a, "copy") else a for a in args]
    n = len(problem.params)
    s, r = baked.step_state(*ours[:n]), getattr(plain, baked.step_state.__name__)(*theirs[:n])
    keywords = dict(hyper, nesterov=True) if optimizer == "nesterov" else hyper
    step = getattr(plain, baked.step.__name__)
    with pytest.raises(TypeError):
        baked.step(*ours, state=s, lr=0.1)
    for _ in range(4):
        loss, p, s = baked.step(*ours, state=s)
        want, q, r = step(*theirs, state=r, **keywords)
        assert loss == want
        ours[:n], theirs[:n] = list(p), list(q)
    for a, b in zip(ours[:n], theirs[:n], strict=True):
        np.testing.assert_array_equal(host(a), host(b))


def test_w2_tiny_numbers(cp):
    gpu = load(logistic.logistic, cp)
    w = cp.asarray(np.zeros((3, 1)))
    x, t = cp.asarray(np.array(logistic.TINY_X)), cp.asarray(np.array(logistic.TINY_T))
    assert gpu.loss(w, x, t) == pytest.approx(2.77258872224, rel=1e-11)
    for _ in range(100):
        gpu.sgd_step(w, x, t, lr=0.01)
    assert gpu.loss(w, x, t) == pytest.approx(1.06727067579, rel=1e-10)


def test_w3_seed_trajectory(cp):
    """W3 (float32, seed data at reduced width) trained with sgd_step follows the NumPy
    module's loss trajectory."""
    gpu = load(mlp.mlp, cp)
    x, y, w1, w2 = (cp.asarray(a) for a in mlp.seed_data(m=64, n_i=50, n_h=20, n_o=10))
    ref = symgen.compile(mlp.mlp)
    r = [host(a).copy() for a in (w1, w2, x, y)]
    for _ in range(20):
        loss, _ = gpu.sgd_step(w1, w2, x, y, lr=1e-4)
        want, _ = ref.sgd_step(*r, lr=1e-4)
        assert loss == pytest.approx(want, rel=1e-5)


# -- W1: a scalar problem computes on the host ------------------------------------------


def test_w1_scalar_module_runs_on_host():
    source = symgen.generate(rosenbrock.rosenbrock, "cuda")
    assert "import cupy" not in source and "computes on the host" in source
    module = symgen.compile(rosenbrock.rosenbrock, "cuda")
    x, y = rosenbrock.descend(module)[-1]
    assert (round(x, 5), round(y, 5)) == (1.00806, 1.01622)


# -- inputs -------------------------------------------------------------------------------


def test_numpy_arrays_are_rejected_with_a_hint(cp):
    gpu = load(curve_fit.curve_fit, cp)
    t, y = curve_fit.synthetic(10)
    with pytest.raises(TypeError, match=r"'t' is a NumPy array.*cupy\.asarray\(t\)"):
        gpu.loss(*curve_fit.START, t, cp.asarray(y))


def test_dtype_layout_and_shape_errors(cp):
    gpu = load(with_dtype(mlp.mlp, "float64"), cp)
    w1, w2, x, y = (cp.asarray(a) for a in mlp_data(np.random.default_rng(0)))
    with pytest.raises(TypeError, match=r"'X' has dtype float32.*astype\(cupy\.float64\)"):
        gpu.loss(w1, w2, x.astype(np.float32), y)
    with pytest.raises(ValueError, match="'X' is not C-contiguous"):
        gpu.loss(w1, w2, cp.asarray(host(x).T.copy()).T, y)
    with pytest.raises(ValueError, match="'X' has .* columns but 'W1' has .* rows"):
        gpu.loss(w1, w2, x[:, :-1].copy(), y)
    with pytest.raises(ValueError, match="'W2' must have shape"):
        gpu.loss(w1, w2[0].copy(), x, y)
    with pytest.raises(TypeError, match="'Y' must be a CuPy array"):
        gpu.loss(w1, w2, x, [[1.0]])


# -- the kernels are valid CUDA ---------------------------------------------------------

SPECS = [curve_fit.curve_fit, logistic.logistic, mlp.mlp, softmax.softmax]


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on the PATH")
@pytest.mark.parametrize("problem", SPECS, ids=lambda p: p.name)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("arch", ["sm_90", "sm_75"])
def test_kernels_compile_with_nvcc_without_warnings(tmp_path, problem, dtype, arch):
    problem = with_dtype(problem, dtype)
    source = cuda_backend.kernel_source(cuda_backend.plan(run(problem), None))
    path = tmp_path / "kernels.cu"
    path.write_text(source)
    result = subprocess.run(
        [
            "nvcc",
            f"--gpu-architecture={arch}",
            "--cubin",
            "-Werror",
            "all-warnings",
            "-o",
            str(tmp_path / "kernels.cubin"),
            str(path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""


def test_float32_kernels_stay_float32():
    source = cuda_backend.kernel_source(cuda_backend.plan(run(as32(curve_fit.curve_fit)), None))
    body = source[source.index("loss_and_grad_0(") :]
    assert "expf(" in body and "sinf(" in body and "cosf(" in body
    assert " exp(" not in body and "const double x" not in body
    assert "double _acc0" in body  # sums accumulate in double


def test_generated_cuda_source_is_deterministic():
    a = symgen.generate(softmax.softmax, "cuda")
    b = symgen.generate(softmax.softmax, "cuda")
    assert a == b
    assert sp.srepr(softmax.softmax.loss)  # the spec is untouched


def test_compile_without_cupy_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy fails
    with pytest.raises(
        ImportError, match=r"needs CuPy.*symgen\[cuda12\].*symgen\[cuda13\].*fake_cupy_installed"
    ):
        symgen.compile(curve_fit.curve_fit, "cuda")


def test_generated_module_without_cupy_names_the_wheels(root, monkeypatch):
    """A generated CUDA module imported on its own (no symgen) says which wheel to install."""
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy fails
    monkeypatch.syspath_prepend(str(root / "generated"))
    monkeypatch.delitem(sys.modules, "curve_fit_cuda", raising=False)
    with pytest.raises(
        ImportError, match=r"needs CuPy: pip install cupy-cuda12x .*cupy-cuda13x"
    ) as e:
        import curve_fit_cuda  # noqa: F401
    assert e.type is ImportError and e.value.name == "cupy"


def test_compile_inside_fake_cupy():
    from symgen.testing import fake_cupy_installed

    with fake_cupy_installed() as cp:
        module = symgen.compile(curve_fit.curve_fit, "cuda")
    t, y = curve_fit.synthetic(300)
    want = symgen.compile(curve_fit.curve_fit).loss(*curve_fit.START, t, y)
    assert module.loss(*curve_fit.START, cp.asarray(t), cp.asarray(y)) == pytest.approx(want)


def test_update_kernels_one_launch_per_parameter(cp):
    """sgd/momentum/adam update each array parameter (and its state) in one fused launch,
    not a chain of array operations; the gradient's own kernels are the same for all three."""
    problem = with_dtype(mlp.mlp, "float64")
    gpu = load(problem, cp)
    w1, w2, x, y = (cp.asarray(a) for a in mlp_data(np.random.default_rng(0)))
    calls = []
    real = gpu._launch

    def spy(name, n, args):
        calls.append(name)
        return real(name, n, args)

    gpu._launch = spy
    runs = {
        "sg_sgd": lambda: gpu.sgd_step(w1, w2, x, y, lr=0.01),
        "sg_momentum": lambda: gpu.momentum_step(
            w1, w2, x, y, state=gpu.momentum_state(w1, w2), lr=0.01
        ),
        "sg_adam": lambda: gpu.adam_step(w1, w2, x, y, state=gpu.adam_state(w1, w2), lr=0.01),
    }
    launches = {}
    for kernel, step in runs.items():
        calls.clear()
        step()
        assert calls.count(kernel) == 2, calls  # W1 and W2
        launches[kernel] = [c for c in calls if not c.startswith("sg_")]
    assert launches["sg_sgd"] == launches["sg_momentum"] == launches["sg_adam"]
