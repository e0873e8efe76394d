"""``fit``: a training loop over a generated module's step functions.

This is symgen's runtime, not generated code: it drives ``sgd_step``,
``momentum_step`` or ``adam_step`` of any generated module (from
``symgen.compile`` or a file under ``generated/``), cuts the data into shuffled
mini-batches when asked, records the loss and wall time of every step, shows
progress, and stops on a step budget, a tolerance, a callback or a non-finite
loss or parameter (keeping the last finite parameters).

It runs generated NumPy modules and generated CUDA (CuPy) modules alike: the
array library is the module's own (``cp`` for a CUDA module, else NumPy), so the
parameters, the data, the mini-batches and the checks of a CUDA module's fit stay
on the device. CuPy is never imported here.

``symgen.fit``, ``symgen.FitResult`` and ``symgen.NonFiniteError`` are this
module's ``fit``, ``FitResult`` and ``NonFiniteError``.
"""

from __future__ import annotations

import inspect
import math
import sys
import time
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from symgen.api import compile as compile_problem
from symgen.codegen import optimizers
from symgen.codegen.optimizers import STEP_FUNCTIONS, updater
from symgen.compiler.problem import Problem
from symgen.runtime.distributed import RowPlan, problem_module

#: The optimizers ``fit`` knows, each with the generated function it calls.
OPTIMIZERS: dict[str, str] = dict(STEP_FUNCTIONS)
#: Learning rates used when ``lr`` is not given.
DEFAULT_LR: dict[str, float] = dict(optimizers.DEFAULT_LR)
#: Roughly how many report lines a fit prints when ``report_every`` is not given.
REPORT_LINES = 10

_REPORT_COLUMNS = (("step", 10), ("epoch", 10), ("loss", 16), ("elapsed", 0))
_BAR_REFRESH_S = 0.1


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
    stopped, ``"steps"``, ``"tolerance"``, ``"callback"`` or ``"non-finite"``.
    ``epochs``: passes over the data. ``loss``: the loss at ``params`` over all the data.
    """

    params: tuple[Any, ...]
    history: list[float] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    steps: int = 0
    stopped: str = "steps"
    epochs: float = 0.0
    loss: float = math.nan

    def __repr__(self) -> str:
        first = f"{self.history[0]:.6g} -> " if self.history else ""
        return (
            f"FitResult(steps={self.steps}, stopped={self.stopped!r}, "
            f"loss={first}{self.loss:.6g}, epochs={self.epochs:.4g}, "
            f"seconds={self.times[-1] if self.times else 0.0:.3g})"
        )


def fit(
    module: Any,
    params: Sequence[Any] | Mapping[str, Any],
    data: Mapping[str, Any] | None = None,
    *,
    optimizer: str | None = None,
    steps: int = 1000,
    lr: float | None = None,
    batch_size: int | None = None,
    callback: Callable[[int, float, tuple[Any, ...]], Any] | None = None,
    tol: float | None = None,
    seed: int = 0,
    progress: bool | None = None,
    report_every: int | None = None,
    **hyper: Any,
) -> FitResult:
    """Train the parameters of a generated module; returns a ``FitResult``.

    ``module``: a generated module (``symgen.compile(problem)`` or an imported
    ``generated/NAME_numpy.py``), or a ``symgen.Problem`` (compiled here).
    ``params``: initial values in ``module.PARAMS`` order (or a dict by name);
    they are copied, the caller's arrays are not modified. ``data``: a dict
    of the ``module.DATA`` arrays by name.

    A generated CUDA module (``generated/NAME_cuda.py``, ``symgen.compile(problem,
    "cuda")``) is fitted on the device: its array parameters and data may be
    given as NumPy or CuPy arrays (or lists), and are copied (parameters) or
    converted (data) to C-contiguous CuPy arrays of the module's ``DTYPE``; the
    mini-batches are cut on the device, and the returned ``FitResult.params``
    holds CuPy arrays (and floats for scalar parameters). Dask data cannot be
    used with a CUDA module.

    ``data`` may hold ``dask.array`` arrays chunked along their rows (axis 0),
    for data larger than memory or spread over a ``dask.distributed`` cluster
    (``symgen.distributed``; the loss must split over rows). Full-batch steps
    then add the gradient up over the chunks where they live and apply the
    optimizer's update on this machine (the same arithmetic as the module's
    step function); with ``batch_size``, chunks are read into memory one at a
    time, in a fresh random order each epoch, and cut into shuffled batches
    for the module's step function (a batch never spans two chunks).

    ``optimizer``: ``"sgd"``, ``"momentum"``, ``"nesterov"`` or ``"adam"``,
    run by the module's generated ``sgd_step``/``momentum_step``/``adam_step``;
    their hyperparameters (``momentum``, ``beta1``, ``beta2``, ``eps``) go in
    ``**hyper``. ``lr`` defaults to ``DEFAULT_LR[optimizer]``. ``optimizer``
    defaults to the module's baked optimizer (``module.OPTIMIZER``), else ``"adam"``.

    A module generated with ``--optimizer`` (``symgen.generate(...,
    optimizer=...)``) has that optimizer's hyperparameters built into its step
    function (``module.HYPERPARAMETERS``): fitting with that optimizer uses
    them; ``lr`` and ``**hyper`` may repeat them but not differ from them
    (``ValueError``: regenerate the module, or use an unbaked one, to change
    them). The module's other step functions take them as usual. A module
    baked for ``"momentum"`` cannot fit with ``"nesterov"`` nor the reverse
    (both run ``momentum_step``).

    ``batch_size``: when given, each step sees ``batch_size`` rows of every
    data array (the samples of per-sample problems, the first axis of matrix
    problems), drawn without replacement from a fresh shuffle each epoch
    (``numpy.random.default_rng(seed)``); the last batch of an epoch holds what
    is left. ``steps`` counts steps, not epochs.

    ``callback(step, loss, params)`` runs after every step (``step`` counts
    from 1; ``params`` are the live parameters, do not modify them); returning
    ``True`` stops the fit. ``tol``: stop when the relative change of the loss
    over the last step, ``|L_k - L_(k-1)| / |L_(k-1)|``, is ``tol`` or less.

    ``progress``: ``None``/``True`` shows a tqdm bar with the loss when stdout
    is a terminal and tqdm is installed, else prints a report (``step epoch
    loss elapsed``) every ``report_every`` steps (default: about 10 lines);
    ``False`` prints nothing.

    A NaN or infinite loss or parameter stops the fit: the parameters are put
    back to the last finite ones and ``NonFiniteError`` (a
    ``FloatingPointError``) is raised, naming the step and the parameter, with
    the ``FitResult`` so far as ``.result``.
    """
    lazy = _has_dask_arrays(data)
    problem = None
    if _is_problem(module):
        problem = module
        if lazy:
            module = problem_module(problem)
        else:
            module = compile_problem(problem)
    names, data_names = _module_names(module)
    name = _module_name(module)
    xp = _array_library(module)
    if lazy and xp is not np:
        raise TypeError(
            f"{name}: fit() cannot run a CUDA module on Dask arrays; pass the data as "
            f"CuPy or NumPy arrays, or fit the NumPy module (or the symgen.Problem) on them"
        )
    if optimizer is None:
        optimizer = _baked_optimizer(module) or "adam"
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
    steps = _count("steps", steps, minimum=0)
    baked = _baked_settings(module, name, optimizer, lr, hyper)
    if baked is not None:
        lr, hyper = baked["lr"], {}
    else:
        lr = DEFAULT_LR[optimizer] if lr is None else _positive("lr", lr)
    if batch_size is not None:
        batch_size = _count("batch_size", batch_size, minimum=1)
    if tol is not None:
        tol = _non_negative("tol", tol)
    if report_every is not None:
        report_every = _count("report_every", report_every, minimum=1)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable, got {type(callback).__name__}")
    if progress not in (None, True, False):
        raise TypeError(f"progress must be None, True or False, got {progress!r}")

    current = _initial_params(name, names, params, module.DTYPE, xp)
    arrays = _data_arrays(name, data_names, data, module.DTYPE, lazy=lazy, xp=xp)
    if lazy:
        advance, batches, rows, full_loss = _distributed(
            problem or module,
            module,
            name,
            optimizer,
            lr,
            hyper,
            current,
            arrays,
            batch_size,
            seed,
            baked,
        )
    else:
        advance = _stepper(module, name, optimizer, lr, hyper, current, baked)
        batches, rows = _batches(name, arrays, batch_size, seed, xp)
        full_loss = lambda p: module.loss(*p, **arrays)
    backups = [xp.empty_like(p) if isinstance(p, xp.ndarray) else None for p in current]

    result = FitResult(params=current)
    history, times = result.history, result.times
    reporter = _reporter(progress, steps, report_every, name, optimizer, batch_size is not None)
    start = time.perf_counter()
    failure: str | None = None
    stopped = "steps"
    try:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            for step in range(1, steps + 1):
                batch, seen = next(batches)
                for backup, p in zip(backups, current, strict=True):
                    if backup is not None:
                        _copy_into(xp, backup, p)
                try:
                    loss, new = advance(current, batch)
                except (OverflowError, ZeroDivisionError, FloatingPointError) as exc:
                    loss, new = math.nan, None
                    failure = (
                        f"computing the loss and its gradient failed ({type(exc).__name__}: {exc})"
                    )
                except ValueError as exc:
                    if "math domain error" not in str(exc):
                        raise
                    loss, new = math.nan, None
                    failure = f"computing the loss and its gradient failed (ValueError: {exc})"
                else:
                    if not math.isfinite(loss):
                        failure = f"the loss is {loss} at the {_after(step - 1)}"
                    else:
                        failure = _non_finite_param(names, new, xp)
                if failure is not None:
                    for backup, p in zip(backups, current, strict=True):
                        if backup is not None:
                            _copy_into(xp, p, backup)
                    stopped = "non-finite"
                    break
                current = new
                rows += seen
                history.append(float(loss))
                elapsed = time.perf_counter() - start
                times.append(elapsed)
                reporter.update(step, rows, loss, elapsed)
                if callback is not None:
                    verdict = callback(step, float(loss), current)
                    if isinstance(verdict, (bool, np.bool_)) and verdict:
                        stopped = "callback"
                        break
                if tol is not None and step > 1 and _relative_change(history) <= tol:
                    stopped = "tolerance"
                    break
    finally:
        reporter.close(len(history), rows, history[-1] if history else None, _elapsed(times))

    result.params = tuple(current)
    result.steps = len(history)
    result.stopped = stopped
    result.epochs = rows.epochs
    result.loss = _full_loss(full_loss, result.params)
    if failure is not None:
        raise NonFiniteError(
            f"{name}: fit stopped at step {result.steps + 1} of {steps}: {failure}; "
            f"kept the {_after(result.steps)}, the last finite ones (in .result); "
            f"try a smaller lr than {lr:g} ({optimizer})",
            result,
            step=result.steps + 1,
            reason=failure,
        )
    return result


# --- validation --------------------------------------------------------------


def _is_problem(value: object) -> bool:
    return isinstance(value, Problem)


def _module_names(module: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    missing = [attr for attr in ("PARAMS", "DATA", "DTYPE", "loss") if not hasattr(module, attr)]
    if missing:
        raise TypeError(
            f"fit() needs a generated module (symgen.compile(problem) or generated/*.py); "
            f"{_module_name(module)!r} has no {', '.join(missing)}"
        )
    return tuple(module.PARAMS), tuple(module.DATA)


def _array_library(module: Any) -> Any:
    """The array module ``module`` computes with: the ``cp`` (CuPy, or a stand-in such
    as ``symgen.testing.fakecupy``) of a generated CUDA module, else NumPy."""
    xp = getattr(module, "cp", None)
    if (
        isinstance(xp, types.ModuleType)
        and xp is not np
        and all(hasattr(xp, attr) for attr in ("ndarray", "asarray", "ascontiguousarray"))
    ):
        return xp
    return np


def _copy_into(xp: Any, target: Any, source: Any) -> None:
    """``target[...] = source`` (arrays of one shape and dtype, both of ``xp``)."""
    if xp is np:
        np.copyto(target, source)
    else:
        target[...] = source


def _all_finite(xp: Any, array: Any) -> bool:
    """Whether every entry of ``array`` (an array of ``xp``) is finite, checked where the
    array lives; only a bool comes back from the device."""
    if xp is np:
        return bool(np.isfinite(array).all())
    # ``symgen.testing.fakecupy`` has no ``isfinite``: ``x - x`` is 0 exactly for every
    # finite x and NaN for an infinite or NaN x, with the same ops in CuPy and the fake.
    with np.errstate(invalid="ignore"):
        return bool(((array - array) == 0).all())


def _module_name(module: Any) -> str:
    if isinstance(module, types.ModuleType):
        return module.__name__.rsplit(".", 1)[-1].removesuffix("_numpy")
    return type(module).__name__


def _count(what: str, value: Any, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{what} must be at least {minimum}, got {value}")
    return int(value)


def _positive(what: str, value: Any) -> float:
    number = _non_negative(what, value)
    if number == 0:
        raise ValueError(f"{what} must be positive, got {value!r}")
    return number


def _non_negative(what: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{what} must be a finite number >= 0, got {value!r}")
    return number


def _initial_params(
    name: str, names: tuple[str, ...], params: Any, dtype: Any, xp: Any = np
) -> list[Any]:
    """The initial values checked: floats for scalars, copies of the arrays as arrays of
    ``xp`` (C-contiguous device arrays for a CUDA module) of ``dtype``."""
    if isinstance(params, Mapping):
        missing = [n for n in names if n not in params]
        extra = [str(n) for n in params if n not in names]
        if missing or extra:
            raise ValueError(
                f"{name}: params "
                + "; ".join(
                    part
                    for part in (
                        missing and f"missing {', '.join(map(repr, missing))}",
                        extra and f"unknown {', '.join(map(repr, extra))}",
                    )
                    if part
                )
                + f"; the parameters are {', '.join(names)}"
            )
        params = [params[n] for n in names]
    elif isinstance(params, (np.ndarray, xp.ndarray)) and params.ndim == 1:
        params = list(params)
    elif isinstance(params, (str, bytes)) or not isinstance(params, Sequence):
        raise TypeError(
            f"{name}: params must be a tuple of initial values in PARAMS order "
            f"({', '.join(names)}) or a dict by name, got {type(params).__name__}"
        )
    if len(params) != len(names):
        raise TypeError(
            f"{name}: fit() got {len(params)} initial parameter value(s) but the module has "
            f"{len(names)}: {', '.join(names)} (in that order)"
        )
    out = []
    for pname, value in zip(names, params, strict=True):
        if np.ndim(value) == 0:
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise TypeError(
                    f"{name}: parameter {pname!r} must be a number or an array of numbers, "
                    f"got {type(value).__name__}"
                ) from None
            if not math.isfinite(number):
                raise ValueError(f"{name}: initial parameter {pname!r} is {number}")
            out.append(number)
        elif xp is np:
            try:
                array = np.array(value, dtype=dtype, copy=True)
            except (TypeError, ValueError) as exc:
                raise TypeError(f"{name}: parameter {pname!r}: {exc}") from None
            if not np.isfinite(array).all():
                raise ValueError(f"{name}: initial parameter {pname!r} has non-finite entries")
            out.append(array)
        else:
            out.append(_device_param(name, pname, value, dtype, xp))
    return out


def _device_param(name: str, pname: str, value: Any, dtype: Any, xp: Any) -> Any:
    """A C-contiguous device copy (of ``xp``, CuPy) of an initial array parameter given as
    a device array, a NumPy array or a nested list, checked to be finite."""
    try:
        if isinstance(value, xp.ndarray):  # already on the device: copy it there
            array = value.astype(dtype, order="C", copy=True)
            finite = _all_finite(xp, array)
        else:  # on the host: check it there, then copy it to the device
            host = np.asarray(value, dtype=dtype)
            finite = bool(np.isfinite(host).all())
            array = xp.ascontiguousarray(xp.asarray(host))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name}: parameter {pname!r}: {exc}") from None
    if not finite:
        raise ValueError(f"{name}: initial parameter {pname!r} has non-finite entries")
    return array


def _has_dask_arrays(data: Any) -> bool:
    """Whether ``data`` holds a Dask array (without importing Dask when it is not in use)."""
    array = sys.modules.get("dask.array")
    if array is None or not isinstance(data, Mapping):
        return False
    return any(isinstance(value, array.Array) for value in data.values())


def _data_arrays(
    name: str,
    names: tuple[str, ...],
    data: Mapping[str, Any] | None,
    dtype: Any,
    *,
    lazy: bool = False,
    xp: Any = np,
) -> dict[str, Any]:
    """The data by name, checked against the module's names; arrays of ``xp`` (NumPy, or
    C-contiguous CuPy arrays for a CUDA module) of ``dtype`` (Dask arrays, when ``lazy``,
    are left as they are: they are read chunk by chunk)."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise TypeError(
            f"{name}: data must be a dict of arrays by name ({', '.join(names) or 'none'}), "
            f"got {type(data).__name__}"
        )
    missing = [n for n in names if n not in data]
    extra = [str(n) for n in data if n not in names]
    if missing:
        raise ValueError(
            f"{name}: missing data {', '.join(map(repr, missing))}; the module needs "
            f"{', '.join(names)}"
        )
    if extra:
        needs = f"its data are {', '.join(names)}" if names else "it takes no data"
        raise ValueError(f"{name}: unknown data {', '.join(map(repr, extra))}; {needs}")
    arrays: dict[str, Any] = {}
    for dname in names:
        value = data[dname]
        if lazy and hasattr(value, "dask"):
            arrays[dname] = value
        elif np.ndim(value) == 0:
            arrays[dname] = float(value)
        else:
            try:
                if xp is np:
                    arrays[dname] = np.asarray(value, dtype=dtype)
                else:
                    arrays[dname] = xp.ascontiguousarray(xp.asarray(value, dtype=dtype))
            except (TypeError, ValueError) as exc:
                raise TypeError(
                    f"{name}: data {dname!r} must be an array of numbers: {exc}"
                ) from None
    return arrays


def _stepper(
    module: Any,
    name: str,
    optimizer: str,
    lr: float,
    hyper: dict[str, Any],
    params: list[Any],
    baked: dict[str, float] | None = None,
) -> Callable[[list[Any], dict[str, Any]], tuple[float, tuple[Any, ...]]]:
    """``advance(params, batch) -> (loss before, new params)``, keeping the optimizer state."""
    function_name, function, options, _ = _step_function(module, name, optimizer, lr, hyper, baked)
    if optimizer == "sgd":

        def advance(p: list[Any], batch: dict[str, Any]) -> tuple[float, tuple[Any, ...]]:
            return function(*p, **batch, **options)

        return advance

    state = getattr(module, f"{function_name.removesuffix('_step')}_state")(*params)

    def advance_with_state(p: list[Any], batch: dict[str, Any]) -> tuple[float, tuple[Any, ...]]:
        nonlocal state
        loss, new, state = function(*p, **batch, state=state, **options)
        return loss, new

    return advance_with_state


def _baked_optimizer(module: Any) -> str | None:
    """The optimizer whose hyperparameters ``module`` has built in (``OPTIMIZER``), or None."""
    optimizer = getattr(module, "OPTIMIZER", None)
    return optimizer if isinstance(optimizer, str) and optimizer in OPTIMIZERS else None


def _baked_settings(
    module: Any, name: str, optimizer: str, lr: Any, hyper: dict[str, Any]
) -> dict[str, float] | None:
    """The hyperparameters built into the step function that ``optimizer`` runs, or None
    when it takes them as keywords. ``lr`` and ``hyper`` may repeat them, not differ."""
    baked_for = _baked_optimizer(module)
    function_name = OPTIMIZERS[optimizer]
    if baked_for is None or OPTIMIZERS[baked_for] != function_name:
        return None
    values = {k: float(v) for k, v in dict(getattr(module, "HYPERPARAMETERS", {})).items()}
    built_in = ", ".join(f"{k}={v!r}" for k, v in values.items())
    where = f"{name}: the module's {function_name}() has {baked_for}, {built_in} built in"
    if baked_for != optimizer:
        raise ValueError(
            f"{where}, so it cannot run {optimizer!r}; fit it with optimizer={baked_for!r}, or "
            f"use a module generated without --optimizer"
        )
    given = dict(hyper)
    if lr is not None:
        given["lr"] = lr
    unknown = sorted(set(given) - set(values))
    if unknown:
        raise TypeError(
            f"fit() got unexpected hyperparameter(s) {', '.join(map(repr, unknown))} for "
            f"optimizer {optimizer!r}; it takes {', '.join(values)}"
        )
    conflicts = []
    for key, value in given.items():
        try:
            same = float(value) == values[key]
        except (TypeError, ValueError):
            raise TypeError(f"{key} must be a number, got {value!r}") from None
        if not same:
            conflicts.append(f"{key}={value!r}")
    if conflicts:
        raise ValueError(
            f"{where}; fit() got {', '.join(conflicts)}: leave it out, or regenerate the module "
            f"with the values you want (symgen generate --optimizer {baked_for} ...)"
        )
    return values


def _step_function(
    module: Any,
    name: str,
    optimizer: str,
    lr: float,
    hyper: dict[str, Any],
    baked: dict[str, float] | None = None,
) -> tuple[str, Callable[..., Any], dict[str, Any], dict[str, Any]]:
    """The module's step function for ``optimizer``, its keyword arguments (checked), and
    all the settings of its update (for ``optimizers.updater``: the keywords, or the baked
    values when ``baked``)."""
    function_name = OPTIMIZERS[optimizer]
    function = getattr(module, function_name, None)
    if function is None:
        raise TypeError(
            f"{name}: the module has no {function_name}(); regenerate it with this symgen"
        )
    if baked is not None:
        settings: dict[str, Any] = dict(baked)
        if function_name == "momentum_step":
            settings["nesterov"] = optimizer == "nesterov"
        return function_name, function, {}, settings
    accepted = {
        p.name
        for p in inspect.signature(function).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in ("state", "lr")
    }
    if optimizer == "nesterov":
        accepted.discard("nesterov")
    unknown = sorted(set(hyper) - accepted)
    if unknown:
        raise TypeError(
            f"fit() got unexpected hyperparameter(s) {', '.join(map(repr, unknown))} for "
            f"optimizer {optimizer!r}; it takes {', '.join(sorted(accepted)) or 'none besides lr'}"
        )
    options = dict(hyper, lr=lr)
    if optimizer == "nesterov":
        options["nesterov"] = True
    return function_name, function, options, options


def _distributed(
    source: Any,
    module: Any,
    name: str,
    optimizer: str,
    lr: float,
    hyper: dict[str, Any],
    params: list[Any],
    arrays: dict[str, Any],
    batch_size: int | None,
    seed: int,
    baked: dict[str, float] | None = None,
) -> tuple[Callable[..., Any], Iterator[tuple[Any, int]], _Rows, Callable[..., float]]:
    """The stepper, batches, row count and full loss of a fit on Dask arrays.

    Full batches: each step adds the gradient up over the chunks of rows on the
    cluster (``symgen.distributed``), then applies the optimizer's update here, as
    the module's step function would (``optimizers.updater``). Mini-batches: chunks
    are read into memory one at a time and cut into batches for the module's
    own step function."""

    plan = RowPlan(source, params, arrays, quiet=True)
    rows = _Rows(plan.total)
    if batch_size is not None and batch_size < plan.total:
        advance = _stepper(module, name, optimizer, lr, hyper, params, baked)
        return advance, plan.batches(batch_size, seed), rows, plan.loss
    _, _, _, settings = _step_function(module, name, optimizer, lr, hyper, baked)
    update = updater(optimizer, settings, params)

    def advance(p: list[Any], batch: Any) -> tuple[float, tuple[Any, ...]]:
        loss, grads = plan.loss_and_grad(p)
        return loss, update(p, grads)

    def whole() -> Iterator[tuple[Any, int]]:
        while True:
            yield None, plan.total

    return advance, whole(), rows, plan.loss


# --- mini-batches ------------------------------------------------------------


class _Rows:
    """Rows of data seen so far, as a count that reads as epochs."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.seen = 0

    def __iadd__(self, count: int) -> _Rows:
        self.seen += count
        return self

    @property
    def epochs(self) -> float:
        return self.seen / self.total


def _batches(
    name: str, arrays: dict[str, Any], batch_size: int | None, seed: int, xp: Any = np
) -> tuple[Iterator[tuple[dict[str, Any], int]], _Rows]:
    """The batches (all the data, or shuffled rows of every array) and the row count.

    The shuffle is drawn on the host (``numpy.random.default_rng(seed)``) for every array
    library, so a CUDA module sees the rows a NumPy module would; the rows are taken on
    the device there (an index array of ``xp``)."""
    sliced = {k: v for k, v in arrays.items() if isinstance(v, xp.ndarray)}
    lengths = {k: v.shape[0] for k, v in sliced.items()}
    total = max(lengths.values(), default=1)
    if batch_size is None or batch_size >= total:
        if batch_size is not None and not sliced:
            raise ValueError(f"{name}: batch_size needs data arrays to cut; the module has none")

        def whole() -> Iterator[tuple[dict[str, Any], int]]:
            while True:
                yield arrays, total

        return whole(), _Rows(total)
    if len(set(lengths.values())) > 1:
        first = next(iter(lengths))
        other = next(k for k, n in lengths.items() if n != lengths[first])
        raise ValueError(
            f"{name}: mini-batches take rows of every data array, but {first!r} has "
            f"{lengths[first]} rows and {other!r} has {lengths[other]}"
        )
    rng = np.random.default_rng(seed)

    def shuffled() -> Iterator[tuple[dict[str, Any], int]]:
        while True:
            order = rng.permutation(total)
            for begin in range(0, total, batch_size):
                rows = np.sort(order[begin : begin + batch_size])
                index = rows if xp is np else xp.asarray(rows)
                batch = dict(arrays)
                for key, array in sliced.items():
                    batch[key] = array[index]
                yield batch, len(rows)

    return shuffled(), _Rows(total)


# --- checks ------------------------------------------------------------------


def _non_finite_param(names: tuple[str, ...], values: Sequence[Any], xp: Any = np) -> str | None:
    for pname, value in zip(names, values, strict=True):
        if xp is not np and isinstance(value, xp.ndarray):
            if _all_finite(xp, value):
                continue
            value = value.get()  # a bad entry: find it on the host
        if isinstance(value, np.ndarray):
            finite = np.isfinite(value)
            if finite.all():
                continue
            bad = np.argwhere(~finite)
            where = tuple(int(i) for i in bad[0])
            return (
                f"parameter {pname!r} became non-finite ({len(bad)} of {value.size} entries; "
                f"{pname}[{', '.join(map(str, where))}] = {value[where]})"
            )
        if not math.isfinite(value):
            return f"parameter {pname!r} became {float(value)}"
    return None


def _full_loss(loss: Callable[[tuple[Any, ...]], float], params: tuple[Any, ...]) -> float:
    try:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return float(loss(params))
    except (OverflowError, ZeroDivisionError, FloatingPointError):
        return math.inf


def _relative_change(history: list[float]) -> float:
    before, now = history[-2], history[-1]
    change = abs(now - before)
    if before == 0.0:
        return 0.0 if change == 0.0 else math.inf
    return change / abs(before)


def _after(step: int) -> str:
    return "initial parameters" if step == 0 else f"parameters after step {step}"


def _elapsed(times: list[float]) -> float:
    return times[-1] if times else 0.0


# --- progress ----------------------------------------------------------------


def _epochs(rows: _Rows) -> str:
    whole, part = divmod(rows.seen, rows.total)
    return str(whole) if part == 0 else f"{rows.epochs:.2f}"


class _Silent:
    def update(self, step: int, rows: _Rows, loss: float, elapsed: float) -> None:
        pass

    def close(self, step: int, rows: _Rows, loss: float | None, elapsed: float) -> None:
        pass


class _Report(_Silent):
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

    def _row(self, step: int, rows: _Rows, loss: float, elapsed: float) -> None:
        if not self.last:  # the header comes with the first row
            self._line(*(title for title, _ in _REPORT_COLUMNS))
        self.last = step
        self._line(str(step), _epochs(rows), f"{loss:.6g}", f"{elapsed:.3f}s")

    def update(self, step: int, rows: _Rows, loss: float, elapsed: float) -> None:
        if step % self.every == 0:
            self._row(step, rows, loss, elapsed)

    def close(self, step: int, rows: _Rows, loss: float | None, elapsed: float) -> None:
        if step and step != self.last and loss is not None:
            self._row(step, rows, loss, elapsed)


class _Bar(_Silent):
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

    def update(self, step: int, rows: _Rows, loss: float, elapsed: float) -> None:
        if elapsed - self.shown >= _BAR_REFRESH_S:
            self.shown = elapsed
            self.bar.set_postfix_str(self._postfix(rows, loss), refresh=False)
        self.bar.update(1)

    def _postfix(self, rows: _Rows, loss: float) -> str:
        return f"loss={loss:.6g}, epoch={_epochs(rows)}" if self.batched else f"loss={loss:.6g}"

    def close(self, step: int, rows: _Rows, loss: float | None, elapsed: float) -> None:
        if loss is not None:
            self.bar.set_postfix_str(self._postfix(rows, loss), refresh=False)
        self.bar.close()


def _reporter(
    progress: bool | None,
    steps: int,
    every: int | None,
    name: str,
    optimizer: str,
    batched: bool,
) -> _Silent:
    if progress is False or steps == 0:
        return _Silent()
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
