"""Optimizer hyperparameters baked into generated code at generation time.

By default a generated module's step functions take their hyperparameters as
keyword arguments (``sgd_step(..., lr)``, ``adam_step(..., state, lr=0.001,
beta1=0.9, ...)``). ``symgen generate SPEC --optimizer adam --lr 1e-3`` (or
``symgen.generate(problem, optimizer="adam", lr=1e-3)``) bakes them instead:
the chosen optimizer's step function has the values as literal constants in
its body, with what does not depend on the step count folded at generation
time (``1.0 - beta1``), and takes no keywords for them.

This module is the backend-independent part: which optimizers and
hyperparameters exist, their defaults and valid ranges (``bake``), and the
numbers the update rules use (``Baked.constants``). Each backend prints those
numbers in its own language.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

from symgen.errors import SpecError

#: The hyperparameters of each optimizer, in the order they are printed.
OPTIMIZERS: dict[str, tuple[str, ...]] = {
    "sgd": ("lr",),
    "momentum": ("lr", "momentum"),
    "nesterov": ("lr", "momentum"),
    "adam": ("lr", "beta1", "beta2", "eps"),
}
#: The generated function each optimizer runs (Nesterov's is ``momentum_step``).
STEP_FUNCTIONS: dict[str, str] = {
    "sgd": "sgd_step",
    "momentum": "momentum_step",
    "nesterov": "momentum_step",
    "adam": "adam_step",
}
#: The generated function creating each optimizer's state (SGD has none).
STATE_FUNCTIONS: dict[str, str | None] = {
    "sgd": None,
    "momentum": "momentum_state",
    "nesterov": "momentum_state",
    "adam": "adam_state",
}
#: Learning rates used when none is given (``symgen.fit`` uses the same).
DEFAULT_LR: dict[str, float] = {"sgd": 0.01, "momentum": 0.01, "nesterov": 0.01, "adam": 0.001}
#: Defaults of the other hyperparameters: those of the generated step functions.
DEFAULTS: dict[str, float] = {"momentum": 0.9, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}

#: Valid values: (lowest, lowest included, highest or None, its wording).
_RANGES: dict[str, tuple[float, bool, float | None, str]] = {
    "lr": (0.0, False, None, "a finite number > 0"),
    "eps": (0.0, False, None, "a finite number > 0"),
    "momentum": (0.0, True, 1.0, "in [0, 1)"),
    "beta1": (0.0, True, 1.0, "in [0, 1)"),
    "beta2": (0.0, True, 1.0, "in [0, 1)"),
}


def _checked(optimizer: str, name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise SpecError(f"hyperparameter {name} must be a number, got {value!r}")
    number = float(value) + 0.0  # -0.0 becomes 0.0: one spelling of each value
    low, low_ok, high, wording = _RANGES[name]
    if (
        not math.isfinite(number)
        or number < low
        or (number == low and not low_ok)
        or (high is not None and number >= high)
    ):
        raise SpecError(f"{optimizer}: {name} must be {wording}, got {value!r}")
    return number


def _unknown_optimizer(optimizer: object) -> SpecError:
    return SpecError(f"unknown optimizer {optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")


@dataclass(frozen=True)
class Baked:
    """An optimizer whose hyperparameters are built into the generated step function.

    ``values``: every hyperparameter of ``optimizer`` with its value, in
    ``OPTIMIZERS[optimizer]`` order (checked and put in that order on
    construction). ``bake`` fills in the defaults.
    """

    optimizer: str
    values: tuple[tuple[str, float], ...]

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise _unknown_optimizer(self.optimizer)
        names = OPTIMIZERS[self.optimizer]
        given = dict(self.values)
        if len(given) != len(self.values):
            raise SpecError(f"{self.optimizer}: a hyperparameter is given twice")
        _no_strangers(self.optimizer, given)
        missing = [n for n in names if n not in given]
        if missing:
            raise SpecError(f"{self.optimizer}: no value for {', '.join(missing)}")
        values = tuple((n, _checked(self.optimizer, n, given[n])) for n in names)
        object.__setattr__(self, "values", values)

    def __getitem__(self, name: str) -> float:
        return dict(self.values)[name]

    def as_dict(self) -> dict[str, float]:
        return dict(self.values)

    @property
    def step_function(self) -> str:
        """The generated function that has the values built in (``adam_step``)."""
        return STEP_FUNCTIONS[self.optimizer]

    @property
    def state_function(self) -> str | None:
        """The function creating that step's state (``adam_state``), None for SGD."""
        return STATE_FUNCTIONS[self.optimizer]

    @property
    def removed_keywords(self) -> tuple[str, ...]:
        """The step function's keyword arguments that baking removes."""
        names = OPTIMIZERS[self.optimizer]
        return (*names, "nesterov") if self.step_function == "momentum_step" else names

    def constants(self) -> dict[str, float | bool]:
        """The numbers the update rule uses, the folded ones included, by name:
        the hyperparameters; ``neg_lr`` (``-lr``); for momentum, ``nesterov``
        (a bool: which rule); for Adam, ``one_minus_beta1`` and
        ``one_minus_beta2`` (``1.0 - beta``, computed here exactly as the
        generated code would at run time, so the results are bit-identical).
        The bias corrections ``1 - beta**k`` depend on the step count ``k`` and
        stay in the generated code."""
        out: dict[str, float | bool] = dict(self.values)
        out["neg_lr"] = -self["lr"]
        if self.step_function == "momentum_step":
            out["nesterov"] = self.optimizer == "nesterov"
        if self.optimizer == "adam":
            out["one_minus_beta1"] = 1.0 - self["beta1"]
            out["one_minus_beta2"] = 1.0 - self["beta2"]
        return out

    def describe(self) -> str:
        """``lr=0.001, beta1=0.9, beta2=0.999, eps=1e-08`` (floats as ``repr``)."""
        return ", ".join(f"{n}={v!r}" for n, v in self.values)

    def flags(self) -> str:
        """The command-line options that bake these values: ``--optimizer adam --lr 0.001 ...``."""
        return " ".join(
            [f"--optimizer {self.optimizer}", *(f"--{n} {v!r}" for n, v in self.values)]
        )


def _no_strangers(optimizer: str, given: dict[str, object]) -> None:
    names = OPTIMIZERS[optimizer]
    strangers = [n for n in given if n not in names]
    if strangers:
        which = ", ".join(map(str, strangers))
        verb = "is not a hyperparameter" if len(strangers) == 1 else "are not hyperparameters"
        raise SpecError(f"{which} {verb} of {optimizer}; {optimizer} takes {', '.join(names)}")


def bake(optimizer: str | None = None, **hyperparameters: object) -> Baked | None:
    """The ``Baked`` settings for ``optimizer`` with ``hyperparameters`` (the others at
    their defaults: ``DEFAULT_LR[optimizer]``, ``DEFAULTS``), or None when neither is
    given. Hyperparameters without an optimizer, hyperparameters the optimizer does
    not have, and values out of range (``lr``, ``eps`` > 0; ``momentum``, ``beta1``,
    ``beta2`` in [0, 1)) raise ``SpecError``."""
    known = ("lr", *DEFAULTS)
    unknown = [n for n in hyperparameters if n not in known]
    if unknown:
        raise SpecError(
            f"unknown hyperparameter {', '.join(map(repr, unknown))}; they are {', '.join(known)}"
        )
    if optimizer is None:
        if hyperparameters:
            raise SpecError(
                f"{', '.join(hyperparameters)} given without an optimizer: hyperparameters are "
                "baked into one optimizer's step function; name it (sgd, momentum, nesterov, adam)"
            )
        return None
    if optimizer not in OPTIMIZERS:
        raise _unknown_optimizer(optimizer)
    _no_strangers(optimizer, hyperparameters)
    defaults = {"lr": DEFAULT_LR[optimizer], **DEFAULTS}
    values = {n: hyperparameters.get(n, defaults[n]) for n in OPTIMIZERS[optimizer]}
    return Baked(optimizer, tuple(values.items()))


__all__ = [
    "DEFAULTS",
    "DEFAULT_LR",
    "OPTIMIZERS",
    "STATE_FUNCTIONS",
    "STEP_FUNCTIONS",
    "Baked",
    "bake",
]
