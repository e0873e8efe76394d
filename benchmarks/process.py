"""Fix this process's thread, OpenBLAS and CPU-affinity settings before NumPy is imported.

Threads and OpenBLAS's core choice are read by OpenBLAS once, when NumPy loads it, so
when the environment needs changing the runner re-executes itself with the corrected
environment (its own process only; the caller's shell is untouched). What was changed is
passed to the new process in ``_SYMGEN_BENCH_SETUP`` so the report can say so.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field

#: Pinned so that timings measure one core's work, not a thread pool's scheduling.
THREAD_VARIABLES = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
#: Overrides of OpenBLAS's own hardware detection; removed so it picks kernels for this CPU.
OPENBLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
#: JAX's XLA CPU backend runs Eigen's own thread pool unless told not to; it reads
#: ``XLA_FLAGS`` when the backend starts, so setting it before JAX is imported is enough.
XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false"
_HANDOFF = "_SYMGEN_BENCH_SETUP"
#: The CPUs the runner was allowed before it pinned itself, for the multi-thread child
#: (which inherits the pin): a comma-separated list, set in the environment by the runner.
CPUS = "_SYMGEN_BENCH_CPUS"


@dataclass
class Settings:
    """What the runner did to its own process, in words for the report."""

    reexecuted: bool = False
    threads: dict[str, str] = field(default_factory=dict)  # variable -> "was X, set to 1"
    unset: dict[str, str] = field(default_factory=dict)  # variable -> its former value
    affinity: str = ""
    xla: str = ""

    def lines(self) -> list[str]:
        out = []
        for name, value in THREAD_VARIABLES.items():
            how = self.threads.get(name, "already set in the environment")
            out.append(f"`{name}={value}` ({how})")
        if self.unset:
            removed = ", ".join(f"`{k}={v}`" for k, v in self.unset.items())
            out.append(
                f"OpenBLAS overrides found and unset for this process only: {removed} "
                "(OpenBLAS detects the core itself)"
            )
        else:
            names = " / ".join(f"`{k}`" for k in OPENBLAS_OVERRIDES)
            out.append(f"{names}: not set in the environment (nothing to unset)")
        if self.reexecuted:
            out.append("the runner re-executed itself once to apply the above before NumPy loaded")
        if self.xla:
            out.append(self.xla)
        out.append(self.affinity)
        return out


def prepare(all_cores: bool = False) -> Settings:
    """Return the settings in force, re-executing this process first if they need changing.

    Must run before anything imports NumPy. ``all_cores`` (the multi-thread section's child
    process): every thread pool as large as the CPUs the runner was allowed, not pinned.
    """
    cpus = _allowed_cpus()
    wanted = dict(THREAD_VARIABLES)
    if all_cores:
        wanted = {name: str(len(cpus)) for name in THREAD_VARIABLES}
    handoff = os.environ.pop(_HANDOFF, None)
    if handoff is not None:
        settings = Settings(**json.loads(handoff))
    else:
        settings = Settings()
        env = dict(os.environ)
        for name in OPENBLAS_OVERRIDES:
            if name in env:
                settings.unset[name] = env.pop(name)
        for name, value in wanted.items():
            if env.get(name) != value:
                was = f"was {env[name]!r}" if name in env else "was unset"
                settings.threads[name] = f"{was}; set by the runner for its own process"
                env[name] = value
        if all_cores:  # XLA's own thread pool on (the runner asked its children for one)
            flags = [f for f in env.get("XLA_FLAGS", "").split() if f != XLA_ONE_THREAD]
            env["XLA_FLAGS"] = " ".join(flags)
        if settings.unset or settings.threads or "numpy" in sys.modules:
            settings.reexecuted = True
            env[_HANDOFF] = json.dumps(settings.__dict__)
            sys.stdout.flush()
            sys.stderr.flush()
            os.execve(sys.executable, sys.orig_argv, env)
    if all_cores:
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, cpus)
        settings.affinity = f"not pinned: CPUs {sorted(cpus)}"
        return settings
    settings.xla = _xla_one_thread()
    settings.affinity = _pin_one_core()
    return settings


def _allowed_cpus() -> set[int]:
    """The CPUs the runner was allowed before pinning itself (this process's, at first)."""
    recorded = os.environ.get(CPUS)
    if recorded:
        return {int(c) for c in recorded.split(",")}
    if not hasattr(os, "sched_getaffinity"):
        return set(range(os.cpu_count() or 1))
    cpus = os.sched_getaffinity(0)
    os.environ[CPUS] = ",".join(str(c) for c in sorted(cpus))  # for the children
    return cpus


def _xla_one_thread() -> str:
    """Ask JAX's XLA CPU backend for one thread and the CPU platform (JAX is optional)."""
    flags = os.environ.get("XLA_FLAGS", "")
    if XLA_ONE_THREAD in flags.split():
        return f"`XLA_FLAGS={flags}` (already set in the environment; JAX contenders)"
    os.environ["XLA_FLAGS"] = f"{flags} {XLA_ONE_THREAD}".strip()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    was = f"was {flags!r}" if flags else "was unset"
    return (
        f"`XLA_FLAGS={os.environ['XLA_FLAGS']}` ({was}; set by the runner for the JAX "
        "contenders: XLA's CPU backend otherwise runs its own thread pool)"
    )


def _pin_one_core() -> str:
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned: `os.sched_setaffinity` is not available on this platform"
    allowed = sorted(os.sched_getaffinity(0))
    cpu = allowed[-1]  # the last one: core 0 tends to take more interrupts
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError as exc:
        return f"not pinned: `os.sched_setaffinity` failed ({exc})"
    return f"pinned to CPU {cpu} with `os.sched_setaffinity` (allowed before: {allowed})"
