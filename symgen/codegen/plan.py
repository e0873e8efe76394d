"""The backend-neutral module plan: what every generated module states, whatever runs it.

A backend turns a compiled problem into a plan (plain data) and renders it with its
module template, which extends ``templates/module.py.j2``. This module holds the
plan's common part and builds it (``module_fields``): the name and header, the loss
as text, the arguments and their checks, the baked optimizer's description. Each
backend's plan extends ``ModulePlan`` with its bodies' own form and its extras
(``backends.numpy.module.NumpyPlan``, ``backends.cuda.module.CudaPlan``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sympy as sp

from symgen.codegen.formulas import formula_text
from symgen.codegen.optimizers import Baked
from symgen.codegen.second_order import SecondOrderPlan, free_keyword
from symgen.compiler.pipeline import Compiled


@dataclass(frozen=True)
class Arg:
    name: str
    kind: str  # "scalar" | "vector" (per-sample data) | "matrix" | "labels" (class indices)
    shape: str  # for documentation and errors: "()", "(N,)", "(M, N_I)"
    #: Data declared binary (``Problem(binary=...)``): its entries are checked to be 0 or 1.
    binary: bool = False
    #: A column (n, 1) or row (1, n) matrix may be given as a 1-D array (n,): the shape
    #: it is viewed as then, "(-1, 1)" or "(1, -1)" ("" for other arguments), and the
    #: 1-D shape for messages, "(n,)". A parameter given 1-D gets its gradient 1-D.
    flat: str = ""
    flat_shape: str = ""
    #: Labels (``symgen.take``): the extents (dimension names or literals) their entries
    #: must stay below; the module checks their dtype (integers) and range.
    bounds: tuple[str, ...] = ()


@dataclass(frozen=True)
class DimCheck:
    """``arg.shape[axis]`` must equal ``dim`` (a dimension variable or a literal)."""

    arg: str
    axis: int
    dim: str
    source: str  # the argument that defined the dimension ("" for a literal)
    source_axis: int


@dataclass(frozen=True, kw_only=True)
class ModulePlan:
    """The fields every module template reads; a backend's plan adds its bodies and extras."""

    name: str
    header: tuple[str, ...]
    loss_text: str
    kind: str  # "scalar" | "per_sample" | "matrix"
    reduce: str
    dtype: str
    params: tuple[Arg, ...]
    data: tuple[Arg, ...]
    #: ``PARAMS`` and ``DATA`` as Python literals.
    params_literal: str
    data_literal: str
    #: ``LABELS`` (the data holding class labels) as a Python literal.
    labels_literal: str = "()"
    #: (dimension name, argument, axis) for each dimension symbol.
    dims: tuple[tuple[str, str, int], ...]
    checks: tuple[DimCheck, ...]
    #: (dimension, argument, "rows" or "columns") for each dimension the loss divides by
    #: (a mean written as ``sum(...)/(M*N_O)``): the module checks it is not 0.
    divisors: tuple[tuple[str, str, str], ...] = ()
    #: The sources of the module-level helpers the host lines call (``_safelog`` ...).
    helpers: tuple[str, ...] = ()
    #: The standard modules the module imports besides NumPy (``math``), or none.
    imports: frozenset[str] = frozenset()
    #: The optimizer whose step has its hyperparameters baked in, or None: then the
    #: docstring's paragraph on it, ``OPTIMIZER``/``HYPERPARAMETERS`` as Python
    #: literals, and the generic names (``step = adam_step``).
    baked: Baked | None = None
    baked_doc: tuple[str, ...] = ()
    baked_constants: tuple[tuple[str, str], ...] = ()
    aliases: tuple[tuple[str, str], ...] = ()
    #: The backend named in the docstring's first line ("" for the module's own), and a
    #: paragraph after it (why a backend computes as the NumPy module does).
    backend: str = ""
    note: tuple[str, ...] = ()
    #: ``hvp``, ``hessian`` and ``newton_step`` (``codegen/second_order.py``), or None.
    second: SecondOrderPlan | None = None
    #: ``residuals`` and ``jacobian`` of a least-squares loss, or None.
    least_squares: LeastSquaresPlan | None = None


@dataclass(frozen=True)
class LeastSquaresPlan:
    """The module's ``residuals`` and ``jacobian`` (``compiler.least_squares``): their bodies
    (in the backend's form), what they return, and the loss's scaling, ``loss ==
    scale * reduce(residuals**2)`` (``RESIDUAL_SCALE``, ``RESIDUAL_REDUCE``)."""

    residual_body: Any
    jacobian_body: Any
    #: The returned expressions: the residuals as a vector; the Jacobian's blocks side by
    #: side, one column per parameter element in PARAMS order; the residuals as the
    #: Jacobian's body computes them (for its ``keyword``: the array to fill with them).
    residual_value: str
    jacobian_value: str
    jacobian_residual_value: str
    keyword: str
    scale: str
    reduce: str
    #: The number of residuals and of parameter elements, as text (``N``, ``D + 1``).
    size: str
    parameters: str
    #: Lines before the Jacobian's body (the array its passes write columns of) and after
    #: it (the columns they did not write, copied in).
    jacobian_prologue: tuple[str, ...] = ()
    jacobian_epilogue: tuple[str, ...] = ()


def shape_text(shape: tuple) -> str:
    """A shape as a Python tuple literal: ``(N,)``, ``(M, K)``."""
    inner = ", ".join(str(d) for d in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


def tuple_text(items: list[str]) -> str:
    """Python expressions as a tuple literal: ``(a,)``, ``(a, b)``."""
    return f"({', '.join(items)}{',' if len(items) == 1 else ''})"


def checks(compiled: Compiled) -> tuple[DimCheck, ...]:
    """The dimension checks of the arguments: each axis that repeats a dimension another
    argument defines, or that has a literal extent."""
    lowered = compiled.lowered
    defined = {sym: (inp.name, axis) for sym, inp, axis in lowered.dims}
    found = []
    for inp in (*lowered.params, *lowered.data):
        for axis, d in enumerate(inp.shape):
            if isinstance(d, sp.Symbol):
                source, source_axis = defined[d]
                if (source, source_axis) != (inp.name, axis):
                    found.append(DimCheck(inp.name, axis, str(d), source, source_axis))
            else:
                found.append(DimCheck(inp.name, axis, str(d), "", 0))
    return tuple(found)


def divisors(compiled: Compiled) -> tuple[tuple[str, str, str], ...]:
    """The dimensions the loss divides by (a negative power of an expression that holds
    them), each with the argument and axis that define it, in ``lowered.dims`` order."""
    loss = compiled.problem.loss
    divided = set()
    for power in loss.atoms(sp.Pow):
        if power.exp.is_negative:
            divided |= power.base.free_symbols
    what = ("rows", "columns")
    return tuple(
        (str(sym), inp.name, what[axis])
        for sym, inp, axis in compiled.lowered.dims
        if sym in divided
    )


def baked_fields(baked: Baked | None) -> dict:
    """The ModulePlan fields describing ``baked``: docstring, constants, aliases."""
    if baked is None:
        return {}
    aliases = [("step", baked.step_function)]
    if baked.state_function:
        aliases.append(("step_state", baked.state_function))
    removed = ", ".join(baked.removed_keywords)
    return {
        "baked": baked,
        "baked_doc": (
            f"Optimizer baked in at generation time: {baked.optimizer} ({baked.describe()}).",
            f"{baked.step_function} has these values built in and takes no {removed} keywords;",
            " and ".join(f"{alias} is {target}" for alias, target in aliases) + ".",
            "The other step functions take their hyperparameters as keyword arguments.",
        ),
        "baked_constants": (
            ("OPTIMIZER", repr(baked.optimizer)),
            ("HYPERPARAMETERS", repr(baked.as_dict())),
        ),
        "aliases": tuple(aliases),
    }


def least_squares_plan(
    compiled: Compiled, residual_body: Any, jacobian_body: Any, matrix_name: str | None = None
) -> LeastSquaresPlan | None:
    """The ``least_squares`` field of a module whose backend wrote ``compiled.residuals``'s
    programs as ``residual_body`` and ``jacobian_body`` (None without residuals).
    ``matrix_name``: the (N, P) array whose columns the body's passes write (its results
    in ``jacobian_body.placed``; the others are copied into it), else the blocks are
    stacked side by side."""
    found = compiled.residuals
    if found is None:
        return None
    matrix = compiled.problem.kind == "matrix"
    (residual,) = residual_body.results
    *columns, again = jacobian_body.results
    shapes = dict(found.residual_program.shapes)
    size = sp.Mul(*shapes[residual]) if matrix else compiled.lowered.data[0].shape[0]
    params = compiled.lowered.params
    blocks = [
        f"{name}.ravel()" if matrix and not p.shape else name
        for name, p in zip(columns, params, strict=True)
    ]
    prologue: tuple[str, ...] = ()
    epilogue: tuple[str, ...] = ()
    if matrix_name is not None:
        jacobian = matrix_name
        prologue = (f"{matrix_name} = np.empty(({size}, {len(columns)}), dtype=DTYPE)",)
        epilogue = tuple(
            f"{matrix_name}[:, {i}] = {name}"
            for i, name in enumerate(columns)
            if name not in jacobian_body.placed
        )
    elif len(blocks) == 1 and matrix and params[0].shape:
        jacobian = blocks[0]  # already (residuals, elements)
    else:
        jacobian = f"np.column_stack({tuple_text(blocks)})"
    return LeastSquaresPlan(
        residual_body=residual_body,
        jacobian_body=jacobian_body,
        residual_value=f"{residual}.ravel()" if matrix else residual,
        jacobian_value=jacobian,
        jacobian_residual_value=f"{again}.ravel()" if matrix else again,
        jacobian_prologue=prologue,
        jacobian_epilogue=epilogue,
        keyword=free_keyword("residuals", {i.name for i in (*params, *compiled.lowered.data)}),
        scale=repr(float(found.scale)),
        reduce=found.reduce,
        size=str(size),
        parameters=str(sp.Add(*[sp.Mul(*p.shape) for p in params])),
    )


def module_fields(compiled: Compiled, source: str | None, baked: Baked | None) -> dict:
    """The ModulePlan fields of ``compiled`` (all but ``helpers`` and ``imports``), as
    keyword arguments for a backend's plan: ``source`` is the spec it came from (for the
    header)."""
    problem = compiled.problem
    lowered = compiled.lowered
    binary = {b.name for b in problem.binary}
    labels = {inp.name: bounds for inp, bounds in lowered.labels}

    def arg(inp) -> Arg:
        if not inp.shape:
            return Arg(inp.name, "scalar", "()")
        if inp.name in labels:
            bounds = tuple(str(b) for b in labels[inp.name])
            return Arg(inp.name, "labels", shape_text(inp.shape), bounds=bounds)
        if problem.kind == "per_sample":
            return Arg(inp.name, "vector", shape_text(inp.shape), inp.name in binary)
        rows, cols = inp.shape
        flat = "(-1, 1)" if cols == 1 else "(1, -1)" if rows == 1 else ""
        length = shape_text((rows if cols == 1 else cols,)) if flat else ""
        return Arg(inp.name, "matrix", shape_text(inp.shape), inp.name in binary, flat, length)

    params = tuple(arg(p) for p in lowered.params)
    data = tuple(arg(d) for d in lowered.data)
    origin = f"{source}, problem '{problem.name}'" if source else f"problem '{problem.name}'"
    header = (
        f"Generated by symgen {compiled.version} from {origin}.",
        f"Spec hash: sha256:{problem.spec_hash()}. Do not edit: regenerate with `symgen generate`.",
    )
    if baked is not None:
        header += (f"Baked in: {baked.step_function}, {baked.describe()} ({baked.flags()}).",)
    return {
        "name": problem.name,
        "header": header,
        "loss_text": formula_text(problem, problem.loss),
        "kind": problem.kind,
        "reduce": problem.reduce,
        "dtype": problem.dtype,
        "params": params,
        "data": data,
        "params_literal": repr(tuple(p.name for p in params)),
        "data_literal": repr(tuple(d.name for d in data)),
        "labels_literal": repr(tuple(d.name for d in data if d.kind == "labels")),
        "dims": tuple((str(sym), inp.name, axis) for sym, inp, axis in lowered.dims),
        "checks": checks(compiled),
        "divisors": divisors(compiled),
        **baked_fields(baked),
    }
