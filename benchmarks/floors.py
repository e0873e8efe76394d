"""Floors: how fast each workload could possibly go on this machine, from measured rates.

Measured in a fresh child process with the runner's settings (one thread, pinned):

- memory bandwidth: ``np.copyto`` of a large float64 array, counting bytes read plus bytes
  written (the best of several copies);
- BLAS rates: ``dgemm`` and ``sgemm`` (``a @ b``) on 2048 × 2048 squares and on W3 large's
  4096 × 1024 by 1024 × 1024, 2 m n k FLOPs each (the best of several, over both shapes);
- NumPy's elementwise transcendental functions (``out=`` given, so nothing is allocated),
  nanoseconds per element: on 10⁷ float64 values (streaming from memory), and on one block
  of 8192 values called over and over (in cache, as in symgen's blocked loops); the floors
  use the smaller;
- the same functions in the C backend's vectorised loops (glibc's libmvec under
  ``#pragma omp simd``), nanoseconds per element: a generated C module summing ``f(a t)``
  over one in-cache block, less the same module summing ``a t``;
- a Python function call with W1's signature that does no arithmetic.

The rates are measured twice, at the start of the run and at its end, and the best of the two
is kept for each (the machine is shared: a floor should not be raised by a neighbour's load).

A workload's floor is max(bytes that must be moved / bandwidth, FLOPs / BLAS rate): what no
implementation on this core can beat. The NumPy floor adds the transcendental functions the
workload cannot avoid, each at NumPy's measured rate: what no NumPy implementation can beat
(a compiler with vectorised exp/sin, such as ``torch.compile``'s, can). For the C backend's
rows the functions are priced at its own vectorised rate instead.
"""

from __future__ import annotations

import timeit

from .timing import format_seconds

BANDWIDTH_N = 25_000_000  # float64 elements: 200 MB per array, far beyond the caches
GEMM_N = 2048
ELEMENTWISE_N = 10_000_000
BLOCK = 8192  # symgen's block of samples
REPEATS = 5


def measure(quick: bool = False) -> dict:
    """Child process: the rates, as a JSON-able dict."""
    import numpy as np

    rng = np.random.default_rng(0)
    n = BANDWIDTH_N // (4 if quick else 1)
    arrays = [np.empty(n), rng.random(n)]
    copy = _best(lambda: np.copyto(*arrays), REPEATS)
    arrays.clear()
    out = {"bandwidth": 2 * n * 8 / copy, "bandwidth_bytes": n * 8}

    for name, dtype in (("dgemm", np.float64), ("sgemm", np.float32)):
        rate = 0.0
        for m, k, n in ((GEMM_N, GEMM_N, GEMM_N), (4096, 1024, 1024)):
            a = rng.random((m, k)).astype(dtype)
            b = rng.random((k, n)).astype(dtype)
            c = np.empty((m, n), dtype)
            seconds = _best(lambda a=a, b=b, c=c: np.matmul(a, b, out=c), 2 if quick else 4)
            rate = max(rate, 2 * m * n * k / seconds)
        out[name] = rate

    m = ELEMENTWISE_N // (10 if quick else 1)
    out["elementwise_n"] = m
    out["elementwise"] = _elementwise(rng.uniform(0.0, 4.0, m), 3)
    block = rng.uniform(0.0, 4.0, BLOCK)
    out["elementwise_block"] = _elementwise(block, 3, number=max(1, m // BLOCK))

    out["vectorised_block"] = _vectorised(block, 3, number=max(1, m // BLOCK))

    def call(x, y, *, lr):
        return x, (x, y)

    names = {"call": call, "x": 2.0, "y": 2.0, "lr": 1e-3}
    timer = timeit.Timer("call(x, y, lr=lr)", globals=names)
    number = 200_000 // (10 if quick else 1)
    out["python_call"] = min(timer.repeat(5, number)) / number
    return out


def _best(fn, repeats: int, number: int = 1) -> float:
    fn()
    return min(timeit.repeat(fn, number=number, repeat=repeats)) / number


def _elementwise(x, repeats: int, number: int = 1) -> dict[str, float]:
    """Seconds per element of each function on ``x``, ``number`` calls per sample."""
    import numpy as np

    y = np.empty_like(x)
    functions = {
        "exp": lambda: np.exp(x, out=y),
        "sin": lambda: np.sin(x, out=y),
        "cos": lambda: np.cos(x, out=y),
        "tanh": lambda: np.tanh(x, out=y),
        "log": lambda: np.log(x, out=y),
        "logaddexp(0, x)": lambda: np.logaddexp(0.0, x, out=y),
        "multiply (x * x)": lambda: np.multiply(x, x, out=y),
    }
    return {k: _best(f, repeats, number) / x.size for k, f in functions.items()}


def _vectorised(x, repeats: int, number: int = 1) -> dict[str, float] | str:
    """Seconds per element of each function inside a C-backend loop over ``x``; or why not."""
    import sympy as sp

    import symgen

    a, t = sp.symbols("a t")
    functions = {
        "exp": sp.exp,
        "sin": sp.sin,
        "cos": sp.cos,
        "tanh": sp.tanh,
        "log": sp.log,
        "logaddexp(0, x)": symgen.softplus,
        "multiply (x * x)": lambda z: z * z,
    }
    seconds = {}
    for name, f in {"baseline": lambda z: z, **functions}.items():
        problem = symgen.Problem(f(a * t), params=[a], data=[t], name="rate")
        try:
            module = symgen.compile(problem, "c")
            module._lib()
        except RuntimeError as exc:
            return f"not measured: {str(exc).splitlines()[0]}"
        seconds[name] = _best(lambda m=module: m.loss(1.0, x), repeats, number) / x.size
    return {k: max(v - seconds["baseline"], 0.0) for k, v in seconds.items() if k != "baseline"}


def best(first: dict, second: dict) -> dict:
    """The better of two measurements of the rates, for each rate."""
    out = dict(first)
    for key in ("bandwidth", "dgemm", "sgemm"):
        out[key] = max(first[key], second[key])
    out["python_call"] = min(first["python_call"], second["python_call"])
    for key in ("elementwise", "elementwise_block", "vectorised_block"):
        if isinstance(first[key], dict) and isinstance(second[key], dict):
            out[key] = {k: min(v, second[key][k]) for k, v in first[key].items()}
    return out


def transcendental_cost(rates: dict, name: str, c_backend: bool = False) -> float:
    """Seconds per element for ``name``: the smaller of NumPy's streaming and in-cache rates,
    or (``c_backend``) the C backend's vectorised rate (NaN when it was not measured)."""
    if c_backend:
        vectorised = rates.get("vectorised_block")
        return vectorised[name] if isinstance(vectorised, dict) else float("nan")
    return min(rates["elementwise"][name], rates["elementwise_block"][name])


def rates_lines(rates: dict) -> list[str]:
    stream, block = rates["elementwise"], rates["elementwise_block"]
    return [
        f"memory bandwidth (`np.copyto`, {rates['bandwidth_bytes'] / 1e6:,.0f} MB float64, read "
        f"+ write): **{rates['bandwidth'] / 1e9:.1f} GB/s**",
        f"BLAS `a @ b` ({GEMM_N}³ and 4096×1024×1024): dgemm **{rates['dgemm'] / 1e9:.1f} "
        f"GFLOP/s**, sgemm **{rates['sgemm'] / 1e9:.1f} GFLOP/s** (one thread)",
        "NumPy elementwise, float64 values in [0, 4), `out=` given, ns per element on "
        f"{rates['elementwise_n']:,} values (streaming) / on one block of {BLOCK:,} (in cache): "
        + ", ".join(f"`{k}` {v * 1e9:.2f} / {block[k] * 1e9:.2f}" for k, v in stream.items()),
        "the C backend's vectorised loop (a generated C module summing f(a t) over one "
        f"block of {BLOCK:,}, less one summing a t), ns per element: "
        + (
            ", ".join(f"`{k}` {v * 1e9:.2f}" for k, v in rates["vectorised_block"].items())
            if isinstance(rates.get("vectorised_block"), dict)
            else str(rates.get("vectorised_block", "not measured"))
        ),
        f"a Python call `f(x, y, lr=lr)` returning `(x, (x, y))`: "
        f"{format_seconds(rates['python_call'])}",
    ]


def _w3(size: str) -> tuple[float, float]:
    from .mlp_grad import SIZES

    m, n_i, n_h, n_o = SIZES[size]
    nbytes = 4 * (m * n_i + m * n_o + 2 * (n_i * n_h + n_h * n_o))
    flops = 2 * m * n_i * n_h * 2 + 2 * m * n_h * n_o * 3
    return nbytes, flops


def requirements(key: str) -> dict | None:
    """What workload ``key`` must do: bytes, FLOPs, BLAS kind, transcendentals, in words."""
    if key == "w1":
        return {"python": True, "what": "one Python call (no arrays)"}
    if key == "w2-large":
        from .logistic_grad import D, N

        return {
            "bytes": 8 * (N * D + N),
            "flops": 4 * N * D,
            "blas": "dgemm",
            "transcendentals": {"logaddexp(0, x)": N, "tanh": N},
            "what": "X and t read once (8 (N D + N) B); X w and Xᵀ r: 4 N D FLOPs; one "
            "softplus and one tanh per sample",
        }
    if key.startswith("w3-"):
        size = key.split("-")[1]
        nbytes, flops = _w3(size)
        return {
            "bytes": nbytes,
            "flops": flops,
            "blas": "sgemm",
            "transcendentals": {},
            "what": "X, Y, W1, W2 read, two gradients written (float32); 4 M N_I N_H + "
            "6 M N_H N_O FLOPs",
        }
    if key.startswith("w4-"):
        n = int(key.split("-")[1])
        return {
            "bytes": 16 * n,
            "flops": 27 * n,
            "blas": "dgemm",
            "transcendentals": {"exp": n, "sin": n, "cos": n},
            "what": "t and y read once (16 N B); about 27 N FLOPs besides one exp, sin and "
            "cos per sample",
        }
    return None


def section(rates: dict, rows: list[tuple[str, str, float]]) -> tuple[str, list[str]]:
    """``rows``: (workload key, label, symgen's median seconds)."""
    lines = [
        "Measured in a fresh process with the same settings, at the start and at the end of "
        "the run; the better of the two is kept for each rate:",
        "",
        *[f"- {line}" for line in rates_lines(rates)],
        "",
        "Floor = max(bytes / bandwidth, FLOPs / BLAS rate). Library floor = floor + the "
        "transcendental functions the workload cannot avoid: for symgen's NumPy module each at "
        "the smaller of NumPy's two rates above (the NumPy floor), for its C backend at the C "
        "backend's vectorised rate. Transcendental share = that cost / symgen's time.",
        "",
        "| workload | what must be done | memory floor | FLOP floor | transcendentals "
        "| floor | library floor | symgen | symgen / floor | symgen / library floor "
        "| transcendental share |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, label, mine in rows:
        need = requirements(key)
        if need is None:
            continue
        if need.get("python"):
            floor = rates["python_call"]
            lines.append(
                f"| {label} | {need['what']} | — | — | — | {format_seconds(floor)} "
                f"| {format_seconds(floor)} | {format_seconds(mine)} | {mine / floor:.1f}× "
                f"| {mine / floor:.1f}× | — |"
            )
            continue
        memory = need["bytes"] / rates["bandwidth"]
        compute = need["flops"] / rates[need["blas"]]
        c_backend = label.endswith("C backend")
        transcendental = sum(
            count * transcendental_cost(rates, name, c_backend)
            for name, count in need["transcendentals"].items()
        )
        floor = max(memory, compute)
        numpy_floor = floor + transcendental
        share = f"{transcendental / mine:.0%}" if transcendental else "—"
        lines.append(
            f"| {label} | {need['what']} | {format_seconds(memory)} | {format_seconds(compute)} "
            f"| {format_seconds(transcendental) if transcendental else '—'} "
            f"| {format_seconds(floor)} | {format_seconds(numpy_floor)} | {format_seconds(mine)} "
            f"| {mine / floor:.1f}× | {mine / numpy_floor:.2f}× | {share} |"
        )
    return "Floors", lines
