"""What a module's second-order functions state, whatever runs them: ``hvp``, ``hessian``
and ``newton_step`` (``compiler/second_order.py`` makes their programs).

The backend plans the bodies (``hvp_body``, ``hessian_body``, ``newton_body``); this module
writes the rest as plain lines: the size P of the flattened parameters, the dense Hessian
``_hessian`` assembled from the program's outputs (a literal of the second partials, or
the blocks put in place, their mirror images below the diagonal), the gradient as one
vector, and the Newton update of each parameter.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from symgen.compiler.ir import Input
from symgen.compiler.pipeline import Compiled
from symgen.compiler.second_order import HessianForm

#: The most parameters ``hessian`` (and ``newton_step``) take: a 4096 x 4096 float64
#: Hessian is 128 MiB, and its Cholesky factorization a second or so. Beyond it, ``hvp``.
HESSIAN_LIMIT = 4096


@dataclass(frozen=True)
class SecondOrderPlan:
    """The second-order part of a module plan."""

    #: The keyword of ``hvp``'s directions (``v``, or ``v_`` when a symbol is named v),
    #: ``newton_step``'s damping keyword and the one of the array it fills with the gradient.
    keyword: str
    damping: str
    gradient_keyword: str
    #: The names the hvp body reads the directions under, in PARAMS order.
    directions: tuple[str, ...]
    #: The backend's body of ``H v`` (its results: one per parameter).
    hvp_body: object
    #: "entries", "blocks" or "directions" (``HessianForm.kind``); whether the module has
    #: ``hessian`` and ``newton_step`` (the CUDA module has ``hvp`` only).
    kind: str
    dense: bool
    #: P as a Python expression of the dimensions (``D + 1``).
    size: str
    #: The backend's bodies of the Hessian's outputs and of (loss, gradients, outputs)
    #: (None for ``directions``: the module calls the hvp along unit vectors).
    hessian_body: object | None = None
    newton_body: object | None = None
    #: Lines making ``_hessian`` from the outputs of ``hessian_body``, and of ``newton_body``.
    assembly: tuple[str, ...] = ()
    newton_assembly: tuple[str, ...] = ()
    #: ``newton_step``: the line flattening the gradient, the lines updating each parameter
    #: by ``_step`` (floats: new values; arrays: in place).
    gradient: str = ""
    updates: tuple[str, ...] = ()
    limit: int = HESSIAN_LIMIT
    #: The body of the Hessian with its symmetric products ``A.T @ (c ⊙ A)`` (the
    #: program ``direct_program``), its assembly, and the condition (of the dimensions)
    #: under which ``hessian`` runs it; None where the backend has no such choice.
    direct_body: object | None = None
    direct_assembly: tuple[str, ...] = ()
    direct_when: str | None = None
    direct_at_most: int | None = None


def free_keyword(base: str, taken: set[str]) -> str:
    """``base``, or ``base_`` (then ``base__`` ...) if a symbol of the problem has that name."""
    while base in taken:
        base += "_"
    return base


def _size(p: Input) -> sp.Expr:
    return sp.Mul(*p.shape) if p.shape else sp.S.One


def _slice(start: sp.Expr, size: sp.Expr) -> str:
    return f"{start}:{start + size}"


def assembly(form: HessianForm, params: tuple[Input, ...], outputs: tuple[str, ...]):
    """Lines leaving the dense Hessian in ``_hessian`` from ``outputs`` (the program's
    outputs of ``form.pairs``): a literal of the second partials; else the blocks in
    place, each diagonal block symmetrized unless it is exactly symmetric (a lone block
    that is: the output itself)."""
    value = dict(zip(form.pairs, outputs, strict=True))
    if form.kind == "entries":
        n = len(params)
        rows = [f"[{', '.join(value[min(i, j), max(i, j)] for j in range(n))}]" for i in range(n)]
        return (f"_hessian = np.array([{', '.join(rows)}], dtype=DTYPE)",)
    if len(form.pairs) == 1:  # a lone block: the output itself, or its symmetric part
        if form.symmetric[0]:
            return (f"_hessian = {outputs[0]}",)
        return (f"_hessian = {outputs[0]} + {outputs[0]}.T", "_hessian *= 0.5")
    starts, at = [], sp.S.Zero
    for p in params:
        starts.append(at)
        at += _size(p)
    lines = [f"_hessian = np.empty(({at}, {at}), dtype=DTYPE)"]
    for ((p, q), name), symmetric in zip(value.items(), form.symmetric, strict=True):
        rows = _slice(starts[p], _size(params[p]))
        cols = _slice(starts[q], _size(params[q]))
        if p != q:
            lines += [f"_hessian[{rows}, {cols}] = {name}", f"_hessian[{cols}, {rows}] = {name}.T"]
        elif symmetric:
            lines.append(f"_hessian[{rows}, {cols}] = {name}")
        else:
            lines.append(f"np.add({name}, {name}.T, out=_hessian[{rows}, {cols}])")
            lines.append(f"_hessian[{rows}, {cols}] *= 0.5")
    return tuple(lines)


def updates(params: tuple[Input, ...]) -> tuple[str, ...]:
    """Each parameter moved by its part of ``_step``: a float to a new float, an array in
    place (``_step`` is float64: a float32 array takes it rounded)."""
    lines, at = [], sp.S.Zero
    for p in params:
        size = _size(p)
        if not p.shape:
            lines.append(f"{p.name} = {p.name} - float(_step[{at}])")
        else:
            lines.append(f"{p.name} -= _step[{_slice(at, size)}].reshape({p.name}.shape)")
        at += size
    return tuple(lines)


def size(compiled: Compiled) -> str:
    """P, the number of parameters, as a Python expression of the dimensions."""
    return str(sp.Add(*[_size(p) for p in compiled.lowered.params]))


def plan(
    compiled: Compiled,
    hvp_body,
    dense: bool,
    hessian_body=None,
    newton_body=None,
    direct_body=None,
    direct_when: str | None = None,
    direct_at_most: int | None = None,
) -> SecondOrderPlan:
    """The second-order plan of ``compiled`` with the backend's bodies; ``dense``: whether
    the module has ``hessian`` and ``newton_step`` (then with the bodies of the Hessian's
    programs, unless it is computed from hvps along unit vectors); ``direct_body``: the
    body of ``direct_program``, run when ``direct_when`` holds (``direct_at_most``: the
    module's constant that the condition reads)."""
    second = compiled.second_order
    lowered = compiled.lowered
    params = lowered.params
    taken = {i.name for i in (*params, *lowered.data)}
    form = second.hessian
    fields = {}
    grads = [s.name for s in compiled.grad_program.outputs[1:]]
    if hessian_body is not None:
        newton_outputs = tuple(s.name for s in second.newton_program.outputs[1 + len(params) :])
        grads = [s.name for s in second.newton_program.outputs[1 : 1 + len(params)]]
        fields = {
            "hessian_body": hessian_body,
            "newton_body": newton_body,
            "assembly": assembly(form, params, hessian_body.results),
            "newton_assembly": assembly(form, params, newton_outputs),
        }
    if direct_body is not None:
        fields.update(
            direct_body=direct_body,
            direct_assembly=assembly(second.direct, params, direct_body.results),
            direct_when=direct_when,
            direct_at_most=direct_at_most,
        )
    return SecondOrderPlan(
        keyword=free_keyword("v", taken),
        damping=free_keyword("damping", taken),
        gradient_keyword=free_keyword("gradient", taken),
        directions=tuple(d.name for d in second.directions),
        hvp_body=hvp_body,
        kind=form.kind,
        dense=dense,
        size=size(compiled),
        gradient=f"_gradient = _flat(({', '.join(grads)},))",
        updates=updates(params),
        **fields,
    )
