"""A step either completes or leaves everything as it was (issue 15 item 2): for every
backend (NumPy, C, CUDA through the emulator) and every optimizer, each argument in turn is
made bad (a parameter, the data, an entry of the state, a hyperparameter), the step raises,
and every parameter, state array and data array is bit for bit what it was. A step whose
update overflows while NumPy raises on overflow (np.seterr, warnings as errors) completes
instead of stopping after the first parameter."""

import contextlib
import warnings

import numpy as np
import pytest

import symgen
from examples import mlp
from symgen.testing import fake_cupy_installed

BACKENDS = ["numpy", "c", "cuda"]

#: optimizer: (step function, keywords)
OPTIMIZERS = {
    "sgd": ("sgd_step", {"lr": 0.01}),
    "momentum": ("momentum_step", {"lr": 0.01, "momentum": 0.9, "nesterov": False}),
    "nesterov": ("momentum_step", {"lr": 0.01, "momentum": 0.9, "nesterov": True}),
    "adam": ("adam_step", {"lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}),
}


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request):
    """(name, module of examples/mlp.py, array namespace, to_host)."""
    if request.param != "cuda":
        yield request.param, symgen.compile(mlp.mlp, request.param), np, np.asarray
        return
    with fake_cupy_installed():
        import cupy as cp

        yield "cuda", symgen.compile(mlp.mlp, "cuda"), cp, cp.asnumpy


def _good(xp, module, step):
    """The arguments of a step that succeeds: (params, data, state)."""
    rng = np.random.default_rng(0)
    w1, w2 = (rng.standard_normal(s).astype(np.float32) for s in ((3, 5), (5, 2)))
    x, y = (rng.standard_normal(s).astype(np.float32) for s in ((4, 3), (4, 2)))
    params = [xp.asarray(w1), xp.asarray(w2)]
    data = {"X": xp.asarray(x), "Y": xp.asarray(y)}
    state = None
    if step != "sgd_step":  # a state one step old: its entries are not all zero
        keywords = OPTIMIZERS["adam" if step == "adam_step" else "momentum"][1]
        state = getattr(module, step.replace("_step", "_state"))(*params)
        state = getattr(module, step)(*params, **data, state=state, **keywords)[2]
    return params, data, state


def _arrays(value):
    """Every array in a nest of tuples, lists and dicts, in order."""
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (tuple, list)):
        return [a for v in value for a in _arrays(v)]
    return [value] if hasattr(value, "shape") else []


def _snapshot(to_host, *values):
    return [(a.dtype, a.shape, to_host(a).tobytes()) for v in values for a in _arrays(v)]


def _call(module, step, params, data, state, keywords):
    extra = {} if step == "sgd_step" else {"state": state}
    return getattr(module, step)(*params, **data, **extra, **keywords)


def _replace(params, i, value):
    params[i] = value


def _state_entry(state, step, slot, value):
    """``state`` with the entry of the second parameter in ``slot`` replaced by ``value``."""
    if step == "momentum_step":
        return (state[0], value)
    count, *slots = state
    slots[slot] = (slots[slot][0], value)
    return (count, *slots)


def _cases(name, xp, step, params, data, state):
    """(what, change, error, match): each makes one argument bad; ``change(params, data,
    state, keywords)`` returns the new state."""
    w1, w2 = params
    cuda = name == "cuda"

    def param(value):
        return lambda p, d, s, k: (_replace(p, 1, value), s)[1]

    yield "W2 float64", param(w2.astype(np.float64)), TypeError, "W2"
    yield "W2 a list", param(w2.tolist()), TypeError, "W2"
    yield "W2 complex", param(w2.astype(np.complex64)), TypeError, "W2"
    yield "W2 of the wrong shape", param(xp.zeros((5, 3), np.float32)), ValueError, "W2"
    yield "W2 1-D", param(xp.zeros(10, np.float32)), ValueError, "W2"
    if not cuda:
        read_only = w2.copy()
        read_only.flags.writeable = False
        yield "W2 read-only", param(read_only), ValueError, "read-only"
    if name != "numpy":  # the NumPy module updates a strided view in place
        strided = xp.zeros((5, 4), np.float32)[:, ::2]
        strided[...] = w2
        yield "W2 not contiguous", param(strided), ValueError, "contiguous"

    shared = xp.zeros(16, np.float32)

    def overlapping(p, d, s, k):
        p[0] = shared[:15].reshape(3, 5)
        p[0][...] = w1
        p[1] = shared[6:16].reshape(5, 2)  # overlaps W1's last row
        return s

    yield "W2 overlapping W1", overlapping, ValueError, "share memory"

    def as_data(p, d, s, k):
        buffer = xp.zeros(12, np.float32)
        p[1] = buffer[:10].reshape(5, 2)
        p[1][...] = w2
        d["Y"] = buffer[4:12].reshape(4, 2)  # W2's memory is also the data Y
        return s

    yield "W2 sharing memory with Y", as_data, ValueError, "share memory"

    def data_value(key, value):
        return lambda p, d, s, k: (d.__setitem__(key, value), s)[1]

    if not cuda:
        yield "X complex", data_value("X", data["X"].astype(complex)), TypeError, "X"
        yield "Y strings", data_value("Y", data["Y"].astype(str)), TypeError, "Y"
    yield "Y with other rows", data_value("Y", xp.zeros((5, 2), np.float32)), ValueError, "Y"
    yield "no rows", data_value("X", xp.zeros((0, 3), np.float32)), ValueError, "'X'"

    if state is not None:
        slots = 1 if step == "momentum_step" else 2
        for slot in range(slots):
            old = state[1 + slot][1] if step == "adam_step" else state[1]

            def entry(value, slot=slot):
                return lambda p, d, s, k: _state_entry(s, step, slot, value)

            yield f"state {slot}: shape", entry(xp.zeros((5, 3), np.float32)), ValueError, "state"
            yield f"state {slot}: dtype", entry(old.astype(np.float64)), ValueError, "state"
            yield f"state {slot}: a list", entry(old.tolist()), ValueError, "state"
            if cuda:
                strided = xp.zeros((5, 4), np.float32)[:, ::2]
                yield f"state {slot}: strided", entry(strided), ValueError, "contiguous"
            else:
                read_only = old.copy()
                read_only.flags.writeable = False
                yield f"state {slot}: read-only", entry(read_only), ValueError, "read-only"
        yield "state a list", lambda p, d, s, k: list(s), TypeError, "state"
        yield "state None", lambda p, d, s, k: None, TypeError, "state"
        if step == "adam_step":
            yield "count -1", lambda p, d, s, k: (-1, *s[1:]), TypeError, "count"
            yield "count 1.0", lambda p, d, s, k: (1.0, *s[1:]), TypeError, "count"

    for keyword in OPTIMIZERS["adam" if step == "adam_step" else "momentum"][1]:
        if step == "sgd_step" and keyword != "lr":
            continue
        bad = ["yes", 1] if keyword == "nesterov" else [None, "0.1", True, np.ones(2), 1j]
        for value in bad:

            def hyper(p, d, s, k, keyword=keyword, value=value):
                k[keyword] = value
                return s

            yield f"{keyword}={value!r}", hyper, TypeError, keyword


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_a_refused_step_changes_nothing(backend, optimizer):
    name, module, xp, to_host = backend
    step, keywords = OPTIMIZERS[optimizer]
    params, data, state = _good(xp, module, step)
    cases = list(_cases(name, xp, step, params, data, state))
    assert len(cases) > 12
    for what, change, error, match in cases:
        params, data, state = _good(xp, module, step)
        kept = (list(params), dict(data), state)  # the originals, whatever is passed
        bad_params, bad_data, bad_keywords = list(params), dict(data), dict(keywords)
        bad_state = change(bad_params, bad_data, state, bad_keywords)
        arguments = (bad_params, bad_data, bad_state)
        before = _snapshot(to_host, *kept, *(a for a in arguments if a is not None))
        with pytest.raises(error, match=match):
            _call(module, step, bad_params, bad_data, bad_state, bad_keywords)
        after = _snapshot(to_host, *kept, *(a for a in arguments if a is not None))
        assert after == before, f"{name} {optimizer}: {what} changed an array"


@contextlib.contextmanager
def _overflow_is_an_error():
    with np.errstate(all="raise"), warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_an_update_that_overflows_completes(backend, optimizer):
    """X of 1e20 and W2 of 1e-20: the loss is finite, W2's gradient is about 1e20, so W2's
    update overflows float32 (lr*g, or g**2 for Adam) while W1's does not. The step must not
    stop between them, however NumPy reports overflow."""
    name, module, xp, to_host = backend
    step, keywords = OPTIMIZERS[optimizer]
    keywords = {**keywords, "lr": 1e-3 if step == "adam_step" else 1e19}
    results = []
    for mode in (_overflow_is_an_error, contextlib.nullcontext):
        params, data, state = _good(xp, module, step)
        params[1] *= np.float32(1e-20)
        data["X"] *= np.float32(1e20)
        with mode():
            loss, new, *new_state = _call(module, step, params, data, state, keywords)
        assert np.isfinite(loss)
        results.append(_snapshot(to_host, params, new_state))
    assert results[0] == results[1]
    # it did overflow: W2 (or, for Adam, W2's second moment) holds an infinity
    overflowed = results[0][-1 if step == "adam_step" else 1][2]
    assert not np.isfinite(np.frombuffer(overflowed, dtype=np.float32)).all()
    assert np.isfinite(np.frombuffer(results[0][0][2], dtype=np.float32)).all()  # W1 not
