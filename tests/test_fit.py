"""symgen.fit: optimizers, mini-batches, stopping rules, non-finite stops, progress output."""

import math

import numpy as np
import pytest
import sympy as sp

import symgen
from examples import rosenbrock
from symgen.runtime.training.result import FitResult, NonFiniteError

a, b, t, y = sp.symbols("a b t y")


@pytest.fixture(scope="module")
def rosen():
    return symgen.compile(rosenbrock.rosenbrock)


@pytest.fixture(scope="module")
def line():
    """Per-sample least squares: y ~ a*t + b."""
    return symgen.compile(
        symgen.Problem((a * t + b - y) ** 2, params=[a, b], data=[t, y], name="line")
    )


@pytest.fixture(scope="module")
def linreg():
    """A matrix problem: least squares sum((X w - Y)**2) over rows of X (M, D), Y (M, 1)."""
    m, d = sp.symbols("M D", integer=True, positive=True)
    x, yy = sp.MatrixSymbol("X", m, d), sp.MatrixSymbol("Y", m, 1)
    w = sp.MatrixSymbol("w", d, 1)
    return symgen.compile(
        symgen.Problem(symgen.sum(symgen.square(x * w - yy)), [w], [x, yy], name="linreg")
    )


class Spy:
    """Wraps a generated module and records the data of every sgd_step call."""

    def __init__(self, module):
        self.module = module
        self.PARAMS, self.DATA, self.DTYPE = module.PARAMS, module.DATA, module.DTYPE
        self.batches = []

    def loss(self, *params, **data):
        return self.module.loss(*params, **data)

    def sgd_step(self, *params, lr, **data):
        self.batches.append({k: np.array(v) for k, v in data.items()})
        return self.module.sgd_step(*params, **data, lr=lr)


def test_public_names():
    assert symgen.NonFiniteError is NonFiniteError
    assert symgen.FitResult is FitResult
    assert issubclass(NonFiniteError, FloatingPointError)


def test_adam_reaches_the_rosenbrock_minimum(rosen):
    result = symgen.fit(rosen, (2.0, 2.0), optimizer="adam", lr=0.01, steps=10000, progress=False)
    assert isinstance(result, FitResult)
    assert result.stopped == "steps" and result.steps == 10000
    assert abs(result.params[0] - 1) < 1e-3 and abs(result.params[1] - 1) < 1e-3
    assert result.loss < 1e-6 and result.history[0] == 401.0


def test_history_times_and_params_order():
    # params given in the order (b, a): the result follows PARAMS, not the alphabet
    problem = symgen.Problem((b - 3) ** 2 + (a + 1) ** 2, params=[b, a], name="order")
    module = symgen.compile(problem)
    assert module.PARAMS == ("b", "a")
    result = symgen.fit(module, (0.0, 0.0), optimizer="sgd", lr=0.1, steps=60, progress=False)
    assert len(result.history) == len(result.times) == result.steps == 60
    assert all(isinstance(v, float) for v in result.history)
    assert result.times == sorted(result.times) and result.times[0] >= 0
    assert result.history[0] == module.loss(0.0, 0.0) == 10.0
    assert result.params == pytest.approx((3.0, -1.0), abs=1e-5)
    assert result.epochs == 60
    by_name = symgen.fit(
        module, {"a": 0.0, "b": 0.0}, optimizer="sgd", lr=0.1, steps=60, progress=False
    )
    assert by_name.params == result.params and by_name.history == result.history


def test_each_optimizer_matches_the_generated_step(rosen):
    p, state = (-1.0, 1.5), rosen.momentum_state(-1.0, 1.5)
    for _ in range(40):
        _, p, state = rosen.momentum_step(*p, state=state, lr=1e-4, momentum=0.8, nesterov=True)
    result = symgen.fit(
        rosen, (-1.0, 1.5), optimizer="nesterov", lr=1e-4, momentum=0.8, steps=40, progress=False
    )
    assert result.params == p
    p, state = (-1.0, 1.5), rosen.adam_state(-1.0, 1.5)
    for _ in range(40):
        _, p, state = rosen.adam_step(*p, state=state, lr=0.05, beta1=0.5, beta2=0.99)
    result = symgen.fit(
        rosen, (-1.0, 1.5), lr=0.05, beta1=0.5, beta2=0.99, steps=40, progress=False
    )
    assert result.params == p
    sgd = symgen.fit(rosen, (-1.0, 1.5), optimizer="sgd", lr=1e-4, steps=40, progress=False)
    heavy = symgen.fit(
        rosen, (-1.0, 1.5), optimizer="momentum", lr=1e-4, momentum=0.0, steps=40, progress=False
    )
    assert heavy.params == pytest.approx(sgd.params, rel=1e-14)


def test_matrix_params_are_copied_and_trained(linreg):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((50, 3))
    true_w = np.array([[1.0], [-2.0], [0.5]])
    w0 = np.zeros((3, 1))
    result = symgen.fit(linreg, (w0,), {"X": x, "Y": x @ true_w}, lr=0.1, steps=500, progress=False)
    assert not w0.any()  # the caller's array is not modified
    np.testing.assert_allclose(result.params[0], true_w, atol=1e-4)


def test_minibatches_cover_every_row_each_epoch_and_follow_the_seed(line):
    n, size = 10, 3
    data = {"t": np.arange(n, dtype=float), "y": 2 * np.arange(n, dtype=float)}
    spy = Spy(line)
    result = symgen.fit(
        spy, (0.0, 0.0), data, optimizer="sgd", lr=1e-3, steps=12, batch_size=size, progress=False
    )
    assert result.steps == 12 and result.epochs == 3.0
    sizes = [len(batch["t"]) for batch in spy.batches]
    assert sizes == [3, 3, 3, 1] * 3  # 4 batches an epoch, the last one what is left
    epochs = [spy.batches[i : i + 4] for i in range(0, 12, 4)]
    for epoch in epochs:
        rows = np.concatenate([batch["t"] for batch in epoch])
        assert sorted(rows) == list(range(n))  # every row once
        for batch in epoch:  # the rows of t and y stay together
            np.testing.assert_array_equal(batch["y"], 2 * batch["t"])
    orders = [tuple(np.concatenate([bt["t"] for bt in epoch])) for epoch in epochs]
    assert len(set(orders)) == 3  # a fresh shuffle each epoch

    again = Spy(line)
    symgen.fit(
        again, (0.0, 0.0), data, optimizer="sgd", lr=1e-3, steps=12, batch_size=size, progress=False
    )
    assert all(
        np.array_equal(u["t"], v["t"]) for u, v in zip(spy.batches, again.batches, strict=True)
    )
    other = Spy(line)
    symgen.fit(
        other,
        (0.0, 0.0),
        data,
        optimizer="sgd",
        lr=1e-3,
        steps=12,
        batch_size=size,
        seed=1,
        progress=False,
    )
    assert [tuple(v["t"]) for v in other.batches] != [tuple(v["t"]) for v in spy.batches]


def test_matrix_minibatches_take_rows_of_every_array(linreg):
    x = np.arange(40, dtype=float).reshape(20, 2)
    spy = Spy(linreg)
    symgen.fit(
        spy,
        (np.zeros((2, 1)),),
        {"X": x, "Y": x[:, :1] * 10},
        optimizer="sgd",
        lr=1e-6,
        steps=8,
        batch_size=6,
        progress=False,
    )
    assert [len(batch["X"]) for batch in spy.batches] == [6, 6, 6, 2] * 2
    for batch in spy.batches:
        np.testing.assert_array_equal(batch["Y"][:, 0], batch["X"][:, 0] * 10)
    first_epoch = np.concatenate([batch["X"] for batch in spy.batches[:4]])
    np.testing.assert_array_equal(np.sort(first_epoch, axis=0), x)


def test_tolerance_stop(rosen):
    result = symgen.fit(
        rosen, (2.0, 2.0), optimizer="sgd", lr=1e-3, steps=100000, tol=1e-4, progress=False
    )
    assert result.stopped == "tolerance" and 1 < result.steps < 100000
    h = result.history
    assert abs(h[-1] - h[-2]) / h[-2] <= 1e-4
    assert all(abs(u - v) / v > 1e-4 for v, u in zip(h[:-2], h[1:-1], strict=True))


def test_callback_sees_every_step_and_can_stop(rosen):
    seen = []

    def callback(step, loss, params):
        seen.append((step, loss, params))
        return step == 7

    result = symgen.fit(
        rosen, (2.0, 2.0), optimizer="sgd", lr=1e-4, steps=100, callback=callback, progress=False
    )
    assert result.stopped == "callback" and result.steps == 7
    assert [s for s, _, _ in seen] == list(range(1, 8))
    assert [loss for _, loss, _ in seen] == result.history
    assert seen[-1][2] == result.params
    # only True stops: a callback that happens to return a number (say, from write()) does not
    result = symgen.fit(
        rosen,
        (2.0, 2.0),
        optimizer="sgd",
        lr=1e-4,
        steps=20,
        callback=lambda *args: 1,
        progress=False,
    )
    assert result.stopped == "steps" and result.steps == 20


def test_non_finite_parameter_names_step_and_parameter():
    module = symgen.compile(symgen.Problem(a**2 + b**2, params=[a, b], name="bowl"))
    with pytest.raises(NonFiniteError) as info:
        symgen.fit(module, (0.0, 1.0), optimizer="sgd", lr=1e308, steps=10, progress=False)
    message = str(info.value)
    assert "step 1 " in message and "parameter 'b'" in message and "'a'" not in message
    assert info.value.step == 1
    result = info.value.result
    assert result.params == (0.0, 1.0) and result.steps == 0 and result.stopped == "non-finite"


def test_non_finite_loss_keeps_the_last_finite_params(rosen):
    with pytest.raises(FloatingPointError) as info:
        symgen.fit(rosen, (2.0, 2.0), optimizer="sgd", lr=0.1, steps=100, progress=False)
    err = info.value
    assert isinstance(err, NonFiniteError)
    result = err.result
    assert f"step {err.step} " in str(err) and "the loss" in str(err)
    assert result.steps == err.step - 1 == len(result.history) >= 1
    assert all(math.isfinite(v) for v in (*result.params, *result.history))
    params = (2.0, 2.0)
    for _ in range(result.steps):  # replay: the params are those after the last finite step
        _, params = rosen.sgd_step(*params, lr=0.1)
    assert result.params == params


def test_non_finite_undoes_in_place_updates_of_arrays(linreg):
    rng = np.random.default_rng(0)
    x, yy = rng.standard_normal((20, 2)), rng.standard_normal((20, 1))
    w0 = np.ones((2, 1))
    with pytest.raises(NonFiniteError) as info:
        symgen.fit(
            linreg, (w0,), {"X": x, "Y": yy}, optimizer="sgd", lr=10.0, steps=10000, progress=False
        )
    err = info.value
    assert f"step {err.step} " in str(err)
    w = w0.copy()
    for _ in range(err.result.steps):
        linreg.sgd_step(w, x, yy, lr=10.0)
    assert np.isfinite(err.result.params[0]).all()
    np.testing.assert_array_equal(err.result.params[0], w)
    # a parameter that overflows while the loss is finite is named, with an entry
    with pytest.raises(NonFiniteError, match=r"step 1 .*parameter 'w'.*w\[\d, 0\]") as info:
        symgen.fit(
            linreg, (w0,), {"X": x, "Y": yy}, optimizer="sgd", lr=1e307, steps=5, progress=False
        )
    np.testing.assert_array_equal(info.value.result.params[0], w0)


def test_non_finite_in_a_per_sample_problem():
    module = symgen.compile(symgen.Problem(sp.exp(a * t), params=[a], data=[t], name="grow"))
    with pytest.raises(NonFiniteError) as info:
        symgen.fit(
            module,
            (1.0,),
            {"t": np.linspace(-1, 1, 5)},
            optimizer="sgd",
            lr=50.0,
            steps=50,
            progress=False,
        )
    assert "step" in str(info.value) and info.value.result.stopped == "non-finite"
    assert math.isfinite(info.value.result.params[0])


@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        (dict(optimizer="adagrad"), ValueError, "'adagrad'"),
        (dict(data={"t": [1.0]}), ValueError, "missing data 'y'"),
        (dict(data={"t": [1.0], "y": [1.0], "z": [1.0]}), ValueError, "unknown data 'z'"),
        (dict(params=(1.0,)), TypeError, "got 1 initial parameter value(s)"),
        (dict(params={"a": 1.0, "c": 2.0}), ValueError, "missing 'b'; unknown 'c'"),
        (dict(beta3=0.5), TypeError, "'beta3'"),
        (dict(optimizer="sgd", beta1=0.5), TypeError, "'beta1' for optimizer 'sgd'"),
        (dict(lr=-1.0), ValueError, "lr"),
        (dict(steps=2.5), TypeError, "steps"),
        (dict(batch_size=0), ValueError, "batch_size"),
        (dict(progress="yes"), TypeError, "progress"),
    ],
)
def test_bad_arguments_are_named(line, kwargs, error, fragment):
    options = dict(params=(1.0, 2.0), data={"t": [1.0, 2.0], "y": [1.0, 2.0]}, progress=False)
    options.update(kwargs)
    with pytest.raises(error) as info:
        symgen.fit(line, options.pop("params"), options.pop("data"), **options)
    assert fragment in str(info.value)


def test_fit_accepts_a_problem_and_rejects_other_things(rosen):
    result = symgen.fit(rosenbrock.rosenbrock, (2.0, 2.0), steps=3, progress=False)
    assert result.steps == 3
    with pytest.raises(TypeError, match="generated module"):
        symgen.fit(object(), (1.0,))
    with pytest.raises(ValueError, match="batch_size needs data"):
        symgen.fit(rosen, (2.0, 2.0), batch_size=2, progress=False)


def test_report_when_stdout_is_not_a_terminal(rosen, capsys):
    symgen.fit(rosen, (2.0, 2.0), optimizer="sgd", lr=1e-3, steps=1000)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["step", "epoch", "loss", "elapsed"]
    rows = [line.split() for line in lines[1:]]
    assert [int(r[0]) for r in rows] == list(range(100, 1001, 100))
    assert all(r[3].endswith("s") and float(r[2]) > 0 for r in rows)
    symgen.fit(rosen, (2.0, 2.0), optimizer="sgd", lr=1e-3, steps=25, report_every=10)
    rows = capsys.readouterr().out.splitlines()[1:]
    assert [int(r.split()[0]) for r in rows] == [10, 20, 25]  # the last step is always shown
    symgen.fit(rosen, (2.0, 2.0), optimizer="sgd", lr=1e-3, steps=25, progress=False)
    assert capsys.readouterr().out == ""
