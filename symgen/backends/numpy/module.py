"""The NumPy backend: program → plan (plain data) → ``numpy_module.py.j2``.

Scalar problems compute on Python floats with ``math`` (a Rosenbrock step is a
few microseconds); per-sample problems compute on NumPy arrays, one pass over
the samples for the loss and all partials, with sums written as ``np.dot``
where a product is summed; matrix problems call ``@`` (BLAS) for products,
with transposes passed as views, and fused NumPy expressions around them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Protocol

import sympy as sp

from symgen.backends.numpy.inplace import InPlace
from symgen.codegen.hyperparams import Baked
from symgen.codegen.plan import Arg, ModulePlan, module_fields
from symgen.codegen.plan import baked_step_doc as _baked_doc
from symgen.codegen.plan import shape_text as _shape_text
from symgen.codegen.plan import tuple_text as _tuple
from symgen.codegen.plan import update_terms as _terms
from symgen.codegen.printers import ArrayPrinter, ScalarPrinter, python_helpers
from symgen.codegen.templating import render
from symgen.compiler.optimize import Kernel, Program, Stmt, transposed
from symgen.compiler.pipeline import Compiled

TEMPLATES = (Path(__file__).parent / "templates",)


class CompiledPasses(Protocol):
    """What a module whose passes run as compiled code carries (``backends.c``)."""

    source: str
    kernels: tuple
    accumulators: tuple[int, ...]


class PassCompiler(Protocol):
    """A backend that runs some passes of the NumPy module as compiled code (``backends.c``):
    it is handed each pass while the module is planned, and says which it takes."""

    def fused_products(self, program: Program, shapes: dict[str, tuple]) -> dict: ...

    def pass_lines(self, kernel, prefix, shapes, stored, scalar_line, products=None): ...

    def module(self, name: str) -> CompiledPasses | None: ...


@dataclass(frozen=True)
class Body:
    """Statements of one function, grouped by kernel, each group with a comment."""

    groups: tuple[tuple[str, tuple[str, ...]], ...]
    results: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class NumpyPlan(ModulePlan):
    """A NumPy module: the bodies as lines of Python grouped by pass, in the versions of
    the helpers that take arrays too; the C backend's compiled passes, if any."""

    loss_body: Body
    grad_body: Body
    #: The optimizer steps (sgd_step, momentum_step, adam_step) and their states.
    updates: tuple[Update, ...]
    #: The C backend's compiled passes (their C source and signatures), or None.
    native: CompiledPasses | None = None


class _StatementPrinter:
    def __init__(self, arrays: frozenset[str], dtype: str) -> None:
        self.scalar = ScalarPrinter()
        self.array = ArrayPrinter(arrays)
        self.dtype = dtype

    def line(self, stmt: Stmt, kernel: Kernel) -> str:
        target = stmt.target.name
        kind = stmt.kind
        if kind == "scalar":
            e = stmt.exprs[0]
            return (
                f"{target} = {float(e)!r}"
                if e.is_Number
                else f"{target} = {self.scalar.doprint(e)}"
            )
        a = [self.array.doprint(e) for e in stmt.exprs]
        if kind == "array":
            e = stmt.exprs[0]  # never hand out an argument (or a view of one) as a result
            copy = e.is_Symbol or (isinstance(e, transposed) and e.args[0].is_Symbol)
            return f"{target} = np.array({a[0]})" if copy else f"{target} = {a[0]}"
        if kind == "fill":
            shape = _shape_text(tuple(stmt.exprs[1:]))
            if self.array._is_array(stmt.exprs[0]):
                return f"{target} = np.broadcast_to({a[0]}, {shape}).copy()"
            return f"{target} = np.full({shape}, {a[0]}, dtype=DTYPE)"
        if kind == "matmul":
            return f"{target} = {a[0]} @ {a[1]}"
        if kind == "eye":
            return f"{target} = np.eye({self.scalar.doprint(stmt.exprs[0])}, dtype=DTYPE)"
        if kind == "dot":
            fn = "np.dot" if len(kernel.domain) == 1 else "np.vdot"
            return f"{target} = float({fn}({a[0]}, {a[1]}))"
        fn = "np.sum" if kind == "sum" else "np.max"
        if not stmt.axes:
            return f"{target} = float({fn}({a[0]}))"
        axes = ", ".join(str(x) for x in stmt.axes)
        return f"{target} = {fn}({a[0]}, axis=({axes},), keepdims=True)"


@dataclass(frozen=True)
class Update:
    """An optimizer step: extra keyword arguments, the lines after the gradient, what it returns."""

    name: str
    doc: str
    kwargs: str
    lines: tuple[str, ...]
    returns: str
    #: The function creating its state: (name, doc, lines, returned expression), or None.
    state: tuple[str, str, tuple[str, ...], str] | None


def _updates(
    params: tuple[Arg, ...], grads: tuple[str, ...], loss: str, baked: Baked | None = None
) -> tuple[Update, ...]:
    """sgd_step, momentum_step, adam_step: array parameters and their state are updated in
    place (augmented assignment and ``out=``, the gradient buffer reused as scratch);
    scalar parameters and their state are returned as new floats.

    The step function of ``baked``'s optimizer has its hyperparameters as literals
    (the same operations on the same numbers, so the same results bit for bit)
    and no keyword arguments for them; the others take them as keywords."""
    names = [p.name for p in params]
    pairs = [(p.name, g, p.kind != "scalar") for p, g in zip(params, grads, strict=True)]
    zeros = [f"np.zeros_like({n})" if a else "0.0" for n, _, a in pairs]

    k, _ = _terms(baked, "sgd_step")
    sgd = [f"{n} -= {k['lr']}*{g}" if a else f"{n} = {n} - {k['lr']}*{g}" for n, g, a in pairs]

    k, nesterov = _terms(baked, "momentum_step")
    momentum = [f"{_tuple([f'_v_{n}' for n in names])} = state"]
    for n, g, a in pairs:
        if a:
            ahead = [f"{g} *= {k['neg_lr']}", f"{g} += {k['momentum']}*_v_{n}", f"{n} += {g}"]
            plain = [f"{n} += _v_{n}"]
            momentum += [f"_v_{n} *= {k['momentum']}", f"_v_{n} -= {k['lr']}*{g}"]
            if nesterov is None:
                momentum += ["if nesterov:", *(f"    {line}" for line in ahead)]
                momentum += ["else:", *(f"    {line}" for line in plain)]
            else:
                momentum += ahead if nesterov else plain
        else:
            ahead_step = f"{k['momentum']}*_v_{n} - {k['lr']}*{g}"
            momentum.append(f"_v_{n} = {ahead_step}")
            if nesterov is None:
                momentum.append(f"{n} = {n} + ({ahead_step} if nesterov else _v_{n})")
            else:
                momentum.append(
                    f"{n} = {n} + ({ahead_step})" if nesterov else f"{n} = {n} + _v_{n}"
                )

    k, _ = _terms(baked, "adam_step")
    firsts = _tuple([f"_m_{n}" for n in names])
    seconds = _tuple([f"_s_{n}" for n in names])
    adam = [
        f"_step, {firsts}, {seconds} = state",
        "_step += 1",
        f"_c1 = {k['lr']}/(1.0 - {k['beta1']}**_step)",
        f"_c2 = 1.0/(1.0 - {k['beta2']}**_step)",
    ]
    for n, g, a in pairs:
        if a:
            adam += [
                f"_m_{n} *= {k['beta1']}",
                f"_m_{n} += {k['one_minus_beta1']}*{g}",
                f"np.multiply({g}, {g}, out={g})",
                f"_s_{n} *= {k['beta2']}",
                f"_s_{n} += {k['one_minus_beta2']}*{g}",
                f"np.multiply(_s_{n}, _c2, out={g})",
                f"np.sqrt({g}, out={g})",
                f"{g} += {k['eps']}",
                f"np.divide(_m_{n}, {g}, out={g})",
                f"{g} *= _c1",
                f"{n} -= {g}",
            ]
        else:
            adam += [
                f"_m_{n} = {k['beta1']}*_m_{n} + {k['one_minus_beta1']}*{g}",
                f"_s_{n} = {k['beta2']}*_s_{n} + {k['one_minus_beta2']}*{g}*{g}",
                f"{n} = {n} - _c1*_m_{n}/(math.sqrt(_c2*_s_{n}) + {k['eps']})",
            ]
    new_params = _tuple(names)
    steps = [
        Update(
            "sgd_step",
            "One gradient-descent step: p -= lr*grad.",
            "lr",
            tuple(sgd),
            f"{loss}, {new_params}",
            None,
        ),
        Update(
            "momentum_step",
            "Gradient descent with momentum, classical or Nesterov's:\n"
            "    v = momentum*v - lr*grad;  p += v   (Nesterov: p += momentum*v - lr*grad).",
            "state, lr, momentum=0.9, nesterov=False",
            tuple(momentum),
            f"{loss}, {new_params}, {_tuple([f'_v_{n}' for n in names])}",
            (
                "momentum_state",
                "Velocities (zeros), one per parameter, for momentum_step.",
                (),
                _tuple(zeros),
            ),
        ),
        Update(
            "adam_step",
            "One Adam step (Kingma & Ba), with bias correction; k counts the steps:\n"
            "    m = beta1*m + (1-beta1)*g;  s = beta2*s + (1-beta2)*g**2;\n"
            "    p -= lr/(1-beta1**k) * m / (sqrt(s/(1-beta2**k)) + eps).",
            "state, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8",
            tuple(adam),
            f"{loss}, {new_params}, (_step, {firsts}, {seconds})",
            (
                "adam_state",
                "(step count, first moments, second moments), all zero, for adam_step.",
                (),
                f"(0, {_tuple(zeros)}, {_tuple(zeros)})",
            ),
        ),
    ]
    if baked is not None:
        steps = [
            replace(
                u,
                doc=u.doc + _baked_doc(baked),
                kwargs="state" if u.state else "",
            )
            if u.name == baked.step_function
            else u
            for u in steps
        ]
    return tuple(steps)


def _describe(kernel: Kernel) -> str:
    if kernel.is_matmul:
        return "matrix product (BLAS)"
    if kernel.is_step:
        return "identity matrix"
    if not kernel.domain:
        return "scalar arithmetic"
    reductions = sum(s.kind in ("dot", "sum", "max") for s in kernel.stmts)
    what = "the samples" if len(kernel.domain) == 1 else "the elements"
    sums = f", {reductions} reduction{'s' if reductions != 1 else ''}" if reductions else ""
    return f"one pass over {what} {_shape_text(kernel.domain)}{sums}"


#: Samples per block in a pass over per-sample data: 8192 float64 values are 64 KiB,
#: so the pass's temporaries stay in cache and come from the allocator's free
#: lists (below glibc's 128 KiB mmap threshold: no page faults on every call).
BLOCK = 8192


def _blocked(kernel: Kernel, printer: _StatementPrinter, data: dict[str, str]) -> list[str]:
    """A per-sample pass evaluated block by block, the sums accumulated across blocks.

    The statements are scalar set-up, then array work and sums, then scalar
    results; only the middle runs per block, on views of the data arrays.
    """
    stmts = list(kernel.stmts)
    first = next(i for i, s in enumerate(stmts) if s.kind != "scalar")
    last = max(i for i, s in enumerate(stmts) if s.kind != "scalar")
    middle = stmts[first : last + 1]
    if any(s.kind not in ("array", "sum", "dot") for s in middle):
        return [printer.line(s, kernel) for s in stmts]
    n = str(kernel.domain[0])
    views = {sp.Symbol(name, real=True): sp.Symbol(view, real=True) for name, view in data.items()}
    sums = [s.target.name for s in middle if s.kind in ("sum", "dot")]
    renamed = [
        Stmt(s.target, s.kind, tuple(e.xreplace(views) for e in s.exprs), s.axes) for s in middle
    ]
    inplace = InPlace(printer.array.arrays, renamed)
    body = []
    for position, s in enumerate(renamed):
        written = inplace.lines(s, position)
        if written is None:
            line = printer.line(s, kernel)
            if s.kind in ("sum", "dot"):
                line = line.replace(" = ", " += ", 1)
            written = [line]
        body += [f"    {line}" for line in written]
        inplace.release_after(position)
    lines = [printer.line(s, kernel) for s in stmts[:first]]
    lines.append(" = ".join([*sums, "0.0"]))
    if inplace.count:  # the buffers every block writes into (the last block: a prefix)
        lines.append(f"_work = np.empty(({inplace.count}, min({n}, {BLOCK})), dtype=DTYPE)")
    lines.append(f"for _start in range(0, {n}, {BLOCK}):")
    lines += [f"    {view} = {name}[_start:_start + {BLOCK}]" for name, view in data.items()]
    if inplace.count:
        names = ", ".join(InPlace.buffer(i) for i in range(inplace.count))
        comma = "," if inplace.count == 1 else ""
        lines.append(f"    {names}{comma} = _work[:, :{n} - _start]")
    lines += body
    lines += [printer.line(s, kernel) for s in stmts[last + 1 :]]
    return lines


def _row_blocked(
    kernel: Kernel, printer: _StatementPrinter, shapes: dict[str, tuple], stored: set[str]
) -> list[str] | None:
    """A pass over the elements of a matrix (M, K) evaluated in blocks of rows, so that its
    temporaries stay in cache (and below the allocator's mmap threshold): arrays with M rows
    are read through row views, values that other steps read are written into preallocated
    arrays block by block, whole sums accumulate, and column sums (axis 0) add up across
    blocks. None when the pass does not have that form (then it runs whole)."""
    stmts = list(kernel.stmts)
    rows = kernel.domain[0]
    device = [i for i, s in enumerate(stmts) if s.kind in ("array", "sum", "dot", "max")]
    if not device or any(s.kind == "fill" for s in stmts):
        return None
    first, last = device[0], device[-1]
    middle = stmts[first : last + 1]
    if any(s.kind == "scalar" for s in middle) or sp.sympify(rows) == 1:
        return None
    if any(s.kind == "max" and s.axes == (0,) for s in middle):
        return None
    inside = {s.target.name for s in middle}
    views: dict[sp.Expr, sp.Symbol] = {}
    for s in middle:
        for e in s.exprs:
            for v in sorted(e.atoms(transposed), key=str):
                shape = tuple(reversed(shapes[v.args[0].name]))
                if shape[0] == rows:
                    views.setdefault(v, sp.Symbol(f"_{v.args[0].name}_T", real=True))
            plain = e.xreplace({v: sp.S.Zero for v in e.atoms(transposed)}).free_symbols
            for sym in sorted(plain, key=str):
                if sym.name in inside or sym.name not in shapes:
                    continue
                if shapes[sym.name][0] == rows:
                    views.setdefault(sym, sp.Symbol(f"_{sym.name}", real=True))
    whole, column, row = [], [], []
    for s in middle:
        if s.kind in ("sum", "dot", "max"):
            (whole if not s.axes else column if s.axes == (0,) else row).append(s)
    keep = [s for s in middle if s.kind == "array" and s.target.name in stored] + row
    if any(shapes.get(s.target.name, (rows,))[0] != rows for s in keep if s.kind == "array"):
        return None
    # Worth it when the pass reduces, or makes several temporaries per value it keeps
    # (measured: a lone mask product such as W3's x8*(x0 > 0) runs as fast whole).
    work = sum(sp.count_ops(e) for s in middle for e in s.exprs)
    if not (whole or column or row) and work < 3 * max(1, len(keep)):
        return None
    names = {
        v: f"_{v.args[0].name}_T" if isinstance(v, transposed) else f"_{v.name}" for v in views
    }
    lines = [printer.line(s, kernel) for s in stmts[:first]]
    k = str(kernel.domain[1])
    lines.append(f"_rows = max(1, {BLOCK}//max({k}, 1))")
    for s in keep:
        shape = _shape_text(tuple(shapes[s.target.name]))
        lines.append(f"{s.target.name} = np.empty({shape}, dtype=DTYPE)")
    for s in whole:
        lines.append(f"{s.target.name} = {'-math.inf' if s.kind == 'max' else '0.0'}")
    for s in column:
        lines.append(f"{s.target.name} = np.zeros((1, {k}), dtype=DTYPE)")
    lines.append(f"for _start in range(0, {rows}, _rows):")
    for v, name in names.items():
        lines.append(f"    {name} = {printer.array.doprint(v)}[_start:_start + _rows]")
    local = {v: sp.Symbol(n, real=True) for v, n in names.items()}
    kept = {s.target.name for s in keep}
    for s in middle:
        exprs = tuple(e.xreplace(local) for e in s.exprs)
        target = s.target
        if s.target.name in kept:
            target = sp.Symbol(f"_{s.target.name}", real=True)
            local[s.target] = target
        line = printer.line(Stmt(target, s.kind, exprs, s.axes), kernel)
        if s in whole:
            if s.kind == "max":
                line = f"{s.target.name} = max({s.target.name}, {line.split(' = ', 1)[1]})"
            else:
                line = line.replace(" = ", " += ", 1)
        elif s in column:
            line = line.replace(" = ", " += ", 1)
        lines.append(f"    {line}")
        if s.target.name in kept:
            lines.append(f"    {s.target.name}[_start:_start + _rows] = {target.name}")
    lines += [printer.line(s, kernel) for s in stmts[last + 1 :]]
    return lines


def _body(
    program: Program,
    dtype: str,
    data: tuple[str, ...],
    kind: str,
    native: PassCompiler | None = None,
    prefix: str = "",
) -> Body:
    """The lines of one function; ``native`` (the C backend) takes the passes it can run,
    and the matrix-vector products it fuses into them."""
    per_sample = kind == "per_sample"
    views = {name: f"_{name}" for name in data}
    shapes = dict(program.shapes)
    local = {f"_{n}" for n in shapes} | {f"_{n}_T" for n in shapes}
    printer = _StatementPrinter(program.arrays | frozenset(views.values()) | local, dtype)
    stored = program.used_elsewhere()
    all_shapes = program.array_shapes()
    fused = native.fused_products(program, all_shapes) if native is not None else {}
    absorbed = {i for products in fused.values() for i in products.absorbed}
    groups = []
    for n, k in enumerate(program.kernels):
        if n in absorbed:  # a matrix product the C pass over its rows computes
            continue
        lines = None
        if native is not None:  # None for what is not a pass it runs
            products = fused.get(n)
            keep = stored[n] - ({products.value} if products else set())
            scalar_line = partial(printer.line, kernel=k)
            lines = native.pass_lines(k, prefix, all_shapes, keep, scalar_line, products)
            comment = f"{_describe(k)}, compiled C (_SOURCE)"
            if products is not None:
                comment += f", with the products by {products.matrix}"
        if lines is None:
            if per_sample and len(k.domain) == 1 and any(s.kind != "scalar" for s in k.stmts):
                lines = _blocked(k, printer, views)
                comment = f"{_describe(k)}, in blocks of {BLOCK}"
            elif kind == "matrix" and len(k.domain) == 2 and not k.is_step:
                lines = _row_blocked(k, printer, shapes, stored[n])
                comment = f"{_describe(k)}, in blocks of rows ({BLOCK} elements)"
        if lines is None:
            lines = [printer.line(s, k) for s in k.stmts]
            comment = _describe(k)
        groups.append((comment, tuple(lines)))
    return Body(tuple(groups), tuple(s.name for s in program.outputs))


def plan(
    compiled: Compiled,
    source: str | None,
    baked: Baked | None = None,
    native: PassCompiler | None = None,
) -> NumpyPlan:
    """The NumPy module's plan; ``native`` (the C backend) takes the passes it compiles."""
    problem = compiled.problem
    fields = module_fields(compiled, source, baked)
    names = tuple(d.name for d in compiled.lowered.data)
    loss_body = _body(compiled.loss_program, problem.dtype, names, problem.kind, native, "loss")
    grad_body = _body(
        compiled.grad_program, problem.dtype, names, problem.kind, native, "loss_and_grad"
    )
    updates = _updates(fields["params"], grad_body.results[1:], grad_body.results[0], baked)
    return NumpyPlan(
        **fields,
        loss_body=loss_body,
        grad_body=grad_body,
        updates=updates,
        helpers=tuple(
            h.array_source or h.source
            for h in python_helpers(
                line
                for body in (loss_body, grad_body)
                for _, lines in body.groups
                for line in lines
            )
        ),
        native=native.module(problem.name) if native is not None else None,
    )


def generate(compiled: Compiled, source: str | None = None, baked: Baked | None = None) -> str:
    """The module's source; ``baked``: the optimizer whose hyperparameters are built in."""
    return render(TEMPLATES, "numpy_module.py.j2", plan=plan(compiled, source, baked))
