"""W4 on the GPU when there is one: the CUDA module with CuPy, else the NumPy module.

    symgen generate examples/curve_fit.py --backend numpy --backend cuda -o generated
    python examples/gpu_fit.py                 # CUDA if cupy and a device are present
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
    """CuPy, if it is installed and sees a CUDA device; else None."""
    try:
        import cupy

        return cupy if cupy.cuda.runtime.getDeviceCount() > 0 else None
    except Exception:  # noqa: BLE001 - not installed, no driver, no device
        return None


def pick(emulate: bool = False):
    """(generated module, array module, description): CUDA when possible."""
    import numpy as np

    if emulate:
        from symgen.testing import fakecupy

        sys.modules["cupy"] = fakecupy  # the generated module imports it as cupy
        from generated import curve_fit_cuda as module

        return module, fakecupy, "CUDA module on the CPU emulator"
    cupy = gpu_cupy()
    if cupy is not None:
        from generated import curve_fit_cuda as module

        name = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
        return module, cupy, f"CUDA module on {name}"
    from generated import curve_fit_numpy as module

    return module, np, "NumPy module (no CUDA device found)"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--emulate", action="store_true", help="run the CUDA module on the CPU")
    args = parser.parse_args(argv)

    module, xp, what = pick(args.emulate)
    ts, ys = synthetic(args.samples)
    t, y = xp.asarray(ts), xp.asarray(ys)  # on the device for the CUDA module
    params, state = START, module.adam_state(*START)
    start = time.perf_counter()
    first = None
    for _ in range(args.steps):
        loss, params, state = module.adam_step(*params, t, y, state=state, lr=0.02)
        first = loss if first is None else first
    elapsed = time.perf_counter() - start
    print(f"{what}: {args.samples} samples, {args.steps} Adam steps in {elapsed:.2f} s")
    print(f"loss: {first:.6f} -> {module.loss(*params, t, y):.6f}")
    for name, got, true in zip(module.PARAMS, params, TRUE, strict=True):
        print(f"  {name} = {got:+.4f}   (true {true:+.4f})")


if __name__ == "__main__":
    main()
