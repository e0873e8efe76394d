"""The optimizers ``fit`` runs, each by the generated module's own step function: which
function, its keyword arguments (checked), hyperparameters built into a module generated
with ``--optimizer``, and the stepper that keeps the optimizer's state between steps."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from symgen.codegen import optimizers
from symgen.codegen.optimizers import STEP_FUNCTIONS

#: The optimizers ``fit`` knows, each with the generated function it calls.
OPTIMIZERS: dict[str, str] = dict(STEP_FUNCTIONS)
#: Learning rates used when ``lr`` is not given.
DEFAULT_LR: dict[str, float] = dict(optimizers.DEFAULT_LR)

#: ``advance(params, batch) -> (loss before the step, new params)``.
Advance = Callable[[list[Any], Any], tuple[float, tuple[Any, ...]]]


def baked_optimizer(module: Any) -> str | None:
    """The optimizer whose hyperparameters ``module`` has built in (``OPTIMIZER``), or None."""
    optimizer = getattr(module, "OPTIMIZER", None)
    return optimizer if isinstance(optimizer, str) and optimizer in OPTIMIZERS else None


def baked_settings(
    module: Any, name: str, optimizer: str, lr: Any, hyper: dict[str, Any]
) -> dict[str, float] | None:
    """The hyperparameters built into the step function that ``optimizer`` runs, or None
    when it takes them as keywords. ``lr`` and ``hyper`` may repeat them, not differ."""
    baked_for = baked_optimizer(module)
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


def step_function(
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
    # in range (beta1 in [0, 1), eps > 0, ...) as for baking: SpecError, a ValueError
    optimizers.bake(
        optimizer, lr=lr, **{n: v for n, v in hyper.items() if n in optimizers.HYPERPARAMETERS}
    )
    options = dict(hyper, lr=lr)
    if optimizer == "nesterov":
        options["nesterov"] = True
    return function_name, function, options, options


def stepper(
    module: Any,
    name: str,
    optimizer: str,
    lr: float,
    hyper: dict[str, Any],
    params: list[Any],
    baked: dict[str, float] | None = None,
) -> Advance:
    """``advance(params, batch) -> (loss before, new params)``, keeping the optimizer state."""
    function_name, function, options, _ = step_function(module, name, optimizer, lr, hyper, baked)
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
