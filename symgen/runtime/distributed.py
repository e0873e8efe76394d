"""Losses and gradients over data that does not fit one machine: Dask arrays split by rows.

``loss_and_grad(module_or_problem, params, data)`` takes ``data`` as
``dask.array`` arrays chunked along their first axis (the samples of a
per-sample problem, the rows of a matrix problem's data), calls the generated
module's own ``loss_and_grad`` on each chunk of rows where the chunk lives,
and adds the parts up in a tree: a sum over rows adds, a mean weighs each
chunk by its share of the rows. It returns what the module's ``loss_and_grad``
returns on all the rows at once, up to rounding.

That is right only for losses that split over rows (``symgen.separable``):
a ``Problem`` is checked structurally; a bare module is checked on a few of the
data's own rows (the loss on all of them against its parts, and on the rows
repeated twice). A loss that does not split (``logsumexp`` across rows, a
parameter sized by the row count, ``log`` of a sum over rows) is a
``SpecError`` saying why.

The work runs wherever ``dask.compute`` runs it: on the ``dask.distributed``
``Client`` that is active (a ``LocalCluster`` on one machine, or a cluster),
else on Dask's local threads. Workers need ``numpy`` and ``symgen``
installed; the generated module's source travels with the task graph, once
per computation. Install with ``pip install 'symgen[dask]'``.
"""

from __future__ import annotations

import collections
import concurrent.futures
import hashlib
import linecache
import os
import types
import uuid
import weakref
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from symgen.api import generate
from symgen.compiler.problem import Problem
from symgen.compiler.separable import RowSplit, row_split
from symgen.errors import SpecError

#: How many parts one addition task of the reduction tree adds up.
FAN_IN = 8
#: Chunks read ahead while a fit steps through the batches of the current one.
PREFETCH = 2
#: Rows of the data used to check a bare module's loss splits over rows.
PROBE_ROWS = 12

__all__ = [
    "FAN_IN",
    "connect",
    "RowPlan",
    "RowSplit",
    "load_module",
    "loss",
    "loss_and_grad",
    "problem_module",
    "row_split",
]


def _dask() -> tuple[Any, Any]:
    try:
        import dask
        import dask.array as da
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("symgen.distributed needs dask: pip install 'symgen[dask]'") from None
    return dask, da


def connect() -> Any:
    """A ``dask.distributed.Client`` for the scheduler at ``DASK_SCHEDULER_ADDRESS`` (Dask's
    ``scheduler-address`` setting) when one is set and no client is active; else ``None``
    (the active client, or Dask's local threads, run the work)."""
    dask, _ = _dask()
    address = dask.config.get("scheduler-address", None)
    if not address:
        return None
    from distributed import Client, default_client

    try:
        return default_client()
    except ValueError:
        return Client(address)


def loss_and_grad(
    module_or_problem: Any,
    params: Sequence[Any] | Mapping[str, Any],
    data: Mapping[str, Any],
    *,
    retries: int | None = None,
) -> tuple[float, tuple[Any, ...]]:
    """``(loss, gradients)`` over Dask arrays split by rows; gradients in ``PARAMS`` order.

    ``module_or_problem``: a generated module (``symgen.compile`` or ``generated/*.py``)
    or a ``symgen.Problem``. ``params``: values in ``PARAMS`` order, or a dict by
    name. ``data``: the data arrays by name, ``dask.array`` arrays chunked along axis 0
    (NumPy arrays are taken as one chunk; single numbers go whole to every chunk).
    ``retries``: times Dask reruns a chunk whose task failed (workers that die are
    replaced and their work redone by ``dask.distributed`` anyway).
    """
    plan = RowPlan(module_or_problem, params, data, retries=retries)
    return plan.loss_and_grad(plan.params(params))


def loss(
    module_or_problem: Any,
    params: Sequence[Any] | Mapping[str, Any],
    data: Mapping[str, Any],
    *,
    retries: int | None = None,
) -> float:
    """The loss over Dask arrays split by rows (see ``loss_and_grad``)."""
    plan = RowPlan(module_or_problem, params, data, retries=retries)
    return plan.loss(plan.params(params))


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
        dask, da = _dask()

        split: RowSplit | None = None
        if isinstance(module_or_problem, Problem):
            self.text, split = _problem_source(module_or_problem)
            self.module = load_module(self.text)
        else:
            self.module = module_or_problem
            self.text = module_source(module_or_problem)
        self.name = _module_name(self.module)
        self.retries = retries
        self.quiet = quiet
        self.key = f"symgen-module-{hashlib.sha256(self.text.encode()).hexdigest()[:16]}"
        names = tuple(self.module.DATA)
        if not isinstance(data, Mapping):
            raise TypeError(
                f"{self.name}: data must be a dict of arrays by name ({', '.join(names)})"
            )
        missing = [n for n in names if n not in data]
        extra = [str(n) for n in data if n not in names]
        if missing or extra:
            parts = [
                missing and f"missing data {', '.join(map(repr, missing))}",
                extra and f"unknown data {', '.join(map(repr, extra))}",
            ]
            raise ValueError(
                f"{self.name}: {'; '.join(p for p in parts if p)}; the module needs "
                f"{', '.join(names) or 'no data'}"
            )
        if split is not None:
            row_names = split.rows
        else:
            row_names = tuple(n for n in names if np.ndim(data[n]) > 0)
        if not row_names:
            raise SpecError(f"{self.name}: no data array has rows to split over chunks")
        self.whole = {n: _whole(data[n], dask) for n in names if n not in row_names}
        self.row_names = row_names
        self.arrays = self._aligned({n: data[n] for n in row_names}, da)
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
            split = _probe(self.module, self.name, start, head, self.whole, self.total)
        else:
            _check_call(self.module, self.name, start, _rows(head, slice(0, 2)), self.whole)
        self.split = split

    # --- set-up ------------------------------------------------------------------

    def _aligned(self, arrays: dict[str, Any], da: Any) -> dict[str, Any]:
        """Every row array as a Dask array with the same row chunks, other axes whole."""
        converted = {}
        lengths = {}
        for name, value in arrays.items():
            if not isinstance(value, da.Array):
                value = np.asarray(value)
                value = da.from_array(value, chunks=value.shape or 1)
            if value.ndim == 0:
                raise ValueError(f"{self.name}: data {name!r} is a single number, not rows")
            converted[name] = value
            lengths[name] = value.shape[0]
        first = next(iter(converted))
        for name, n in lengths.items():
            if n != lengths[first]:
                raise ValueError(
                    f"{self.name}: data {name!r} has {n} rows but {first!r} has "
                    f"{lengths[first]}; the data are split along their rows (axis 0), so all "
                    "need the same number"
                )
        rows = next((v.chunks[0] for v in converted.values() if v.numblocks[0] > 1), None)
        rows = rows or converted[first].chunks[0]
        out = {}
        for name, value in converted.items():
            target = {0: rows, **{axis: -1 for axis in range(1, value.ndim)}}
            if value.chunks[0] != rows or any(len(c) > 1 for c in value.chunks[1:]):
                value = value.rechunk(target)
            out[name] = value
        return out

    def _head(self, count: int) -> dict[str, np.ndarray]:
        dask, _ = _dask()
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
        """The ``dask.delayed`` object of one pass: one task per chunk (``dask.array.
        blockwise`` over the aligned row chunks, fused with reading them, so that a chunk
        is read and reduced by the same worker), then a tree of sums, ``FAN_IN`` at a time."""
        dask, da = _dask()
        token = uuid.uuid4().hex[:12]
        source = dask.delayed(self.text, name=self.key)
        inputs = dask.delayed(
            (tuple(params), self.whole), name=f"symgen-params-{token}", traverse=False
        )
        arrays: list[Any] = []
        for k, name in enumerate(self.row_names):
            array = self.arrays[name]
            arrays += [array, ("rows", *(f"axis{k}.{a}" for a in range(1, array.ndim)))]
        power = float(self.split.power)
        parts_array = da.blockwise(
            _chunk,
            ("rows",),
            source, None, inputs, None, function, None, self.row_names, None,
            self.total, None, power, None, self.quiet, None,
            *arrays,
            dtype=object,
            adjust_chunks={"rows": 1},
            concatenate=True,
            name=f"symgen-{self.name}-{function}-{token}",
            meta=np.empty(0, dtype=object),
        )  # fmt: skip
        parts = list(parts_array.to_delayed(optimize_graph=True).reshape(-1))
        add = dask.delayed(_add, pure=False)
        level = 0
        while len(parts) > 1:
            parts = [
                add(
                    *parts[i : i + FAN_IN],
                    dask_key_name=f"symgen-{self.name}-sum-{token}-{level}-{i // FAN_IN}",
                )
                for i in range(0, len(parts), FAN_IN)
            ]
            level += 1
        return dask.delayed(_unwrap, pure=False)(
            parts[0], dask_key_name=f"symgen-{self.name}-total-{token}"
        )

    def _compute(self, function: str, params: tuple[Any, ...]) -> tuple[float, tuple[Any, ...]]:
        dask, _ = _dask()
        options = {} if self.retries is None else {"retries": self.retries}
        (result,) = dask.compute(self.graph(function, params), **options)
        return result

    # --- mini-batches, chunk by chunk --------------------------------------------

    def batches(self, batch_size: int, seed: int) -> Iterator[tuple[dict[str, Any], int]]:
        """``(batch, rows)`` forever: each epoch visits the chunks in a fresh random
        order, reads one chunk into memory (the next ``PREFETCH`` are read meanwhile), and cuts it
        into shuffled batches of ``batch_size`` rows (the last one of a chunk holds what
        is left), drawn with ``numpy.random.default_rng(seed)``."""
        dask, _ = _dask()
        rng = np.random.default_rng(seed)
        pool = concurrent.futures.ThreadPoolExecutor(PREFETCH, thread_name_prefix="symgen-chunks")
        order: collections.deque[int] = collections.deque()
        pending: collections.deque[concurrent.futures.Future] = collections.deque()

        def read_ahead() -> None:
            while len(pending) < PREFETCH:
                if not order:
                    order.extend(int(j) for j in rng.permutation(len(self.chunks)))
                pending.append(pool.submit(dask.compute, *self.blocks[order.popleft()]))

        try:
            while True:
                read_ahead()
                chunk = dict(zip(self.row_names, pending.popleft().result(), strict=True))
                read_ahead()
                rows = len(next(iter(chunk.values())))
                shuffled = rng.permutation(rows)
                for begin in range(0, rows, batch_size):
                    pick = np.sort(shuffled[begin : begin + batch_size])
                    batch = {n: a[pick] for n, a in chunk.items()}
                    batch.update(self.whole)
                    yield batch, len(pick)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)


# --- what runs on the workers ----------------------------------------------------------


def _chunk(
    source: str,
    inputs: tuple[tuple[Any, ...], dict[str, Any]],
    function: str,
    names: tuple[str, ...],
    total: int,
    power: float,
    quiet: bool,
    *blocks: np.ndarray,
) -> np.ndarray:
    """The loss (and gradients) of one chunk of rows in float64, weighted by the chunk's
    share of the rows to the ``power``, as a 1-element object array (one "block")."""
    module = load_module(source)
    params, whole = inputs
    data = dict(zip(names, blocks, strict=True))
    data.update(whole)
    rows = len(blocks[0])
    weight = 1.0 if power == 0 else (rows / total) ** power
    with np.errstate(**({"all": "ignore"} if quiet else {})):
        if function == "loss":
            part: tuple[float, tuple[Any, ...]] = (weight * float(module.loss(*params, **data)), ())
        else:
            value, grads = module.loss_and_grad(*params, **data)
            part = (weight * float(value), tuple(_scaled(g, weight) for g in grads))
    out = np.empty(1, dtype=object)
    out[0] = part
    return out


def _scaled(value: Any, weight: float) -> Any:
    if isinstance(value, np.ndarray):
        out = value.astype(np.float64, copy=True)
        if weight != 1.0:
            out *= weight
        return out
    return weight * float(value)


def _unwrap(part: Any) -> tuple[float, tuple[Any, ...]]:
    """A chunk's ``(loss, gradients)`` out of its 1-element block, or a sum as it is."""
    return part[0] if isinstance(part, np.ndarray) else part


def _add(*parts: Any) -> tuple[float, tuple[Any, ...]]:
    """The sum of some chunks' (loss, gradients)."""
    parts = tuple(_unwrap(p) for p in parts)
    total = parts[0][0]
    grads = [g.copy() if isinstance(g, np.ndarray) else g for g in parts[0][1]]
    for value, more in parts[1:]:
        total += value
        for i, g in enumerate(more):
            if isinstance(grads[i], np.ndarray):
                grads[i] += g
            else:
                grads[i] = grads[i] + g
    return total, tuple(grads)


_LOADED: dict[str, types.ModuleType] = {}


def load_module(source: str) -> types.ModuleType:
    """The generated module whose source is ``source``, executed once per process."""
    digest = hashlib.sha256(source.encode()).hexdigest()
    module = _LOADED.get(digest)
    if module is None:
        filename = f"<symgen {digest[:16]}>"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        namespace: dict[str, Any] = {"__name__": "symgen_distributed_module"}
        exec(compile(source, filename, "exec", dont_inherit=True), namespace)
        doc = namespace.get("__doc__") or ""
        name = doc.split(":", 1)[0].strip() if ":" in doc else "problem"
        module = types.ModuleType(f"{name}_numpy", doc)
        module.__dict__.update(namespace)
        module.__name__ = f"{name}_numpy"
        module.__file__ = filename
        _LOADED[digest] = module
    return module


# --- finding a module's source ------------------------------------------------------

_SOURCES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_PROBLEMS: dict[str, tuple[str, RowSplit]] = {}
_FUNCTIONS = ("loss", "loss_and_grad", "grad", "sgd_step", "momentum_step", "adam_step")


def problem_module(problem: Any) -> types.ModuleType:
    """The generated module of ``problem`` (checked to split over rows), loaded as the
    workers load it."""
    return load_module(_problem_source(problem)[0])


def _problem_source(problem: Any) -> tuple[str, RowSplit]:
    key = problem.spec_hash()
    if key not in _PROBLEMS:
        split = row_split(problem)
        _PROBLEMS[key] = (generate(problem), split)
    return _PROBLEMS[key]


def module_source(module: Any) -> str:
    """The source a generated module was executed from, checked against its code.

    Looked for in its file (``generated/*.py``) and in ``linecache`` (where
    ``symgen.compile`` puts it)."""
    try:
        cached = _SOURCES.get(module)
    except TypeError:
        cached = None
    if cached is not None:
        return cached
    missing = [a for a in ("PARAMS", "DATA", "DTYPE", *_FUNCTIONS[:2]) if not hasattr(module, a)]
    if missing:
        raise TypeError(
            f"{_module_name(module)!r} is not a generated module (no {', '.join(missing)}); "
            "pass symgen.compile(problem), an imported generated/*.py, or a symgen.Problem"
        )
    candidates = []
    filename = getattr(module, "__file__", None) or ""
    if filename and os.path.isfile(filename):
        with open(filename, encoding="utf-8") as handle:
            candidates.append(handle.read())
    if filename:
        lines = linecache.getlines(filename)
        if lines:
            candidates.append("".join(lines))
    for text in candidates:
        if _same_code(module, text):
            try:
                _SOURCES[module] = text
            except TypeError:
                pass
            return text
    raise TypeError(
        f"{_module_name(module)}: cannot find the source this module was generated from "
        "(its file changed, or another module of the same name was compiled since); pass the "
        "symgen.Problem instead, or compile it again"
    )


def _same_code(module: Any, text: str) -> bool:
    namespace: dict[str, Any] = {}
    try:
        exec(compile(text, "<symgen check>", "exec", dont_inherit=True), namespace)
    except Exception:  # noqa: BLE001 - any failure means: not this module's source
        return False
    for name in _FUNCTIONS:
        mine, theirs = getattr(module, name, None), namespace.get(name)
        if (mine is None) != (theirs is None):
            return False
        if mine is not None and _code_key(mine.__code__) != _code_key(theirs.__code__):
            return False
    return True


def _code_key(code: types.CodeType) -> tuple:
    consts = tuple(_code_key(c) if isinstance(c, types.CodeType) else c for c in code.co_consts)
    return (code.co_code, code.co_names, code.co_varnames, consts)


def _module_name(module: Any) -> str:
    name = getattr(module, "__name__", None) or type(module).__name__
    return name.rsplit(".", 1)[-1].removesuffix("_numpy")


# --- checks on the first rows ------------------------------------------------------


def _whole(value: Any, dask: Any) -> Any:
    if dask.is_dask_collection(value):
        (value,) = dask.compute(value)
    return value


def _rows(head: dict[str, np.ndarray], rows: Any) -> dict[str, np.ndarray]:
    return {n: a[rows] for n, a in head.items()}


def _call(module: Any, name: str, params: tuple[Any, ...], data: dict[str, Any]) -> np.ndarray:
    """The loss and gradients at ``params`` on ``data``, flattened into one float64 vector."""
    with np.errstate(all="ignore"):
        value, grads = module.loss_and_grad(*params, **data)
    return np.concatenate([[float(value)], *(np.ravel(np.asarray(g, float)) for g in grads)])


def _check_call(
    module: Any, name: str, params: tuple[Any, ...], head: dict[str, Any], whole: dict[str, Any]
) -> np.ndarray:
    try:
        return _call(module, name, params, {**head, **whole})
    except (ValueError, TypeError) as exc:
        rows = len(next(iter(head.values())))
        raise type(exc)(
            f"{name}: evaluating the loss on the first {rows} row(s) of the data failed, before "
            f"any distributed work: {exc}"
        ) from None


def _probe(
    module: Any,
    name: str,
    params: tuple[Any, ...],
    head: dict[str, np.ndarray],
    whole: dict[str, Any],
    total: int,
) -> RowSplit:
    """Decide from the data's first rows whether a bare module's loss is a sum over rows
    (``p = 0``) or a mean (``p = 1``), or neither (``SpecError``)."""
    import sympy as sp

    rows = tuple(head)
    n = len(next(iter(head.values())))
    sized = [
        (pname, np.shape(p))
        for pname, p in zip(module.PARAMS, params, strict=True)
        if total > 1 and total in np.shape(p)
    ]
    try:
        full = _check_call(module, name, params, head, whole)
    except (ValueError, TypeError) as exc:
        if not sized:
            raise
        raise SpecError(
            f"{name}: parameter {sized[0][0]!r} has shape {sized[0][1]}, "
            f"one entry per row of the data ({total} rows): it cannot be split over chunks of "
            f"rows ({exc})"
        ) from None
    split = RowSplit(sp.Symbol("rows"), sp.S.Zero, rows, tuple(whole))
    if n < 2 or total < 2:
        return split  # a single row is a single chunk: nothing to combine
    k = max(1, n // 3)
    try:
        first = _call(module, name, params, {**_rows(head, slice(0, k)), **whole})
        rest = _call(module, name, params, {**_rows(head, slice(k, n)), **whole})
        twice = _call(
            module, name, params, {**{r: np.concatenate([a, a]) for r, a in head.items()}, **whole}
        )
    except (ValueError, TypeError) as exc:
        raise SpecError(
            f"{name}: the loss cannot be evaluated on part of the rows ({exc}); a parameter "
            "with one entry per row cannot be split over chunks of rows"
        ) from None
    rtol = 1e-4 if np.dtype(module.DTYPE) == np.float32 else 1e-8
    fits = []
    for p in (0, 1):
        a, b = (k / n) ** p * first, ((n - k) / n) ** p * rest
        combined = _close(full, a + b, a, b, rtol)
        doubled = _close(twice, 2.0 ** (1 - p) * full, full, full, rtol)
        if combined and doubled:
            fits.append(p)
    finite = np.isfinite(full).all() and np.isfinite(first).all() and np.isfinite(rest).all()
    if len(fits) == 1 and finite:
        return RowSplit(sp.Symbol("rows"), sp.Integer(fits[0]), rows, tuple(whole))
    if len(fits) == 2 and finite:
        raise SpecError(
            f"{name}: cannot tell from the first {n} rows of the data whether the loss sums or "
            "averages over rows (it and its gradients are 0 there); pass the symgen.Problem "
            "instead of the module"
        )
    if not finite:
        raise SpecError(
            f"{name}: the loss or a gradient is not finite on the first {n} rows of the data, "
            "so whether it splits over rows cannot be checked; pass the symgen.Problem instead"
        )
    raise SpecError(
        f"{name}: the loss does not split over rows: on the first {n} rows of the data it is "
        f"neither the sum nor the row-weighted mean of its values on rows 0..{k - 1} and "
        f"{k}..{n - 1} (as with a logsumexp or max across rows, or a parameter sized by the rows); "
        "chunks of rows cannot be evaluated apart and added"
    )


def _close(value: np.ndarray, expected: np.ndarray, a: np.ndarray, b: np.ndarray, rtol: float):
    scale = np.abs(a) + np.abs(b) + np.abs(expected)
    return bool(np.all(np.abs(value - expected) <= rtol * scale + 1e-300))
