"""The C backend's passes on several threads: the same results, bit for bit, whatever the
thread count (fixed tasks, partial sums added in task order); the settings that choose it;
a process forked after the threads ran."""

import multiprocessing
import os
import shutil

import numpy as np
import pytest

import symgen
from examples import curve_fit, logistic, mlp, softmax

pytestmark = pytest.mark.skipif(
    not any(shutil.which(c) for c in ("cc", "gcc", "clang")), reason="no C compiler"
)


def curve_fit_case(rng):
    t, y = curve_fit.synthetic(200_003, seed=4)
    return curve_fit.curve_fit, [float(v) for v in rng.uniform(0.2, 1.0, 6)], {"t": t, "y": y}


def logistic_case(rng):  # the products by X run inside the pass: partial X.T @ r per task
    x = rng.standard_normal((60_001, 16))
    t = (rng.random((60_001, 1)) < 0.5).astype(float)
    return logistic.logistic, [0.3 * rng.standard_normal((16, 1))], {"X": x, "t": t}


def softmax_case(rng):  # row maxima and sums, and column sums (the bias gradient) per task
    x, y, _ = softmax.blobs(n=40_000, d=5, k=7, seed=2)
    params = [0.2 * rng.standard_normal((5, 7)), 0.1 * rng.standard_normal((1, 7))]
    return softmax.softmax, params, {"X": x, "Y": y}


def softmax_thin_case(rng):  # the benchmark's shape class: X @ W and X.T @ G run in blocks
    x, y, _ = softmax.blobs(n=30_001, d=20, k=10, seed=3)
    params = [0.2 * rng.standard_normal((20, 10)), 0.1 * rng.standard_normal((1, 10))]
    return softmax.softmax, params, {"X": x, "Y": y}


def mlp_case(rng):  # float32; the ReLU mask pass over (M, N_H)
    x, y, w1, w2 = mlp.seed_data(3000, 64, 48, 4)
    return mlp.mlp, [0.1 * w1, 0.1 * w2], {"X": x, "Y": y}


CASES = {
    "curve_fit": curve_fit_case,
    "logistic": logistic_case,
    "softmax": softmax_case,
    "softmax_thin": softmax_thin_case,
}


def results(module, params, data):
    loss, grads = module.loss_and_grad(*params, **data)
    return loss, [np.asarray(g) for g in grads], module.loss(*params, **data)


@pytest.mark.parametrize("name", sorted(CASES))
def test_loss_and_gradients_are_bit_identical_on_1_2_and_16_threads(name):
    problem, params, data = CASES[name](np.random.default_rng(7))
    module = symgen.compile(problem, "c")
    try:
        runs = {}
        for threads in (1, 2, 16):
            module.set_num_threads(threads)
            assert module.num_threads() == threads
            runs[threads] = results(module, params, data)
    finally:
        module.set_num_threads()
    loss, grads, alone = runs[1]
    for threads in (2, 16):
        other_loss, other_grads, other_alone = runs[threads]
        assert other_loss == loss and other_alone == alone  # exact: not approx
        for g, h in zip(grads, other_grads, strict=True):
            assert g.dtype == h.dtype and g.shape == h.shape
            assert g.tobytes() == h.tobytes()
    reference = symgen.compile(problem)  # and they are the NumPy module's numbers
    ref_loss, ref_grads = reference.loss_and_grad(*params, **data)
    assert loss == pytest.approx(ref_loss, rel=1e-11)
    for g, h in zip(grads, ref_grads, strict=True):
        np.testing.assert_allclose(g, h, rtol=1e-9, atol=1e-12 * np.abs(h).max())


def test_steps_are_bit_identical_on_1_and_16_threads():
    problem, params, data = softmax_case(np.random.default_rng(3))
    module = symgen.compile(problem, "c")
    after = {}
    try:
        for threads in (1, 16):
            module.set_num_threads(threads)
            weights = [p.copy() for p in params]
            state = module.adam_state(*weights)
            for _ in range(3):
                loss, weights, state = module.adam_step(*weights, **data, state=state, lr=0.01)
            after[threads] = (loss, [w.tobytes() for w in weights])
    finally:
        module.set_num_threads()
    assert after[1] == after[16]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_hessian_and_newton_step_are_bit_identical_on_1_2_and_16_threads(dtype):
    """The Gram sum of the Hessian (backends/c/gram.py): a partial per task, added in task
    order; newton_step's one pass computes the loss, the gradient and the Hessian."""
    problem, (w,), data = logistic_case(np.random.default_rng(11))
    if dtype == "float32":
        problem = symgen.Problem(
            problem.loss, problem.params, problem.data, dtype=dtype, name=problem.name,
            binary=problem.binary,
        )  # fmt: skip
        w, data = w.astype(np.float32), {k: v.astype(np.float32) for k, v in data.items()}
    module = symgen.compile(problem, "c")
    runs = []
    try:
        for threads in (1, 2, 16):
            module.set_num_threads(threads)
            moved = w.copy()
            loss, _ = module.newton_step(moved, **data)
            runs.append((module.hessian(w, **data).tobytes(), loss, moved.tobytes()))
    finally:
        module.set_num_threads()
    assert runs[0] == runs[1] == runs[2]


def test_thread_settings(monkeypatch):
    module = symgen.compile(logistic.logistic, "c")
    monkeypatch.setenv("SYMGEN_NUM_THREADS", "3")
    monkeypatch.setenv("OMP_NUM_THREADS", "5")
    module.set_num_threads()  # back to the default, read from the environment
    assert module.num_threads() == 3
    monkeypatch.delenv("SYMGEN_NUM_THREADS")
    module.set_num_threads()
    assert module.num_threads() == 5
    monkeypatch.setenv("OMP_NUM_THREADS", "4,2")  # OpenMP's nested form: its first level
    module.set_num_threads()
    assert module.num_threads() == 4
    monkeypatch.delenv("OMP_NUM_THREADS")
    module.set_num_threads()
    assert module.num_threads() == len(os.sched_getaffinity(0))
    monkeypatch.setenv("SYMGEN_NUM_THREADS", "many")
    with pytest.warns(UserWarning, match="SYMGEN_NUM_THREADS='many'"):
        module.set_num_threads()
    assert module.num_threads() == len(os.sched_getaffinity(0))
    for wrong in (0, -2, 1.5, True, "2"):
        with pytest.raises(ValueError, match="whole number >= 1"):
            module.set_num_threads(wrong)
    monkeypatch.delenv("SYMGEN_NUM_THREADS")
    module.set_num_threads(2)
    fresh = symgen.compile(logistic.logistic, "c")  # each module has its own setting
    assert fresh.num_threads() == len(os.sched_getaffinity(0))
    module.set_num_threads()


def _child_loss(module, params, data, queue):
    queue.put((module.num_threads(), module.loss(*params, **data)))


@pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="no fork on this system"
)
def test_a_process_forked_after_the_threads_ran_computes_on_one_thread():
    problem, params, data = logistic_case(np.random.default_rng(1))
    module = symgen.compile(problem, "c")
    module.set_num_threads(2)
    try:
        expected = module.loss(*params, **data)  # OpenMP's threads have run here
        context = multiprocessing.get_context("fork")
        queue = context.Queue()
        child = context.Process(target=_child_loss, args=(module, params, data, queue))
        child.start()
        child.join(120)
        alive = child.is_alive()
        if alive:
            child.kill()
        assert not alive, "the forked child waited for OpenMP threads that do not exist"
        assert child.exitcode == 0
        threads, loss = queue.get(timeout=10)
        assert threads == 1 and loss == expected
    finally:
        module.set_num_threads()


def test_a_float32_matrix_module_is_bit_identical_on_1_and_16_threads():
    problem, params, data = mlp_case(np.random.default_rng(5))
    module = symgen.compile(problem, "c")
    runs = []
    try:
        for threads in (1, 16):
            module.set_num_threads(threads)
            loss, grads, _ = results(module, params, data)
            runs.append((loss, [g.tobytes() for g in grads]))
    finally:
        module.set_num_threads()
    assert runs[0] == runs[1]


def test_the_check_of_binary_data_runs_on_the_threads_and_finds_one_wrong_entry():
    problem, params, data = logistic_case(np.random.default_rng(5))
    module = symgen.compile(problem, "c")
    try:
        for threads in (1, 2, 16):
            module.set_num_threads(threads)
            module.loss(*params, **data)
            for at, wrong in ((0, 0.5), (31_337, np.nan), (60_000, 2.0)):  # in different tasks
                t = data["t"].copy()
                t[at] = wrong
                with pytest.raises(ValueError, match="'t' is declared binary"):
                    module.loss(*params, X=data["X"], t=t)
    finally:
        module.set_num_threads()


def test_openmp_spins_briefly_unless_told_otherwise(monkeypatch):
    """The module sets GNU OpenMP's GOMP_SPINCOUNT while it loads its library (libgomp reads
    it then), leaves the environment as it was, and respects a user's OpenMP settings."""
    module = symgen.compile(logistic.logistic, "c")
    seen = []
    monkeypatch.setattr(module.ctypes, "CDLL", lambda path: seen.append(dict(os.environ)))
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    module._load("/nowhere/library.so")
    assert seen[-1]["GOMP_SPINCOUNT"] == module._SPINCOUNT
    assert "GOMP_SPINCOUNT" not in os.environ
    for variable, value in (("OMP_WAIT_POLICY", "ACTIVE"), ("GOMP_SPINCOUNT", "12")):
        monkeypatch.setenv(variable, value)
        module._load("/nowhere/library.so")
        assert seen[-1].get("GOMP_SPINCOUNT") == os.environ.get("GOMP_SPINCOUNT")
        assert os.environ[variable] == value
        monkeypatch.delenv(variable)


class _Recorded(np.ndarray):
    """An array whose products record the BLAS thread count they ran under."""

    counts: list[int] = []
    get = None

    def __matmul__(self, other):
        _Recorded.counts.append(_Recorded.get())
        return np.asarray(self) @ other


@pytest.fixture
def blas():
    """A C module with matrix products that are not tall ones (the logistic regression's
    X @ w: a vector product; a softmax regression's go through ``_tall_product``), and
    its (get, set) of OpenBLAS's thread count at 2 (put back after)."""
    module = symgen.compile(logistic.logistic, "c")
    control = module._blas_threads()
    if control is None:
        pytest.skip("NumPy's BLAS here is not an OpenBLAS the module can find")
    get, put = control
    before = get()
    put(2)
    _Recorded.get, _Recorded.counts = get, []
    yield module, get
    put(before)


@pytest.mark.parametrize("threads", [1, 2])
def test_a_thin_product_runs_on_one_blas_thread_and_the_count_is_put_back(blas, threads):
    module, get = blas
    rng = np.random.default_rng(0)
    module.set_num_threads(threads)  # whatever the passes' count: the results do not change
    try:
        shapes = {
            (40_000, 20, 10): 1,  # X @ W of a softmax regression: thin
            (20, 40_000, 10): 1,  # X.T @ G
            (40_000, 48, 48): 1,  # two dimensions at _THIN: still thin
            (40_000, 49, 10): 2,  # one dimension past it: BLAS's threads
            (2000, 64, 64): 2,
            (100, 20, 10): 2,  # fewer than _THIN_FROM multiply-adds: as it is
        }
        for (m, k, n), expected in shapes.items():
            a, b = rng.standard_normal((m, k)), rng.standard_normal((k, n))
            _Recorded.counts = []
            product = module._product(a.view(_Recorded), b)
            assert _Recorded.counts == [expected], (m, k, n)
            np.testing.assert_allclose(np.asarray(product), a @ b, rtol=1e-12, atol=1e-12)
            assert get() == 2  # put back
    finally:
        module.set_num_threads()


def test_thin_products_from_several_python_threads_leave_the_count_as_it_was(blas):
    import threading

    module, get = blas
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((30_000, 20)), rng.standard_normal((20, 10))
    expected = module._product(a, b)
    wrong = []

    def work():
        for _ in range(20):
            if module._product(a, b).tobytes() != expected.tobytes():
                wrong.append(1)

    workers = [threading.Thread(target=work) for _ in range(6)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not wrong and get() == 2


def test_without_openblas_the_products_are_numpys(monkeypatch):
    """Where no loaded OpenBLAS is found (none; a library not loaded, which the module never
    loads; a loaded library without OpenBLAS's functions), _product is ``a @ b``."""
    import ctypes.util

    module = symgen.compile(logistic.logistic, "c")
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((30_000, 20)), rng.standard_normal((20, 10))
    libc = ctypes.util.find_library("c") or "libc.so.6"
    for paths in ([], ["/nowhere/libopenblas.so"], [libc]):
        monkeypatch.setattr(module, "_openblas_paths", lambda paths=paths: paths)
        module._blas_threads.cache_clear()
        try:
            assert module._blas_threads() is None
            np.testing.assert_allclose(module._product(a, b), a @ b, rtol=1e-12)
        finally:
            module._blas_threads.cache_clear()


def test_the_module_finds_numpys_openblas_when_numpy_has_one():
    module = symgen.compile(logistic.logistic, "c")
    paths = module._openblas_paths()
    assert all("openblas" in os.path.basename(p) for p in paths)
    config = np.show_config(mode="dicts") if np.lib.NumpyVersion(np.__version__) >= "1.26.0" else {}
    blas_name = config.get("Build Dependencies", {}).get("blas", {}).get("name", "")
    if "openblas" in blas_name and os.path.exists("/proc/self/maps"):
        assert paths and module._blas_threads() is not None
        get, _ = module._blas_threads()
        assert get() >= 1
