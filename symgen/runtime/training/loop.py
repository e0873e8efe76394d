"""The step loop of ``fit``: take a batch, step, check for non-finite values, record the
loss and the time, report progress, and ask the stopping rules whether to go on.

A ``KeyboardInterrupt`` (Ctrl-C) ends the loop with the parameters after the last
completed step: a step it cuts short is undone (its array parameters put back from the
copy taken before it, its loss and time not recorded)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from symgen.runtime.training.batches import Rows
from symgen.runtime.training.nonfinite import Backups, checked_step
from symgen.runtime.training.optimizers import Advance
from symgen.runtime.training.progress import Reporter
from symgen.runtime.training.settings import Settings
from symgen.runtime.training.stopping import stop_reason


@dataclass
class Steps:
    """What the loop runs: ``advance`` (one step), the ``(batch, rows in it)`` it steps
    through, the rows seen so far, and the loss at some parameters over all the data."""

    advance: Advance
    batches: Iterator[tuple[Any, int]]
    rows: Rows
    full_loss: Callable[[tuple[Any, ...]], float]


@dataclass(frozen=True)
class Outcome:
    """How the loop ended: the parameters it kept, why it stopped (``"steps"``,
    ``"tolerance"``, ``"callback"``, ``"non-finite"`` or ``"interrupted"``) and, for
    ``"non-finite"``, what went non-finite."""

    params: tuple[Any, ...] | list[Any]
    stopped: str
    failure: str | None = None


def run_steps(
    steps: Steps,
    params: list[Any],
    names: tuple[str, ...],
    xp: Any,
    settings: Settings,
    reporter: Reporter,
    history: list[float],
    times: list[float],
) -> Outcome:
    """Run up to ``settings.steps`` steps from ``params``, appending each step's loss to
    ``history`` and its end time (seconds from the start) to ``times``; ``reporter`` is
    closed at the end, also when a step raises."""
    backups = Backups(params, xp)
    rows = steps.rows
    current: tuple[Any, ...] | list[Any] = params
    done = _Done(current, rows.seen, len(history))
    start = time.perf_counter()
    try:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            for step in range(1, settings.steps + 1):
                batch, seen = next(steps.batches)
                backups.save(current)
                done.complete = False
                loss, new, failure = checked_step(steps.advance, current, batch, step, names, xp)
                if failure is not None:
                    backups.restore(current)
                    return Outcome(current, "non-finite", failure)
                current = new
                rows += seen
                history.append(float(loss))
                elapsed = time.perf_counter() - start
                times.append(elapsed)
                done = _Done(current, rows.seen, len(history))
                reporter.update(step, rows, loss, elapsed)
                stopped = stop_reason(settings, step, float(loss), current, history)
                if stopped is not None:
                    return Outcome(current, stopped)
        return Outcome(current, "steps")
    except KeyboardInterrupt:
        if not done.complete:  # cut short inside a step: undo it
            backups.restore(done.params)
            rows.seen = done.seen
            del history[done.recorded :], times[done.recorded :]
        return Outcome(done.params, "interrupted")
    finally:
        reporter.close(len(history), rows, history[-1] if history else None, _elapsed(times))


@dataclass
class _Done:
    """The state after the last completed step (what a Ctrl-C keeps): its parameters, the
    rows seen and the losses recorded; ``complete`` is False while a step is under way."""

    params: tuple[Any, ...] | list[Any]
    seen: int
    recorded: int
    complete: bool = True


def _elapsed(times: list[float]) -> float:
    return times[-1] if times else 0.0
