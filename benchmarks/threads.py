"""The multi-thread section: W2, W4 and softmax regression with every core for everyone.

Measured in a child process of its own (``python -m benchmarks --threads``), which
``benchmarks.process`` sets up for all the CPUs the runner was allowed before it pinned
itself: OpenBLAS and OpenMP threads = that count, not pinned, XLA's own thread pool on
(``--xla_cpu_multi_thread_eigen=false`` removed), ``torch.set_num_threads(count)``,
scikit-learn's ``n_threads=count``, and symgen's C passes on ``count`` threads. symgen's C
module also runs on one thread, for its speedup. Contenders are checked against symgen's
C module before timing, as everywhere else.

The rates of this section's floors are measured here too: the memory bandwidth (bytes read
once, by a symgen C pass summing an array of 200 MB, on all cores and on one) and the C
backend's vectorised transcendental functions (``floors._vectorised``, one core; all cores
are priced at that rate times the core count: a floor, not a prediction).
"""

from __future__ import annotations

import os

import numpy as np
import sympy as sp

import symgen

from . import curve_fit_grad, floors, frameworks, logistic_grad
from .correctness import RTOL, check_against
from .timing import Contender, format_seconds, measure

#: Per workload: seconds of timing, least and most rounds (quick, full).
PLANS = {"quick": (2, 3, 20), "full": (20, 10, 200)}
SOFTMAX_N, SOFTMAX_D, SOFTMAX_K = 100_000, 20, 10
W4_N = 1_000_000
#: The transcendental functions each workload cannot avoid, per sample (row) and per
#: element (the floor's compute part).
TRANSCENDENTALS = {
    "w2": {"exp": 1, "log": 1},  # softplus and sigmoid share exp(-|z|); log1p ~ log
    "w4": {"exp": 1, "sin": 1, "cos": 1},
    "softmax": {"exp": SOFTMAX_K, "log": 1},
}
SYMGEN_C = "symgen C module"
#: Seconds each sample waits before it starts, for the thread pools of the contender timed
#: before it to stop spinning (``timing.measure``'s ``settle``; OpenBLAS's spin longest,
#: about 2^28 cycles).
SETTLE = 0.2
SYMGEN_C_ONE = "symgen C module, 1 thread"


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _symgen_c(problem, stmt: str, threads: int, name: str) -> Contender:
    module = symgen.compile(problem, "c")
    module._lib()
    module.set_num_threads(threads)
    function = stmt.partition("(")[0]
    return Contender(
        name,
        stmt,
        {function: getattr(module, function)},
        note=f'`symgen.compile(..., "c")`, `set_num_threads({threads})`',
    )


def _renamed(c: Contender, note: str) -> Contender:
    return Contender(c.name, c.stmt, c.namespace, note=note, missing=c.missing)


def _sklearn_linear(base_loss: str, fit_intercept: bool):
    """scikit-learn's ``LinearModelLoss`` of ``base_loss`` ("binomial", "multinomial"): the
    loss and gradient of its LogisticRegression; or why not."""
    try:
        from sklearn._loss import loss as losses
        from sklearn.linear_model._linear_loss import LinearModelLoss
    except ImportError as exc:
        return f"not installed ({exc})"
    if base_loss == "binomial":
        base = losses.HalfBinomialLoss()
    else:
        base = losses.HalfMultinomialLoss(n_classes=SOFTMAX_K)
    return LinearModelLoss(base_loss=base, fit_intercept=fit_intercept)


def w2(threads: int) -> tuple[list[Contender], callable, str]:
    X, t = logistic_grad.data()
    n = X.shape[0]
    contenders = [
        _symgen_c(logistic_grad.logistic, "loss_and_grad(w, X, t)", threads, SYMGEN_C),
        _symgen_c(logistic_grad.logistic, "loss_and_grad(w, X, t)", 1, SYMGEN_C_ONE),
        Contender(
            logistic_grad.REFERENCE,
            "loss_and_grad(w, X, t)",
            {"loss_and_grad": logistic_grad.loss_and_grad_numpy},
            note="NumPy's ufuncs on one thread, `X @ w` and `X.T @ r` on OpenBLAS's threads",
        ),
        _renamed(logistic_grad._jax(X, t), "jax, float64, XLA's CPU thread pool"),
        _renamed(logistic_grad._torch(), f"torch, `set_num_threads({threads})`"),
        _renamed(logistic_grad._torch_compile(X, t), f"inductor, {threads} threads"),
    ]
    model = _sklearn_linear("binomial", False)
    name = f"scikit-learn `LinearModelLoss(HalfBinomialLoss()).loss_gradient`, n_threads={threads}"
    if isinstance(model, str):
        contenders.append(Contender(name, missing=model))
    else:
        y = t.ravel()

        def sklearn_loss_and_grad(w, X, t):  # its mean, as the sum symgen computes
            loss, grad = model.loss_gradient(w.ravel(), X, y, n_threads=threads)
            return loss * n, (grad.reshape(-1, 1) * n,)

        contenders.append(
            Contender(
                name,
                "loss_and_grad(w, X, t)",
                {"loss_and_grad": sklearn_loss_and_grad},
                note="Cython loss and gradient per sample on its threads, `X.T @ g` by BLAS; "
                "times N to be the sum",
            )
        )
    for c in contenders:
        c.namespace.update(
            logistic_grad.bindings(logistic_grad.weights(*logistic_grad.CHECKS[0]), X, t)
        )

    def check():
        for scale, seed in logistic_grad.CHECKS:
            check_against(
                contenders[0],
                contenders,
                logistic_grad.bindings(logistic_grad.weights(scale, seed), X, t),
                where=f"w = {scale} × standard normal (seed {seed})",
                second="gradient",
            )

    return contenders, check, f"W2, N = {n:,}, D = {X.shape[1]}"


def w4(threads: int) -> tuple[list[Contender], callable, str]:
    t, y = curve_fit_grad.data(W4_N)
    contenders = [
        _symgen_c(curve_fit_grad.curve_fit, "loss_and_grad(*p, t=t, y=y)", threads, SYMGEN_C),
        _symgen_c(curve_fit_grad.curve_fit, "loss_and_grad(*p, t=t, y=y)", 1, SYMGEN_C_ONE),
        _renamed(curve_fit_grad._reference(t, y), "NumPy's ufuncs (one thread each)"),
        _renamed(curve_fit_grad._jax(t, y), "jax, float64, XLA's CPU thread pool"),
        _renamed(curve_fit_grad._torch(t, y), f"torch, `set_num_threads({threads})`"),
        _renamed(curve_fit_grad._torch_compile(t, y), f"inductor, {threads} threads"),
    ]
    for c in contenders:
        c.namespace.update(curve_fit_grad.bindings(curve_fit_grad.START, t, y))

    def check():
        check_against(
            contenders[0],
            contenders,
            curve_fit_grad.bindings(curve_fit_grad.START, t, y),
            where="the start point",
            second="gradient",
        )

    return contenders, check, f"W4, N = {W4_N:,}"


def _softmax_numpy(W, b, X, Y):
    """An expert's softmax regression: one exp, in place; max and sums along the rows."""
    n = X.shape[0]
    Z = X @ W
    Z += b
    Z -= Z.max(axis=1, keepdims=True)
    E = np.exp(Z)
    s = E.sum(axis=1, keepdims=True)
    loss = (float(np.log(s).sum()) - float(np.vdot(Y, Z))) / n
    E /= s
    E -= Y
    E /= n
    return loss, (X.T @ E, E.sum(axis=0, keepdims=True))


def softmax_data():
    from examples.softmax import blobs

    x, y, labels = blobs(SOFTMAX_N, SOFTMAX_D, SOFTMAX_K, seed=0)
    rng = np.random.default_rng(1)
    W = 0.1 * rng.standard_normal((SOFTMAX_D, SOFTMAX_K))
    b = 0.1 * rng.standard_normal((1, SOFTMAX_K))
    return W, b, x, y, labels


def softmax(threads: int) -> tuple[list[Contender], callable, str]:
    from examples.softmax import softmax as problem

    W, b, X, Y, labels = softmax_data()
    stmt = "loss_and_grad(W, b, X, Y)"
    contenders = [
        _symgen_c(problem, stmt, threads, SYMGEN_C),
        _symgen_c(problem, stmt, 1, SYMGEN_C_ONE),
        Contender(
            "symgen NumPy module",
            stmt,
            {"loss_and_grad": symgen.compile(problem).loss_and_grad},
            note="`symgen.compile(examples.softmax.softmax)`: NumPy's ufuncs, BLAS's threads",
        ),
        Contender(
            "hand-written NumPy (expert)",
            stmt,
            {"loss_and_grad": _softmax_numpy},
            note="Z = X W + b, max, exp, sums along rows, in place; BLAS's threads",
        ),
    ]
    jax = frameworks.load_jax()
    name = "JAX `jit(value_and_grad)`, CPU"
    if isinstance(jax, str):
        contenders.append(Contender(name, missing=jax))
    else:
        import jax.numpy as jnp

        def loss(W, b, X, Y):
            Z = X @ W + b
            return -jnp.sum(Y * jax.nn.log_softmax(Z, axis=1)) / X.shape[0]

        value_and_grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
        arrays = {k: jax.device_put(v) for k, v in {"W": W, "b": b, "X": X, "Y": Y}.items()}
        frameworks.block(value_and_grad(*arrays.values()))
        contenders.append(
            Contender(
                name,
                "block(value_and_grad(jW, jb, jX, jY))",
                {"value_and_grad": value_and_grad, "block": frameworks.block,
                 **{f"j{k}": v for k, v in arrays.items()}},
                note="`jax.nn.log_softmax`; XLA's CPU thread pool",
            )
        )  # fmt: skip
    torch = frameworks.load_torch()
    name = "PyTorch eager, `autograd.grad`"
    if isinstance(torch, str):
        contenders.append(Contender(name, missing=torch))
    else:
        torch.set_num_threads(threads)
        tensors = {k: torch.from_numpy(v) for k, v in {"X": X, "Y": Y}.items()}

        def torch_loss_and_grad(W, b, X, Y):
            tW = torch.from_numpy(W).requires_grad_()
            tb = torch.from_numpy(b).requires_grad_()
            Z = tensors["X"] @ tW + tb
            loss = -(tensors["Y"] * torch.log_softmax(Z, dim=1)).sum() / X.shape[0]
            gW, gb = torch.autograd.grad(loss, (tW, tb))
            return float(loss), (gW.numpy(), gb.numpy())

        contenders.append(
            Contender(
                name,
                stmt,
                {"loss_and_grad": torch_loss_and_grad},
                note=f"`torch.log_softmax`, `set_num_threads({threads})`",
            )
        )
    model = _sklearn_linear("multinomial", True)
    name = (
        f"scikit-learn `LinearModelLoss(HalfMultinomialLoss()).loss_gradient`, n_threads={threads}"
    )
    if isinstance(model, str):
        contenders.append(Contender(name, missing=model))
    else:
        y = labels.astype(np.float64)

        def sklearn_loss_and_grad(W, b, X, Y):  # its coefficients: (K, D + 1), bias last
            coef = np.hstack([W.T, b.T])
            loss, grad = model.loss_gradient(coef, X, y, n_threads=threads)
            return loss, (grad[:, :-1].T, grad[:, -1:].T)

        contenders.append(
            Contender(
                name,
                stmt,
                {"loss_and_grad": sklearn_loss_and_grad},
                note="its LogisticRegression's loss: Cython softmax per row on its threads, "
                "`X.T @ G` by BLAS",
            )
        )
    for c in contenders:
        c.namespace.update({"W": W, "b": b, "X": X, "Y": Y})

    def check():
        check_against(
            contenders[0], contenders, {"W": W, "b": b, "X": X, "Y": Y},
            where="W, b = 0.1 × standard normal", second="gradient",
        )  # fmt: skip

    return (
        contenders,
        check,
        f"softmax regression, N = {SOFTMAX_N:,}, D = {SOFTMAX_D}, K = {SOFTMAX_K}",
    )


WORKLOADS = {"w2": w2, "w4": w4, "softmax": softmax}


def _bandwidth(threads: int, n: int) -> float:
    """Bytes per second read once by a symgen C pass (the sum of an array's elements)."""
    a, x = sp.symbols("a x")
    module = symgen.compile(symgen.Problem(a * x, params=[a], data=[x], name="read"), "c")
    module.set_num_threads(threads)
    data = np.random.default_rng(0).random(n)
    module.loss(1.0, data)
    return 8 * n / floors._best(lambda: module.loss(1.0, data), floors.REPEATS)


def measure_all(quick: bool) -> dict:
    """Child process (all cores): every workload built, checked, timed; and the rates."""
    count = cores()
    budget, low, high = PLANS["quick" if quick else "full"]
    out = {"cores": count, "workloads": [], "load_before": os.getloadavg()[0]}
    for key, build in WORKLOADS.items():
        contenders, check, title = build(count)
        torch = frameworks.load_torch()  # (which asks for one thread: all of them, here)
        if not isinstance(torch, str):
            torch.set_num_threads(count)
        for c in contenders:
            if c.missing is not None:
                print(f"  {title}: {c.name}: {c.missing}", flush=True)
        check()
        print(f"  {title}: all contenders agree (rtol {RTOL:g})", flush=True)
        measured = measure(
            contenders, budget=budget, min_rounds=low, max_rounds=high, label=title, settle=SETTLE
        )
        out["workloads"].append(
            {
                "key": key,
                "title": title,
                "rows": [
                    {
                        "name": m.contender.name,
                        "note": m.contender.note,
                        "missing": m.contender.missing,
                        "median": m.median if m.samples else None,
                        "spread": m.spread if m.samples else None,
                    }
                    for m in measured
                ],
            }
        )
    n = floors.BANDWIDTH_N // (4 if quick else 1)
    out["bandwidth_all"] = _bandwidth(count, n)
    out["bandwidth_one"] = _bandwidth(1, n)
    block = np.random.default_rng(0).uniform(0.0, 4.0, floors.BLOCK)
    out["vectorised"] = floors._vectorised(block, 3, number=200)
    out["load_after"] = os.getloadavg()[0]
    return out


def _bytes(key: str) -> float:
    if key == "w2":
        return 8 * (logistic_grad.N * logistic_grad.D + logistic_grad.N)
    if key == "w4":
        return 8 * 2 * W4_N
    return 8 * (SOFTMAX_N * SOFTMAX_D + SOFTMAX_N * SOFTMAX_K)  # X and Y read once


def _samples(key: str) -> int:
    return {"w2": logistic_grad.N, "w4": W4_N, "softmax": SOFTMAX_N}[key]


def floor(result: dict, key: str) -> tuple[float, float]:
    """(memory floor, transcendental floor) in seconds on all cores."""
    memory = _bytes(key) / result["bandwidth_all"]
    rates = result["vectorised"]
    if not isinstance(rates, dict):
        return memory, float("nan")
    per_sample = sum(count * rates[f] for f, count in TRANSCENDENTALS[key].items())
    return memory, per_sample * _samples(key) / result["cores"]


def section(result: dict) -> tuple[str, list[str]]:
    count, nan = result["cores"], float("nan")
    lines = [
        f"Every contender on all {count} cores of this machine (see `benchmarks/threads.py`: "
        "OpenBLAS, OpenMP, XLA and PyTorch thread pools on, scikit-learn's `n_threads`, "
        "symgen's C passes on every core; not pinned). Median time per call over interleaved "
        f"rounds, each sample after {SETTLE:g} s without work (for the thread pools of the "
        "contender timed before it to stop spinning) and one untimed call; contenders checked "
        "against symgen's C module first.",
        "",
        "Load average (1 minute) when the section started and ended: "
        f"{result.get('load_before', nan):.2f}, {result.get('load_after', nan):.2f} "
        f"on {count} cores: a second thread only helps when the other core is free, so the "
        "speedups below mean something only at a load well under 1.",
        "",
        f"Rates: memory read once (a symgen C pass summing {floors.BANDWIDTH_N * 8 / 1e6:,.0f} MB) "
        f"**{result['bandwidth_all'] / 1e9:.1f} GB/s** on {count} cores, "
        f"{result['bandwidth_one'] / 1e9:.1f} GB/s on one; the C backend's vectorised "
        "functions as in the floors section, times the core count.",
        "",
    ]
    for w in result["workloads"]:
        rows = {r["name"]: r for r in w["rows"]}
        mine = rows[SYMGEN_C]["median"]
        one = rows[SYMGEN_C_ONE]["median"]
        memory, compute = floor(result, w["key"])
        physical = max(memory, compute)
        lines += [
            f"### {w['title']}",
            "",
            "| contender | median per call | ± (IQR/2) | vs symgen C | notes |",
            "|---|---:|---:|---:|---|",
        ]
        for r in w["rows"]:
            if r["median"] is None:
                lines.append(f"| {r['name']} | {r['missing']} | — | — | not run |")
                continue
            spread = r["spread"]
            spread = "—" if spread is None or spread != spread else f"{spread * 100:.1f}%"
            lines.append(
                f"| {'**' + r['name'] + '**' if r['name'].startswith('symgen') else r['name']} | "
                f"{format_seconds(r['median'])} | {spread} | {r['median'] / mine:.2f}× | "
                f"{r['note']} |"
            )
        peers = [
            r for r in w["rows"] if r["median"] is not None and not r["name"].startswith("symgen")
        ]
        fastest = min(peers, key=lambda r: r["median"]) if peers else None
        ahead = fastest is None or mine < fastest["median"]
        lines += [
            "",
            f"symgen C: speedup {one / mine:.2f}× from 1 to {count} threads; "
            + (
                f"fastest other contender {fastest['name']} at {format_seconds(fastest['median'])} "
                f"({mine / fastest['median']:.2f}× its time: **{'ahead' if ahead else 'behind'}**)"
                if fastest
                else "no other contender ran"
            )
            + f". Floor on {count} cores: data read once {format_seconds(memory)}, "
            f"transcendentals {format_seconds(compute)}; symgen at "
            f"**{mine / physical:.2f}×** the larger.",
            "",
        ]
    return f"Multi-thread ({count} cores)", lines
