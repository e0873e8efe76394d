"""The optimizer steps of a CUDA module, rendered from their one definition
(``codegen/optimizers.py``).

Each step function has one kernel (``sg_sgd``, ``sg_momentum``, ``sg_adam``) that updates
an array parameter and its state, one thread per element: the rule with its scratch
values written where they are read, one C expression per stored value. The kernels take
the hyperparameters, the folded numbers and the per-step numbers as arguments, so the
host computes those as the NumPy module does (in Python floats) and a baked module
passes literals to the same kernels. The host launches the kernel once per array
parameter and updates scalar parameters on floats, as the NumPy module does.
"""

from __future__ import annotations

from dataclasses import dataclass

from symgen.backends.numpy.steps import (
    Update,
    baked_doc,
    checked,
    frame,
    keywords,
    names,
    values_of,
)
from symgen.codegen.optimizers import STEPS, Baked, StepFunction, bound, spelling
from symgen.codegen.plan import tuple_text
from symgen.codegen.update_rules import (
    Branch,
    CPrinter,
    Let,
    Op,
    PythonPrinter,
    Ref,
    assignment,
    inline,
    python_lines,
    refs,
    rule_refs,
    stored,
)


@dataclass(frozen=True)
class UpdateKernel:
    """A ``__global__`` function updating one parameter: its C parameters, the lines run
    for each element ``e`` of the ``n``."""

    name: str
    params: tuple[str, ...]
    body: tuple[str, ...]


@dataclass(frozen=True)
class StepLine:
    """A host line of a step, with the names it defines and uses (for scheduling)."""

    code: str
    defines: frozenset[str]
    uses: frozenset[str]


def kernel_name(step: StepFunction) -> str:
    return f"sg_{step.name}"


def _arguments(step: StepFunction) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """The kernel's arrays (the parameter, its slots, its gradient), its numbers (in the
    order the rule reads them) and its flags."""
    arrays = ("p", *step.slots, "g")
    flags = tuple(name for name, _ in step.flags)
    read = rule_refs(step.rule)
    numbers = tuple(n for n in read if n not in arrays and n not in flags)
    return arrays, numbers, tuple(f for f in flags if f in read)


def kernel(step: StepFunction, ctype: str) -> UpdateKernel:
    """``step``'s kernel for ``ctype``: pointers to the arrays (writable where the rule sets
    them), then its numbers and flags, then the element count ``n``."""
    arrays, numbers, flags = _arguments(step)
    written = stored(step.rule)
    params = [
        f"{ctype}* __restrict__ {a}" if a in written else f"const {ctype}* __restrict__ {a}"
        for a in arrays
    ]
    params += [f"const {ctype} {n}" for n in numbers]
    params += [f"const bool {f}" for f in flags]
    printer = CPrinter(
        {**{a: f"{a}[e]" for a in arrays}, **{n: n for n in (*numbers, *flags)}}, ctype
    )
    return UpdateKernel(
        kernel_name(step),
        (*params, "const long long n"),
        tuple(_c_lines(inline(step.rule), printer)),
    )


def _c_lines(ops: tuple[Op, ...], printer: CPrinter) -> list[str]:
    """C statements for a rule without ``Let``: one assignment per ``Set``, ``if``/``else``
    for a branch."""
    lines: list[str] = []
    for op in ops:
        if isinstance(op, Branch):
            lines.append(f"if ({printer.names[op.flag]}) {{")
            lines += [f"    {line}" for line in _c_lines(op.then, printer)]
            lines.append("} else {")
            lines += [f"    {line}" for line in _c_lines(op.otherwise, printer)]
            lines.append("}")
        else:
            lines.append(assignment(op.target, op.value, printer) + ";")
    return lines


def kernels(ctype: str) -> tuple[UpdateKernel, ...]:
    """The update kernels of every step function."""
    return tuple(kernel(step, ctype) for step in STEPS)


def _line(ops: tuple[Op, ...], printer: PythonPrinter) -> StepLine:
    """One host line (an ``if``/``else`` for a branch) running ``ops`` on floats."""
    named = printer.names
    lets = {named[op.target] for op in ops if isinstance(op, Let)}
    defined = {named[t] for t in stored(ops)} | lets
    used = {named[r] for r in rule_refs(ops) if r in named}
    return StepLine("\n".join(python_lines(ops, printer)), frozenset(defined), frozenset(used))


def _launch(step: StepFunction, own: dict[str, str], terms: dict, flags: dict) -> StepLine:
    """The launch of ``step``'s kernel on one array parameter (``own``: its names)."""
    arrays, numbers, flag_names = _arguments(step)
    printer = PythonPrinter(own)
    values = [printer.doprint(terms.get(n, Ref(n))) for n in numbers]
    args = [own[a] for a in arrays]
    args += [f"DTYPE({v})" for v in values]
    args += [f"np.bool_({flags[f]!r})" if f in flags else f"np.bool_({own[f]})" for f in flag_names]
    p = own["p"]
    args.append(f"np.int64({p}.size)")
    used = {own[a] for a in arrays} | {
        own[r] for n in numbers for r in refs(terms.get(n, Ref(n))) if r in own
    }
    code = f"_launch({kernel_name(step)!r}, {p}.size, {tuple_text(args)})"
    return StepLine(code, frozenset(), frozenset(used))


def updates(
    params: tuple[str, ...],
    arrays: tuple[bool, ...],
    grads: tuple[str, ...],
    loss: str,
    baked: Baked | None,
) -> tuple[tuple[Update, tuple[StepLine, ...]], ...]:
    """sgd_step, momentum_step, adam_step of a CUDA module, each with its host lines after
    the gradient: one kernel launch per array parameter updates it and its state in place;
    scalar parameters and their state are new floats. The step of ``baked``'s optimizer
    passes its hyperparameters as literals (see the NumPy backend)."""
    out = []
    for step in STEPS:
        values = values_of(step, baked)
        prelude, rule = bound(step, values)
        terms, flags = spelling(step, values)
        around = frame(step, params, arrays, loss, "cp.zeros_like")
        shared = names(step)
        lines = []
        if around.unpack:
            counted = {shared[step.count]} if step.count else set()
            state = counted | {names(step, p)[slot] for slot in step.slots for p in params}
            lines.append(StepLine(around.unpack[0], frozenset(state), frozenset()))
        lines += [_line((op,), PythonPrinter(shared)) for op in prelude]
        for p, g, array in zip(params, grads, arrays, strict=True):
            own = names(step, p, g)
            if array:
                lines.append(_launch(step, own, terms, flags))
            else:
                lines += [_line((op,), PythonPrinter(own)) for op in inline(rule)]
        doc = step.doc + (baked_doc(baked) if values is not None else "")
        update = Update(
            step.function,
            doc,
            keywords(step, baked),
            (),
            around.returns,
            around.state,
            **checked(step, baked),
        )
        out.append((update, tuple(lines)))
    return tuple(out)


__all__ = ["StepLine", "UpdateKernel", "kernels", "updates"]
