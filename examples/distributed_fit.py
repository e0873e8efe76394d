"""W4 on data that lives on disk, not in memory: a Zarr store read by Dask workers.

    pip install 'symgen[dask]'
    python examples/distributed_fit.py                 # a LocalCluster of 2 worker processes
    python examples/distributed_fit.py --scheduler tcp://HOST:8786   # a running cluster

Writes N samples of the curve-fit data (examples/curve_fit.py) into a Zarr store
chunk by chunk (never all of it in memory), opens it lazily with
``dask.array.from_zarr``, checks one distributed ``loss_and_grad`` against the
in-memory module, then fits the six parameters with ``symgen.fit`` on
mini-batches read chunk by chunk. With a cluster, the store must be at the same
path on every worker (a shared file system or object store).
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def write_store(path, n, chunk, seed=0):
    """N curve-fit samples (t, y) in a Zarr store, written one chunk at a time."""
    import zarr

    from examples.curve_fit import TRUE

    group = zarr.open_group(str(path), mode="w")
    create = getattr(group, "create_array", None) or group.create_dataset  # zarr 3 or 2
    t_out = create("t", shape=(n,), chunks=(chunk,), dtype="f8")
    y_out = create("y", shape=(n,), chunks=(chunk,), dtype="f8")
    rng = np.random.default_rng(seed)
    a, b, c, d, e, g = TRUE
    for begin in range(0, n, chunk):
        t = rng.uniform(0.0, 4.0, min(chunk, n - begin))
        y = np.exp(-a * t) * np.sin(b * t + c) + d * t**2 + e * t + g
        t_out[begin : begin + len(t)] = t
        y_out[begin : begin + len(t)] = y + 0.01 * rng.standard_normal(len(t))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=float, default=4e6, help="samples (default: 4e6)")
    parser.add_argument("--chunk", type=int, default=250_000, help="rows per chunk")
    parser.add_argument("--scheduler", help="address of a running Dask scheduler")
    parser.add_argument("--store", default=str(ROOT / "examples" / "out" / "curve_fit.zarr"))
    args = parser.parse_args(argv)

    import dask.array as da
    from distributed import Client, LocalCluster

    import symgen
    from examples.curve_fit import START, TRUE, curve_fit
    from symgen import distributed

    n = int(args.n)
    store = Path(args.store)
    store.parent.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    write_store(store, n, args.chunk)
    print(f"wrote {n:,} samples to {store} in {time.perf_counter() - began:.1f}s")

    if args.scheduler:
        client = Client(args.scheduler)
    else:
        client = Client(LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0"))
    with client:
        data = {name: da.from_zarr(str(store), component=name) for name in ("t", "y")}
        print(f"t: {data['t'].numblocks[0]} chunks of {args.chunk:,} rows; workers: "
              f"{len(client.scheduler_info()['workers'])}")  # fmt: skip

        for when in ("first", "again"):  # the first pass also imports symgen on the workers
            began = time.perf_counter()
            loss, grads = distributed.loss_and_grad(curve_fit, START, data)
            seconds = time.perf_counter() - began
            print(f"distributed loss_and_grad ({when}): loss {loss:.12f} in {seconds:.2f}s")
        module = symgen.compile(curve_fit)
        in_memory = {name: array.compute() for name, array in data.items()}
        want, want_grads = module.loss_and_grad(*START, **in_memory)
        worst = max(abs(g / w - 1) for g, w in zip(grads, want_grads, strict=True))
        print(
            f"in memory:                         loss {want:.12f}; gradients agree to {worst:.1e}"
        )
        del in_memory

        result = symgen.fit(
            curve_fit, START, data, lr=0.02, steps=3000, batch_size=1000, progress=False
        )
        print(f"{result.steps} Adam steps on batches of 1000 read chunk by chunk: "
              f"loss {result.history[0]:.6f} -> {result.loss:.6f} (all {n:,} samples), "
              f"{result.epochs:.2f} epochs, {result.times[-1]:.1f}s")  # fmt: skip
        for name, got, true in zip(module.PARAMS, result.params, TRUE, strict=True):
            print(f"  {name} = {got:+.4f}   (true {true:+.4f})")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
