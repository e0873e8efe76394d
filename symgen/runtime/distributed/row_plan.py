"""``RowPlan``: a generated module mapped over the row chunks of some Dask arrays."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from symgen.compiler.problem import Problem
from symgen.compiler.separable import RowSplit
from symgen.errors import SpecError
from symgen.runtime.distributed.alignment import aligned, check_data_names, whole_value
from symgen.runtime.distributed.chunk_batches import chunk_batches
from symgen.runtime.distributed.cluster import dask_modules
from symgen.runtime.distributed.graph import pass_graph
from symgen.runtime.distributed.loading import load_module, module_name
from symgen.runtime.distributed.probe import PROBE_ROWS, check_call, head_rows, probe
from symgen.runtime.distributed.sources import module_source, problem_source


class RowPlan:
    """A generated module mapped over the row chunks of some Dask arrays.

    Built once (the data checked, chunks aligned, the split decided), then called
    once per step: ``loss_and_grad(params)``, ``loss(params)``, or ``batches(...)``
    for mini-batches read chunk by chunk.
    """

    def __init__(
        self,
        module_or_problem: Any,
        params: Sequence[Any] | Mapping[str, Any],
        data: Mapping[str, Any],
        *,
        retries: int | None = None,
        quiet: bool = False,
    ) -> None:
        dask, da = dask_modules()

        split: RowSplit | None = None
        if isinstance(module_or_problem, Problem):
            self.text, split = problem_source(module_or_problem)
            self.module = load_module(self.text)
        else:
            self.module = module_or_problem
            self.text = module_source(module_or_problem)
        self.name = module_name(self.module)
        self.retries = retries
        self.quiet = quiet
        self.key = f"symgen-module-{hashlib.sha256(self.text.encode()).hexdigest()[:16]}"
        names = tuple(self.module.DATA)
        check_data_names(self.name, names, data)
        if split is not None:
            row_names = split.rows
        else:
            row_names = tuple(n for n in names if np.ndim(data[n]) > 0)
        if not row_names:
            raise SpecError(f"{self.name}: no data array has rows to split over chunks")
        self.whole = {n: whole_value(data[n], dask) for n in names if n not in row_names}
        self.row_names = row_names
        self.arrays = aligned(self.name, {n: data[n] for n in row_names}, da)
        first = self.arrays[row_names[0]]
        self.chunks: tuple[int, ...] = tuple(int(c) for c in first.chunks[0])
        self.total = int(first.shape[0])
        if self.total == 0:
            raise ValueError(f"{self.name}: data {row_names[0]!r} has no rows")
        self.blocks = [
            tuple(self.arrays[n].to_delayed().reshape(-1)[j] for n in row_names)
            for j in range(len(self.chunks))
        ]
        start = self.params(params)
        head = self._head(min(self.total, PROBE_ROWS))
        if split is None:
            split = probe(self.module, self.name, start, head, self.whole, self.total)
        else:
            check_call(self.module, self.name, start, head_rows(head, slice(0, 2)), self.whole)
        self.split = split

    def _head(self, count: int) -> dict[str, np.ndarray]:
        dask, _ = dask_modules()
        values = dask.compute(*(self.arrays[n][:count] for n in self.row_names))
        return dict(zip(self.row_names, values, strict=True))

    def params(self, params: Sequence[Any] | Mapping[str, Any]) -> tuple[Any, ...]:
        """``params`` as a tuple in ``PARAMS`` order (a dict by name is accepted)."""
        names = tuple(self.module.PARAMS)
        if isinstance(params, Mapping):
            missing = [n for n in names if n not in params]
            extra = [str(n) for n in params if n not in names]
            if missing or extra:
                parts = [
                    missing and f"missing {', '.join(map(repr, missing))}",
                    extra and f"unknown {', '.join(map(repr, extra))}",
                ]
                raise ValueError(
                    f"{self.name}: params {'; '.join(p for p in parts if p)}; the parameters "
                    f"are {', '.join(names)}"
                )
            return tuple(params[n] for n in names)
        params = tuple(params)
        if len(params) != len(names):
            raise TypeError(
                f"{self.name}: got {len(params)} parameter value(s) but the module has "
                f"{len(names)}: {', '.join(names)} (in that order)"
            )
        return params

    # --- one pass over the rows ------------------------------------------------------

    def loss_and_grad(self, params: Sequence[Any]) -> tuple[float, tuple[Any, ...]]:
        """The loss and its gradients over all rows, computed chunk by chunk."""
        total, grads = self._compute("loss_and_grad", tuple(params))
        dtype = self.module.DTYPE
        out = tuple(
            np.asarray(g, dtype=dtype) if isinstance(g, np.ndarray) else float(g) for g in grads
        )
        return float(total), out

    def loss(self, params: Sequence[Any]) -> float:
        """The loss over all rows, computed chunk by chunk."""
        return float(self._compute("loss", tuple(params))[0])

    def graph(self, function: str, params: Sequence[Any]) -> Any:
        """The ``dask.delayed`` object of one pass of ``function`` (see ``pass_graph``)."""
        return pass_graph(
            function,
            tuple(params),
            text=self.text,
            key=self.key,
            name=self.name,
            whole=self.whole,
            arrays={n: self.arrays[n] for n in self.row_names},
            total=self.total,
            power=float(self.split.power),
            quiet=self.quiet,
        )

    def _compute(self, function: str, params: tuple[Any, ...]) -> tuple[float, tuple[Any, ...]]:
        dask, _ = dask_modules()
        options = {} if self.retries is None else {"retries": self.retries}
        (result,) = dask.compute(self.graph(function, params), **options)
        return result

    # --- mini-batches, chunk by chunk --------------------------------------------

    def batches(self, batch_size: int, seed: int) -> Iterator[tuple[dict[str, Any], int]]:
        """``(batch, rows)`` forever, read chunk by chunk (see ``chunk_batches``)."""
        return chunk_batches(self.blocks, self.row_names, self.whole, batch_size, seed)
