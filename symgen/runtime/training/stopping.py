"""When ``fit`` stops before its step budget: the callback returns ``True``, or the loss
changed by ``tol`` or less (relatively) over the last step."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from symgen.runtime.training.settings import Settings


def stop_reason(
    settings: Settings, step: int, loss: float, params: Any, history: list[float]
) -> str | None:
    """``"callback"`` or ``"tolerance"`` when the fit stops after ``step``, else None.
    ``history`` ends with ``loss``; the callback runs first, after every step."""
    if settings.callback is not None:
        verdict = settings.callback(step, loss, params)
        if isinstance(verdict, (bool, np.bool_)) and verdict:
            return "callback"
    if settings.tol is not None and step > 1 and relative_change(history) <= settings.tol:
        return "tolerance"
    return None


def relative_change(history: list[float]) -> float:
    """``|L_k - L_(k-1)| / |L_(k-1)|`` of the last two losses (0 for 0 to 0)."""
    before, now = history[-2], history[-1]
    change = abs(now - before)
    if before == 0.0:
        return 0.0 if change == 0.0 else math.inf
    return change / abs(before)
