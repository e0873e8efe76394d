"""A loss-curve PNG for ``symgen train --plot`` (matplotlib, imported only here)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from symgen.errors import SpecError

INSTALL_HINT = "pip install 'symgen[plot]'"


def require_matplotlib() -> None:
    """Raise ``SpecError`` (one line) unless matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise SpecError(
            f"--plot needs matplotlib, which is not installed: {INSTALL_HINT}"
        ) from None


def save_loss_plot(
    history: Sequence[float], path: str, title: str, *, smooth: int | None = None
) -> None:
    """Save the loss per step as a PNG (log scale when every loss is positive).

    ``smooth``: also draw the running mean over that many steps (for the noisy
    losses of mini-batches, e.g. the number of batches in an epoch).
    """
    require_matplotlib()
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state

    losses = np.asarray(history, dtype=float)
    steps = np.arange(1, len(losses) + 1)
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    noisy = smooth is not None and 1 < smooth < len(losses)
    ax.plot(
        steps,
        losses,
        color="tab:blue",
        linewidth=1,
        alpha=0.35 if noisy else 1.0,
        label="loss of the step's batch" if noisy else None,
    )
    if noisy:
        kernel = np.ones(smooth) / smooth
        ax.plot(
            steps[smooth - 1 :],
            np.convolve(losses, kernel, mode="valid"),
            color="tab:blue",
            linewidth=1.5,
            label=f"mean over {smooth} steps",
        )
        ax.legend()
    if len(losses) and (losses > 0).all():
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    fig.savefig(path, dpi=100, bbox_inches="tight")
