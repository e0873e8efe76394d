"""The optimizers, defined once: what every backend renders and the runtime runs.

Each generated module has three step functions, ``sgd_step``, ``momentum_step`` (classical
momentum, or Nesterov's with ``nesterov=True``) and ``adam_step``; the four optimizers
(``sgd``, ``momentum``, ``nesterov``, ``adam``) run them. A ``StepFunction`` here says
everything about one: its hyperparameters (with their defaults and valid ranges, in
``HYPERPARAMETERS``), its flags, its state (per-parameter slots, a step count), the numbers
it computes once per step (``prelude``) and its update of one parameter (``rule``), both
written in ``update_rules``' small language, operation for operation as the generated code
does them:

* the NumPy backend prints the rule as Python on floats for scalar parameters, and as
  in-place NumPy statements for arrays (the gradient's buffer is the scratch ``g``);
* the C backend is the NumPy module (its passes compiled), steps included;
* the CUDA backend prints it as one fused kernel per step function, launched once per
  array parameter, and as Python on the host for scalar parameters;
* ``updater`` runs it on NumPy arrays and floats, for gradients computed elsewhere
  (``fit`` on Dask arrays), with the generated code's numbers.

By default a step function takes its hyperparameters as keyword arguments
(``adam_step(..., state, lr=0.001, beta1=0.9, ...)``). ``symgen generate SPEC --optimizer
adam --lr 1e-3`` (``symgen.generate(problem, optimizer="adam", lr=1e-3)``) bakes them into
that optimizer's step function instead (``bake``, ``Baked``): literal constants, with what
does not depend on the step count folded at generation time (``FOLDED``: ``1.0 - beta1``),
and no keywords for them.

To add an optimizer: its hyperparameters go in ``HYPERPARAMETERS`` (numbers folded from them
in ``FOLDED``), its ``StepFunction`` in ``STEPS`` and its name in ``OPTIMIZERS``; every
backend, ``fit``, ``bake`` and the command line follow, and ``tests/test_optimizer_matrix.py``
runs it on every backend (add its hyperparameters to ``HYPER`` there).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from symgen.codegen.update_rules import (
    Branch,
    Expr,
    Let,
    Num,
    Op,
    Ref,
    Set,
    bind,
    evaluate,
    refs,
    rule_refs,
    run,
    sqrt,
)
from symgen.errors import SpecError


@dataclass(frozen=True)
class Hyperparameter:
    name: str
    #: What it is, for help texts: "learning rate".
    meaning: str
    #: Its default (the learning rate's depends on the step function: ``StepFunction.lr``).
    default: float | None
    #: Valid values: above ``low`` (or equal when ``low_included``), below ``high``.
    low: float
    low_included: bool
    high: float | None
    wording: str


HYPERPARAMETERS: dict[str, Hyperparameter] = {
    h.name: h
    for h in (
        Hyperparameter("lr", "learning rate", None, 0.0, False, None, "a finite number > 0"),
        Hyperparameter("momentum", "velocity decay", 0.9, 0.0, True, 1.0, "in [0, 1)"),
        Hyperparameter("beta1", "first-moment decay", 0.9, 0.0, True, 1.0, "in [0, 1)"),
        Hyperparameter("beta2", "second-moment decay", 0.999, 0.0, True, 1.0, "in [0, 1)"),
        Hyperparameter(
            "eps", "added to the root of the second moment", 1e-8, 0.0, False, None,
            "a finite number > 0",
        ),
    )
}  # fmt: skip

# The quantities the rules are written on.
P, G = Ref("p"), Ref("g")  # the parameter; its gradient (then scratch)
LR, MOMENTUM, BETA1, BETA2, EPS = Ref("lr"), Ref("momentum"), Ref("beta1"), Ref("beta2"), Ref("eps")
V, M, S = Ref("v"), Ref("m"), Ref("s")  # velocity; first and second moments
STEP, C1, C2 = Ref("step"), Ref("c1"), Ref("c2")  # Adam's step count and bias corrections
NEG_LR, ONE_MINUS_BETA1, ONE_MINUS_BETA2 = (
    Ref("neg_lr"),
    Ref("one_minus_beta1"),
    Ref("one_minus_beta2"),
)

#: Numbers computed from the hyperparameters alone: at run time from keyword arguments
#: (``(1.0 - beta1)``), at generation time when baked (the same operation on the same
#: numbers, so the same result).
FOLDED: dict[str, Expr] = {
    "neg_lr": -LR,
    "one_minus_beta1": 1.0 - BETA1,
    "one_minus_beta2": 1.0 - BETA2,
}


@dataclass(frozen=True)
class StepFunction:
    """One generated step function (``{name}_step``) and its state function (``{name}_state``)."""

    name: str
    doc: str
    hyperparameters: tuple[str, ...]
    #: The learning rate used when none is given (``fit``, ``bake``).
    lr: float
    #: The generated function's ``lr`` keyword has no default (a learning rate for plain
    #: gradient descent depends on the problem; Adam's steps are scaled, so it has one).
    lr_required: bool
    #: Boolean keyword arguments choosing a variant of the rule, with their defaults.
    flags: tuple[tuple[str, bool], ...]
    #: Per-parameter state (zeros to start with), in the order the state holds them.
    slots: tuple[str, ...]
    #: The step count, when the rule needs one (a state entry before the slots, from 0).
    count: str | None
    state_doc: str
    #: Once per step, before the parameters: the count, the per-step numbers.
    prelude: tuple[Op, ...]
    #: The update of one parameter ``p`` from its gradient ``g``.
    rule: tuple[Op, ...]

    @property
    def function(self) -> str:
        return f"{self.name}_step"

    @property
    def state_function(self) -> str | None:
        return f"{self.name}_state" if self.slots or self.count else None

    def keywords(self) -> tuple[tuple[str, object], ...]:
        """The generated function's keyword arguments after ``state``, each with its
        default (``REQUIRED`` for none), in order."""
        out: list[tuple[str, object]] = []
        for name in self.hyperparameters:
            default = self.lr if name == "lr" else HYPERPARAMETERS[name].default
            out.append((name, REQUIRED if name == "lr" and self.lr_required else default))
        return (*out, *self.flags)

    def per_step(self) -> tuple[str, ...]:
        """The quantities one step shares between its parameters: the count, the prelude's
        numbers."""
        counted = (self.count,) if self.count else ()
        return tuple(dict.fromkeys((*counted, *(op.target for op in self.prelude))))

    def folded(self) -> tuple[str, ...]:
        """The folded numbers its hyperparameters give (``FOLDED``)."""
        return tuple(k for k, e in FOLDED.items() if refs(e) <= set(self.hyperparameters))


#: The default of a keyword argument that has none.
REQUIRED = object()

SGD = StepFunction(
    name="sgd",
    doc="One gradient-descent step: p -= lr*grad.",
    hyperparameters=("lr",),
    lr=0.01,
    lr_required=True,
    flags=(),
    slots=(),
    count=None,
    state_doc="",
    prelude=(),
    rule=(Set("p", P - LR * G),),
)

MOMENTUM_STEP = StepFunction(
    name="momentum",
    doc="Gradient descent with momentum, classical or Nesterov's:\n"
    "    v = momentum*v - lr*grad;  p += v   (Nesterov: p += momentum*v - lr*grad).",
    hyperparameters=("lr", "momentum"),
    lr=0.01,
    lr_required=True,
    flags=(("nesterov", False),),
    slots=("v",),
    count=None,
    state_doc="Velocities (zeros), one per parameter, for momentum_step.",
    prelude=(),
    rule=(
        Set("v", MOMENTUM * V - LR * G),
        Branch(
            "nesterov",
            # the look-ahead step momentum*v - lr*g, built in the gradient's buffer
            (Let("g", NEG_LR * G + MOMENTUM * V), Set("p", P + G)),
            (Set("p", P + V),),
        ),
    ),
)

ADAM = StepFunction(
    name="adam",
    doc="One Adam step (Kingma & Ba), with bias correction; k counts the steps:\n"
    "    m = beta1*m + (1-beta1)*g;  s = beta2*s + (1-beta2)*g**2;\n"
    "    p -= lr/(1-beta1**k) * m / (sqrt(s/(1-beta2**k)) + eps).",
    hyperparameters=("lr", "beta1", "beta2", "eps"),
    lr=0.001,
    lr_required=False,
    flags=(),
    slots=("m", "s"),
    count="step",
    state_doc="(step count, first moments, second moments), all zero, for adam_step.",
    prelude=(
        Set("step", STEP + 1),
        Let("c1", LR / (1.0 - BETA1**STEP)),
        Let("c2", 1.0 / (1.0 - BETA2**STEP)),
    ),
    rule=(
        Set("m", BETA1 * M + ONE_MINUS_BETA1 * G),
        Let("g", G * G),
        Set("s", BETA2 * S + ONE_MINUS_BETA2 * G),
        Let("g", sqrt(S * C2) + EPS),
        Let("g", C1 * (M / G)),
        Set("p", P - G),
    ),
)


def _well_formed(*steps: StepFunction) -> tuple[StepFunction, ...]:
    """The steps, once each rule reads only the quantities its step has (and its prelude
    has no branch: it runs once for all parameters)."""
    for step in steps:
        if any(isinstance(op, Branch) for op in step.prelude):
            raise ValueError(f"{step.function}: a branch in the prelude")
        known = {"p", "g", *step.slots, *step.per_step(), *step.hyperparameters, *step.folded()}
        known |= {name for name, _ in step.flags}
        unknown = [n for n in rule_refs((*step.prelude, *step.rule)) if n not in known]
        if unknown:
            raise ValueError(f"{step.function}: unknown quantities {', '.join(unknown)}")
    return steps


#: The generated step functions, in the order a module defines them.
STEPS: tuple[StepFunction, ...] = _well_formed(SGD, MOMENTUM_STEP, ADAM)


@dataclass(frozen=True)
class Optimizer:
    name: str
    step: StepFunction
    #: The flags the optimizer fixes (Nesterov's momentum: ``nesterov=True``).
    flags: tuple[tuple[str, bool], ...] = ()
    #: How a baked module's docstring names the rule ("Nesterov's momentum").
    rule_name: str = ""

    def flag_values(self) -> dict[str, bool]:
        return {**dict(self.step.flags), **dict(self.flags)}


OPTIMIZERS: dict[str, Optimizer] = {
    o.name: o
    for o in (
        Optimizer("sgd", SGD),
        Optimizer("momentum", MOMENTUM_STEP, (("nesterov", False),), "classical momentum"),
        Optimizer("nesterov", MOMENTUM_STEP, (("nesterov", True),), "Nesterov's momentum"),
        Optimizer("adam", ADAM),
    )
}
#: The generated function each optimizer runs (Nesterov's is ``momentum_step``).
STEP_FUNCTIONS: dict[str, str] = {o.name: o.step.function for o in OPTIMIZERS.values()}
#: The generated function creating each optimizer's state (SGD has none).
STATE_FUNCTIONS: dict[str, str | None] = {
    o.name: o.step.state_function for o in OPTIMIZERS.values()
}
#: Learning rates used when none is given (``bake``, ``symgen.fit``, ``symgen train``).
DEFAULT_LR: dict[str, float] = {o.name: o.step.lr for o in OPTIMIZERS.values()}
#: Defaults of the other hyperparameters: those of the generated step functions.
DEFAULTS: dict[str, float] = {
    h.name: h.default for h in HYPERPARAMETERS.values() if h.default is not None
}


def help_text(name: str) -> str:
    """What a hyperparameter is, who takes it and its default, for command-line help:
    ``adam: second-moment decay (default: 0.999)``; the learning rate's default by
    optimizer (``0.001 adam, else 0.01``)."""
    users = [o.name for o in OPTIMIZERS.values() if name in o.step.hyperparameters]
    who = "" if len(users) == len(OPTIMIZERS) else f"{', '.join(users)}: "
    hyper = HYPERPARAMETERS[name]
    if hyper.default is not None:
        return f"{who}{hyper.meaning} (default: {hyper.default!r})"
    usual = max(set(DEFAULT_LR.values()), key=list(DEFAULT_LR.values()).count)
    others = [f"{v!r} {o}" for o, v in DEFAULT_LR.items() if v != usual]
    return f"{who}{hyper.meaning} (default: {', '.join(others)}, else {usual!r})"


def spelling(
    step: StepFunction, values: Mapping[str, float] | None
) -> tuple[dict[str, Expr], dict[str, bool]]:
    """What the rules of ``step`` read for each hyperparameter and folded number, and the
    flags that are fixed: the keyword arguments by name (a folded number as its
    expression, ``1.0 - beta1``) and no fixed flag when ``values`` is None; else the
    values as numbers, the folded ones computed here (``values`` names the flags too)."""
    if values is None:
        return {**{n: Ref(n) for n in step.hyperparameters}, **FOLDED}, {}
    plain = {n: float(values[n]) for n in step.hyperparameters}
    spelled: dict[str, Expr] = {n: Num(v) for n, v in plain.items()}
    spelled.update({n: Num(evaluate(FOLDED[n], plain)) for n in step.folded()})
    flags = {name: bool(values[name]) for name, _ in step.flags if name in values}
    return spelled, flags


def bound(step: StepFunction, values: Mapping[str, float] | None) -> tuple[tuple, tuple]:
    """``step``'s prelude and rule as a module spells them (see ``spelling``)."""
    terms, flags = spelling(step, values)
    return bind(step.prelude, terms, flags), bind(step.rule, terms, flags)


# -- hyperparameters baked into the generated code -----------------------------------------


def _checked(optimizer: str, name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise SpecError(f"hyperparameter {name} must be a number, got {value!r}")
    number = float(value) + 0.0  # -0.0 becomes 0.0: one spelling of each value
    hyper = HYPERPARAMETERS[name]
    if (
        not math.isfinite(number)
        or number < hyper.low
        or (number == hyper.low and not hyper.low_included)
        or (hyper.high is not None and number >= hyper.high)
    ):
        raise SpecError(f"{optimizer}: {name} must be {hyper.wording}, got {value!r}")
    return number


def _unknown_optimizer(optimizer: object) -> SpecError:
    return SpecError(f"unknown optimizer {optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")


@dataclass(frozen=True)
class Baked:
    """An optimizer whose hyperparameters are built into the generated step function.

    ``values``: every hyperparameter of ``optimizer`` with its value, in the step
    function's order (checked and put in that order on construction). ``bake`` fills
    in the defaults.
    """

    optimizer: str
    values: tuple[tuple[str, float], ...]

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise _unknown_optimizer(self.optimizer)
        names = self.step.hyperparameters
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
    def step(self) -> StepFunction:
        """The step function that has the values built in."""
        return OPTIMIZERS[self.optimizer].step

    @property
    def rule_name(self) -> str:
        """How the docstrings name the rule ("Nesterov's momentum"; "" when unambiguous)."""
        return OPTIMIZERS[self.optimizer].rule_name

    @property
    def step_function(self) -> str:
        """The generated function that has the values built in (``adam_step``)."""
        return self.step.function

    @property
    def state_function(self) -> str | None:
        """The function creating that step's state (``adam_state``), None for SGD."""
        return self.step.state_function

    @property
    def removed_keywords(self) -> tuple[str, ...]:
        """The step function's keyword arguments that baking removes."""
        return tuple(name for name, _ in self.step.keywords())

    def settings(self) -> dict[str, float | bool]:
        """The values with the flags the optimizer fixes (``nesterov``)."""
        return {**dict(self.values), **OPTIMIZERS[self.optimizer].flag_values()}

    def constants(self) -> dict[str, float | bool]:
        """The numbers the update rule uses, the folded ones included, by name: the
        hyperparameters; ``neg_lr`` (``-lr``); for momentum, ``nesterov`` (a bool:
        which rule); for Adam, ``one_minus_beta1`` and ``one_minus_beta2`` (``1.0 -
        beta``, computed here exactly as the generated code would at run time, so the
        results are bit-identical). The bias corrections ``1 - beta**k`` depend on the
        step count ``k`` and stay in the generated code."""
        terms, flags = spelling(self.step, self.settings())
        return {**{n: e.value for n, e in terms.items() if isinstance(e, Num)}, **flags}

    def describe(self) -> str:
        """``lr=0.001, beta1=0.9, beta2=0.999, eps=1e-08`` (floats as ``repr``)."""
        return ", ".join(f"{n}={v!r}" for n, v in self.values)

    def flags(self) -> str:
        """The command-line options that bake these values: ``--optimizer adam --lr 0.001 ...``."""
        return " ".join(
            [f"--optimizer {self.optimizer}", *(f"--{n} {v!r}" for n, v in self.values)]
        )


def _no_strangers(optimizer: str, given: Mapping[str, object]) -> None:
    names = OPTIMIZERS[optimizer].step.hyperparameters
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
    unknown = [n for n in hyperparameters if n not in HYPERPARAMETERS]
    if unknown:
        raise SpecError(
            f"unknown hyperparameter {', '.join(map(repr, unknown))}; "
            f"they are {', '.join(HYPERPARAMETERS)}"
        )
    if optimizer is None:
        if hyperparameters:
            raise SpecError(
                f"{', '.join(hyperparameters)} given without an optimizer: hyperparameters are "
                f"baked into one optimizer's step function; name it ({', '.join(OPTIMIZERS)})"
            )
        return None
    if optimizer not in OPTIMIZERS:
        raise _unknown_optimizer(optimizer)
    _no_strangers(optimizer, hyperparameters)
    defaults = {"lr": DEFAULT_LR[optimizer], **DEFAULTS}
    step = OPTIMIZERS[optimizer].step
    values = {n: hyperparameters.get(n, defaults[n]) for n in step.hyperparameters}
    return Baked(optimizer, tuple(values.items()))


# -- the update on gradients computed elsewhere --------------------------------------------


class Updater:
    """``update(params, grads) -> new params``: ``optimizer``'s update with ``options``
    (the step function's keyword arguments: ``lr``, ``beta1``, ``nesterov``, ...; the
    others at their defaults), keeping its state (zeros for ``params``' shapes to start
    with). The operations of the generated step function, so its numbers: array
    parameters (NumPy) and their state are updated in place, scalar ones are new floats.
    ``state`` is the state as the step function returns it."""

    def __init__(self, optimizer: str, options: Mapping[str, Any], params: list[Any]) -> None:
        if optimizer not in OPTIMIZERS:
            raise _unknown_optimizer(optimizer)
        chosen = OPTIMIZERS[optimizer]
        self.step = step = chosen.step
        keywords = dict(step.keywords())
        unknown = sorted(set(options) - set(keywords))
        if unknown:
            raise TypeError(f"{step.function}() takes no keyword {', '.join(map(repr, unknown))}")
        settings = {**keywords, **chosen.flag_values(), **options}
        missing = [n for n, v in settings.items() if v is REQUIRED]
        if missing:
            raise TypeError(f"{step.function}() needs {', '.join(missing)}")
        self.prelude, self.rule = bound(step, settings)
        self.count = 0
        self.slots = [
            {slot: np.zeros_like(p) if _is_array(p) else 0.0 for slot in step.slots} for p in params
        ]

    def __call__(self, params: list[Any], grads: tuple[Any, ...]) -> tuple[Any, ...]:
        shared: dict[str, Any] = {self.step.count: self.count} if self.step.count else {}
        run(self.prelude, shared)
        if self.step.count:
            self.count = shared[self.step.count]
        out = []
        for p, g, slots in zip(params, grads, self.slots, strict=True):
            env = {**shared, **slots, "p": p, "g": g}
            run(self.rule, env)
            if _is_array(p):  # in place, as the generated code updates them
                for name, array in (("p", p), *slots.items()):
                    np.copyto(array, env[name])
                out.append(p)
            else:
                slots.update({name: env[name] for name in slots})
                out.append(env["p"])
        return tuple(out)

    @property
    def state(self) -> Any:
        """The count (if any), then a tuple per slot with an entry per parameter (one
        item alone is not wrapped); None for SGD."""
        items = [self.count] if self.step.count else []
        items += [tuple(slots[name] for slots in self.slots) for name in self.step.slots]
        return items[0] if len(items) == 1 else tuple(items) if items else None


def updater(optimizer: str, options: Mapping[str, Any], params: list[Any]) -> Updater:
    """``Updater(optimizer, options, params)``: the update ``fit`` applies to gradients
    computed elsewhere (summed over Dask chunks)."""
    return Updater(optimizer, options, params)


def _is_array(value: Any) -> bool:
    return isinstance(value, np.ndarray)


__all__ = [
    "DEFAULTS",
    "DEFAULT_LR",
    "HYPERPARAMETERS",
    "OPTIMIZERS",
    "STATE_FUNCTIONS",
    "STEPS",
    "STEP_FUNCTIONS",
    "Baked",
    "Optimizer",
    "StepFunction",
    "Updater",
    "bake",
    "bound",
    "help_text",
    "spelling",
    "updater",
]
