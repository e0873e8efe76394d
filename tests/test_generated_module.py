"""Calling a generated module wrongly: clear errors naming the argument, before any work."""

import numpy as np
import pytest

import symgen
from examples import curve_fit, rosenbrock


@pytest.fixture(scope="module")
def fit():
    return symgen.compile(curve_fit.curve_fit)


@pytest.fixture(scope="module")
def rosen():
    return symgen.compile(rosenbrock.rosenbrock)


P = (1.0, 2.7, 0.0, 0.0, 0.0, 0.0)


def test_missing_argument_is_named(fit, rosen):
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'y'"):
        fit.loss(*P, t=np.ones(3))
    with pytest.raises(TypeError, match="'y'"):
        rosen.loss_and_grad(1.0)
    with pytest.raises(TypeError, match="'lr'"):
        rosen.sgd_step(1.0, 2.0)


@pytest.mark.parametrize("func", ["loss", "grad", "loss_and_grad"])
def test_wrong_data_shape_is_named(fit, func):
    with pytest.raises(ValueError, match=r"data 't' must be a 1-D array of samples.*\(3, 2\)"):
        getattr(fit, func)(*P, t=np.ones((3, 2)), y=np.ones(3))
    with pytest.raises(ValueError, match="data 'y' has 4 samples but 't' has 3"):
        getattr(fit, func)(*P, t=np.ones(3), y=np.ones(4))
    with pytest.raises(TypeError, match="data 'y' must be an array of numbers"):
        getattr(fit, func)(*P, t=np.ones(3), y=["a", "b", "c"])


def test_scalar_param_given_an_array_is_named(fit, rosen):
    with pytest.raises(
        TypeError, match=r"parameter 'b' must be a real number, got ndarray.*\(2,\)"
    ):
        fit.loss(1.0, np.ones(2), 0, 0, 0, 0, t=np.ones(3), y=np.ones(3))
    with pytest.raises(TypeError, match="parameter 'x' must be a real number, got str"):
        rosen.loss("2", 1.0)


def test_numbers_of_other_types_are_accepted(rosen):
    expected = rosen.loss(2.0, 2.0)
    for x in (2, np.float32(2), np.float64(2), np.array(2.0), np.int64(2)):
        value = rosen.loss(x, 2.0)
        assert value == expected and type(value) is float


def test_lists_are_accepted_as_data(fit):
    t = [0.0, 0.5, 1.0]
    y = [1.0, 0.0, -1.0]
    assert fit.loss(*P, t, y) == fit.loss(*P, np.array(t), np.array(y))


def test_mean_needs_a_sample_and_sum_of_none_is_zero(fit):
    with pytest.raises(ValueError, match="at least one sample"):
        fit.loss(*P, t=np.ones(0), y=np.ones(0))
    p = curve_fit.curve_fit
    summed = symgen.compile(symgen.Problem(p.loss, p.params, p.data, reduce="sum", name="s"))
    assert summed.loss_and_grad(*P, np.ones(0), np.ones(0)) == (0.0, (0.0,) * 6)


def test_single_sample(fit):
    loss, grads = fit.loss_and_grad(*P, t=np.array([0.5]), y=np.array([0.25]))
    assert np.isfinite(loss) and len(grads) == 6


def test_float32_module_keeps_float32_inputs(monkeypatch):
    p = curve_fit.curve_fit
    m32 = symgen.compile(
        symgen.Problem(p.loss, p.params, p.data, reduce="mean", dtype="float32", name="c32")
    )
    assert m32.DTYPE is np.float32
    seen = []

    class Add:  # np.add, its sums (np.add.reduce, which modules call for sums) recorded
        def __call__(self, *args, **kwargs):
            return np.add(*args, **kwargs)

        def reduce(self, a, **kwargs):
            seen.append((np.asarray(a).dtype, kwargs.get("dtype")))
            return np.add.reduce(a, **kwargs)

        def __getattr__(self, name):
            return getattr(np.add, name)

    class NumPy:  # the module's np, with that np.add
        add = Add()

        def __getattr__(self, name):
            return getattr(np, name)

    monkeypatch.setattr(m32, "np", NumPy())
    t = np.linspace(0, 1, 64, dtype=np.float32)
    m32.loss_and_grad(*P, t, t)
    # the values stay float32; only their sums are float64 (tests/test_float32_sums.py)
    assert seen and all(a == np.float32 and acc is np.float64 for a, acc in seen)
    monkeypatch.undo()


def test_generated_module_imports_only_numpy_and_stdlib():
    source = symgen.generate(curve_fit.curve_fit)
    imports = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert imports == ["import math", "import numpy as np"]
    assert "sympy" not in source and "symgen" not in "".join(imports)
