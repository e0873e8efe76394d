"""Benchmarks of symgen's generated code against hand-written and framework baselines.

Run ``python -m benchmarks`` (full, about 11 minutes on a 2-core VM) or ``python -m
benchmarks --quick`` (about 2 minutes: every contender is still built, and compiling the
``torch.compile`` and PyTensor ones dominates); both rewrite ``BENCHMARKS.md``. This
package must not import NumPy at import time: ``__main__`` first fixes the process's
thread and OpenBLAS settings.
"""
