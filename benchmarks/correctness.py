"""Check that every contender computes what symgen's module computes, before timing anything.

A benchmark of wrong code is worthless, so a mismatch aborts the run with a message that
names the contender, the point, the quantity and where and by how much it differs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .timing import Contender

RTOL = 1e-9  # float64 workloads: every element, relative to itself
RTOL_FLOAT32 = 1e-4  # float32 workloads: every element, relative to the largest |element|


class CheckFailed(Exception):
    """A contender disagrees with symgen's generated module."""


def as_parts(result: Any) -> tuple[float, list[np.ndarray]]:
    """``(loss, sequence)`` -> ``(float, [float64 array, ...])``; every contender returns that.

    The sequence holds floats (W1, W4) or arrays (W2, W3; NumPy, JAX or PyTorch).
    """
    loss, rest = result
    return float(loss), [np.array(part, dtype=np.float64) for part in rest]


def tolerance(rtol: float, scale: str) -> str:
    """In words, for the report."""
    if scale == "max":
        return f"|difference| ≤ {rtol:g} × max |symgen's value|, per array"
    return f"rtol {rtol:g} per element"


def check_against(
    expected: Contender,
    contenders: list[Contender],
    bindings: dict[str, Any] | Callable[[], dict[str, Any]],
    *,
    where: str,
    second: str,
    rtol: float = RTOL,
    scale: str = "element",
) -> None:
    """Evaluate each runnable contender with ``bindings`` and compare with ``expected``.

    ``bindings`` may be a function returning fresh bindings for every evaluation (for
    contenders that update their arguments in place). ``second`` names the sequence each
    returns ("new parameters", "gradient"). ``scale`` is "element" (each element within
    ``rtol`` of itself) or "max" (within ``rtol`` times the largest magnitude of its array;
    for float32, where a sum of thousands of terms loses relative accuracy on small ones).
    """
    fresh = bindings if callable(bindings) else lambda: bindings
    want_loss, want_rest = as_parts(expected.evaluate(fresh()))
    for c in contenders:
        if c.missing is not None or c is expected:
            continue
        try:
            got_loss, got_rest = as_parts(c.evaluate(fresh()))
        except Exception as exc:  # noqa: BLE001 - reported, then the run stops
            raise CheckFailed(f"{c.name} failed at {where}: {type(exc).__name__}: {exc}") from exc
        pairs = [("loss", np.array(got_loss), np.array(want_loss))]
        if len(got_rest) != len(want_rest):
            raise CheckFailed(
                f"{c.name} returns {len(got_rest)} arrays as its {second}, symgen "
                f"{len(want_rest)} (at {where})"
            )
        pairs += [
            (second if len(want_rest) == 1 else f"{second}[{i}]", got, want)
            for i, (got, want) in enumerate(zip(got_rest, want_rest, strict=True))
        ]
        for what, got, want in pairs:
            problem = _disagreement(got, want, rtol, scale)
            if problem:
                raise CheckFailed(
                    f"{c.name} disagrees with {expected.name} at {where}: {what}: {problem} "
                    f"({tolerance(rtol, scale)}); refusing to time wrong code"
                )


def check_arrays(
    expected: Contender,
    contenders: list[Contender],
    convert: Callable[[Any], np.ndarray],
    *,
    where: str,
    rtol: float,
) -> None:
    """For contenders that return one array (a Hessian, H v): each runnable contender's,
    made comparable by ``convert``, within ``rtol`` times the largest |element| of
    ``expected``'s."""
    want = convert(expected.evaluate())
    for c in contenders:
        if c.missing is not None or c is expected:
            continue
        try:
            got = convert(c.evaluate())
        except Exception as exc:  # noqa: BLE001 - reported, then the run stops
            raise CheckFailed(f"{c.name} failed at {where}: {type(exc).__name__}: {exc}") from exc
        problem = _disagreement(got, want, rtol, "max")
        if problem:
            raise CheckFailed(
                f"{c.name} disagrees with {expected.name} at {where}: {problem} "
                f"({tolerance(rtol, 'max')}); refusing to time wrong code"
            )


def _disagreement(got: np.ndarray, want: np.ndarray, rtol: float, scale: str) -> str:
    """Empty if ``got`` agrees with ``want``, else what differs."""
    if got.shape != want.shape:
        return f"shape {got.shape}, expected {want.shape}"
    if scale == "max":
        bound = rtol * float(np.max(np.abs(want))) if want.size else 0.0
        ok = np.abs(got - want) <= bound
    else:
        ok = np.isclose(got, want, rtol=rtol, atol=0.0)
    if ok.all():
        return ""
    if got.size <= 8:
        return f"{got.tolist()}, expected {want.tolist()}"
    index = np.unravel_index(int(np.argmin(ok.ravel())), got.shape)
    return (
        f"{int(np.count_nonzero(~ok)):,} of {got.size:,} elements differ; at "
        f"{tuple(map(int, index))} {float(got[index])!r}, expected {float(want[index])!r}"
    )
