"""Check that every contender computes what symgen's module computes, before timing anything.

A benchmark of wrong code is worthless, so a mismatch aborts the run with a message that
names the contender, the point, the quantity and both values.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .timing import Contender

RTOL = 1e-9


class CheckFailed(Exception):
    """A contender disagrees with symgen's generated module."""


def as_pair(result: Any) -> tuple[float, np.ndarray]:
    """``(loss, sequence)`` -> ``(float, 1-D float array)``; every contender returns that shape."""
    loss, rest = result
    return float(loss), np.asarray(rest, dtype=np.float64).ravel()


def check_against(
    expected: Contender,
    contenders: list[Contender],
    bindings: dict[str, Any],
    *,
    where: str,
    second: str,
) -> None:
    """Evaluate each runnable contender with ``bindings`` and compare with ``expected``.

    ``second`` names the sequence each returns ("new parameters", "gradient").
    """
    want_loss, want_rest = as_pair(expected.evaluate(bindings))
    for c in contenders:
        if c.missing is not None or c is expected:
            continue
        try:
            got_loss, got_rest = as_pair(c.evaluate(bindings))
        except Exception as exc:  # noqa: BLE001 - reported, then the run stops
            raise CheckFailed(f"{c.name} failed at {where}: {type(exc).__name__}: {exc}") from exc
        for what, got, want in (("loss", got_loss, want_loss), (second, got_rest, want_rest)):
            got, want = np.atleast_1d(got), np.atleast_1d(want)
            if got.shape != want.shape or not np.allclose(got, want, rtol=RTOL, atol=0.0):
                raise CheckFailed(
                    f"{c.name} disagrees with {expected.name} at {where}: {what} is "
                    f"{got.tolist()}, expected {want.tolist()} (rtol {RTOL:g}); "
                    "refusing to time wrong code"
                )
