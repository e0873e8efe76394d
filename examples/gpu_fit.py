"""W4 on the GPU when there is one: the CUDA module with CuPy, else the NumPy module.

    symgen generate examples/curve_fit.py --backend numpy --backend cuda -o generated
    python examples/gpu_fit.py                 # CUDA if cupy and a device are present,
                                               # else NumPy, saying why at once
    python examples/gpu_fit.py --emulate --samples 5000 --steps 100   # CUDA module, CPU emulator

Both generated modules have the same functions; the CUDA one wants its data as
CuPy arrays (``cupy.asarray``) and returns the loss and the six partials as
floats, so the training loop below is the same for both.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from examples.curve_fit import START, TRUE, synthetic  # noqa: E402


def gpu_cupy():
    """``(cupy, None)`` when CuPy is installed and sees a CUDA device, else ``(None, why)``."""
    try:
        import cupy
    except ImportError:
        return None, (
            "CuPy is not installed: pip install 'symgen[cuda12]' (CUDA 12) or 'symgen[cuda13]'"
        )
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # noqa: BLE001 - CuPy's errors when there is no driver or GPU
        return None, f"CuPy finds no CUDA device ({type(exc).__name__}: {exc})"
    if count == 0:
        return None, "CuPy finds no CUDA device"
    return cupy, None


def pick(emulate: bool = False):
    """(generated module, array module, description): CUDA when possible, else NumPy and
    the reason in the description."""
    import numpy as np

    if emulate:
        from symgen.testing import fakecupy

        sys.modules["cupy"] = fakecupy  # the generated module imports it as cupy
        from generated import curve_fit_cuda as module

        return module, fakecupy, "CUDA module on the CPU emulator"
    cupy, why = gpu_cupy()
    if cupy is not None:
        from generated import curve_fit_cuda as module

        name = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
        return module, cupy, f"CUDA module on {name}"
    from generated import curve_fit_numpy as module

    return module, np, f"NumPy module ({why})"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--emulate", action="store_true", help="run the CUDA module on the CPU")
    args = parser.parse_args(argv)

    module, xp, what = pick(args.emulate)
    print(f"{what}: {args.samples:,} samples, {args.steps} Adam steps", flush=True)
    ts, ys = synthetic(args.samples)
    t, y = xp.asarray(ts), xp.asarray(ys)  # on the device for the CUDA module
    params, state = START, module.adam_state(*START)
    start = time.perf_counter()
    first = None
    for step in range(1, args.steps + 1):
        loss, params, state = module.adam_step(*params, t, y, state=state, lr=0.02)
        first = loss if first is None else first
        if step % max(1, args.steps // 4) == 0 and step < args.steps:
            seconds = time.perf_counter() - start
            print(f"  step {step}: loss {loss:.6f}, {seconds:.1f} s", flush=True)
    elapsed = time.perf_counter() - start
    print(f"{args.steps} steps in {elapsed:.2f} s")
    print(f"loss: {first:.6f} -> {module.loss(*params, t, y):.6f}")
    for name, got, true in zip(module.PARAMS, params, TRUE, strict=True):
        print(f"  {name} = {got:+.4f}   (true {true:+.4f})")


if __name__ == "__main__":
    main()
