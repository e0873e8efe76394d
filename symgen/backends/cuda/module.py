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

from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import sympy as sp

from symgen.backends.c.elements import (
    COL,
    FLAT,
    INITIAL,
    ROW,
    CNames,
    accumulate,
    array_name,
    element_index,
    gathered_index,
    label_arrays,
    label_index,
    operands,
    refuse_reserved,
    store,
    transposed_index,
)
from symgen.backends.cuda.steps import UpdateKernel, kernels, updates
from symgen.backends.numpy import module as numpy_backend
from symgen.backends.numpy.module import imports, placed
from symgen.backends.numpy.steps import Update
from symgen.codegen import c_ast as c
from symgen.codegen import second_order
from symgen.codegen.c_ast import names_used
from symgen.codegen.c_printer import CudaPrinter, helpers_used
from symgen.codegen.optimizers import Baked
from symgen.codegen.plan import ModulePlan, module_fields, tuple_text
from symgen.codegen.plan import shape_text as _shape_text
from symgen.codegen.printers import ScalarPrinter, c_definitions, python_helpers
from symgen.codegen.templating import render
from symgen.compiler.ir import Shape
from symgen.compiler.optimize import (
    Assign,
    Elementwise,
    Fill,
    Kernel,
    Place,
    Program,
    Reduction,
    Scatter,
    Stmt,
    element,
    gathered,
    transposed,
)
from symgen.compiler.pipeline import Compiled
from symgen.errors import SpecError

#: Its own templates, then the C backend's (``sg_functions.j2``).
TEMPLATES = (Path(__file__).parent / "templates", Path(__file__).parents[1] / "c" / "templates")

#: Threads per block of every kernel (a power of two: the block reductions halve it).
THREADS = 256
#: Most blocks of a grid-stride kernel: ~8 resident blocks of 256 threads on each of
#: ~130 SMs. Fixed, so that the two-stage reductions sum in the same order everywhere.
MAX_BLOCKS = 1024

#: How to install CuPy for a generated module: its prebuilt wheels (symgen's extras
#: ``cuda12``/``cuda13`` install the same; the plain ``cupy`` package builds from source).
INSTALL_CUPY = "pip install cupy-cuda12x (CUDA 12) or cupy-cuda13x (CUDA 13)"


@dataclass(frozen=True)
class CudaKernel:
    """One ``__global__`` function: its name, its CUDA C text (``c_printer.CudaPrinter``),
    and the functions of the module (``sg_`` helpers) that it calls."""

    name: str
    text: str
    calls: frozenset[str]


@dataclass(frozen=True)
class CudaBody:
    """Host lines of one function (launches, allocations, scalar arithmetic)."""

    lines: tuple[str, ...]
    results: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class CudaPlan(ModulePlan):
    """A CuPy module: host lines launching the kernels, the kernels themselves, the
    optimizer steps' host lines and kernels, the launch geometry."""

    ctype: str
    loss_body: CudaBody
    grad_body: CudaBody
    kernels: tuple[CudaKernel, ...]
    updates: tuple[Update, ...]
    #: The optimizer steps' kernels (none when every parameter is a scalar).
    update_kernels: tuple[UpdateKernel, ...]
    threads: int
    max_blocks: int
    #: The ``sg_`` device helpers the kernels call (and those they call).
    device_helpers: frozenset[str]


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
        #: The entries (``element``) the host reads of each array, in order: one copy to
        #: the host per array (``_host_entries``), the first time a host line reads one.
        self.entries: dict[str, list[tuple[int, int]]] = {}
        for s in program.stmts:
            for e in s.inputs:
                for x in sorted(e.atoms(element), key=sp.default_sort_key):
                    at = self.entries.setdefault(x.args[0].name, [])
                    if (int(x.args[1]), int(x.args[2])) not in at:
                        at.append((int(x.args[1]), int(x.args[2])))
        self.copied: set[str] = set()

    # which device values must be stored in memory ----------------------------------
    def is_array(self, e: sp.Expr) -> bool:
        return any(s.name in self.shapes for s in e.free_symbols)

    # host lines ---------------------------------------------------------------------
    def emit(self, code: str, defines: Iterable[str], uses: Iterable[str], late=False) -> None:
        self.host.append(_HostLine(code, frozenset(defines), frozenset(uses), late))

    def _host_entries(self, e: sp.Expr) -> sp.Expr:
        """``e`` reading its entries (``element``) from host copies: the entries of an array
        that the host reads are copied in one transfer, ``_h_X = X[[rows], [cols]]``, as a
        list of floats, by a line scheduled late (it waits for the device)."""
        loads = e.atoms(element)
        if not loads:
            return e
        change = {}
        for x in loads:
            name = x.args[0].name
            at = self.entries[name]
            host = sp.IndexedBase(f"_h_{name}")
            if name not in self.copied:
                self.copied.add(name)
                rows = ", ".join(str(r) for r, _ in at)
                cols = ", ".join(str(c) for _, c in at)
                self.emit(
                    f"{host} = {name}[[{rows}], [{cols}]].get().tolist()",
                    [str(host)],
                    [name],
                    late=True,
                )
            change[x] = host[at.index((int(x.args[1]), int(x.args[2])))]
        return e.xreplace(change)

    def scalar_line(self, stmt: Assign) -> None:
        e = self._host_entries(stmt.value)
        text = repr(float(e)) if e.is_Number else self.scalar.doprint(e)
        uses = {s.name for s in e.free_symbols} | {str(x.base) for x in e.atoms(sp.Indexed)}
        self.emit(f"{stmt.target.name} = {text}", [stmt.target.name], uses)

    def lower(self) -> None:
        for n, k in enumerate(self.program.kernels):
            if k.is_matmul:
                (s,) = k.stmts
                a, b = self._view(s.left), self._view(s.right)
                uses = {sym.name for e in s.inputs for sym in e.free_symbols}
                self.emit(f"{s.target.name} = {a} @ {b}", [s.target.name], uses)
            elif k.is_scatter:
                (s,) = k.stmts
                self._scatter(n, s)
            elif k.is_place:
                (s,) = k.stmts
                self._place(s)
            elif k.is_step:
                (s,) = k.stmts  # the identity matrix
                uses = {x.name for x in s.size.free_symbols}  # the extent as written: 3 or D
                self.emit(f"{s.target.name} = cp.eye({s.size}, dtype=DTYPE)", [s.target.name], uses)
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
        device_kinds = (Elementwise, Fill, Reduction)
        first = next((i for i, s in enumerate(stmts) if isinstance(s, device_kinds)), None)
        if first is None:
            for s in stmts:
                self._host_stmt(s)
            return
        last = max(i for i, s in enumerate(stmts) if isinstance(s, device_kinds))
        for s in stmts[:first]:
            self._host_stmt(s)
        device = stmts[first : last + 1]
        after = stmts[last + 1 :]
        axis_results = {
            s.target.name: s.axes for s in device if isinstance(s, Reduction) and s.axes
        }
        # Scalar arithmetic on a reduction along an axis runs in the reducing thread.
        finals = [s for s in after if self._on_axis_result(s, axis_results)]
        host_after = [s for s in after if s not in finals]
        stored = self.used_later[n] | {s.target.name for s in finals}
        whole = [s for s in device if isinstance(s, Reduction) and not s.axes]
        by_axis = {
            ax: [s for s in device if isinstance(s, Reduction) and s.axes == ax]
            for ax in ((1,), (0,))
        }
        values = [s for s in device if isinstance(s, (Elementwise, Fill))]
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

    def _scatter(self, n: int, s: Scatter) -> None:
        """The target from its base (itself in place, a copy, or zeros), then one thread per
        row adds the row's value at its label."""
        target, index = s.target.name, s.index.name
        shape = _shape_text(s.shape)
        if s.base == 0:
            self.emit(f"{target} = cp.zeros({shape}, dtype=DTYPE)", [target], [])
        else:
            copy = "" if s.in_place else ".copy()"
            self.emit(f"{target} = {s.base.name}{copy}", [target], [s.base.name])
        domain = (s.shape[0], sp.S.One)
        loads, scalars = self._operands([s.value], set())
        dims = {str(x) for d in s.shape for x in sp.sympify(d).free_symbols}
        for v in loads:
            dims |= {str(x) for d in self.shapes[array_name(v)] for x in sp.sympify(d).free_symbols}
        dims |= scalars & self.dims
        scalars = sorted(scalars - self.dims)
        pointers = sorted({array_name(v) for v in loads})
        labels = sorted({index, *label_arrays(loads)})
        names = {n: self.names.c(n) for n in (*pointers, *labels, *scalars, *dims)}
        printer = CudaPrinter(self.dtype, {**names, **{str(v): var for v, var in loads.items()}})
        value = c.Type(self.ctype, const=True)
        body: list[c.Stmt] = []
        for v, var in loads.items():
            if isinstance(v, gathered):
                at = gathered_index(v, self.shapes, self.names)
            elif isinstance(v, transposed):
                at = transposed_index(self.shapes[v.args[0].name], self.names)
            else:
                at = element_index(self.shapes[v.name], domain, False, self.names)
            body.append(c.Declare(value, var, c.Index(c.Var(self.names.c(array_name(v))), at)))
        registers = {v: sp.Symbol(var) for v, var in loads.items() if not v.is_Symbol}
        at = label_index(s.shape, index, self.names)
        body.append(c.Assign(c.Index(c.Var("_w_out"), at), s.value.xreplace(registers), "+="))
        pointer = {"pointer": True, "restrict": True}
        params = (
            *(c.Param(c.Type(self.ctype, const=True, **pointer), names[p]) for p in pointers),
            *(c.Param(c.Type("long long", const=True, **pointer), names[p]) for p in labels),
            c.Param(c.Type(self.ctype, **pointer), "_w_out"),
            *(c.Param(c.Type(self.ctype), names[x]) for x in scalars),
            *(c.Param(c.Type("long long"), names[d]) for d in sorted(dims)),
        )
        name = f"{self.prefix}_{n}"
        rows = self.names.dim(s.shape[0])
        comment = "one thread per row: its value added at its label"
        function = c.Function(name, params, tuple(_grid(ROW, rows, body)), comment)
        self.kernels.append(CudaKernel(name, printer.function(function), frozenset(printer.calls)))
        args = (
            *pointers,
            *labels,
            target,
            *(f"DTYPE({x})" for x in scalars),
            *(f"np.int64({d})" for d in sorted(dims)),
        )
        uses = {*pointers, *labels, target, *scalars, *dims}
        self.emit(f"_launch({name!r}, {s.shape[0]}, {tuple_text(list(args))})", [target], uses)

    def _place(self, s: Place) -> None:
        """The values (host scalars) put at their entries of a host array of zeros, copied
        to the device in one transfer, and added to the base (itself in place, or a new
        array)."""
        target, host = s.target.name, f"_h_{s.target.name}"
        values = {x.name for v in s.values for x in v.free_symbols}
        zeros = f"{host} = np.zeros({_shape_text(s.shape)}, dtype=DTYPE)"
        self.emit(zeros, [host], [])
        self.emit(placed(replace(s, base=sp.S.Zero), host, self.scalar), [host], values | {host})
        if s.base == 0:
            self.emit(f"{target} = cp.asarray({host})", [target], [host])
        elif s.in_place:
            self.emit(f"{s.base.name} += cp.asarray({host})", [], [host, s.base.name])
            self.emit(f"{target} = {s.base.name}", [target], [s.base.name])
        else:
            self.emit(
                f"{target} = {s.base.name} + cp.asarray({host})", [target], [host, s.base.name]
            )

    def _on_axis_result(self, s: Stmt, axis_results: dict) -> bool:
        return isinstance(s, Assign) and self._axis_of(s, axis_results) is not None

    def _axis_of(self, s: Assign, axis_results: dict):
        axes = {axis_results[x.name] for x in s.value.free_symbols if x.name in axis_results}
        if len(axes) > 1:
            raise SpecError("the CUDA backend cannot combine reductions along both axes")
        return next(iter(axes), None)

    def _host_stmt(self, s: Stmt) -> None:
        if isinstance(s, Assign) and not self.is_array(s.value):
            self.scalar_line(s)
        elif isinstance(s, Fill) and not self.is_array(s.value):
            shape = _shape_text(s.shape)
            e = self._host_entries(s.value)
            value = self.scalar.doprint(e)
            uses = {x.name for x in e.free_symbols} | {str(x.base) for x in e.atoms(sp.Indexed)}
            self.emit(
                f"{s.target.name} = cp.full({shape}, {value}, dtype=DTYPE)", [s.target.name], uses
            )
        else:
            raise SpecError(
                f"the CUDA backend cannot place the statement {s.target} = {s.inputs[0]} "
                "(array arithmetic outside a kernel)"
            )

    def _launch(self, name, domain, loop, values, stores, whole, axis_reds, finals) -> None:
        ctype = self.ctype
        idx_of_line = ROW if loop == "rows" else COL
        # What this launch computes: the stored values, the reductions, and the device
        # values they need (dead statements of the group are left out).
        defined = {s.target.name: s for s in values}
        needed: list[Stmt] = []

        def need(e: sp.Expr) -> None:
            for sym in e.free_symbols:
                if sym.name in defined and defined[sym.name] not in needed:
                    for x in defined[sym.name].inputs:
                        need(x)
                    needed.append(defined[sym.name])

        for s in stores:
            need(s.target)
        for s in (*whole, *axis_reds):
            for e in s.inputs:
                need(e)
        needed.sort(key=values.index)
        computed = {s.target.name for s in needed} | {s.target.name for s in axis_reds}
        loads, scalars = self._operands(
            [e for s in (*needed, *whole, *axis_reds) for e in s.inputs],
            computed,
        )
        end_loads, end_scalars = self._operands(
            [s.value for s in finals], computed | {s.target.name for s in finals}
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
        labels = label_arrays(loads)
        printer = CudaPrinter(
            self.dtype,
            {
                **{
                    n: self.names.c(n)
                    for n in (*pointers, *labels, *written, *scalars, *end_scalars, *dims)
                },
                **{str(v): var for v, var in loads.items()},
            },
        )

        def element(e: sp.Expr) -> sp.Expr:
            """``e`` reading the registers its transposed and gathered operands are loaded into."""
            views = {
                v: sp.Symbol(var)
                for v, var in loads.items()
                if isinstance(v, (transposed, gathered))
            }
            return e.xreplace(views)

        def out(name: str, index: c.Expr) -> c.Index:
            return c.Index(c.Var(f"_w_{name}"), index)

        flat = loop == "flat"
        value = c.Type(ctype, const=True)
        body: list[c.Stmt] = []
        for v, var in loads.items():
            if isinstance(v, gathered):
                index = gathered_index(v, self.shapes, self.names)
            elif isinstance(v, transposed):
                index = transposed_index(self.shapes[v.args[0].name], self.names)
            else:
                index = element_index(self.shapes[v.name], domain, flat, self.names)
            body.append(c.Declare(value, var, c.Index(c.Var(self.names.c(array_name(v))), index)))
        body += [c.Declare(value, s.target.name, element(s.value)) for s in needed]
        for s in stores:
            shape = self.shapes[s.target.name]
            at = element_index(shape, domain, flat, self.names)
            body.append(store(out(s.target.name, at), c.Var(s.target.name), shape, domain))
        accs = []  # whole-array accumulators, maxima first: (variable, op)
        for r, s in enumerate(sorted(whole, key=lambda s: s.op != "max")):
            accs.append((c.Var(f"_acc{r}"), s.op))
            body.append(accumulate(c.Var(f"_acc{r}"), s, element(s.summand)))
        line_accs = []  # per row (column) accumulators: (variable, op)
        final_lines: list[c.Stmt] = []
        for r, s in enumerate(axis_reds):
            acc = c.Var(f"_line{r}")
            line_accs.append((acc, s.op))
            body.append(accumulate(acc, s, element(s.summand)))
            final_lines += [
                c.Declare(value, s.target.name, c.Cast(ctype, acc)),
                c.Assign(out(s.target.name, idx_of_line), c.Var(s.target.name)),
            ]
        for s in finals:
            final_lines += [
                c.Declare(value, s.target.name, element(s.value)),
                c.Assign(out(s.target.name, idx_of_line), c.Var(s.target.name)),
            ]
        d = [self.names.dim(x) for x in domain]
        outer, inner = {
            "flat": (c.mul(*d), None),
            "rows": (d[0], d[-1]),
            "cols": (d[-1], d[0]),
        }[loop]
        index: list[c.Stmt] = []
        if flat and len(domain) == 2:
            used = set().union(*(names_used(x) for x in body))
            position = c.Type("long long", const=True)
            if ROW.name in used:
                index.append(c.Declare(position, "_i", c.BinOp("/", FLAT, d[1])))
            if COL.name in used:
                j = (
                    c.BinOp("-", FLAT, c.mul(ROW, d[1]))
                    if ROW.name in used
                    else c.BinOp("%", FLAT, d[1])
                )
                index.append(c.Declare(position, "_j", j))
        reds = len(accs) + len(line_accs)
        what = {
            "flat": "every element",
            "rows": "one thread per row",
            "cols": "threads over slices of the rows of each column",
        }[loop]
        comment = f"{what} of {_shape_text(domain)}" + (
            f", {reds} reduction{'s' if reds != 1 else ''}" if reds else ""
        )
        pointer = {"pointer": True, "restrict": True}
        ptr_params = [
            c.Param(c.Type(ctype, const=True, **pointer), self.names.c(p)) for p in pointers
        ] + [c.Param(c.Type("long long", const=True, **pointer), self.names.c(p)) for p in labels]
        pointers = [*pointers, *labels]
        dim_params = [c.Param(c.Type("long long"), self.names.c(n)) for n in sorted(dims)]
        host_dims = [f"np.int64({n})" for n in sorted(dims)]

        def outs(names: list[str]) -> list[c.Param]:
            return [c.Param(c.Type(ctype, **pointer), f"_w_{w}") for w in names]

        def ins(names: set[str]) -> tuple[list[c.Param], list[str]]:
            ordered = sorted(names)
            params = [c.Param(c.Type(ctype), self.names.c(n)) for n in ordered]
            return params, [f"DTYPE({n})" for n in ordered]

        def kernel(name: str, comment: str, params, kernel_body, partials: bool) -> None:
            if partials:
                params = (*params, c.Param(c.Type("double", **pointer), "_partials"))
            function = c.Function(name, tuple(params), tuple(kernel_body), comment)
            text = printer.function(function)
            self.kernels.append(CudaKernel(name, text, frozenset(printer.calls)))

        declared = [c.Declare(c.Type("double"), acc.name, INITIAL[op]) for acc, op in accs]
        for w in written:
            self.emit(f"{w} = cp.empty({_shape_text(tuple(self.shapes[w]))}, dtype=DTYPE)", [w], [])
        py = [str(x) for x in domain]
        uses = set(pointers) | scalars | end_scalars | dims | set(written)
        if loop != "cols":
            scalar_params, host_scalars = ins(scalars | end_scalars)
            params = (*ptr_params, *outs(written), *scalar_params, *dim_params)
            args = (*pointers, *written, *host_scalars, *host_dims)
            if flat:
                loop_body = [*declared, *_grid(FLAT, outer, (*index, *body))]
            else:
                rows = (
                    *(c.Declare(c.Type("double"), a.name, INITIAL[op]) for a, op in line_accs),
                    c.Loop("_j", c.Literal("0"), inner, tuple(body)),
                    *final_lines,
                )
                loop_body = [*declared, *_grid(ROW, outer, rows)]
            kernel(name, comment, params, [*loop_body, *_reduce_block(accs)], bool(accs))
            extent = {"flat": "*".join(py), "rows": py[0]}[loop]
            self._emit_launch(name, extent, args, whole, accs, uses, written)
            return
        # Columns: threads over (slice of rows, column) accumulate partial column sums in
        # ``_lines``; then one block per column adds its slices in order and finishes.
        stored = [s.target.name for s in stores]
        ended = [s.target.name for s in (*axis_reds, *finals)]
        scalar_params, host_scalars = ins(scalars)
        end_scalar_params, end_host_scalars = ins(end_scalars)
        slices = c.Param(c.Type("long long", const=True), "_slices")
        lines = c.Var("_lines")
        params = (
            *ptr_params,
            *outs(stored),
            *scalar_params,
            *dim_params,
            slices,
            c.Param(c.Type("double", **pointer), "_lines"),
        )
        args = (*pointers, *stored, *host_scalars, *host_dims, "np.int64(_slices)", "_lines")
        end_params = (
            *outs(ended),
            *end_scalar_params,
            *dim_params,
            slices,
            c.Param(c.Type("double", const=True, **pointer), "_lines"),
        )
        end_args = (*ended, *end_host_scalars, *host_dims, "np.int64(_slices)", "_lines")
        n_slices, slice_, thread = c.Var("_slices"), c.Var("_slice"), c.Var("_t")
        position = c.Type("long long", const=True)

        def line_of(n: int) -> c.Index:
            """The partial result of column reduction ``n`` of this thread's column and slice."""
            at = c.add(c.mul(c.add(c.mul(c.Literal(str(n)), n_slices), slice_), outer), COL)
            return c.Index(lines, at)

        columns = (
            c.Declare(position, "_j", c.BinOp("%", thread, outer)),
            c.Declare(position, "_slice", c.BinOp("/", thread, outer)),
            *(c.Declare(c.Type("double"), a.name, INITIAL[op]) for a, op in line_accs),
            c.Loop("_i", slice_, inner, tuple(body), step=n_slices),
            *(c.Assign(line_of(n), a) for n, (a, _) in enumerate(line_accs)),
        )
        loop_body = [*declared, *_grid(thread, c.mul(outer, n_slices), columns)]
        kernel(name, comment, params, [*loop_body, *_reduce_block(accs)], bool(accs))
        ending: list[c.Stmt] = []
        for n, (acc, op) in enumerate(line_accs):
            v = c.Var("_v")
            add = c.Call("sg_max", (acc, v)) if op == "max" else c.add(acc, v)
            ending += [
                c.Declare(c.Type("double"), acc.name, INITIAL[op]),
                c.Loop(
                    "_slice",
                    c.Var("threadIdx.x"),
                    n_slices,
                    (c.Declare(c.Type("double", const=True), "_v", line_of(n)), c.Assign(acc, add)),
                    step=c.Var("blockDim.x"),
                ),
                c.Assign(acc, _block_reduce(acc, op)),
            ]
        ending.append(c.If(_FIRST_THREAD, tuple(final_lines)))
        end_body = [
            c.SharedArray("double", "_shared", c.Literal(str(THREADS))),
            c.Loop("_j", c.Var("blockIdx.x"), outer, tuple(ending), step=c.Var("gridDim.x")),
        ]
        kernel(f"{name}_end", f"adds the column slices of {name}", end_params, end_body, False)
        self.emit(f"_slices = _slices_for({py[-1]}, {py[0]})", ["_slices"], [])
        self.emit(
            f"_lines = cp.empty({len(axis_reds)}*_slices*{py[-1]}, dtype=np.float64)",
            ["_lines"],
            ["_slices"],
        )
        lines_uses = uses | {"_lines"}
        self._emit_launch(name, f"_slices*{py[-1]}", args, whole, accs, lines_uses, stored)
        self.emit(
            f"_launch_blocks({name + '_end'!r}, {py[-1]}, {tuple_text(list(end_args))})",
            ended,
            lines_uses,
        )

    def _emit_launch(self, name, extent, args, whole, accs, uses, writes) -> None:
        """A launch, which defines the arrays it ``writes`` (for ``_schedule``: a launch
        that waits for a host value delays the lines that read what it writes)."""
        arg_text = tuple_text(list(args))
        if not accs:
            self.emit(f"_launch({name!r}, {extent}, {arg_text})", writes, uses)
            return
        nmax = sum(1 for _, op in accs if op == "max")
        red = f"_red_{name}"
        self.emit(
            f"{red} = _reduce({name!r}, {extent}, {arg_text}, {len(accs)}, {nmax})",
            [red, *writes],
            uses,
        )
        order = sorted(whole, key=lambda s: s.op != "max")
        targets = ", ".join(s.target.name for s in order) + ("," if len(order) == 1 else "")
        self.emit(
            f"{targets} = {red}.get().tolist()", [s.target.name for s in order], [red], late=True
        )

    def _operands(self, exprs, computed: set[str]) -> tuple[dict, set[str]]:
        """The arrays read from memory, each with its register, and the scalar symbols."""
        return operands(exprs, computed, self.shapes)


_FIRST_THREAD = c.BinOp("==", c.Var("threadIdx.x"), c.Literal("0"))


def _grid(var: c.Var, stop: c.Expr, body) -> list[c.Stmt]:
    """A grid-stride loop of ``var`` over ``[0, stop)``: each thread takes every
    (blocks*threads)-th value."""
    start = c.add(
        c.mul(c.Cast("long long", c.Var("blockIdx.x")), c.Var("blockDim.x")), c.Var("threadIdx.x")
    )
    step = c.mul(c.Cast("long long", c.Var("gridDim.x")), c.Var("blockDim.x"))
    return [
        c.Declare(c.Type("long long", const=True), "_n", stop),
        c.Loop(var.name, start, c.Var("_n"), tuple(body), step=step),
    ]


def _block_reduce(acc: c.Var, op: str) -> c.Call:
    """The sum (or maximum) of ``acc`` over the threads of the block."""
    is_max = c.Literal("true" if op == "max" else "false")
    return c.Call("sg_block_reduce", (acc, c.Var("_shared"), is_max))


def _reduce_block(accs) -> list[c.Stmt]:
    """The end of a kernel with whole-array reductions: each block reduces every
    accumulator over its threads and writes one partial per reduction (``sg_finish``
    adds the partials of all blocks)."""
    if not accs:
        return []
    out: list[c.Stmt] = [c.SharedArray("double", "_shared", c.Literal(str(THREADS)))]
    for n, (acc, op) in enumerate(accs):
        at = c.add(c.mul(c.Literal(str(n)), c.Var("gridDim.x")), c.Var("blockIdx.x"))
        partial = c.Assign(c.Index(c.Var("_partials"), at), c.Var("_r"))
        out.append(
            c.Block(
                (
                    c.Declare(c.Type("double", const=True), "_r", _block_reduce(acc, op)),
                    c.If(_FIRST_THREAD, (partial,)),
                )
            )
        )
    return out


def _lower(program: Program, prefix: str, dtype: str, names: CNames) -> _ProgramLowering:
    lowering = _ProgramLowering(program, prefix, dtype, names)
    lowering.lower()
    return lowering


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
    arrays = tuple(p.kind != "scalar" for p in params)
    steps = []
    for u, lines in updates(tuple(p.name for p in params), arrays, results[1:], results[0], baked):
        host = [_HostLine(line.code, line.defines, line.uses) for line in lines]
        steps.append(replace(u, lines=_schedule(host)))  # after _loss_and_grad
    hvp = _lower(compiled.second_order.hvp_program, "hvp", problem.dtype, names)
    hvp_body = CudaBody(
        _schedule(hvp.host), tuple(s.name for s in compiled.second_order.hvp_program.outputs)
    )
    ctype = "float" if problem.dtype == "float32" else "double"
    helpers = tuple(
        h.source
        for h in python_helpers(loss.scalar.helpers | grad.scalar.helpers | hvp.scalar.helpers)
    )
    modules = {*loss.scalar.module_imports, *grad.scalar.module_imports}
    modules |= set(hvp.scalar.module_imports)
    pass_kernels = (*loss.kernels, *grad.kernels, *hvp.kernels)
    # sg_finish (cuda_kernels.cu.j2), which every module has, calls sg_block_reduce
    calls = frozenset({"sg_block_reduce"}).union(*(k.calls for k in pass_kernels))
    return CudaPlan(
        **fields,
        ctype=ctype,
        loss_body=loss_body,
        grad_body=grad_body,
        kernels=pass_kernels,
        updates=tuple(steps),
        update_kernels=kernels(ctype) if any(arrays) else (),
        threads=THREADS,
        max_blocks=MAX_BLOCKS,
        helpers=helpers,
        imports=imports(params, helpers, modules),
        device_helpers=helpers_used(calls),
        second=second_order.plan(compiled, hvp_body, False),
    )


def kernel_source(cplan: CudaPlan) -> str:
    """The CUDA C source of all kernels of a module (what ``_SOURCE`` holds)."""
    return render(
        TEMPLATES,
        "cuda_kernels.cu.j2",
        plan=cplan,
        functions=c_definitions(cplan.ctype, cplan.device_helpers),
    )


def generate(compiled: Compiled, source: str | None = None, baked: Baked | None = None) -> str:
    """The module's source; ``baked``: the optimizer whose hyperparameters are built in."""
    if compiled.problem.kind == "scalar":
        module = numpy_backend.plan(compiled, source, baked)
        return numpy_backend.render_module(replace(module, backend="CUDA", note=SCALAR_NOTE))
    cplan = plan(compiled, source, baked)
    return render(
        TEMPLATES,
        "cuda_module.py.j2",
        plan=cplan,
        source=kernel_source(cplan),
        install_cupy=INSTALL_CUPY,
    )


#: The docstring's note of a module over scalars, which computes on the host.
SCALAR_NOTE = (
    "A loss over scalars has no array work to run in parallel: one kernel launch",
    "costs more than the whole step, so this module computes on the host, on",
    "Python floats, exactly like the NumPy module.",
)
