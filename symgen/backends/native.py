"""The C backend (``--backend c``): the NumPy module, with its passes over the samples
compiled to C.

A per-sample loss is a sum over samples of one scalar formula; its loss and all
partials come from one pass over the data. The NumPy module runs that pass as a
sequence of array operations (each a trip through memory, and float64 ``exp`` or
``sin`` one element at a time). Here the pass is one C loop instead: every sample
is read once, its statements run in registers, the sums accumulate in ``double``,
and ``#pragma omp simd`` lets the compiler vectorise the loop, math functions
included (glibc's libmvec has AVX2/AVX-512 ``exp``, ``sin``, ``log``, ...).

Everything else is the NumPy module's (argument checks, scalar arithmetic, the
optimizer steps): ``numpy.plan`` builds the plan and hands each per-sample pass to
``NativeKernels.pass_lines``, which records a C function and returns the Python
lines that call it. The generated module embeds the C source and compiles it on
first use with the system's C compiler (``$CC``, ``cc``, ``gcc`` or ``clang``)
into a cache directory, then calls it through ``ctypes``: no dependency beyond
NumPy and the standard library, like CuPy's ``RawKernel`` compiling CUDA source on
first launch. Flags: ``-O3 -march=native`` and no math ``errno``; no
``-ffast-math``, so NaN and infinity behave as in NumPy (the sums are reassociated
by the vectorised reduction: results match the NumPy module to about 1e-14).

Scalar losses compute on Python floats exactly like the NumPy module (a call into
C costs more than a Rosenbrock step). Matrix losses are refused with a message:
their products already run in BLAS, and their elementwise passes are not compiled
by this backend yet.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import sympy as sp

from ..errors import SpecError
from ..hyperparams import Baked
from ..optimize import Kernel, Stmt
from ..pipeline import Compiled
from ..printers import C_RESERVED, CudaPrinter
from ..templating import render


@dataclass(frozen=True)
class CKernel:
    """One compiled pass over the samples: ``for (_e = 0; _e < n; _e++) {body}``."""

    name: str
    comment: str
    #: C parameters, in order (pointers, then scalars, then the sample count).
    params: tuple[str, ...]
    #: ctypes argument types, as Python source (``ctypes.c_void_p`` ...), same order,
    #: followed by the accumulator array when the pass reduces.
    argtypes: tuple[str, ...]
    #: Loads of the sample's values, then its statements, then its stores.
    body: tuple[str, ...]
    #: Accumulators: (C name, initial value, "sum" | "max").
    accs: tuple[tuple[str, str, str], ...]
    #: The C name of the sample count.
    count: str
    #: ``#pragma omp simd`` on the loop (not when a maximum is taken: OpenMP's
    #: ``max`` reduction would not keep a NaN).
    simd: bool


@dataclass
class NativeKernels:
    """Collects the C passes of one module while the NumPy backend plans it."""

    dtype: str
    kernels: list[CKernel] = field(default_factory=list)

    @property
    def ctype(self) -> str:
        return "float" if self.dtype == "float32" else "double"

    def pass_lines(
        self,
        kernel: Kernel,
        prefix: str,
        arrays: frozenset[str],
        stored: set[str],
        scalar_line: Callable[[Stmt], str],
    ) -> list[str] | None:
        """The Python lines running the array part of a per-sample ``kernel`` as one C
        loop (scalar set-up before it and scalar results after it stay in Python), or
        None when the pass has statements a C loop does not run (then NumPy does)."""
        stmts = list(kernel.stmts)
        inner = [i for i, s in enumerate(stmts) if s.kind != "scalar"]
        if not inner:
            return None
        first, last = inner[0], inner[-1]
        middle = stmts[first : last + 1]
        if any(s.kind not in ("array", "sum", "dot", "max") or s.axes for s in middle):
            return None
        name = f"{prefix}_{sum(k.name.startswith(prefix + '_') for k in self.kernels)}"
        n = kernel.domain[0]
        if not isinstance(n, sp.Symbol):
            return None
        defined = {s.target.name for s in middle}
        loads: list[str] = []
        scalars: list[str] = []
        for s in middle:
            for e in s.exprs:
                for sym in sorted(e.free_symbols, key=lambda x: x.name):
                    if sym.name in defined or sym.name == n.name:
                        continue
                    bucket = loads if sym.name in arrays else scalars
                    if sym.name not in bucket:
                        bucket.append(sym.name)
        stores = [s.target.name for s in middle if s.kind == "array" and s.target.name in stored]
        reductions = [s for s in middle if s.kind != "array"]
        c = _c_name
        printer = CudaPrinter(
            self.dtype,
            {
                **{x: c(x) for x in (*scalars, *defined)},
                **{x: f"_v_{x}" for x in loads},
                n.name: c(n.name),
            },
        )
        t = self.ctype
        body = [f"const {t} _v_{x} = {c(x)}[_e];" for x in loads]
        accs = []
        for s in middle:
            if s.kind == "array":
                body.append(f"const {t} {c(s.target.name)} = {printer.doprint(s.exprs[0])};")
                continue
            acc = f"_acc{len(accs)}"
            value = printer.doprint(sp.Mul(*s.exprs) if s.kind == "dot" else s.exprs[0])
            if s.kind == "max":
                body.append(f"{acc} = sg_max({acc}, (double)({value}));")
                accs.append((acc, "-INFINITY", "max"))
            else:
                body.append(f"{acc} += (double)({value});")
                accs.append((acc, "0.0", "sum"))
        body += [f"_w_{c(x)}[_e] = {c(x)};" for x in stores]
        params = (
            *(f"const {t}* restrict {c(x)}" for x in loads),
            *(f"{t}* restrict _w_{c(x)}" for x in stores),
            *(f"const {t} {c(x)}" for x in scalars),
            f"const long long {c(n.name)}",
            *(("double* restrict _out",) if accs else ()),
        )
        scalar_type = "ctypes.c_float" if t == "float" else "ctypes.c_double"
        argtypes = (
            *("ctypes.c_void_p" for _ in (*loads, *stores)),
            *(scalar_type for _ in scalars),
            "ctypes.c_longlong",
            *(("ctypes.c_void_p",) if accs else ()),
        )
        what = f"{len(accs)} reduction{'s' if len(accs) != 1 else ''}" if accs else "no reduction"
        self.kernels.append(
            CKernel(
                name,
                f"one pass over the samples ({n},), {what}",
                params,
                argtypes,
                tuple(body),
                tuple(accs),
                c(n.name),
                simd=all(op == "sum" for _, _, op in accs),
            )
        )
        lines = [scalar_line(s) for s in stmts[:first]]
        lines += [f"{x} = np.empty(({n},), dtype=DTYPE)" for x in stores]
        args = [f"{x}.ctypes.data" for x in (*loads, *stores)] + [*scalars, str(n)]
        if accs:
            lines.append(f"_acc = _ACCUMULATORS[{len(accs)}]()")
            args.append("_acc")
        lines.append(f"_lib().{name}({', '.join(args)})")
        if accs:
            targets = ", ".join(s.target.name for s in reductions)
            comma = "," if len(reductions) == 1 else ""
            lines.append(f"{targets}{comma} = _acc")
        lines += [scalar_line(s) for s in stmts[last + 1 :]]
        return lines


def _c_name(name: str) -> str:
    return f"{name}_" if name in C_RESERVED else name


def source(name: str, dtype: str, kernels: tuple[CKernel, ...]) -> str:
    """The C source of a module's passes (what its ``_SOURCE`` holds)."""
    ctype = "float" if dtype == "float32" else "double"
    return render("c_kernels.c.j2", name=name, ctype=ctype, kernels=kernels)


def generate(compiled: Compiled, source_path: str | None = None, baked: Baked | None = None):
    """The module's source; ``baked``: the optimizer whose hyperparameters are built in."""
    from . import numpy as numpy_backend

    problem = compiled.problem
    if problem.kind == "matrix":
        raise SpecError(
            f"{problem.name}: the C backend compiles per-sample and scalar losses; a matrix "
            "loss's products already run in BLAS: use --backend numpy (or cuda)"
        )
    if any(name.startswith(("_v_", "_w_", "_acc", "sg_")) for name in _names(compiled)):
        raise SpecError("the C backend reserves the name prefixes _v_, _w_, _acc and sg_")
    native = NativeKernels(problem.dtype)
    text = numpy_backend.generate(compiled, source_path, baked, native=native)
    if native.kernels:
        return text
    first = f'"""{problem.name}: loss and gradients, generated by symgen.\n'
    note = (
        f'"""{problem.name}: loss and gradients, generated by symgen (C backend).\n\n'
        "A loss over scalars has no pass over samples to compile: a call into C costs\n"
        "more than the whole step, so this module computes on Python floats, exactly\n"
        "like the NumPy module.\n"
    )
    return text.replace(first, note, 1)


def _names(compiled: Compiled) -> list[str]:
    lowered = compiled.lowered
    return [i.name for i in (*lowered.params, *lowered.data)] + [str(d) for d, _, _ in lowered.dims]
