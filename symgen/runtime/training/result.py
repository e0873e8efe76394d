"""What ``fit`` returns (``FitResult``) and raises on a NaN or infinity (``NonFiniteError``);
``symgen.FitResult`` and ``symgen.NonFiniteError``."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


class NonFiniteError(FloatingPointError):
    """The loss or a parameter became NaN or infinite during ``fit``.

    The message names the step and the parameter (or the loss); ``.result`` is
    the ``FitResult`` up to the last step whose parameters were all finite;
    ``.step`` is the step that failed (counting from 1) and ``.reason`` says
    what went non-finite.
    """

    def __init__(self, message: str, result: FitResult, step: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.result = result
        self.step = step
        self.reason = reason


@dataclass
class FitResult:
    """What ``fit`` returns.

    ``params``: trained parameters in ``PARAMS`` order (arrays, or floats for
    scalar parameters; for a CUDA module the arrays are CuPy device arrays,
    ``cupy.asnumpy`` or ``.get()`` copies them to the host). ``history[i]``: the
    loss (on that step's batch) before step ``i + 1``, i.e. at the parameters
    after step ``i``. ``times[i]``: seconds since the fit started, at the end of
    step ``i + 1``. ``steps``: steps run (``len(history)``). ``stopped``: why it
    stopped, ``"steps"``, ``"tolerance"``, ``"callback"``, ``"non-finite"`` or
    ``"interrupted"`` (Ctrl-C, ``KeyboardInterrupt``: ``params`` are those after the last
    completed step; ``interrupted`` is True). ``epochs``: passes over the data. ``loss``:
    the loss at ``params`` over all the data.
    """

    params: tuple[Any, ...]
    history: list[float] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    steps: int = 0
    stopped: str = "steps"
    epochs: float = 0.0
    loss: float = math.nan

    @property
    def interrupted(self) -> bool:
        """Whether the fit was stopped by Ctrl-C (``KeyboardInterrupt``)."""
        return self.stopped == "interrupted"

    def __repr__(self) -> str:
        first = f"{self.history[0]:.6g} -> " if self.history else ""
        return (
            f"FitResult(steps={self.steps}, stopped={self.stopped!r}, "
            f"loss={first}{self.loss:.6g}, epochs={self.epochs:.4g}, "
            f"seconds={self.times[-1] if self.times else 0.0:.3g})"
        )
