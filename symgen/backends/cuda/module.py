"""The CUDA backend: program → plan (plain data) → ``cuda_module.py.j2`` + ``cuda_kernels.cu.j2``.

The generated module keeps the NumPy module's functions (API.md) and runs them
on the GPU through CuPy:

* every fused elementwise/reduction group of the program is one ``RawKernel``
  (all kernels of a module are one CUDA source, compiled once per process with
  ``cupy.RawModule`` and cached by CuPy on disk);
* matrix products are CuPy's ``@`` (cuBLAS), with transposed operands passed as
  views;
* a whole-array reduction (the loss, the partials of a per-sample loss) is a
  two-stage reduction: each thread accumulates its grid-stride share in
  ``double`` (also for float32 data), each block reduces its threads in shared
  memory and writes one partial per reduction, and a second small kernel sums
  the partials of every block in a fixed order. No atomics: the result is the
  same on every run and every device (the grid has at most ``MAX_BLOCKS``
  blocks, a constant), and float32 sums are as accurate as float64 ones;
* a reduction along one axis (``sum(..., axis=1)``) is a kernel with one thread
  per kept row (or column) looping over the reduced axis, with the scalar
  arithmetic after the reduction fused into the same thread;
* the optimizer steps update each array parameter and its state in one fused
  kernel launch.

Scalar problems (no arrays at all, e.g. Rosenbrock) have nothing to run in
parallel: their CUDA module computes on Python floats on the host, exactly like
the NumPy module, since one kernel launch (~5 µs) costs more than the whole step.

Host values (the loss, scalar partials) are copied from the device only where
the host needs them, as late as possible, so the launches after a reduction are
queued before the host waits.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import sympy as sp

from symgen.backends.c.elements import (
    CNames,
    accumulate,
    array_name,
    element_index,
    is_one,
    operands,
    refuse_reserved,
    store_guards,
    transposed_index,
)
from symgen.backends.numpy import module as numpy_backend
from symgen.codegen.hyperparams import Baked
from symgen.codegen.plan import Arg, ModulePlan, module_fields
from symgen.codegen.plan import baked_step_doc as _baked_doc
from symgen.codegen.plan import shape_text as _shape_text
from symgen.codegen.plan import tuple_text as _tuple
from symgen.codegen.plan import update_terms as _terms
from symgen.codegen.printers import CudaPrinter, ScalarPrinter, c_definitions, python_helpers
from symgen.codegen.templating import render
from symgen.compiler.ir import Shape
from symgen.compiler.optimize import Kernel, Program, Stmt, transposed
from symgen.compiler.pipeline import Compiled
from symgen.errors import SpecError

#: Its own templates, then the C backend's (``sg_functions.j2``).
TEMPLATES = (Path(__file__).parent / "templates", Path(__file__).parents[1] / "c" / "templates")

#: Threads per block of every kernel (a power of two: the block reductions halve it).
THREADS = 256
#: Most blocks of a grid-stride kernel: ~8 resident blocks of 256 threads on each of
#: ~130 SMs. Fixed, so that the two-stage reductions sum in the same order everywhere.
MAX_BLOCKS = 1024


@dataclass(frozen=True)
class CudaKernel:
    """One ``__global__`` function, as the kernel template renders it.

    ``loop`` is ``flat`` (a grid-stride loop over every element, index ``_e``),
    ``rows`` (one thread per row ``_i``, an inner loop over the columns ``_j``),
    ``cols`` (one thread per column ``_j`` and slice of rows, an inner loop over the
    rows ``_i`` of its slice, writing partial column sums to ``_lines``) or
    ``cols_end`` (one block per column adds its slices in order, then finishes).
    """

    name: str
    comment: str
    loop: str
    params: tuple[str, ...]
    #: C expressions: the outer extent (elements, rows or columns), the inner one.
    outer: str
    inner: str
    #: Lines computing ``_i``/``_j`` from ``_e`` in a flat loop (empty when unused).
    index: tuple[str, ...]
    #: Lines run for each element: loads, temporaries, stores, accumulations.
    body: tuple[str, ...]
    #: Per-row (per-column) accumulators: (name, initial value); lines after the inner loop.
    line_accs: tuple[tuple[str, str], ...]
    finals: tuple[str, ...]
    #: Whole-array accumulators (double): (name, initial value, "sum" | "max").
    accs: tuple[tuple[str, str, str], ...]
    #: ``cols_end`` kernels: the op ("sum" | "max") of each column reduction.
    line_ops: tuple[str, ...]


@dataclass(frozen=True)
class CudaBody:
    """Host lines of one function (launches, allocations, scalar arithmetic)."""

    lines: tuple[str, ...]
    results: tuple[str, ...]


@dataclass(frozen=True)
class CudaUpdate:
    name: str
    doc: str
    kwargs: str
    lines: tuple[str, ...]
    returns: str
    state: tuple[str, str, str] | None  # (name, doc, returned expression)


@dataclass(frozen=True, kw_only=True)
class CudaPlan(ModulePlan):
    """A CuPy module: host lines launching the kernels, the kernels themselves, the
    optimizer steps' host lines, the launch geometry."""

    ctype: str
    loss_body: CudaBody
    grad_body: CudaBody
    kernels: tuple[CudaKernel, ...]
    updates: tuple[CudaUpdate, ...]
    threads: int
    max_blocks: int


# -- shapes and element indices ---------------------------------------------------------


def _needs_ij(shapes: Iterable[Shape], transposes: bool) -> bool:
    return transposes or any(any(is_one(d) for d in s) for s in shapes)


# -- one program → kernels and host lines ------------------------------------------------


@dataclass
class _HostLine:
    code: str
    defines: frozenset[str]
    uses: frozenset[str]
    #: Waits for the device (a copy to the host) or depends on one: scheduled late.
    late: bool = False


class _ProgramLowering:
    """Turns one ``Program`` into CUDA kernels and the host lines that launch them."""

    def __init__(self, program: Program, prefix: str, dtype: str, names: CNames) -> None:
        self.program = program
        self.prefix = prefix
        self.dtype = dtype
        self.ctype = "float" if dtype == "float32" else "double"
        self.names = names
        self.shapes: dict[str, Shape] = program.array_shapes()
        self.scalar = ScalarPrinter()
        self.kernels: list[CudaKernel] = []
        self.host: list[_HostLine] = []
        self.dims = {
            str(d) for shape in self.shapes.values() for d in shape if sp.sympify(d).is_Symbol
        }
        self.used_later = program.used_elsewhere()

    # which device values must be stored in memory ----------------------------------
    def is_array(self, e: sp.Expr) -> bool:
        return any(s.name in self.shapes for s in e.free_symbols)

    # host lines ---------------------------------------------------------------------
    def emit(self, code: str, defines: Iterable[str], uses: Iterable[str], late=False) -> None:
        self.host.append(_HostLine(code, frozenset(defines), frozenset(uses), late))

    def scalar_line(self, stmt: Stmt) -> None:
        e = stmt.exprs[0]
        text = repr(float(e)) if e.is_Number else self.scalar.doprint(e)
        uses = {s.name for s in e.free_symbols}
        self.emit(f"{stmt.target.name} = {text}", [stmt.target.name], uses)

    def lower(self) -> None:
        for n, k in enumerate(self.program.kernels):
            if k.is_matmul:
                (s,) = k.stmts
                a, b = (self._view(e) for e in s.exprs)
                uses = {sym.name for e in s.exprs for sym in e.free_symbols}
                self.emit(f"{s.target.name} = {a} @ {b}", [s.target.name], uses)
            elif k.is_step:
                (s,) = k.stmts  # the identity matrix
                size = self.scalar.doprint(s.exprs[0])
                uses = {x.name for x in s.exprs[0].free_symbols}
                self.emit(f"{s.target.name} = cp.eye({size}, dtype=DTYPE)", [s.target.name], uses)
            elif not k.domain:
                for s in k.stmts:
                    self.scalar_line(s)
            else:
                self._device(n, k)

    @staticmethod
    def _view(e: sp.Expr) -> str:
        return f"{e.args[0].name}.T" if isinstance(e, transposed) else e.name

    # device kernels -----------------------------------------------------------------
    def _device(self, n: int, kernel: Kernel) -> None:
        stmts = list(kernel.stmts)
        device_kinds = ("array", "fill", "sum", "dot", "max")
        first = next((i for i, s in enumerate(stmts) if s.kind in device_kinds), None)
        if first is None:
            for s in stmts:
                self._host_stmt(s)
            return
        last = max(i for i, s in enumerate(stmts) if s.kind in device_kinds)
        for s in stmts[:first]:
            self._host_stmt(s)
        device = stmts[first : last + 1]
        after = stmts[last + 1 :]
        axis_results = {s.target.name: s.axes for s in device if s.kind != "array" and s.axes}
        # Scalar arithmetic on a reduction along an axis runs in the reducing thread.
        finals = [s for s in after if self._on_axis_result(s, axis_results)]
        host_after = [s for s in after if s not in finals]
        stored = self.used_later[n] | {s.target.name for s in finals}
        whole = [s for s in device if s.kind in ("sum", "dot", "max") and not s.axes]
        by_axis = {
            ax: [s for s in device if s.kind in ("sum", "dot", "max") and s.axes == ax]
            for ax in ((1,), (0,))
        }
        values = [s for s in device if s.kind in ("array", "fill")]
        stores = [s for s in values if s.target.name in stored]
        launches = []  # (loop, stores, whole reductions, axis reductions, finals)
        if by_axis[(1,)]:
            f1 = [s for s in finals if self._axis_of(s, axis_results) == (1,)]
            launches.append(("rows", stores, whole, by_axis[(1,)], f1))
            stores, whole = [], []
        if by_axis[(0,)]:
            f0 = [s for s in finals if self._axis_of(s, axis_results) == (0,)]
            launches.append(("cols", stores, whole, by_axis[(0,)], f0))
            stores, whole = [], []
        if stores or whole or not launches:
            launches.append(("flat", stores, whole, [], []))
        for m, (loop, st, wh, ax, fi) in enumerate(launches):
            name = f"{self.prefix}_{n}" + (f"_{m}" if len(launches) > 1 else "")
            self._launch(name, kernel.domain, loop, values, st, wh, ax, fi)
        for s in host_after:
            self._host_stmt(s)

    def _on_axis_result(self, s: Stmt, axis_results: dict) -> bool:
        return s.kind == "scalar" and self._axis_of(s, axis_results) is not None

    def _axis_of(self, s: Stmt, axis_results: dict):
        axes = {axis_results[x.name] for x in s.exprs[0].free_symbols if x.name in axis_results}
        if len(axes) > 1:
            raise SpecError("the CUDA backend cannot combine reductions along both axes")
        return next(iter(axes), None)

    def _host_stmt(self, s: Stmt) -> None:
        if s.kind == "scalar" and not self.is_array(s.exprs[0]):
            self.scalar_line(s)
        elif s.kind == "fill" and not self.is_array(s.exprs[0]):
            shape = _shape_text(tuple(s.exprs[1:]))
            value = self.scalar.doprint(s.exprs[0])
            uses = {x.name for e in s.exprs for x in e.free_symbols}
            self.emit(
                f"{s.target.name} = cp.full({shape}, {value}, dtype=DTYPE)", [s.target.name], uses
            )
        else:
            raise SpecError(
                f"the CUDA backend cannot place the statement {s.target} = {s.exprs[0]} "
                "(array arithmetic outside a kernel)"
            )

    def _launch(self, name, domain, loop, values, stores, whole, axis_reds, finals) -> None:
        ctype = self.ctype
        idx_of_line = "_i" if loop == "rows" else "_j"
        # What this launch computes: the stored values, the reductions, and the device
        # values they need (dead statements of the group are left out).
        defined = {s.target.name: s for s in values}
        needed: list[Stmt] = []

        def need(e: sp.Expr) -> None:
            for sym in e.free_symbols:
                if sym.name in defined and defined[sym.name] not in needed:
                    for x in defined[sym.name].exprs:
                        need(x)
                    needed.append(defined[sym.name])

        for s in stores:
            need(s.target)
        for s in (*whole, *axis_reds):
            for e in s.exprs:
                need(e)
        needed.sort(key=values.index)
        computed = {s.target.name for s in needed} | {s.target.name for s in axis_reds}
        loads, scalars = self._operands(
            [e for s in (*needed, *whole, *axis_reds) for e in s.exprs],
            computed,
        )
        end_loads, end_scalars = self._operands(
            [s.exprs[0] for s in finals], computed | {s.target.name for s in finals}
        )
        if end_loads:
            raise SpecError("the CUDA backend cannot fuse this reduction's arithmetic")
        written = [s.target.name for s in (*stores, *axis_reds, *finals)]
        shapes = [self.shapes[array_name(v)] for v in loads]
        shapes += [self.shapes[s.target.name] for s in stores]
        dims = {str(d) for s in (domain, *shapes) for d in s if not sp.sympify(d).is_Integer}
        dims |= (scalars | end_scalars) & self.dims
        scalars -= self.dims
        end_scalars -= self.dims
        pointers = sorted({array_name(v) for v in loads})
        printer = CudaPrinter(
            self.dtype,
            {
                **{
                    n: self.names.c(n) for n in (*pointers, *written, *scalars, *end_scalars, *dims)
                },
                **{str(v): var for v, var in loads.items()},
            },
        )

        def cprint(e: sp.Expr) -> str:
            views = {v: sp.Symbol(var) for v, var in loads.items() if isinstance(v, transposed)}
            return printer.doprint(e.xreplace(views))

        flat = loop == "flat"
        body = []
        for v, var in loads.items():
            if isinstance(v, transposed):
                index = transposed_index(self.shapes[v.args[0].name], self.names)
            else:
                index = element_index(self.shapes[v.name], domain, flat, self.names)
            body.append(f"const {ctype} {var} = {self.names.c(array_name(v))}[{index}];")
        body += [f"const {ctype} {s.target.name} = {cprint(s.exprs[0])};" for s in needed]
        for s in stores:
            body.append(self._store(s.target.name, domain, flat))
        accs = []
        for r, s in enumerate(sorted(whole, key=lambda s: s.kind != "max")):
            accs.append((f"_acc{r}", *accumulate(f"_acc{r}", s, cprint)[1:]))
            body.append(accumulate(f"_acc{r}", s, cprint)[0])
        line_accs, final_lines = [], []
        for r, s in enumerate(axis_reds):
            line, init, _ = accumulate(f"_line{r}", s, cprint)
            line_accs.append((f"_line{r}", init))
            body.append(line)
            final_lines += [
                f"const {ctype} {s.target.name} = ({ctype})_line{r};",
                f"_w_{s.target.name}[{idx_of_line}] = {s.target.name};",
            ]
        for s in finals:
            final_lines += [
                f"const {ctype} {s.target.name} = {cprint(s.exprs[0])};",
                f"_w_{s.target.name}[{idx_of_line}] = {s.target.name};",
            ]
        d = [self.names.dim(x) for x in domain]
        outer, inner = {
            "flat": ("*".join(d), ""),
            "rows": (d[0], d[-1]),
            "cols": (d[-1], d[0]),
        }[loop]
        index: tuple[str, ...] = ()
        if flat and len(domain) == 2:
            text = "\n".join(body)
            uses_i, uses_j = re.search(r"\b_i\b", text), re.search(r"\b_j\b", text)
            if uses_i:
                index += (f"const long long _i = _e / {d[1]};",)
            if uses_j:
                index += (
                    f"const long long _j = _e - _i*{d[1]};"
                    if uses_i
                    else f"const long long _j = _e % {d[1]};",
                )
        reds = len(accs) + len(line_accs)
        what = {
            "flat": "every element",
            "rows": "one thread per row",
            "cols": "threads over slices of the rows of each column",
        }[loop]
        comment = f"{what} of {_shape_text(domain)}" + (
            f", {reds} reduction{'s' if reds != 1 else ''}" if reds else ""
        )
        ptr_params = [f"const {ctype}* __restrict__ {self.names.c(p)}" for p in pointers]
        dim_params = [f"long long {self.names.c(n)}" for n in sorted(dims)]
        host_dims = [f"np.int64({n})" for n in sorted(dims)]

        def outs(names: list[str]) -> list[str]:
            return [f"{ctype}* __restrict__ _w_{w}" for w in names]

        def ins(names: set[str]) -> tuple[list[str], list[str]]:
            ordered = sorted(names)
            return [f"{ctype} {self.names.c(n)}" for n in ordered], [f"DTYPE({n})" for n in ordered]

        for w in written:
            self.emit(f"{w} = cp.empty({_shape_text(tuple(self.shapes[w]))}, dtype=DTYPE)", [w], [])
        py = [str(x) for x in domain]
        uses = set(pointers) | scalars | end_scalars | dims | set(written)
        if loop != "cols":
            scalar_params, host_scalars = ins(scalars | end_scalars)
            params = (*ptr_params, *outs(written), *scalar_params, *dim_params)
            args = (*pointers, *written, *host_scalars, *host_dims)
            self.kernels.append(
                CudaKernel(
                    name,
                    comment,
                    loop,
                    params,
                    outer,
                    inner,
                    index,
                    tuple(body),
                    tuple(line_accs),
                    tuple(final_lines),
                    tuple(accs),
                    (),
                )
            )
            extent = {"flat": "*".join(py), "rows": py[0]}[loop]
            self._emit_launch(name, extent, args, whole, accs, uses)
            return
        # Columns: threads over (slice of rows, column) accumulate partial column sums in
        # ``_lines``; then one block per column adds its slices in order and finishes.
        stored = [s.target.name for s in stores]
        ended = [s.target.name for s in (*axis_reds, *finals)]
        scalar_params, host_scalars = ins(scalars)
        end_scalar_params, end_host_scalars = ins(end_scalars)
        slices = ("const long long _slices",)
        params = (
            *ptr_params,
            *outs(stored),
            *scalar_params,
            *dim_params,
            *slices,
            "double* __restrict__ _lines",
        )
        args = (*pointers, *stored, *host_scalars, *host_dims, "np.int64(_slices)", "_lines")
        end_params = (
            *outs(ended),
            *end_scalar_params,
            *dim_params,
            *slices,
            "const double* __restrict__ _lines",
        )
        end_args = (*ended, *end_host_scalars, *host_dims, "np.int64(_slices)", "_lines")
        self.kernels.append(
            CudaKernel(
                name,
                comment,
                "cols",
                params,
                outer,
                inner,
                (),
                tuple(body),
                tuple(line_accs),
                (),
                tuple(accs),
                (),
            )
        )
        ops = tuple(accumulate("", s, cprint)[2] for s in axis_reds)
        self.kernels.append(
            CudaKernel(
                f"{name}_end",
                f"adds the column slices of {name}",
                "cols_end",
                end_params,
                outer,
                "",
                (),
                (),
                tuple(line_accs),
                tuple(final_lines),
                (),
                ops,
            )
        )
        self.emit(f"_slices = _slices_for({py[-1]}, {py[0]})", ["_slices"], [])
        self.emit(
            f"_lines = cp.empty({len(axis_reds)}*_slices*{py[-1]}, dtype=np.float64)",
            ["_lines"],
            ["_slices"],
        )
        self._emit_launch(name, f"_slices*{py[-1]}", args, whole, accs, uses | {"_lines"})
        self.emit(
            f"_launch_blocks({name + '_end'!r}, {py[-1]}, {_tuple(list(end_args))})",
            [],
            uses | {"_lines"},
        )

    def _emit_launch(self, name, extent, args, whole, accs, uses) -> None:
        arg_text = _tuple(list(args))
        if not accs:
            self.emit(f"_launch({name!r}, {extent}, {arg_text})", [], uses)
            return
        nmax = sum(1 for a in accs if a[2] == "max")
        red = f"_red_{name}"
        self.emit(
            f"{red} = _reduce({name!r}, {extent}, {arg_text}, {len(accs)}, {nmax})", [red], uses
        )
        order = sorted(whole, key=lambda s: s.kind != "max")
        targets = ", ".join(s.target.name for s in order) + ("," if len(order) == 1 else "")
        self.emit(
            f"{targets} = {red}.get().tolist()", [s.target.name for s in order], [red], late=True
        )

    def _operands(self, exprs, computed: set[str]) -> tuple[dict, set[str]]:
        """The arrays read from memory, each with its register, and the scalar symbols."""
        return operands(exprs, computed, self.shapes)

    def _store(self, name: str, domain: Shape, flat: bool) -> str:
        """Writes an element; a value broadcast along an axis is written by its first thread."""
        shape = self.shapes[name]
        store = f"_w_{name}[{element_index(shape, domain, flat, self.names)}] = {name};"
        guard = store_guards(shape, domain)
        return f"if ({' && '.join(guard)}) {store}" if guard else store


def _lower(program: Program, prefix: str, dtype: str, names: CNames) -> _ProgramLowering:
    lowering = _ProgramLowering(program, prefix, dtype, names)
    lowering.lower()
    return lowering


def _updates(
    params: tuple[Arg, ...], grads: tuple[str, ...], loss: str, baked: Baked | None
) -> tuple[tuple[CudaUpdate, list[_HostLine]], ...]:
    """sgd_step, momentum_step, adam_step: one kernel launch per array parameter updates it
    and its state in place; scalar parameters and their state are new floats. The step of
    ``baked``'s optimizer passes its hyperparameters as literals (see the NumPy backend)."""
    names = [p.name for p in params]
    pairs = [(p.name, g, p.kind != "scalar") for p, g in zip(params, grads, strict=True)]
    zeros = [f"cp.zeros_like({n})" if a else "0.0" for n, _, a in pairs]

    def line(code: str, uses: Iterable[str], defines: Iterable[str] = ()) -> _HostLine:
        return _HostLine(code, frozenset(defines), frozenset(uses))

    k, _ = _terms(baked, "sgd_step")
    sgd = []
    for n, g, a in pairs:
        if a:
            args = f"({n}, {g}, DTYPE({k['lr']}), np.int64({n}.size))"
            sgd.append(line(f"_launch('sg_sgd', {n}.size, {args})", [n, g]))
        else:
            sgd.append(line(f"{n} = {n} - {k['lr']}*{g}", [n, g], [n]))

    k, fixed = _terms(baked, "momentum_step")
    flag = "nesterov" if fixed is None else repr(fixed)
    velocities = [f"_v_{n}" for n in names]
    momentum = [line(f"{_tuple(velocities)} = state", [], velocities)]
    for n, g, a in pairs:
        v = f"_v_{n}"
        if a:
            args = (
                f"({n}, {v}, {g}, DTYPE({k['lr']}), DTYPE({k['momentum']}), np.bool_({flag}),"
                f" np.int64({n}.size))"
            )
            momentum.append(line(f"_launch('sg_momentum', {n}.size, {args})", [n, v, g]))
        else:
            ahead = f"{k['momentum']}*{v} - {k['lr']}*{g}"
            step = {None: f"({ahead} if nesterov else {v})", True: f"({ahead})", False: v}[fixed]
            momentum += [
                line(f"{v} = {ahead}", [v, g], [v]),
                line(f"{n} = {n} + {step}", [n, v, g], [n]),
            ]

    k, _ = _terms(baked, "adam_step")
    firsts = [f"_m_{n}" for n in names]
    seconds = [f"_s_{n}" for n in names]
    adam = [
        line(
            f"_step, {_tuple(firsts)}, {_tuple(seconds)} = state", [], ["_step", *firsts, *seconds]
        ),
        line("_step += 1", ["_step"], ["_step"]),
        line(f"_c1 = {k['lr']}/(1.0 - {k['beta1']}**_step)", ["_step"], ["_c1"]),
        line(f"_c2 = 1.0/(1.0 - {k['beta2']}**_step)", ["_step"], ["_c2"]),
    ]
    for n, g, a in pairs:
        m, s = f"_m_{n}", f"_s_{n}"
        if a:
            args = (
                f"({n}, {m}, {s}, {g}, DTYPE({k['beta1']}), DTYPE({k['one_minus_beta1']}),"
                f" DTYPE({k['beta2']}), DTYPE({k['one_minus_beta2']}), DTYPE(_c1), DTYPE(_c2),"
                f" DTYPE({k['eps']}), np.int64({n}.size))"
            )
            adam.append(line(f"_launch('sg_adam', {n}.size, {args})", [n, m, s, g, "_c1", "_c2"]))
        else:
            adam += [
                line(f"{m} = {k['beta1']}*{m} + {k['one_minus_beta1']}*{g}", [m, g], [m]),
                line(f"{s} = {k['beta2']}*{s} + {k['one_minus_beta2']}*{g}*{g}", [s, g], [s]),
                line(
                    f"{n} = {n} - _c1*{m}/(math.sqrt(_c2*{s}) + {k['eps']})",
                    [n, m, s, "_c1", "_c2"],
                    [n],
                ),
            ]
    new_params = _tuple(names)
    steps = (
        (
            CudaUpdate(
                "sgd_step",
                "One gradient-descent step: p -= lr*grad.",
                "lr",
                (),
                f"{loss}, {new_params}",
                None,
            ),
            sgd,
        ),
        (
            CudaUpdate(
                "momentum_step",
                "Gradient descent with momentum, classical or Nesterov's:\n"
                "    v = momentum*v - lr*grad;  p += v   (Nesterov: p += momentum*v - lr*grad).",
                "state, lr, momentum=0.9, nesterov=False",
                (),
                f"{loss}, {new_params}, {_tuple(velocities)}",
                (
                    "momentum_state",
                    "Velocities (zeros), one per parameter, for momentum_step.",
                    _tuple(zeros),
                ),
            ),
            momentum,
        ),
        (
            CudaUpdate(
                "adam_step",
                "One Adam step (Kingma & Ba), with bias correction; k counts the steps:\n"
                "    m = beta1*m + (1-beta1)*g;  s = beta2*s + (1-beta2)*g**2;\n"
                "    p -= lr/(1-beta1**k) * m / (sqrt(s/(1-beta2**k)) + eps).",
                "state, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8",
                (),
                f"{loss}, {new_params}, (_step, {_tuple(firsts)}, {_tuple(seconds)})",
                (
                    "adam_state",
                    "(step count, first moments, second moments), all zero, for adam_step.",
                    f"(0, {_tuple(zeros)}, {_tuple(zeros)})",
                ),
            ),
            adam,
        ),
    )
    if baked is None:
        return steps
    return tuple(
        (
            replace(u, doc=u.doc + _baked_doc(baked), kwargs="state" if u.state else "")
            if u.name == baked.step_function
            else u,
            lines,
        )
        for u, lines in steps
    )


def _schedule(lines: list[_HostLine]) -> tuple[str, ...]:
    """Host lines in order, with the copies from the device (and everything that reads
    what they define) moved to the end: the launches after them are queued before the
    host waits. Nothing outside the moved lines reads what they define."""
    out: list[str] = []
    late: list[str] = []
    late_names: set[str] = set()
    for line in lines:
        if line.late or line.uses & late_names:
            late.append(line.code)
            late_names |= line.defines
        else:
            out.append(line.code)
    return tuple(out + late)


def plan(compiled: Compiled, source: str | None, baked: Baked | None = None) -> CudaPlan:
    problem = compiled.problem
    lowered = compiled.lowered
    fields = module_fields(compiled, source, baked)
    params = fields["params"]
    taken = {a.name for a in (*params, *fields["data"])} | {str(d) for d, _, _ in lowered.dims}
    refuse_reserved(taken, "CUDA")
    names = CNames(taken)
    loss = _lower(compiled.loss_program, "loss", problem.dtype, names)
    grad = _lower(compiled.grad_program, "loss_and_grad", problem.dtype, names)
    results = tuple(s.name for s in compiled.grad_program.outputs)
    loss_body = CudaBody(_schedule(loss.host), (compiled.loss_program.outputs[0].name,))
    grad_body = CudaBody(_schedule(grad.host), results)
    updates = tuple(
        CudaUpdate(u.name, u.doc, u.kwargs, _schedule([*grad.host, *lines]), u.returns, u.state)
        for u, lines in _updates(params, results[1:], results[0], baked)
    )
    scalar_lines = [*loss_body.lines, *grad_body.lines]
    return CudaPlan(
        **fields,
        ctype="float" if problem.dtype == "float32" else "double",
        loss_body=loss_body,
        grad_body=grad_body,
        kernels=(*loss.kernels, *grad.kernels),
        updates=updates,
        threads=THREADS,
        max_blocks=MAX_BLOCKS,
        helpers=tuple(h.source for h in python_helpers(scalar_lines)),
    )


def kernel_source(cplan: CudaPlan) -> str:
    """The CUDA C source of all kernels of a module (what ``_SOURCE`` holds)."""
    return render(TEMPLATES, "cuda_kernels.cu.j2", plan=cplan, functions=c_definitions(cplan.ctype))


def generate(compiled: Compiled, source: str | None = None, baked: Baked | None = None) -> str:
    """The module's source; ``baked``: the optimizer whose hyperparameters are built in."""
    if compiled.problem.kind == "scalar":
        text = numpy_backend.generate(compiled, source, baked)
        name = compiled.problem.name
        note = (
            f'"""{name}: loss and gradients, generated by symgen (CUDA backend).\n\n'
            "A loss over scalars has no array work to run in parallel: one kernel launch\n"
            "costs more than the whole step, so this module computes on the host, on\n"
            "Python floats, exactly like the NumPy module.\n"
        )
        first = f'"""{compiled.problem.name}: loss and gradients, generated by symgen.\n'
        return text.replace(first, note, 1)
    cplan = plan(compiled, source, baked)
    return render(TEMPLATES, "cuda_module.py.j2", plan=cplan, source=kernel_source(cplan))
