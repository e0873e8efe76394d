"""``fit`` (``symgen.fit``): resolve the arguments, set up the steps (in memory or on
Dask arrays), run the step loop, and make the ``FitResult``."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from symgen.runtime.training.arrays import array_library
from symgen.runtime.training.batches import batches
from symgen.runtime.training.dask_steps import dask_steps
from symgen.runtime.training.full_batch import newton_steps, solve
from symgen.runtime.training.inputs import data_arrays, has_dask_arrays, initial_params
from symgen.runtime.training.loop import Outcome, Steps, run_steps
from symgen.runtime.training.modules import generated_module, module_name, module_names
from symgen.runtime.training.nonfinite import full_loss, non_finite_error
from symgen.runtime.training.optimizers import stepper
from symgen.runtime.training.progress import reporter
from symgen.runtime.training.result import FitResult
from symgen.runtime.training.settings import FULL_BATCH, Settings, resolve, resolve_full_batch


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

    ``optimizer="lbfgs"``, ``"lm"`` or ``"newton"`` see all the data at every iteration and
    take no ``lr`` nor ``batch_size`` (data in memory, NumPy or C modules): ``"lbfgs"`` is
    SciPy's L-BFGS-B on ``loss_and_grad`` (``symgen.minimize``; ``steps`` iterations at
    most, ``tol`` its ``ftol``, ``**hyper`` its options such as ``gtol``, ``maxcor``);
    ``"lm"`` is Levenberg-Marquardt on the module's ``residuals`` and ``jacobian``
    (``symgen.least_squares``, for least-squares losses; ``steps`` evaluations at most,
    ``tol`` its ``ftol``, ``**hyper`` its keywords, ``method="trf"`` or ``"dogbox"`` for
    SciPy's trust-region methods instead; no callback); ``"newton"`` runs the
    module's ``newton_step`` in the step loop (``**hyper`` its keywords). For ``"lbfgs"``
    ``history`` holds the loss before each iteration, for ``"lm"`` at each evaluation.

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

    Ctrl-C (a ``KeyboardInterrupt`` in a step, the callback or the progress output)
    stops the fit cleanly: it returns the ``FitResult`` of the steps completed so far,
    with ``stopped == "interrupted"`` (``.interrupted``); a step cut short is undone.

    A NaN or infinite loss or parameter stops the fit: the parameters are put
    back to the last finite ones and ``NonFiniteError`` (a
    ``FloatingPointError``) is raised, naming the step and the parameter, with
    the ``FitResult`` so far as ``.result``.
    """
    lazy = has_dask_arrays(data)
    module, problem = generated_module(module, lazy)
    names, data_names = module_names(module)
    name = module_name(module)
    xp = array_library(module)
    if lazy and xp is not np:
        raise TypeError(
            f"{name}: fit() cannot run a CUDA module on Dask arrays; pass the data as "
            f"CuPy or NumPy arrays, or fit the NumPy module (or the symgen.Problem) on them"
        )
    full_batch = optimizer in FULL_BATCH
    if full_batch:
        settings = resolve_full_batch(
            name,
            optimizer=optimizer,
            lazy=lazy,
            on_device=xp is not np,
            steps=steps,
            lr=lr,
            batch_size=batch_size,
            callback=callback,
            tol=tol,
            progress=progress,
            report_every=report_every,
            hyper=hyper,
        )
    else:
        settings = resolve(
            module,
            name,
            optimizer=optimizer,
            steps=steps,
            lr=lr,
            batch_size=batch_size,
            callback=callback,
            tol=tol,
            seed=seed,
            progress=progress,
            report_every=report_every,
            hyper=hyper,
        )
    current = initial_params(name, names, params, module.DTYPE, xp)
    labels = tuple(getattr(module, "LABELS", ()))  # integer class indices: not converted
    arrays = data_arrays(name, data_names, data, module.DTYPE, lazy=lazy, xp=xp, labels=labels)
    if full_batch and optimizer != "newton":
        return solve(module, name, settings, current, arrays)
    if lazy:
        stepping = dask_steps(problem or module, module, name, settings, current, arrays)
    elif full_batch:
        stepping = newton_steps(module, name, settings, arrays)
    else:
        stepping = _steps_in_memory(module, name, settings, current, arrays, xp)
    result = FitResult(params=current)
    output = reporter(
        settings.progress,
        settings.steps,
        settings.report_every,
        name,
        settings.optimizer,
        settings.batch_size is not None,
    )
    history, times = result.history, result.times
    outcome = run_steps(stepping, current, names, xp, settings, output, history, times)
    return _finish(result, outcome, stepping, name, settings)


def _steps_in_memory(
    module: Any, name: str, settings: Settings, params: list[Any], arrays: dict[str, Any], xp: Any
) -> Steps:
    """The steps of a fit of ``module`` on arrays in memory (of ``xp``)."""
    advance = stepper(
        module, name, settings.optimizer, settings.lr, settings.hyper, params, settings.baked
    )
    batched, rows = batches(name, arrays, settings.batch_size, settings.seed, xp)
    return Steps(advance, batched, rows, lambda p: module.loss(*p, **arrays))


def _finish(
    result: FitResult, outcome: Outcome, stepping: Steps, name: str, settings: Settings
) -> FitResult:
    """``result`` completed from the loop's ``outcome``; ``NonFiniteError`` (holding it)
    when the loop stopped on a non-finite value."""
    result.params = tuple(outcome.params)
    result.steps = len(result.history)
    result.stopped = outcome.stopped
    result.epochs = stepping.rows.epochs
    result.loss = full_loss(stepping.full_loss, result.params)
    if outcome.failure is not None:
        raise non_finite_error(
            name, result, settings.steps, outcome.failure, settings.lr, settings.optimizer
        )
    return result
