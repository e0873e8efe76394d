"""The optimizer steps of a NumPy module, rendered from their one definition
(``codegen/optimizers.py``).

A step function computes the loss and gradient, then updates each parameter by the
optimizer's rule: an array parameter and its state in place, with augmented assignments
and ``out=`` (the gradient's buffer is the rule's scratch ``g``, so a step allocates
little); a scalar parameter and its state as new floats, one expression each. The parts
that do not depend on the array library (signature, state, returns, host arithmetic)
serve the CUDA module too.
"""

from __future__ import annotations

from dataclasses import dataclass

from symgen.codegen.optimizers import REQUIRED, STEPS, Baked, StepFunction, bound
from symgen.codegen.plan import tuple_text
from symgen.codegen.update_rules import (
    COMMUTATIVE,
    Bin,
    Branch,
    Expr,
    Neg,
    Op,
    PythonPrinter,
    Ref,
    Sqrt,
    inline,
    python_lines,
    refs,
)

#: The NumPy function computing each operator into an ``out=`` array.
_UFUNCS = {"+": "np.add", "-": "np.subtract", "*": "np.multiply", "/": "np.divide"}


@dataclass(frozen=True)
class StateFunction:
    """The function creating a step's state: its name, docstring and returned value."""

    name: str
    doc: str
    value: str
    #: Whether the state starts with a step count, and how many per-parameter slots follow.
    count: bool = False
    slots: int = 0


@dataclass(frozen=True)
class Update:
    """An optimizer step: its keyword arguments (``state``, then the hyperparameters and
    flags, with their defaults), the lines after the gradient, what it returns."""

    name: str
    doc: str
    keywords: tuple[str, ...]
    lines: tuple[str, ...]
    returns: str
    state: StateFunction | None
    #: The keyword hyperparameters (real numbers) and flags (booleans) it checks before it
    #: changes anything (none when baked).
    numbers: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()


def baked_doc(baked: Baked) -> str:
    """The paragraph a baked step function's docstring ends with."""
    rule = f"{baked.rule_name}, " if baked.rule_name else ""
    return (
        f"\n\n    Baked in at generation time: {rule}{baked.describe()}"
        "\n    (no keyword arguments for them)."
    )


def values_of(step: StepFunction, baked: Baked | None) -> dict[str, float | bool] | None:
    """The numbers ``step`` has built in: ``baked``'s when it is that step's, else None."""
    return baked.settings() if baked is not None and baked.step == step else None


def keywords(step: StepFunction, baked: Baked | None) -> tuple[str, ...]:
    """The step function's keyword arguments as the signature spells them."""
    state = ("state",) if step.state_function else ()
    if values_of(step, baked) is not None:
        return state
    spelled = (n if d is REQUIRED else f"{n}={d!r}" for n, d in step.keywords())
    return (*state, *spelled)


def checked(step: StepFunction, baked: Baked | None) -> dict[str, tuple[str, ...]]:
    """``Update``'s ``numbers`` and ``flags``: the keyword arguments a step checks (none
    when ``baked`` holds them as literals)."""
    if values_of(step, baked) is not None:
        return {"numbers": (), "flags": ()}
    return {"numbers": step.hyperparameters, "flags": tuple(name for name, _ in step.flags)}


def names(step: StepFunction, param: str = "", grad: str = "") -> dict[str, str]:
    """What the generated code calls each quantity of ``step``'s rules: ``p`` and ``g`` the
    parameter and its gradient, a slot ``_{slot}_{param}``, the count and the per-step
    numbers ``_{name}``, hyperparameters and flags their keyword names."""
    out = {"p": param, "g": grad}
    out.update({slot: f"_{slot}_{param}" for slot in step.slots})
    out.update({name: f"_{name}" for name in step.per_step()})
    out.update({name: name for name in step.hyperparameters})
    out.update({name: name for name, _ in step.flags})
    return out


@dataclass(frozen=True)
class Frame:
    """What a step function does around its update: unpack the state, return it."""

    unpack: tuple[str, ...]
    returns: str
    state: StateFunction | None


def frame(
    step: StepFunction, params: tuple[str, ...], arrays: tuple[bool, ...], loss: str, zeros: str
) -> Frame:
    """The state is the count (if any), then one tuple per slot with an entry per
    parameter (one item alone is not wrapped); ``zeros``: the array library's
    ``zeros_like`` for array parameters' slots."""
    items = [names(step)[step.count]] if step.count else []
    items += [tuple_text([names(step, p)[slot] for p in params]) for slot in step.slots]
    new_params = tuple_text(list(params))
    if not items:
        return Frame((), f"{loss}, {new_params}", None)
    zero = [f"{zeros}({p})" if a else "0.0" for p, a in zip(params, arrays, strict=True)]
    initial = (["0"] if step.count else []) + [tuple_text(zero) for _ in step.slots]
    state = items[0] if len(items) == 1 else f"({', '.join(items)})"
    unpack = f"{items[0] if len(items) == 1 else ', '.join(items)} = state"
    value = initial[0] if len(initial) == 1 else f"({', '.join(initial)})"
    return Frame(
        (unpack,),
        f"{loss}, {new_params}, {state}",
        StateFunction(
            step.state_function or "", step.state_doc, value, bool(step.count), len(step.slots)
        ),
    )


def scalar_lines(rule: tuple[Op, ...], printer: PythonPrinter) -> list[str]:
    """A rule on floats: the scratch values written where they are read."""
    return python_lines(inline(rule), printer)


def inplace_lines(ops: tuple[Op, ...], printer: PythonPrinter) -> list[str]:
    """A rule on arrays: each value computed into its target's own buffer, in the
    rule's order of operations (``_m_W *= beta1``, ``np.sqrt(g, out=g)``)."""
    lines: list[str] = []
    for op in ops:
        if isinstance(op, Branch):
            lines.append(f"if {printer.names[op.flag]}:")
            lines += [f"    {line}" for line in inplace_lines(op.then, printer)]
            lines.append("else:")
            lines += [f"    {line}" for line in inplace_lines(op.otherwise, printer)]
        else:
            _into(op.target, op.value, printer, lines)
    return lines


def _into(target: str, e: Expr, printer: PythonPrinter, lines: list[str]) -> None:
    """Lines leaving the value of ``e`` in the array ``target``, which ``e`` may read."""
    name, here = printer.names[target], Ref(target)
    if e == here:
        return
    if isinstance(e, Sqrt):
        _into(target, e.arg, printer, lines)
        lines.append(f"np.sqrt({name}, out={name})")
        return
    if isinstance(e, Neg):
        _into(target, e.arg, printer, lines)
        lines.append(f"np.negative({name}, out={name})")
        return
    if not isinstance(e, Bin) or e.op not in _UFUNCS:
        raise ValueError(f"no in-place form for {target} = {e!r}")
    first, second = e.left, e.right
    if e.op in COMMUTATIVE and second == here:
        first, second = second, first
    if first == here:  # target op= second
        lines.append(f"{name} {e.op}= {printer.doprint(second)}")
        return
    orders = [(first, second), (second, first)] if e.op in COMMUTATIVE else [(first, second)]
    for into, other in orders:
        if isinstance(into, (Bin, Sqrt, Neg)) and target not in refs(other):
            _into(target, into, printer, lines)
            lines.append(f"{name} {e.op}= {printer.doprint(other)}")
            return
    first_text, second_text = printer.doprint(first), printer.doprint(second)
    lines.append(f"{_UFUNCS[e.op]}({first_text}, {second_text}, out={name})")


def updates(
    params: tuple[str, ...],
    arrays: tuple[bool, ...],
    grads: tuple[str, ...],
    loss: str,
    baked: Baked | None = None,
) -> tuple[Update, ...]:
    """sgd_step, momentum_step, adam_step of a NumPy module. The step function of
    ``baked``'s optimizer has its hyperparameters as literals (the same operations on the
    same numbers, so the same results bit for bit) and no keyword arguments for them;
    the others take them as keywords."""
    out = []
    for step in STEPS:
        prelude, rule = bound(step, values_of(step, baked))
        around = frame(step, params, arrays, loss, "np.zeros_like")
        lines = [*around.unpack, *python_lines(prelude, PythonPrinter(names(step)))]
        for p, g, array in zip(params, grads, arrays, strict=True):
            if array:
                lines += inplace_lines(rule, PythonPrinter(names(step, p, g), "np.sqrt"))
            else:
                lines += scalar_lines(rule, PythonPrinter(names(step, p, g)))
        doc = step.doc + (baked_doc(baked) if values_of(step, baked) is not None else "")
        out.append(
            Update(
                step.function,
                doc,
                keywords(step, baked),
                tuple(lines),
                around.returns,
                around.state,
                **checked(step, baked),
            )
        )
    return tuple(out)


__all__ = [
    "Frame",
    "StateFunction",
    "Update",
    "baked_doc",
    "checked",
    "frame",
    "inplace_lines",
    "keywords",
    "names",
    "scalar_lines",
    "updates",
    "values_of",
]
