"""Interleaved timing: every round times every contender once; the median over rounds counts.

The machine is shared, so load comes and goes. Timing contenders round-robin (rather than
one after the other) exposes them all to the same load, and the median over many rounds
ignores the rounds a neighbour disturbed. Each sample is a ``timeit`` inner loop (garbage
collection off, the statement inlined in the loop, its names bound as locals) long enough
to be measured well: at least ``target`` seconds, or one call for calls slower than that.
"""

from __future__ import annotations

import statistics
import sys
import time
import timeit
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Contender:
    """One way to do the workload: ``stmt`` evaluated with ``namespace``'s names in scope.

    ``missing`` says why it cannot run (e.g. "not installed: ..."); it is then reported,
    not timed.
    """

    name: str
    stmt: str = ""
    namespace: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    missing: str | None = None

    def evaluate(self, bindings: dict[str, Any] | None = None) -> Any:
        """The timed statement's value, with ``bindings`` replacing names (for the checks)."""
        return eval(self.stmt, {}, {**self.namespace, **(bindings or {})})

    def timer(self) -> timeit.Timer:
        setup = "\n".join(f"{name} = __namespace[{name!r}]" for name in self.namespace)
        return timeit.Timer(self.stmt, setup=setup, globals={"__namespace": self.namespace})


@dataclass
class Measurement:
    contender: Contender
    number: int = 0  # calls per sample
    samples: list[float] = field(default_factory=list)  # seconds per call
    faults: float = float("nan")  # minor page faults per call, from one extra sample

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def spread(self) -> float:
        """Half the interquartile range, relative to the median."""
        if len(self.samples) < 4:
            return float("nan")
        q1, _, q3 = statistics.quantiles(self.samples, n=4)
        return (q3 - q1) / 2 / self.median


def calibrate(timer: timeit.Timer, target: float) -> tuple[int, float]:
    """Calls per sample so that one sample takes at least ``target`` s; and that sample's time."""
    number = 1
    while True:
        elapsed = timer.timeit(number)
        if elapsed >= target:
            return number, elapsed
        grow = 1.3 * target / elapsed if elapsed > 0 else 10.0
        number = max(number + 1, int(number * min(10.0, max(1.5, grow))))


def measure(
    contenders: list[Contender],
    *,
    budget: float,
    min_rounds: int,
    max_rounds: int,
    target: float = 0.02,
    label: str = "",
    settle: float = 0.0,
) -> list[Measurement]:
    """Time the runnable contenders round-robin for about ``budget`` seconds in all.

    ``settle`` (seconds): before each sample, wait that long, then make one untimed call.
    For contenders that run thread pools: a pool's threads keep spinning on the CPUs for
    a while after each call (OpenBLAS's about 0.1 s, GNU OpenMP's a few ms), and would
    slow whichever contender comes next; after the wait only the contender's own pool,
    woken by its untimed call, is running, as when a program calls one library."""
    runnable = [c for c in contenders if c.missing is None]
    measurements = {id(c): Measurement(c) for c in contenders}
    timers = {}
    round_time = 0.0
    for c in runnable:
        timers[id(c)] = c.timer()
        number, elapsed = calibrate(timers[id(c)], target)
        measurements[id(c)].number = number
        round_time += elapsed + settle + (elapsed / number if settle else 0.0)
    rounds = max(min_rounds, min(max_rounds, int(budget / max(round_time, 1e-9))))
    print(
        f"{label}: {len(runnable)} contenders, {rounds} rounds of ~{round_time:.2f} s "
        f"(~{rounds * round_time:.0f} s)",
        flush=True,
    )
    start = time.perf_counter()
    for r in range(rounds):
        k = r % len(runnable) if runnable else 0
        for c in runnable[k:] + runnable[:k]:  # rotate who goes first
            m = measurements[id(c)]
            if settle:
                time.sleep(settle)
                timers[id(c)].timeit(1)
            m.samples.append(timers[id(c)].timeit(m.number) / m.number)
    for c in runnable:
        m = measurements[id(c)]
        m.faults = page_faults(timers[id(c)], m.number)
    print(f"{label}: done in {time.perf_counter() - start:.0f} s", flush=True)
    return [measurements[id(c)] for c in contenders]


def page_faults(timer: timeit.Timer, number: int) -> float:
    """Minor page faults per call (fresh memory the kernel had to map), or NaN if unknown."""
    if sys.platform == "win32":
        return float("nan")
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    timer.timeit(number)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / number


def format_seconds(seconds: float) -> str:
    """Three significant digits in the largest unit that keeps the number at least 1."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"
