"""symgen.distributed: losses and gradients over Dask arrays split by rows, on a LocalCluster.

One cluster (2 worker processes, 1 thread each) serves the whole file; the test
that kills a worker runs last.
"""

import concurrent.futures
import logging
import os
import signal
import time

import numpy as np
import pytest
import sympy as sp

import symgen
from examples import curve_fit, logistic, mlp, softmax
from symgen import distributed
from symgen.cli.commands import main
from symgen.codegen.optimizers import updater
from symgen.compiler.separable import row_split
from symgen.runtime.distributed.row_plan import RowPlan

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
dd = pytest.importorskip("distributed")

M, D, K = sp.symbols("M D K", integer=True, positive=True)
X, Y = sp.MatrixSymbol("X", M, D), sp.MatrixSymbol("Y", M, K)
W = sp.MatrixSymbol("W", D, K)
SQUARES = symgen.sum(symgen.square(X * W - Y))


def close(got, want, rtol=1e-12):
    """``got`` equals ``want`` (a loss and its gradients, or parameters) to ``rtol``;
    entries far smaller than the largest one are compared against that one."""
    for g, w in zip(np.atleast_1d(got), np.atleast_1d(want), strict=True):
        w = np.asarray(w, dtype=float)
        scale = float(np.max(np.abs(w))) if w.size else 0.0
        np.testing.assert_allclose(np.asarray(g, dtype=float), w, rtol=rtol, atol=rtol * scale)


def same_result(got, want, rtol=1e-12):
    close([got[0]], [want[0]], rtol)
    assert len(got[1]) == len(want[1])
    for g, w in zip(got[1], want[1], strict=True):
        assert type(g) is type(w) or (isinstance(g, float) and isinstance(w, float))
        close(g, w, rtol)


@pytest.fixture(scope="module")
def client():
    cluster = dd.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        silence_logs=logging.ERROR,
        worker_class="distributed.Nanny",
    )
    with dd.Client(cluster) as c:
        yield c
    cluster.close()


def persisted(*arrays):
    out = dask.persist(*arrays)
    dd.wait(list(out))
    return out


@pytest.fixture(scope="module")
def curve_data(client):
    """W4 data, N = 2e6 samples in 16 chunks, made on the workers; and the same in memory."""
    rng = da.random.default_rng(0)
    t = rng.uniform(0.0, 4.0, 2_000_000, chunks=125_000)
    a, b, c, d, e, g = curve_fit.TRUE
    y = da.exp(-a * t) * da.sin(b * t + c) + d * t**2 + e * t + g
    y = y + 0.01 * rng.standard_normal(2_000_000, chunks=125_000)
    t, y = persisted(t, y)
    return {"t": t, "y": y}, dict(zip("ty", dask.compute(t, y), strict=True))


@pytest.fixture(scope="module")
def curve_module():
    return symgen.compile(curve_fit.curve_fit)


# --- which losses split over rows (no cluster needed) --------------------------------


def test_examples_split_over_rows():
    cases = {
        curve_fit.curve_fit: ("N", 1, ("t", "y")),
        logistic.logistic: ("N", 0, ("X", "t")),
        mlp.mlp: ("M", 1, ("X", "Y")),
        softmax.softmax: ("N", 1, ("X", "Y")),
    }
    for problem, (dim, power, rows) in cases.items():
        split = row_split(problem)
        assert (str(split.dim), split.power, split.rows) == (dim, power, rows), problem.name
    a, t = sp.symbols("a t")
    assert row_split(symgen.Problem((a - t) ** 2, [a], [t])).power == 0
    # 1/M inside the elementwise part, a trace, a linear combination of sums
    assert (
        row_split(symgen.Problem(symgen.sum(symgen.square(X * W - Y) / M), [W], [X, Y])).power == 1
    )
    assert row_split(symgen.Problem(sp.Trace(W.T * X.T * X * W) / M, [W], [X])).power == 1
    mixed = 3 * SQUARES / M - 2 * symgen.sum(Y) * symgen.sum(W) / M
    assert row_split(symgen.Problem(mixed, [W], [X, Y])).power == 1
    # an identity sized by the parameters is a constant; one sized by the rows is not
    V = sp.MatrixSymbol("V", D, D)
    shifted = symgen.sum(symgen.square(X * (V - sp.Identity(D)) * W - Y))
    assert row_split(symgen.Problem(shifted, [W, V], [X, Y])).power == 0
    with pytest.raises(symgen.SpecError, match="identity matrix of size M"):
        row_split(symgen.Problem(SQUARES + symgen.sum(sp.Identity(M)), [W], [X, Y]))


@pytest.mark.parametrize(
    "loss, params, why",
    [
        (symgen.sum(symgen.logsumexp(X * W, axis=0)), "W", "maximum over the rows M"),
        (sp.log(SQUARES), "W", "log(S)"),
        (SQUARES + symgen.sum(symgen.square(W)), "W", "not a sum over rows"),
        (symgen.sum(X * W * W.T * X.T), "W", "all pairs of rows"),
        (SQUARES / (M + 1), "W", "not as a factor M**k"),
        (symgen.sum(symgen.square(symgen.sum(X * W, axis=0) - Y)), "W", "single rows"),
        (symgen.sum(symgen.square(X * W - Y)) + symgen.sum(sp.MatrixSymbol("b", M, 1)), "Wb",
         "parameter 'b' has shape (M, 1)"),
    ],
)  # fmt: skip
def test_losses_that_do_not_split_raise(loss, params, why):
    symbols = [W] + ([sp.MatrixSymbol("b", M, 1)] if params == "Wb" else [])
    data = [s for s in (X, Y) if s.name in {x.name for x in loss.free_symbols}]
    problem = symgen.Problem(loss, symbols, data, name="odd")
    with pytest.raises(symgen.SpecError, match="does not split over the rows M") as info:
        row_split(problem)
    assert why in str(info.value)
    values = {"X": da.ones((10, 2), chunks=5), "Y": da.ones((10, 3), chunks=5)}
    arguments = [np.ones((2, 3))] + ([np.ones((10, 1))] if params == "Wb" else [])
    with pytest.raises(symgen.SpecError, match="does not split"):
        distributed.loss_and_grad(problem, arguments, {s.name: values[s.name] for s in data})


def test_updates_match_the_generated_steps_exactly():
    """optimizers.updater applies the generated sgd/momentum/adam arithmetic, bit for bit."""
    m64 = symgen.compile(symgen.Problem(mlp.mlp.loss, mlp.mlp.params, mlp.mlp.data, name="m64"))
    m32 = symgen.compile(mlp.mlp)
    x, y, w1, w2 = mlp.seed_data(m=20, n_i=6, n_h=4, n_o=3)
    ts, ys = curve_fit.synthetic(n=200)
    cf = symgen.compile(curve_fit.curve_fit)
    cases = [
        (m64, (w1.astype(float), w2.astype(float)), {"X": x.astype(float), "Y": y.astype(float)}),
        (m32, (w1, w2), {"X": x, "Y": y}),
        (cf, curve_fit.START, {"t": ts, "y": ys}),
    ]
    settings = [
        ("sgd", {"lr": 0.01}),
        ("momentum", {"lr": 0.01}),
        ("momentum", {"lr": 0.01, "momentum": 0.5, "nesterov": True}),
        ("adam", {"lr": 0.01}),
        ("adam", {"lr": 0.02, "beta1": 0.5, "beta2": 0.9, "eps": 1e-6}),
    ]
    for module, start, data in cases:
        for optimizer, options in settings:
            mine = [np.array(p) if np.ndim(p) else float(p) for p in start]
            theirs = [np.array(p) if np.ndim(p) else float(p) for p in start]
            update = updater(optimizer, dict(options), mine)
            step = getattr(module, f"{optimizer}_step")
            state = None if optimizer == "sgd" else getattr(module, f"{optimizer}_state")(*theirs)
            for _ in range(3):
                _, grads = module.loss_and_grad(*mine, **data)
                mine = list(update(mine, grads))
                if state is None:
                    _, theirs = step(*theirs, **data, **options)
                else:
                    _, theirs, state = step(*theirs, **data, state=state, **options)
                theirs = list(theirs)
            for a, b in zip(mine, theirs, strict=True):
                assert np.array_equal(a, b), (module.__name__, optimizer, options)
                assert np.asarray(a).dtype == np.asarray(b).dtype


# --- the same numbers as in memory, on the cluster ---------------------------------------


def test_curve_fit_2e6_samples_in_16_chunks(client, curve_data, curve_module):
    lazy, memory = curve_data
    assert lazy["t"].numblocks == (16,)
    want = curve_module.loss_and_grad(*curve_fit.START, **memory)
    same_result(distributed.loss_and_grad(curve_fit.curve_fit, curve_fit.START, lazy), want)
    same_result(distributed.loss_and_grad(curve_module, curve_fit.START, lazy), want)
    by_name = dict(zip(curve_module.PARAMS, curve_fit.TRUE, strict=True))
    close(
        [distributed.loss(curve_module, by_name, lazy)],
        [curve_module.loss(*curve_fit.TRUE, **memory)],
    )


def test_logistic_1e6_rows(client):
    rng = da.random.default_rng(1)
    x = rng.standard_normal((1_000_000, 16), chunks=(62_500, 16))
    true_w = np.random.default_rng(2).standard_normal((16, 1))
    p = 1 / (1 + da.exp(-(x @ true_w)))
    t = (rng.random((1_000_000, 1), chunks=(62_500, 1)) < p).astype(float)
    t = t.rechunk((100_000, 1))  # chunks that do not line up with X's: aligned by symgen
    x, t = persisted(x, t)
    xs, ts = dask.compute(x, t)
    module = symgen.compile(logistic.logistic)
    w = 0.1 * np.random.default_rng(3).standard_normal((16, 1))
    want = module.loss_and_grad(w, xs, ts)
    same_result(distributed.loss_and_grad(module, [w], {"X": x, "t": t}), want)
    same_result(distributed.loss_and_grad(logistic.logistic, {"w": w}, {"X": x, "t": t}), want)


def test_mlp_float64_and_softmax(client):
    mlp64 = symgen.Problem(mlp.mlp.loss, mlp.mlp.params, mlp.mlp.data, name="mlp64")
    x, y, w1, w2 = (a.astype(float) for a in mlp.seed_data(m=3000, n_i=40, n_h=20, n_o=5))
    module = symgen.compile(mlp64)
    want = module.loss_and_grad(w1, w2, x, y)
    data = {"X": da.from_array(x, chunks=(400, 40)), "Y": da.from_array(y, chunks=(1000, 5))}
    same_result(distributed.loss_and_grad(mlp64, (w1, w2), data), want)
    same_result(distributed.loss_and_grad(module, (w1, w2), data), want)

    xs, ys, _ = softmax.blobs(n=5000, d=3, k=4)
    sm = symgen.compile(softmax.softmax)
    rng = np.random.default_rng(4)
    w, b = rng.standard_normal((3, 4)), rng.standard_normal((1, 4))
    data = {"X": da.from_array(xs, chunks=(700, 3)), "Y": da.from_array(ys, chunks=(700, 4))}
    same_result(distributed.loss_and_grad(sm, (w, b), data), sm.loss_and_grad(w, b, xs, ys))
    same_result(
        distributed.loss_and_grad(softmax.softmax, (w, b), data), sm.loss_and_grad(w, b, xs, ys)
    )


def test_float32_module(client):
    x, y, w1, w2 = mlp.seed_data(m=600, n_i=30, n_h=10, n_o=4)
    module = symgen.compile(mlp.mlp)
    data = {"X": da.from_array(x, chunks=(100, 30)), "Y": da.from_array(y, chunks=(100, 4))}
    value, grads = distributed.loss_and_grad(module, (w1, w2), data)
    want = module.loss_and_grad(w1, w2, x, y)
    assert all(g.dtype == np.float32 for g in grads)
    same_result((value, grads), want, rtol=1e-4)


def test_unequal_chunks_numpy_data_and_a_single_chunk(client, curve_module):
    ts, ys = curve_fit.synthetic(n=10_000)
    want = curve_module.loss_and_grad(*curve_fit.START, t=ts, y=ys)
    for chunks in ((1, 2, 4997, 3000, 2000), (10_000,), (9_999, 1)):
        lazy = {"t": da.from_array(ts, chunks=(chunks,)), "y": ys}  # y: a NumPy array
        got = distributed.loss_and_grad(curve_module, curve_fit.START, lazy)
        same_result(got, want)
    # without a cluster: Dask's local threads
    with dask.config.set(scheduler="threads"):
        lazy = {"t": da.from_array(ts, chunks=3000), "y": da.from_array(ys, chunks=1000)}
        same_result(distributed.loss_and_grad(curve_fit.curve_fit, curve_fit.START, lazy), want)


def test_a_bare_module_is_checked_on_the_first_rows(client):
    """Given only a module, whether the loss splits is checked on the data's first rows."""
    problem = symgen.Problem(symgen.sum(symgen.logsumexp(X * W, axis=0)), [W], [X], name="lse0")
    module = symgen.compile(problem)
    x = np.random.default_rng(5).standard_normal((100, 2))
    with pytest.raises(symgen.SpecError, match="lse0: the loss does not split over rows"):
        distributed.loss_and_grad(module, [np.ones((2, 3))], {"X": da.from_array(x, chunks=30)})
    per_row = symgen.Problem(
        SQUARES + symgen.sum(sp.MatrixSymbol("b", M, 1)), [W, sp.MatrixSymbol("b", M, 1)], [X, Y]
    )
    module = symgen.compile(per_row)
    data = {"X": da.from_array(x, chunks=30), "Y": da.ones((100, 3), chunks=30)}
    with pytest.raises(symgen.SpecError, match=r"parameter 'b' has shape \(100, 1\), one entry"):
        distributed.loss_and_grad(module, [np.ones((2, 3)), np.ones((100, 1))], data)


def test_data_mistakes_fail_before_any_work(client, curve_module):
    t = da.ones(100, chunks=10)
    with pytest.raises(ValueError, match="'y' has 99 rows but 't' has 100"):
        distributed.loss_and_grad(curve_module, curve_fit.START, {"t": t, "y": da.ones(99)})
    with pytest.raises(ValueError, match="missing data 'y'"):
        distributed.loss_and_grad(curve_module, curve_fit.START, {"t": t})
    with pytest.raises(ValueError, match="unknown data 'z'"):
        distributed.loss_and_grad(curve_module, curve_fit.START, {"t": t, "y": t, "z": t})
    with pytest.raises(TypeError, match="got 2 parameter value"):
        distributed.loss_and_grad(curve_module, (1.0, 2.0), {"t": t, "y": t})


# --- fit on Dask arrays ----------------------------------------------------------------


@pytest.mark.parametrize(
    "optimizer, options",
    [("sgd", {}), ("momentum", {}), ("nesterov", {"momentum": 0.8}), ("adam", {})],
)
def test_fit_on_dask_arrays_matches_fit_in_memory(client, curve_module, optimizer, options):
    ts, ys = curve_fit.synthetic(n=30_000)
    lazy = {"t": da.from_array(ts, chunks=7_000), "y": da.from_array(ys, chunks=7_000)}
    kwargs = dict(optimizer=optimizer, lr=0.01, steps=4, progress=False, **options)
    want = symgen.fit(curve_module, curve_fit.START, {"t": ts, "y": ys}, **kwargs)
    got = symgen.fit(curve_module, curve_fit.START, lazy, **kwargs)
    close(got.params, want.params)
    close(got.history, want.history)
    close([got.loss], [want.loss])
    assert (got.steps, got.stopped, got.epochs) == (want.steps, want.stopped, want.epochs)


def test_fit_with_array_parameters_on_dask_arrays(client):
    mlp64 = symgen.Problem(mlp.mlp.loss, mlp.mlp.params, mlp.mlp.data, name="mlp64")
    x, y, w1, w2 = (a.astype(float) for a in mlp.seed_data(m=2000, n_i=30, n_h=10, n_o=3))
    lazy = {"X": da.from_array(x, chunks=(300, 30)), "Y": da.from_array(y, chunks=(300, 3))}
    for optimizer in ("adam", "nesterov"):
        kwargs = dict(optimizer=optimizer, lr=1e-3, steps=3, progress=False)
        want = symgen.fit(mlp64, (w1, w2), {"X": x, "Y": y}, **kwargs)
        got = symgen.fit(mlp64, (w1, w2), lazy, **kwargs)
        for a, b in zip(got.params, want.params, strict=True):
            close(a, b)
        close(got.history, want.history)
    assert np.array_equal(w1, mlp.seed_data(m=2000, n_i=30, n_h=10, n_o=3)[2])  # not modified


def test_fit_mini_batches_chunk_by_chunk(client, curve_module):
    ts, ys = curve_fit.synthetic(n=6_000)
    lazy = {"t": da.from_array(ts, chunks=1_000), "y": da.from_array(ys, chunks=1_000)}
    result = symgen.fit(
        curve_module, curve_fit.START, lazy, lr=0.02, steps=300, batch_size=100, progress=False
    )
    assert result.epochs == pytest.approx(300 * 100 / 6_000)
    assert result.loss < 0.5 * result.history[0]
    plan = RowPlan(curve_module, curve_fit.START, lazy)
    batches = plan.batches(400, seed=0)
    epoch = [next(batches) for _ in range(6 * 3)]  # 6 chunks of 1000 rows: 400 + 400 + 200
    assert [n for _, n in epoch] == [400, 400, 200] * 6
    rows = np.concatenate([b["t"] for b, _ in epoch])
    assert np.array_equal(np.sort(rows), np.sort(ts))  # every row once per epoch
    for i in range(6):  # the batches of one chunk come from that chunk
        chunk = np.concatenate([b["t"] for b, _ in epoch[3 * i : 3 * i + 3]])
        assert np.ptp(np.searchsorted(ts, chunk) // 1000) == 0
    batches.close()


def test_train_cli_on_a_zarr_store_and_npy_folder(client, tmp_path, root, monkeypatch, capsys):
    pytest.importorskip("zarr")
    monkeypatch.chdir(root)
    ts, ys = curve_fit.synthetic(n=20_000)
    np.savez(tmp_path / "data.npz", t=ts, y=ys)
    store = tmp_path / "data.zarr"
    da.from_array(ts, chunks=6_000).to_zarr(str(store), component="t")
    da.from_array(ys, chunks=5_000).to_zarr(str(store), component="y")
    (tmp_path / "npy").mkdir()
    np.save(tmp_path / "npy" / "t.npy", ts)
    np.save(tmp_path / "npy" / "y.npy", ys)
    init = [f"--init={n}={v}" for n, v in zip("abcdeg", curve_fit.START, strict=True)]
    outputs = {}
    for name in ("data.npz", "data.zarr", "npy"):
        out = tmp_path / f"{name}.params.npz"
        args = ["train", curve_fit.__file__, "--data", str(tmp_path / name), *init]
        assert main([*args, "--steps", "5", "--lr", "0.02", "--out", str(out), "-q"]) == 0
        with np.load(out) as saved:
            outputs[name] = [float(saved[n]) for n in "abcdeg"]
    close(outputs["data.zarr"], outputs["data.npz"])
    close(outputs["npy"], outputs["data.npz"])
    assert "after 5 adam steps" in capsys.readouterr().out

    (tmp_path / "empty").mkdir()
    args = ["train", curve_fit.__file__, "--data", str(tmp_path / "empty"), *init]
    assert main([*args, "--out", str(tmp_path / "x.npz")]) == 2
    assert "a Zarr store (*.zarr) or hold one NAME.npy" in capsys.readouterr().err
    args = ["train", curve_fit.__file__, "--data", str(tmp_path / "missing.zarr"), *init]
    assert main([*args, "--out", str(tmp_path / "x.npz")]) == 2
    assert "file not found" in capsys.readouterr().err


# --- a worker dies mid-run ---------------------------------------------------------------


def test_a_worker_killed_mid_run_is_recovered(client, curve_data, curve_module):
    """One of the two worker processes is killed (SIGKILL) while it computes a chunk; Dask
    reruns the lost work on the other worker (and on the one its nanny restarts) and the
    result is still right."""
    lazy, memory = curve_data

    def slowly(block):
        time.sleep(0.25)
        return block

    slow = {name: array.map_blocks(slowly, dtype=array.dtype) for name, array in lazy.items()}
    plan = RowPlan(curve_module, curve_fit.START, slow, retries=2)
    pids = client.run(os.getpid)  # worker address -> process id
    before = set(pids)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        running = pool.submit(plan.loss_and_grad, curve_fit.START)
        victim = None
        deadline = time.monotonic() + 60
        while victim is None and time.monotonic() < deadline and not running.done():
            for worker, keys in client.processing().items():
                if any(key_name(k).startswith(("slowly", "symgen-")) for k in keys):
                    victim = worker
                    break
            else:
                time.sleep(0.02)
        assert victim is not None, "the computation finished before a worker could be killed"
        os.kill(pids[victim], signal.SIGKILL)
        got = running.result(timeout=120)
    same_result(got, curve_module.loss_and_grad(*curve_fit.START, **memory))
    assert victim in before and victim not in set(client.scheduler_info()["workers"])
    client.wait_for_workers(2, timeout=60)


def key_name(key):
    return key[0] if isinstance(key, tuple) else str(key)
