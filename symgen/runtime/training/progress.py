"""Progress output of ``fit``: a tqdm bar with the loss on a terminal (when tqdm is
installed), else a report line (``step epoch loss elapsed``) every so many steps, or
nothing; the loop calls ``update`` after each step and ``close`` once at the end."""

from __future__ import annotations

import math
import sys
from typing import Any

from symgen.runtime.training.batches import Rows

#: Roughly how many report lines a fit prints when ``report_every`` is not given.
REPORT_LINES = 10

_REPORT_COLUMNS = (("step", 10), ("epoch", 10), ("loss", 16), ("elapsed", 0))
_BAR_REFRESH_S = 0.1


def _epochs(rows: Rows) -> str:
    whole, part = divmod(rows.seen, rows.total)
    return str(whole) if part == 0 else f"{rows.epochs:.2f}"


class Reporter:
    """Progress output that shows nothing; the base of the others."""

    def update(self, step: int, rows: Rows, loss: float, elapsed: float) -> None:
        pass

    def close(self, step: int, rows: Rows, loss: float | None, elapsed: float) -> None:
        pass


class _Report(Reporter):
    """A Chainer-style report: a header, then one line every ``every`` steps and at the end."""

    def __init__(self, every: int) -> None:
        self.every = every
        self.last = 0
        self.out = sys.stdout

    def _line(self, *cells: str) -> None:
        text = "".join(
            cell.ljust(width - 1) + " " if width else cell
            for cell, (_, width) in zip(cells, _REPORT_COLUMNS, strict=True)
        )
        print(text, file=self.out, flush=True)

    def _row(self, step: int, rows: Rows, loss: float, elapsed: float) -> None:
        if not self.last:  # the header comes with the first row
            self._line(*(title for title, _ in _REPORT_COLUMNS))
        self.last = step
        self._line(str(step), _epochs(rows), f"{loss:.6g}", f"{elapsed:.3f}s")

    def update(self, step: int, rows: Rows, loss: float, elapsed: float) -> None:
        if step % self.every == 0:
            self._row(step, rows, loss, elapsed)

    def close(self, step: int, rows: Rows, loss: float | None, elapsed: float) -> None:
        if step and step != self.last and loss is not None:
            self._row(step, rows, loss, elapsed)


class _Bar(Reporter):
    """A tqdm bar on stdout whose postfix shows the current loss."""

    def __init__(self, tqdm: Any, steps: int, name: str, optimizer: str, batched: bool) -> None:
        self.batched = batched
        self.bar = tqdm(
            total=steps,
            desc=f"{name} {optimizer}",
            unit="step",
            file=sys.stdout,
            dynamic_ncols=True,
            mininterval=_BAR_REFRESH_S,
        )
        self.shown = -math.inf

    def update(self, step: int, rows: Rows, loss: float, elapsed: float) -> None:
        if elapsed - self.shown >= _BAR_REFRESH_S:
            self.shown = elapsed
            self.bar.set_postfix_str(self._postfix(rows, loss), refresh=False)
        self.bar.update(1)

    def _postfix(self, rows: Rows, loss: float) -> str:
        return f"loss={loss:.6g}, epoch={_epochs(rows)}" if self.batched else f"loss={loss:.6g}"

    def close(self, step: int, rows: Rows, loss: float | None, elapsed: float) -> None:
        if loss is not None:
            self.bar.set_postfix_str(self._postfix(rows, loss), refresh=False)
        self.bar.close()


def reporter(
    progress: bool | None,
    steps: int,
    every: int | None,
    name: str,
    optimizer: str,
    batched: bool,
) -> Reporter:
    if progress is False or steps == 0:
        return Reporter()
    if _stdout_is_terminal():
        try:
            from tqdm import tqdm
        except ImportError:
            pass
        else:
            return _Bar(tqdm, steps, name, optimizer, batched)
    return _Report(every or max(1, -(-steps // REPORT_LINES)))


def _stdout_is_terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False
