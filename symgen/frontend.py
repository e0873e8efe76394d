"""SymPy problem → IR graph.

A scalar loss over scalar parameters is one ``Map`` of shape ``()``. A
per-sample loss is a ``Map`` over the data vectors (shape ``(N,)``, the
parameters broadcast against them) followed by a ``Reduce`` over samples, and
a division by ``N`` for ``reduce="mean"``. The whole scalar formula goes into
one ``Map`` body, so that ``sympy.diff`` sees it whole in ``autodiff``.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from .ir import Input, Map, Node, Reduce, map_
from .problem import Problem


@dataclass(frozen=True)
class Lowered:
    """The IR of a problem: its loss node and its inputs, in call order."""

    loss: Node
    params: tuple[Input, ...]
    data: tuple[Input, ...]
    #: Dimension symbols, each with the data input whose shape defines it.
    dims: tuple[tuple[sp.Symbol, Input, int], ...]


def sample_dim(problem: Problem) -> sp.Symbol:
    """The symbol for the number of samples: ``N`` unless a user symbol has that name."""
    taken = {s.name for s in (*problem.params, *problem.data)}
    name = next(n for n in ("N", "n_samples", "num_samples") if n not in taken)
    return sp.Symbol(name, integer=True, positive=True)


def lower(problem: Problem) -> Lowered:
    real = problem.real_symbols()
    loss = problem.real_loss()
    params = tuple(Input(p.name, (), "param", real[p]) for p in problem.params)
    if not problem.data:
        body = Map(sp.Lambda(tuple(real[p] for p in problem.params), loss), params, ())
        return Lowered(body, params, (), ())

    n = sample_dim(problem)
    data = tuple(Input(d.name, (n,), "data", real[d]) for d in problem.data)
    inputs = params + data
    per_sample = map_(sp.Lambda(tuple(i.symbol for i in inputs), loss), inputs, (n,))
    total: Node = Reduce(per_sample, (0,), ())
    if problem.reduce == "mean":
        s = sp.Dummy("s")
        total = map_(sp.Lambda(s, s / n), (total,), ())
    return Lowered(total, params, data, ((n, data[0], 0),))
