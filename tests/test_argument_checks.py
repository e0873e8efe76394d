"""Arguments a generated module cannot use as they are: inputs that are not real numbers,
in-place parameters that would be converted to a copy or that share memory, and empty
dimensions the loss divides by; each a clear error naming the argument, for NumPy and C
(and CUDA where it checks the same thing)."""

import numpy as np
import pytest

import symgen
from examples import curve_fit, logistic, mlp, rosenbrock

BACKENDS = ["numpy", "c"]


@pytest.fixture(scope="module", params=BACKENDS)
def modules(request):
    compile_ = symgen.compile
    return {
        "fit": compile_(curve_fit.curve_fit, request.param),
        "logistic": compile_(logistic.logistic, request.param),
        "mlp": compile_(mlp.mlp, request.param),
    }


def mlp_args(m=4):
    rng = np.random.default_rng(0)
    w1, w2 = (rng.standard_normal(s).astype(np.float32) for s in ((3, 5), (5, 2)))
    x, y = (rng.standard_normal(s).astype(np.float32) for s in ((m, 3), (m, 2)))
    return w1, w2, x, y


NOT_REAL = {
    "complex": lambda a: a.astype(complex) + 1j,
    "object": lambda a: np.full(a.shape, None, dtype=object),
    "string": lambda a: a.astype(str),
    "bool": lambda a: a > 0,
}


@pytest.mark.parametrize("kind", NOT_REAL)
def test_data_that_is_not_real_is_a_type_error(modules, kind):
    t, y = curve_fit.synthetic(10)
    with pytest.raises(TypeError, match=r"data 'y' must be an array of numbers.*got dtype"):
        modules["fit"].loss(*curve_fit.START, t, NOT_REAL[kind](y))
    w1, w2, x, y = mlp_args()
    with pytest.raises(TypeError, match=r"'X' must be an array of numbers.*got dtype"):
        modules["mlp"].loss_and_grad(w1, w2, NOT_REAL[kind](x), y)


def test_ints_and_other_float_widths_are_still_converted(modules):
    w1, w2, x, y = mlp_args()
    want = modules["mlp"].loss(w1, w2, x, y)
    got = modules["mlp"].loss(w1.astype(np.float64), w2, x.astype(np.float64), y)
    assert got == pytest.approx(want, rel=1e-6)
    xs = np.array(logistic.TINY_X)
    ts = np.array(logistic.TINY_T)
    assert np.isfinite(modules["logistic"].loss(np.zeros((3, 1), dtype=np.int64), xs, ts))


def test_scalar_that_is_not_real_is_a_type_error():
    rosen = symgen.compile(rosenbrock.rosenbrock)
    for bad in (True, 1 + 1j, np.complex128(1), "1.5"):
        with pytest.raises(TypeError, match="must be a real number"):
            rosen.loss(bad, 1.0)
    assert rosen.loss(np.float32(1), 1) == 0.0


@pytest.mark.parametrize("step", ["sgd_step", "momentum_step", "adam_step"])
def test_parameter_a_step_would_convert_is_a_type_error(modules, step):
    module = modules["mlp"]
    w1, w2, x, y = mlp_args()
    kwargs = {"lr": 0.1}
    if step != "sgd_step":
        kwargs["state"] = getattr(module, step.replace("step", "state"))(w1, w2)
    before = w2.copy()
    with pytest.raises(TypeError, match=r"W1 is float64; .* in place in float32: .*W1.astype"):
        getattr(module, step)(w1.astype(np.float64), w2, x, y, **kwargs)
    with pytest.raises(TypeError, match=r"W1 is a list; .* in place in float32"):
        getattr(module, step)(w1.tolist(), w2, x, y, **kwargs)
    np.testing.assert_array_equal(w2, before)  # nothing updated
    # loss and gradients still convert
    assert np.isfinite(module.loss_and_grad(w1.astype(np.float64), w2, x, y)[0])


def test_read_only_parameter_is_refused_before_any_update(modules):
    module = modules["mlp"]
    w1, w2, x, y = mlp_args()
    w2.flags.writeable = False
    before = w1.copy()
    with pytest.raises(ValueError, match="W2 is read-only"):
        module.sgd_step(w1, w2, x, y, lr=0.1)
    np.testing.assert_array_equal(w1, before)


def test_parameters_sharing_memory_are_a_value_error(modules):
    module = modules["mlp"]
    square = np.ones((3, 3), dtype=np.float32)
    w2, y = np.ones((3, 2), np.float32), np.ones((3, 2), np.float32)
    with pytest.raises(ValueError, match="W1 and X share memory"):
        module.sgd_step(square, w2, square, y, lr=0.1)
    w = np.ones((2, 2), dtype=np.float32)
    with pytest.raises(ValueError, match="W1 and W2 share memory"):
        module.sgd_step(w, w, np.ones((4, 2), np.float32), np.ones((4, 2), np.float32), lr=0.1)
    np.testing.assert_array_equal(w, 1)


def test_logistic_parameter_shared_with_data(modules):
    xs = np.ones((3, 3))
    w = xs[:, :1]  # a view of X's first column: not contiguous, but shares X's memory
    with pytest.raises(ValueError, match=r"share memory|C-contiguous"):
        modules["logistic"].sgd_step(w, xs, np.ones((3, 1)), lr=0.1)
    block = np.ones((4, 1))
    with pytest.raises(ValueError, match="w and t share memory"):
        modules["logistic"].sgd_step(block[:3], np.ones((3, 3)), block[1:], lr=0.1)


@pytest.mark.parametrize("func", ["loss", "loss_and_grad", "sgd_step"])
def test_empty_dimension_the_loss_divides_by_is_a_value_error(modules, func):
    w1, w2, x, y = mlp_args(m=0)
    kwargs = {"lr": 0.1} if func == "sgd_step" else {}
    with pytest.raises(ValueError, match="divides by M, and X has 0 rows"):
        getattr(modules["mlp"], func)(w1, w2, x, y, **kwargs)
    w1, w2, x, y = mlp_args()
    with pytest.raises(ValueError, match="divides by N_O, and W2 has 0 columns"):
        getattr(modules["mlp"], func)(w1, w2[:, :0].copy(), x, y[:, :0].copy(), **kwargs)


def test_empty_sum_is_zero():
    """A sum over no rows is 0, a documented result, not an error."""
    module = symgen.compile(logistic.logistic)
    assert module.loss(np.zeros((3, 1)), np.ones((0, 3)), np.ones((0, 1))) == 0.0


def test_cuda_empty_dimension_is_a_value_error():
    from symgen.testing import fake_cupy_installed

    with fake_cupy_installed() as cp:
        module = symgen.compile(mlp.mlp, "cuda")
        w1, w2, x, y = (cp.asarray(a) for a in mlp_args(m=0))
        with pytest.raises(ValueError, match="divides by M, and X has 0 rows"):
            module.loss(w1, w2, x, y)


@pytest.mark.parametrize("backend", ["numpy", "c", "cuda"])
def test_no_samples_in_every_backend(backend):
    """N = 0: a mean over no samples is a ValueError, a sum over none is 0 (and a step then
    changes nothing), in every backend; M = 0 rows of a matrix loss divided by M too."""
    from symgen.testing import fake_cupy_installed

    with fake_cupy_installed() as cp:
        xp = cp if backend == "cuda" else np
        mean = symgen.compile(curve_fit.curve_fit, backend)
        with pytest.raises(ValueError, match="mean over samples needs at least one sample"):
            mean.loss_and_grad(*curve_fit.START, xp.zeros(0), xp.zeros(0))
        summed = symgen.compile(logistic.logistic, backend)
        weights = xp.zeros((3, 1))
        loss, (grad,) = summed.loss_and_grad(weights, xp.ones((0, 3)), xp.ones((0, 1)))
        assert loss == 0.0 and not np.asarray(grad.get() if backend == "cuda" else grad).any()
        network = symgen.compile(mlp.mlp, backend)
        w1, w2, x, y = (xp.asarray(a) for a in mlp_args(m=0))
        for function in ("loss", "loss_and_grad"):
            with pytest.raises(ValueError, match="divides by M, and X has 0 rows"):
                getattr(network, function)(w1, w2, x, y)
