"""The C backend (``--backend c``): the NumPy module, with its fused passes compiled to C.

A per-sample loss is a sum over samples of one scalar formula; its loss and all
partials come from one pass over the data. A matrix loss has passes over the
elements of matrices between its products (the logistic loss and its residual
around ``X @ w``, the ReLU mask of an MLP, softmax's row maxima and sums). The
NumPy module runs each pass as a sequence of array operations: each a trip through
memory, and float64 ``exp`` or ``sin`` one element at a time. Here each pass is one
C function instead: every element is read once, its statements run in registers,
sums accumulate in ``double``, and ``#pragma omp simd`` lets the compiler vectorise
the loop, math functions included (glibc's libmvec has AVX2/AVX-512 ``exp``,
``sin``, ``log``, ``log1p``, ...). Matrix products stay NumPy's ``@`` (BLAS), except
the matrix-vector products of a generalised linear model (``z = X @ w`` read only by
the pass over the rows of ``X``, and ``X.T @ r`` of a value ``r`` of that pass): those
run inside the pass, a chunk of rows at a time, so that ``X`` is read from memory once
(``fused_products``).

Everything else is the NumPy module's (argument checks, scalar arithmetic, the
optimizer steps): ``numpy.plan`` builds the plan and hands each pass to
``NativeKernels.pass_lines``, which records a C function and returns the Python
lines that call it. The generated module embeds the C source and compiles it on
first use with the system's C compiler (``$CC``, ``cc``, ``gcc`` or ``clang``)
into a cache directory, then calls it through ``ctypes``: no dependency beyond
NumPy and the standard library, like CuPy's ``RawKernel`` compiling CUDA source on
first launch. Flags: ``-O3 -march=native`` and no math ``errno``; no
``-ffast-math``, so NaN and infinity behave as in NumPy (the sums are reassociated
by the vectorised reduction: results match the NumPy module to about 1e-14).

Scalar losses compute on Python floats exactly like the NumPy module (a call into
C costs more than a Rosenbrock step).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import sympy as sp

from symgen.backends.c.elements import (
    CNames,
    accumulate,
    array_name,
    element_index,
    is_one,
    operands,
    reduced,
    refuse_reserved,
    store_guards,
    transposed_index,
)
from symgen.backends.numpy import module as numpy_backend
from symgen.codegen.hyperparams import Baked
from symgen.codegen.printers import CudaPrinter, c_definitions
from symgen.codegen.templating import render
from symgen.compiler.optimize import Kernel, Program, Stmt, transposed
from symgen.compiler.pipeline import Compiled

#: Its own templates, then the NumPy backend's (``c_module.py.j2`` extends ``numpy_module.py.j2``).
TEMPLATES = (Path(__file__).parent / "templates", *numpy_backend.TEMPLATES)


@dataclass(frozen=True)
class CKernel:
    """One compiled pass: a C function over the elements of a domain."""

    name: str
    comment: str
    #: C parameters, in order: arrays read, arrays written, scalars, dimensions, sums.
    params: tuple[str, ...]
    #: ctypes argument types, as Python source, in the same order.
    argtypes: tuple[str, ...]
    #: The function's body: declarations, the loop(s), the results.
    lines: tuple[str, ...]
    #: How many whole sums it writes to ``_out`` (the caller's accumulator array).
    sums: int


def _array_span(kernel: Kernel) -> tuple[int, int] | None:
    """The first and last statement of ``kernel``'s array part, which a C function runs
    (scalar statements before and after it stay in Python); None when the pass has
    statements a C function does not run (then NumPy runs it)."""
    inner = [i for i, s in enumerate(kernel.stmts) if s.kind != "scalar"]
    if not inner or len(kernel.domain) not in (1, 2):
        return None
    middle = kernel.stmts[inner[0] : inner[-1] + 1]
    if any(s.kind not in ("array", "fill", "sum", "dot", "max") for s in middle):
        return None
    return inner[0], inner[-1]


@dataclass(frozen=True)
class Products:
    """Matrix-vector products run inside a pass over the rows of their matrix, so that the
    matrix is read once: ``into = matrix @ vector`` (which the pass reads), and optionally
    ``out = matrix.T @ value`` (of a value the pass computes). A chunk of rows is multiplied,
    then passed over, then added into ``out`` while it is still in cache."""

    matrix: str
    vector: str
    into: str
    #: The kernels (by index in the program) that the pass takes over.
    absorbed: tuple[int, ...]
    out: str | None = None
    value: str | None = None


def fused_products(program: Program, shapes: dict[str, tuple]) -> dict[int, Products]:
    """For each pass over the rows (R, 1) of a matrix M (R, C) that reads ``a = M @ v``
    (v a column, ``a`` read by nothing else): the products it can take over, the later
    ``M.T @ r`` of a column ``r`` it computes (read by nothing else) included."""
    kernels = program.kernels
    outputs = {s.name for s in program.outputs}
    reads = program.reads()

    def read_only_by(name: str, allowed: set[int]) -> bool:
        return name not in outputs and all(
            name not in r for m, r in enumerate(reads) if m not in allowed
        )

    found: dict[int, Products] = {}
    taken: set[int] = set()
    for p, k in enumerate(kernels):
        if k.is_matmul or k.is_step or len(k.domain) != 2 or not is_one(k.domain[1]):
            continue
        if _array_span(k) is None:  # NumPy runs this pass: the products stay in BLAS
            continue
        for a_index in range(p):
            ka = kernels[a_index]
            if not ka.is_matmul or a_index in taken:
                continue
            (s,) = ka.stmts
            matrix, vector = s.exprs
            if not (matrix.is_Symbol and vector.is_Symbol):
                continue
            rows, cols = shapes.get(matrix.name, (None, None))
            if is_one(cols) or shapes.get(vector.name) != (cols, 1) or rows != k.domain[0]:
                continue
            into = s.target.name
            if into not in reads[p] or not read_only_by(into, {a_index, p}):
                continue
            products = Products(matrix.name, vector.name, into, (a_index,))
            defined = {st.target.name for st in k.stmts if st.kind == "array"}
            for b_index in range(p + 1, len(kernels)):
                kb = kernels[b_index]
                if not kb.is_matmul or b_index in taken:
                    continue
                (sb,) = kb.stmts
                left, value = sb.exprs
                if (
                    isinstance(left, transposed)
                    and left.args[0].name == matrix.name
                    and value.is_Symbol
                    and value.name in defined
                    and read_only_by(value.name, {p, b_index})
                ):
                    products = Products(
                        matrix.name, vector.name, into, (a_index, b_index), sb.target.name,
                        value.name,
                    )  # fmt: skip
                    break
            found[p] = products
            taken.update(products.absorbed)
            break
    return found


@dataclass(frozen=True)
class NativeModule:
    source: str
    kernels: tuple[CKernel, ...]
    #: Sizes of the accumulator arrays the calls pass (``_ACCUMULATORS``).
    accumulators: tuple[int, ...]


@dataclass
class NativeKernels:
    """Collects the C passes of one module while the NumPy backend plans it."""

    dtype: str
    #: The dimension variables (``N``, ``M``, ...): passed as ``long long``.
    dims: frozenset[str] = frozenset()
    kernels: list[CKernel] = field(default_factory=list)

    @property
    def ctype(self) -> str:
        return "float" if self.dtype == "float32" else "double"

    def fused_products(self, program: Program, shapes: dict[str, tuple]) -> dict[int, Products]:
        """The matrix-vector products this backend runs inside passes (``fused_products``)."""
        return fused_products(program, shapes)

    def module(self, name: str) -> NativeModule | None:
        """The compiled part of module ``name``: its C source and the passes' signatures."""
        if not self.kernels:
            return None
        kernels = tuple(self.kernels)
        sizes = sorted({k.sums for k in kernels if k.sums})
        return NativeModule(source(name, self.dtype, kernels), kernels, tuple(sizes))

    def pass_lines(
        self,
        kernel: Kernel,
        prefix: str,
        shapes: dict[str, tuple],
        stored: set[str],
        scalar_line: Callable[[Stmt], str],
        products: Products | None = None,
    ) -> list[str] | None:
        """The Python lines running the array part of ``kernel`` (a pass over samples or
        over the elements of a matrix) as one C function; the scalar set-up before it
        and the scalar results after it stay in Python. None when the pass holds a
        statement the C function does not run (then NumPy runs the pass)."""
        span = _array_span(kernel)
        if span is None:
            return None
        stmts = list(kernel.stmts)
        first, last = span
        middle = stmts[first : last + 1]
        numbered = [k.name.removeprefix(f"{prefix}_") for k in self.kernels]
        name = f"{prefix}_{sum(n.isdigit() for n in numbered)}"
        lowered = _Pass(self, kernel, middle, shapes, stored, products)
        self.kernels.append(lowered.c_kernel(name))
        lines = [scalar_line(s) for s in stmts[:first]]
        lines += lowered.python_call(name)
        lines += [scalar_line(s) for s in stmts[last + 1 :]]
        return lines


class _Pass:
    """One pass over ``domain`` as C: loads, statements, reductions, stores.

    A domain (M, K) runs as a loop over rows with an inner loop over columns, the
    inner one vectorised (``#pragma omp simd``); a domain (M, 1) or (N,) (samples)
    is one loop over rows, a domain (1, K) one loop over columns. Sums accumulate in
    ``double``: whole sums in scalars (``_acc``), row sums in one scalar per row,
    column sums in a ``double`` array indexed by the column.
    """

    def __init__(
        self, owner: NativeKernels, kernel: Kernel, middle, shapes, stored, products=None
    ) -> None:
        self.products: Products | None = products
        self.t = owner.ctype
        self.dtype = owner.dtype
        domain = tuple(kernel.domain)
        self.domain = domain if len(domain) == 2 else (domain[0], sp.S.One)
        self.flat = len(domain) == 1
        self.shapes = {
            n: (tuple(s) if len(s) == 2 else (s[0], sp.S.One)) for n, s in shapes.items()
        }
        m, k = self.domain
        self.loop = "rows" if is_one(k) else "cols" if is_one(m) else "nested"
        self.middle = middle
        defined = {s.target.name for s in middle}
        self.loads, symbols = operands([e for s in middle for e in s.exprs], defined, self.shapes)
        dims = symbols & owner.dims
        scalars = symbols - owner.dims
        dims |= {str(x) for d in self.domain for x in sp.sympify(d).free_symbols}
        computed = set()  # what the fused products compute: registers, not arrays
        read = {array_name(v) for v in self.loads}
        if products is not None:
            computed = {products.into}
            read |= {products.matrix, products.vector}
        for name in read:
            for d in self.shapes[name]:
                dims |= {str(x) for x in sp.sympify(d).free_symbols}
        self.arrays = sorted(read - computed)
        self.scalars = sorted(scalars)
        self.dims = sorted(dims)
        self.stores = [
            s.target.name for s in middle if s.kind in ("array", "fill") and s.target.name in stored
        ]
        self.whole = [s for s in middle if s.kind in ("sum", "dot", "max") and not _axis(s)]
        self.rowwise = [s for s in middle if s.kind in ("sum", "dot", "max") and _axis(s) == 1]
        self.colwise = [s for s in middle if s.kind in ("sum", "dot", "max") and _axis(s) == 0]
        self.names = CNames()
        self.printer = CudaPrinter(
            self.dtype,
            {
                **{n: self.names.c(n) for n in (*self.scalars, *self.dims, *defined)},
                **{str(v): var for v, var in self.loads.items()},
            },
        )

    # -- C ------------------------------------------------------------------------------
    def cprint(self, e: sp.Expr) -> str:
        views = {v: sp.Symbol(var) for v, var in self.loads.items() if isinstance(v, transposed)}
        return self.printer.doprint(e.xreplace(views))

    def value(self, s: Stmt) -> str:
        return self.cprint(reduced(s))

    def c_kernel(self, name: str) -> CKernel:
        t, c, dim = self.t, self.names.c, self.names.dim
        m, k = self.domain
        element = []
        fused = self.products
        for v, var in self.loads.items():
            if fused is not None and array_name(v) == fused.into:
                element.append(f"const {t} {var} = _a[_k];")  # this chunk's products
                continue
            if isinstance(v, transposed):
                at = transposed_index(self.shapes[v.args[0].name], self.names)
            else:
                at = element_index(self.shapes[v.name], self.domain, False, self.names)
            element.append(f"const {t} {var} = {c(array_name(v))}[{at}];")
        for s in self.middle:
            if s.kind in ("array", "fill"):
                element.append(f"const {t} {c(s.target.name)} = {self.cprint(s.exprs[0])};")
        if fused is not None and fused.value is not None:
            element.append(f"_r[_k] = (double){c(fused.value)};")
        for x in self.stores:
            at = element_index(self.shapes[x], self.domain, False, self.names)
            store = f"_w_{c(x)}[{at}] = {c(x)};"
            guards = store_guards(self.shapes[x], self.domain)
            element.append(f"if ({' && '.join(guards)}) {store}" if guards else store)
        before, after, inner_accs, outer = [], [], [], []  # declarations, results, clauses
        out = 0

        scalar_reductions = list(self.whole)
        # a row sum when every row is one element, a column sum over one row: whole sums
        scalar_reductions += self.rowwise if self.loop == "cols" else []
        scalar_reductions += self.colwise if self.loop == "rows" else []
        for r, s in enumerate(scalar_reductions):
            acc = f"_acc{r}"
            line, init, _ = accumulate(acc, s, self.cprint)
            before.append(f"double {acc} = {init};")
            element.append(line)
            inner_accs.append((acc, s.kind))
            if s in self.whole:
                after.append(f"_out[{out}] = {acc};")
                out += 1
            else:
                after.append(f"_w_{c(s.target.name)}[0] = {acc};")
        line_finals = []
        for r, s in enumerate(self.rowwise if self.loop != "cols" else []):
            if self.loop == "rows":  # one element per row: the value itself
                element.append(f"_w_{c(s.target.name)}[_i] = (double)({self.value(s)});")
                continue
            acc = f"_line{r}"
            line, init, _ = accumulate(acc, s, self.cprint)
            outer.append(f"double {acc} = {init};")
            element.append(line)
            inner_accs.append((acc, s.kind))
            line_finals.append(f"_w_{c(s.target.name)}[_i] = {acc};")
        for s in self.colwise if self.loop != "rows" else []:
            w = f"_w_{c(s.target.name)}[_j]"
            if self.loop == "cols":  # one element per column: the value itself
                element.append(f"{w} = (double)({self.value(s)});")
            else:  # each column its own accumulator, in the array
                element.append(accumulate(w, s, self.cprint)[0])
        sums = [acc for acc, kind in inner_accs if kind != "max"]
        simd = ["#pragma omp simd" + (f" reduction(+:{', '.join(sums)})" if sums else "")]
        if any(kind == "max" for _, kind in inner_accs):
            simd = []  # OpenMP's max reduction would not keep a NaN
        loop_of = {
            "rows": f"for (long long _i = 0; _i < {dim(m)}; ++_i) {{",
            "cols": f"for (long long _j = 0; _j < {dim(k)}; ++_j) {{",
        }
        body = list(before)
        if fused is not None:
            body += self.chunked(element, simd)
        elif self.loop == "nested":
            body += [loop_of["rows"], *(f"    {x}" for x in outer)]
            body += [f"    {x}" for x in simd]
            body += [f"    {loop_of['cols']}", *(f"        {x}" for x in element), "    }"]
            body += [*(f"    {x}" for x in line_finals), "}"]
        else:
            body += [*simd, loop_of[self.loop], *(f"    {x}" for x in element), "}"]
        body += after
        what = f"the samples ({m},)" if self.flat else f"the elements ({m}, {k})"
        if fused is not None:
            what = f"the rows of {fused.matrix} with {fused.into} = {fused.matrix} @ {fused.vector}"
            if fused.out is not None:
                what += f" and {fused.out} = {fused.matrix}.T @ {fused.value}"
        reds = len(self.whole) + len(self.rowwise) + len(self.colwise)
        comment = f"one pass over {what}" + (
            f", {reds} reduction{'s' if reds != 1 else ''}" if reds else ""
        )
        written = [*self.stores, *(s.target.name for s in (*self.rowwise, *self.colwise))]
        if fused is not None and fused.out is not None:
            written.append(fused.out)
        sums_out = ("double* restrict _out",) if self.whole else ()
        params = (
            *(f"const {t}* restrict {c(x)}" for x in self.arrays),
            *(f"{t}* restrict _w_{c(x)}" for x in self.stores),
            *(f"double* restrict _w_{c(x)}" for x in written[len(self.stores) :]),
            *(f"const {t} {c(x)}" for x in self.scalars),
            *(f"const long long {c(x)}" for x in self.dims),
            *sums_out,
        )
        scalar_type = "ctypes.c_float" if t == "float" else "ctypes.c_double"
        argtypes = (
            *("ctypes.c_void_p" for _ in (*self.arrays, *written)),
            *(scalar_type for _ in self.scalars),
            *("ctypes.c_longlong" for _ in self.dims),
            *(("ctypes.c_void_p",) if self.whole else ()),
        )
        return CKernel(name, comment, params, argtypes, tuple(body), len(self.whole))

    def chunked(self, element: list[str], simd: list[str]) -> list[str]:
        """The loop over rows in chunks that stay in cache: a chunk's products with the
        matrix, the pass over its rows, then its rows added into ``matrix.T @ value``."""
        fused, t, c = self.products, self.t, self.names.c
        assert fused is not None
        rows, cols = (self.names.dim(d) for d in self.shapes[fused.matrix])
        matrix, vector = c(fused.matrix), c(fused.vector)
        lines = [
            f"{t} _a[{CHUNK}];",
            *([f"double _r[{CHUNK}];"] if fused.out is not None else []),
            f"long long _rows = {CHUNK_VALUES} / ({cols} > 0 ? {cols} : 1);",
            f"if (_rows < 1) _rows = 1; else if (_rows > {CHUNK}) _rows = {CHUNK};",
            f"for (long long _c = 0; _c < {rows}; _c += _rows) {{",
            f"    const long long _m = {rows} - _c < _rows ? {rows} - _c : _rows;",
            "    for (long long _k = 0; _k < _m; ++_k) {",
            f"        const {t}* restrict _row = {matrix} + (_c + _k)*{cols};",
            "        double _s = 0.0;",
            "#pragma omp simd reduction(+:_s)",
            f"        for (long long _q = 0; _q < {cols}; ++_q) "
            f"_s += (double)_row[_q]*{vector}[_q];",
            f"        _a[_k] = ({t})_s;",
            "    }",
            *(f"    {x}" for x in simd),
            "    for (long long _k = 0; _k < _m; ++_k) {",
            "        const long long _i = _c + _k;",
            *(f"        {x}" for x in element),
            "    }",
        ]
        if fused.out is not None:
            lines += [
                "    for (long long _k = 0; _k < _m; ++_k) {",
                f"        const {t}* restrict _row = {matrix} + (_c + _k)*{cols};",
                "        const double _rk = _r[_k];",
                "#pragma omp simd",
                f"        for (long long _q = 0; _q < {cols}; ++_q) "
                f"_w_{c(fused.out)}[_q] += _rk*_row[_q];",
                "    }",
            ]
        return [*lines, "}"]

    # -- Python -------------------------------------------------------------------------
    def python_call(self, name: str) -> list[str]:
        lines = []
        for x in self.stores:
            lines.append(f"{x} = np.empty({_shape(self.shapes[x], self.flat)}, dtype=DTYPE)")
        axis_sums = [*self.rowwise, *self.colwise]
        for s in axis_sums:  # written in double, then given the module's dtype
            shape = _shape(self.shapes[s.target.name], self.flat)
            fill = "np.full" if s.kind == "max" else "np.zeros"
            extra = ", -np.inf" if s.kind == "max" else ""
            lines.append(f"_r_{s.target.name} = {fill}({shape}{extra})")
        fused = self.products
        if fused is not None and fused.out is not None:
            cols = self.shapes[fused.matrix][1]
            lines.append(f"_r_{fused.out} = np.zeros(({cols},))")
        args = [f"{x}.ctypes.data" for x in self.arrays]
        args += [f"{x}.ctypes.data" for x in self.stores]
        args += [f"_r_{s.target.name}.ctypes.data" for s in axis_sums]
        if fused is not None and fused.out is not None:
            args.append(f"_r_{fused.out}.ctypes.data")
        args += [*self.scalars, *self.dims]
        if self.whole:
            lines.append(f"_acc = _ACCUMULATORS[{len(self.whole)}]()")
            args.append("_acc")
        lines.append(f"_lib().{name}({', '.join(args)})")
        if self.whole:
            targets = ", ".join(s.target.name for s in self.whole)
            lines.append(f"{targets}{',' if len(self.whole) == 1 else ''} = _acc")
        convert = ".astype(DTYPE)" if self.dtype != "float64" else ""
        for s in axis_sums:
            lines.append(f"{s.target.name} = _r_{s.target.name}{convert}")
        if fused is not None and fused.out is not None:
            cols = self.shapes[fused.matrix][1]
            lines.append(f"{fused.out} = _r_{fused.out}.reshape(({cols}, 1)){convert}")
        return lines


#: Rows per chunk of a pass with fused products at most, and values per chunk of the
#: matrix (2048 float64 values are 16 KiB: a chunk stays in the L1 cache between the
#: products, the pass and the transposed products).
CHUNK = 256
CHUNK_VALUES = 2048


def _axis(s: Stmt) -> int | None:
    """The axis a reduction keeps summing over (0: column sums, 1: row sums), None: all."""
    return s.axes[0] if len(s.axes) == 1 else None


def _shape(shape, flat: bool) -> str:
    if flat:
        return f"({shape[0]},)"
    return f"({shape[0]}, {shape[1]})"


def source(name: str, dtype: str, kernels: tuple[CKernel, ...]) -> str:
    """The C source of a module's passes (what its ``_SOURCE`` holds)."""
    ctype = "float" if dtype == "float32" else "double"
    return render(
        TEMPLATES,
        "c_kernels.c.j2",
        name=name,
        ctype=ctype,
        kernels=kernels,
        functions=c_definitions(ctype),
    )


def generate(compiled: Compiled, source_path: str | None = None, baked: Baked | None = None):
    """The module's source; ``baked``: the optimizer whose hyperparameters are built in."""

    problem = compiled.problem
    lowered = compiled.lowered
    dims = frozenset(str(d) for d, _, _ in lowered.dims)
    refuse_reserved([i.name for i in (*lowered.params, *lowered.data)] + sorted(dims), "C")
    native = NativeKernels(problem.dtype, dims)
    module = numpy_backend.plan(compiled, source_path, baked, native=native)
    if module.native is not None:
        return render(TEMPLATES, "c_module.py.j2", plan=module)
    text = render(TEMPLATES, "numpy_module.py.j2", plan=module)  # no pass to compile
    first = f'"""{problem.name}: loss and gradients, generated by symgen.\n'
    note = (
        f'"""{problem.name}: loss and gradients, generated by symgen (C backend).\n\n'
        "A loss over scalars has no pass over samples to compile: a call into C costs\n"
        "more than the whole step, so this module computes on Python floats, exactly\n"
        "like the NumPy module.\n"
    )
    return text.replace(first, note, 1)
