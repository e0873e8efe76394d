"""Benchmarks of symgen's generated code against hand-written and framework baselines.

Run ``python -m benchmarks`` (full, a few minutes) or ``python -m benchmarks --quick``
(about a minute); both rewrite ``BENCHMARKS.md``. This package must not import NumPy at
import time: ``__main__`` first fixes the process's thread and OpenBLAS settings.
"""
