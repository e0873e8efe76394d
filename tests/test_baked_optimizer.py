"""Hyperparameters baked in at generation time (``symgen generate SPEC --optimizer adam --lr X``).

The baked step function runs the same operations on the same numbers as the
keyword version (``1.0 - beta1`` is folded at generation time, where Python
computes it exactly as the generated code would at run time), so every
result is compared bit for bit.
"""

import inspect
import os
import subprocess
import sys

import numpy as np
import pytest

import symgen
from examples import curve_fit, logistic, mlp, rosenbrock
from symgen.cli.commands import main
from symgen.codegen.optimizers import Baked, bake, updater
from symgen.runtime.training.optimizers import step_function

STEPS = 20

#: Per optimizer: the hyperparameters (all away from their defaults) and the step function.
HYPER = {
    "sgd": {"lr": 0.0007},
    "momentum": {"lr": 0.0003, "momentum": 0.8},
    "nesterov": {"lr": 0.0003, "momentum": 0.85},
    "adam": {"lr": 0.003, "beta1": 0.8, "beta2": 0.99, "eps": 1e-7},
}
FUNCTION = {"sgd": "sgd_step", "momentum": "momentum_step", "nesterov": "momentum_step"}
FUNCTION["adam"] = "adam_step"


def _rosenbrock():
    return rosenbrock.rosenbrock, (-1.0, 1.5), {}


def _curve_fit():
    t, y = curve_fit.synthetic(n=3000)
    return curve_fit.curve_fit, curve_fit.START, {"t": t, "y": y}


def _mlp():  # float32 matrices
    x, y, w1, w2 = mlp.seed_data(m=16, n_i=12, n_h=8, n_o=3)
    return mlp.mlp, (w1, w2), {"X": x, "Y": y}


def _logistic():  # float64 matrices
    x, t = np.array(logistic.TINY_X), np.array(logistic.TINY_T)
    return logistic.logistic, (np.full((3, 1), 0.1),), {"X": x, "t": t}


PROBLEMS = {"rosenbrock": _rosenbrock, "curve_fit": _curve_fit, "mlp": _mlp}
PROBLEMS["logistic"] = _logistic


def _copy(params):
    return [p.copy() if isinstance(p, np.ndarray) else p for p in params]


def _run(function, params, data, state, steps=STEPS, **keywords):
    """``steps`` steps; returns (losses, parameters, state)."""
    params, losses = _copy(params), []
    for _ in range(steps):
        if state is None:
            loss, params = function(*params, **data, **keywords)
        else:
            loss, params, state = function(*params, **data, state=state, **keywords)
        losses.append(loss)
    return losses, params, state


def _identical(a, b):
    """Equal bit for bit (same types, dtypes and values), recursively."""
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype
        np.testing.assert_array_equal(a, b, strict=True)
    elif isinstance(a, (tuple, list)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _identical(x, y)
    else:
        assert type(a) is type(b) and a == b, (a, b)


@pytest.mark.parametrize("optimizer", list(HYPER))
@pytest.mark.parametrize("problem", list(PROBLEMS))
def test_baked_step_is_bit_identical_to_the_keyword_step(problem, optimizer):
    spec, params, data = PROBLEMS[problem]()
    plain = symgen.compile(spec)
    baked = symgen.compile(spec, optimizer=optimizer, **HYPER[optimizer])
    name = FUNCTION[optimizer]
    keywords = dict(HYPER[optimizer])
    if name == "momentum_step":
        keywords["nesterov"] = optimizer == "nesterov"
    state_of = None if optimizer == "sgd" else name.replace("_step", "_state")
    want = _run(
        getattr(plain, name),
        params,
        data,
        getattr(plain, state_of)(*params) if state_of else None,
        **keywords,
    )
    got = _run(
        getattr(baked, name),
        params,
        data,
        getattr(baked, state_of)(*params) if state_of else None,
    )
    _identical(got, want)
    assert all(np.isfinite(want[0])) and want[0][-1] < want[0][0]
    # the generic names run the same function
    assert baked.step is getattr(baked, name)
    if state_of:
        assert baked.step_state is getattr(baked, state_of)
    else:
        assert not hasattr(baked, "step_state")


def test_baked_adam_source_signature_and_metadata():
    hyper = {"lr": 0.003, "beta1": 0.8, "beta2": 0.99, "eps": 1e-7}
    source = symgen.generate(rosenbrock.rosenbrock, optimizer="adam", **hyper)
    m = symgen.compile(rosenbrock.rosenbrock, optimizer="adam", **hyper)
    # literals, with the step-independent arithmetic folded
    assert "_c1 = 0.003/(1.0 - 0.8**_step)" in source
    assert "_c2 = 1.0/(1.0 - 0.99**_step)" in source
    assert f"{1.0 - 0.8!r}*grad_x" in source and f"{1.0 - 0.99!r}*(grad_x*grad_x)" in source
    assert "+ 1e-07)" in source and "(1.0 - beta1)" not in source.split("def adam_step")[1]
    assert list(inspect.signature(m.adam_step).parameters) == ["x", "y", "state"]
    state = m.adam_state(1.0, 1.0)
    for keyword in hyper:
        with pytest.raises(TypeError, match=keyword):
            m.adam_step(1.0, 1.0, state=state, **{keyword: hyper[keyword]})
    # the other step functions keep their keywords
    assert "lr" in inspect.signature(m.sgd_step).parameters
    assert "nesterov" in inspect.signature(m.momentum_step).parameters
    assert m.OPTIMIZER == "adam"
    assert m.HYPERPARAMETERS == hyper
    assert list(m.HYPERPARAMETERS) == ["lr", "beta1", "beta2", "eps"]
    header = source.split('"""')[0]
    assert "Baked in: adam_step, lr=0.003, beta1=0.8, beta2=0.99, eps=1e-07" in header
    assert "--optimizer adam --lr 0.003 --beta1 0.8 --beta2 0.99 --eps 1e-07" in header
    assert "adam (lr=0.003, beta1=0.8, beta2=0.99, eps=1e-07)" in m.__doc__
    assert "lr=0.003, beta1=0.8, beta2=0.99, eps=1e-07" in m.adam_step.__doc__


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nesterov"])
def test_baked_sgd_and_momentum_reject_their_keywords(optimizer):
    spec, params, data = _mlp()
    m = symgen.compile(spec, optimizer=optimizer, lr=0.25)
    source = symgen.generate(spec, optimizer=optimizer, lr=0.25)
    body = source.split(f"def {FUNCTION[optimizer]}(")[1].split("\ndef ")[0]
    assert "0.25*grad_W1" in body and "lr" not in body.split('"""')[2]
    expected = ["W1", "W2", "X", "Y"] + ([] if optimizer == "sgd" else ["state"])
    assert list(inspect.signature(getattr(m, FUNCTION[optimizer])).parameters) == expected
    extra = {} if optimizer == "sgd" else {"state": m.step_state(*params)}
    for keyword in ("lr", "momentum", "nesterov"):
        with pytest.raises(TypeError, match=keyword):
            m.step(*params, **data, **extra, **{keyword: 0.1})
    if optimizer != "sgd":
        assert "if nesterov" not in body  # the rule is fixed, no branch left
        assert ("-0.25" in body) == (optimizer == "nesterov")
        assert m.HYPERPARAMETERS == {"lr": 0.25, "momentum": 0.9}


def test_unbaked_output_is_unchanged():
    source = symgen.generate(curve_fit.curve_fit)
    assert source == symgen.generate(curve_fit.curve_fit, optimizer=None)
    assert "OPTIMIZER" not in source and "Baked" not in source and "\nstep = " not in source


def test_bake_defaults_order_and_checks():
    assert bake() is None
    assert bake("sgd") == Baked("sgd", (("lr", 0.01),))
    assert bake("momentum").as_dict() == {"lr": 0.01, "momentum": 0.9}
    assert bake("adam", eps=1e-6).values == (
        ("lr", 0.001),
        ("beta1", 0.9),
        ("beta2", 0.999),
        ("eps", 1e-6),
    )
    # values are checked and put in order however the dataclass is built
    assert Baked("momentum", (("momentum", 0.5), ("lr", 1))).values == (
        ("lr", 1.0),
        ("momentum", 0.5),
    )
    assert bake("adam", beta1=-0.0)["beta1"] == 0.0  # one spelling of zero
    constants = bake("adam", beta1=0.8, beta2=0.99).constants()
    assert constants["one_minus_beta1"] == 1.0 - 0.8 and constants["neg_lr"] == -0.001
    assert bake("nesterov").constants()["nesterov"] is True
    assert bake("nesterov").removed_keywords == ("lr", "momentum", "nesterov")


@pytest.mark.parametrize(
    ("optimizer", "hyper", "message"),
    [
        (None, {"lr": 0.1}, "lr given without an optimizer"),
        ("sgd", {"beta1": 0.5}, "beta1 is not a hyperparameter of sgd; sgd takes lr"),
        ("momentum", {"eps": 1e-3}, "eps is not a hyperparameter of momentum"),
        ("adam", {"momentum": 0.5}, "momentum is not a hyperparameter of adam"),
        ("adam", {"lr": 0.0}, "lr must be a finite number > 0"),
        ("sgd", {"lr": -1e-3}, "lr must be a finite number > 0"),
        ("sgd", {"lr": float("inf")}, "lr must be a finite number > 0"),
        ("sgd", {"lr": float("nan")}, "lr must be a finite number > 0"),
        ("adam", {"beta1": 1.0}, r"beta1 must be in \[0, 1\)"),
        ("adam", {"beta2": -0.1}, r"beta2 must be in \[0, 1\)"),
        ("nesterov", {"momentum": 1.5}, r"momentum must be in \[0, 1\)"),
        ("adam", {"eps": 0.0}, "eps must be a finite number > 0"),
        ("adam", {"lr": "0.1"}, "lr must be a number"),
        ("adam", {"lr": True}, "lr must be a number"),
        ("rmsprop", {}, "unknown optimizer 'rmsprop'"),
        ("adam", {"learning_rate": 0.1}, "unknown hyperparameter 'learning_rate'"),
    ],
)
def test_invalid_baking_is_a_spec_error(optimizer, hyper, message):
    with pytest.raises(symgen.SpecError, match=message):
        symgen.generate(rosenbrock.rosenbrock, optimizer=optimizer, **hyper)


@pytest.fixture
def in_root(root, monkeypatch):
    monkeypatch.chdir(root)


@pytest.mark.parametrize("command", ["generate", "check"])
@pytest.mark.parametrize(
    "flags",
    [
        ["--lr", "0.1"],
        ["--beta1", "0.5"],
        ["--optimizer", "sgd", "--beta1", "0.5"],
        ["--optimizer", "sgd", "--momentum", "0.5"],
        ["--optimizer", "momentum", "--eps", "1e-8"],
        ["--optimizer", "adam", "--lr", "0"],
        ["--optimizer", "adam", "--lr", "-0.001"],
        ["--optimizer", "adam", "--lr", "nan"],
        ["--optimizer", "adam", "--beta1", "1"],
        ["--optimizer", "adam", "--beta2", "1.5"],
        ["--optimizer", "adam", "--eps", "0"],
        ["--optimizer", "nesterov", "--momentum", "-0.5"],
        ["--optimizer", "rmsprop"],
        ["--optimizer", "adam", "--lr", "fast"],
    ],
)
def test_cli_errors_are_one_line_exit_2(in_root, tmp_path, capsys, command, flags):
    assert main([command, "examples/rosenbrock.py", "-o", str(tmp_path), *flags]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    if lines[0].startswith("usage: "):  # a mistake argparse finds: the usage above it
        lines = lines[1:]
    assert len(lines) == 1 and lines[0].startswith("symgen: error: "), captured.err
    assert not list(tmp_path.iterdir())


def test_cli_generate_and_check_with_the_same_flags(in_root, tmp_path, capsys):
    flags = ["--optimizer", "adam", "--lr", "1e-3", "--beta2", "0.995"]
    spec = "examples/curve_fit.py"
    assert main(["generate", spec, "-o", str(tmp_path), *flags]) == 0
    written = tmp_path / "curve_fit_numpy.py"
    text = written.read_text()
    assert "0.001/(1.0 - 0.9**_step)" in text and "_c2 = 1.0/(1.0 - 0.995**_step)" in text
    assert "--optimizer adam --lr 0.001 --beta1 0.9 --beta2 0.995 --eps 1e-08" in text
    assert text == symgen.generate(
        curve_fit.curve_fit, source=spec, optimizer="adam", lr=1e-3, beta2=0.995
    )
    capsys.readouterr()
    assert main(["check", spec, "-o", str(tmp_path), *flags]) == 0
    # without the flags (or with other values) the baked file is stale
    for other in ([], ["--optimizer", "adam", "--lr", "2e-3", "--beta2", "0.995"]):
        assert main(["check", spec, "-o", str(tmp_path), *other]) == 1
        assert f"{written} (differs)" in capsys.readouterr().err
    # and an unbaked file is stale for a check with the flags
    assert main(["generate", spec, "-o", str(tmp_path)]) == 0
    assert main(["check", spec, "-o", str(tmp_path), *flags]) == 1


def test_baked_output_is_deterministic_across_hash_seeds(root, tmp_path):
    outputs = []
    for seed in (0, 12345):
        out = tmp_path / f"seed{seed}"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "symgen",
                "generate",
                "examples/mlp.py",
                "--optimizer",
                "nesterov",
                "--lr",
                "0.0001",
                "--momentum",
                "0.95",
                "-o",
                str(out),
            ],
            cwd=root,
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
            check=True,
            capture_output=True,
        )
        outputs.append((out / "mlp_numpy.py").read_bytes())
    assert outputs[0] == outputs[1]
    assert b"_v_W1 *= 0.95" in outputs[0] and b"_v_W1 -= 0.0001*grad_W1" in outputs[0]


# --- symgen.fit with baked modules ------------------------------------------


def _fit(module, params, data, **options):
    return symgen.fit(module, params, data, steps=STEPS, progress=False, **options)


@pytest.mark.parametrize("optimizer", list(HYPER))
def test_fit_runs_the_baked_step(optimizer):
    spec, params, data = _curve_fit()
    baked = symgen.compile(spec, optimizer=optimizer, **HYPER[optimizer])
    plain = symgen.compile(spec)
    want = _fit(plain, params, data, optimizer=optimizer, **HYPER[optimizer])
    got = _fit(baked, params, data)  # the optimizer defaults to the baked one
    _identical(got.history, want.history)
    _identical(got.params, want.params)
    # repeating the baked values is allowed
    again = _fit(baked, params, data, optimizer=optimizer, **HYPER[optimizer])
    _identical(again.params, want.params)


def test_fit_rejects_values_that_differ_from_the_baked_ones():
    spec, params, data = _rosenbrock()
    m = symgen.compile(spec, optimizer="adam", lr=0.003, beta1=0.8)
    with pytest.raises(ValueError, match=r"adam_step\(\) has adam, lr=0.003, beta1=0.8.*lr=0.01"):
        _fit(m, params, data, lr=0.01)
    with pytest.raises(ValueError, match="beta1=0.5: leave it out"):
        _fit(m, params, data, optimizer="adam", beta1=0.5)
    with pytest.raises(TypeError, match="unexpected hyperparameter"):
        _fit(m, params, data, momentum=0.5)
    # the other optimizers still take keywords
    want = _fit(symgen.compile(spec), params, data, optimizer="sgd", lr=1e-4)
    _identical(_fit(m, params, data, optimizer="sgd", lr=1e-4).params, want.params)

    nesterov = symgen.compile(spec, optimizer="nesterov", lr=1e-4)
    with pytest.raises(ValueError, match="cannot run 'momentum'; fit it with optimizer='nesterov'"):
        _fit(nesterov, params, data, optimizer="momentum")


@pytest.mark.parametrize("optimizer", list(HYPER))
def test_updates_for_distributed_fits_match_the_baked_step(optimizer):
    """``optimizers.updater`` (the update ``fit`` applies to gradients summed over Dask
    chunks) gets the baked values from ``fit`` and gives the baked step's numbers."""
    spec, params, data = _logistic()
    m = symgen.compile(spec, optimizer=optimizer, **HYPER[optimizer])
    *_, settings = step_function(m, "logistic", optimizer, None, {}, m.HYPERPARAMETERS)
    current = _copy(params)
    update = updater(optimizer, settings, current)
    for _ in range(STEPS):
        _, grads = m.loss_and_grad(*current, **data)
        current = list(update(current, grads))
    want = _run(m.step, params, data, m.step_state(*params) if optimizer != "sgd" else None)
    _identical(tuple(current), tuple(want[1]))


def test_distributed_fit_with_a_baked_module():
    """Full-batch steps on Dask arrays apply ``optimizers.updater`` with the baked values;
    mini-batches run the baked step function; both as the unbaked module with keywords."""
    dask = pytest.importorskip("dask")
    da = pytest.importorskip("dask.array")
    spec, params, _ = _logistic()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    data = {"X": x, "t": (x[:, :1] > 0).astype(float)}
    chunked = {k: da.from_array(v, chunks=100) for k, v in data.items()}
    baked = symgen.compile(spec, optimizer="adam", lr=0.01, beta1=0.8)
    plain = symgen.compile(spec)  # a different in-memory source: both stay findable
    assert baked.__file__ != plain.__file__
    with dask.config.set(scheduler="threads"):
        for batch_size in (None, 50):
            got = _fit(baked, params, chunked, batch_size=batch_size)
            want = _fit(plain, params, chunked, batch_size=batch_size, lr=0.01, beta1=0.8)
            _identical(got.history, want.history)
            _identical(got.params, want.params)
