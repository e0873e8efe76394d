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

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import sympy as sp

from symgen import library_cache
from symgen.backends.c.elements import (
    COL,
    INITIAL,
    ROW,
    CNames,
    accumulate,
    array_name,
    element_index,
    gathered_index,
    is_one,
    label_arrays,
    label_index,
    operands,
    refuse_reserved,
    store,
    transposed_index,
)
from symgen.backends.c.gram import GRAM_AT_MOST, Gram, GramCode, fused_gram
from symgen.backends.numpy import module as numpy_backend
from symgen.codegen import c_ast as c
from symgen.codegen.c_printer import CPrinter, helpers_used
from symgen.codegen.optimizers import Baked
from symgen.codegen.printers import c_definitions
from symgen.codegen.templating import render
from symgen.compiler.optimize import (
    Assign,
    Elementwise,
    Fill,
    Kernel,
    Program,
    Reduction,
    Scatter,
    Stmt,
    Sum,
    gathered,
    transposed,
)
from symgen.compiler.pipeline import Compiled
from symgen.compiler.scalar_functions import FUNCTIONS

#: Its own templates, then the NumPy backend's (``c_module.py.j2`` extends ``numpy_module.py.j2``).
TEMPLATES = (Path(__file__).parent / "templates", *numpy_backend.TEMPLATES)


@dataclass(frozen=True)
class CKernel:
    """One compiled pass: a C function over the elements of a domain."""

    name: str
    #: ctypes argument types, as Python source, in the order of the C parameters
    #: (arrays read, arrays written, scalars, dimensions, sums).
    argtypes: tuple[str, ...]
    #: The function's C text (``c_printer.CPrinter``).
    text: str
    #: The functions of the module (``sg_`` helpers) that it calls.
    calls: frozenset[str]
    #: How many whole sums it writes to ``_out`` (the caller's accumulator array).
    sums: int
    #: Whether it shares its rows among threads (it takes the thread count, ``_threads``).
    threaded: bool = False
    #: Whether it allocates its tasks' partial sums (it returns 1 when it cannot).
    allocates: bool = False


def _array_span(kernel: Kernel) -> tuple[int, int] | None:
    """The first and last statement of ``kernel``'s array part, which a C function runs
    (scalar statements before and after it stay in Python); None when the pass has
    statements a C function does not run (then NumPy runs it)."""
    inner = [i for i, s in enumerate(kernel.stmts) if not isinstance(s, Assign)]
    if not inner or len(kernel.domain) not in (1, 2):
        return None
    middle = kernel.stmts[inner[0] : inner[-1] + 1]
    if any(not isinstance(s, (Elementwise, Fill, Reduction)) for s in middle):
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
    #: ``B.T @ B`` with ``B = matrix ⊙ r``, ``r`` a column of the pass (``backends/c/gram``).
    gram: Gram | None = None

    @property
    def taken(self) -> tuple[int, ...]:
        """The kernels the pass takes over, those of its Gram product included."""
        return self.absorbed + (self.gram.absorbed if self.gram is not None else ())


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
            matrix, vector = s.left, s.right
            if not (matrix.is_Symbol and vector.is_Symbol):
                continue
            rows, cols = shapes.get(matrix.name, (None, None))
            if is_one(cols) or shapes.get(vector.name) != (cols, 1) or rows != k.domain[0]:
                continue
            into = s.target.name
            if into not in reads[p] or not read_only_by(into, {a_index, p}):
                continue
            products = Products(matrix.name, vector.name, into, (a_index,))
            defined = {st.target.name for st in k.stmts if isinstance(st, Elementwise)}
            for b_index in range(p + 1, len(kernels)):
                kb = kernels[b_index]
                if not kb.is_matmul or b_index in taken:
                    continue
                (sb,) = kb.stmts
                left, value = sb.left, sb.right
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
            gram = fused_gram(program, p, matrix.name, read_only_by)
            if gram is not None and not taken & set(gram.absorbed):
                products = replace(products, gram=gram)
            found[p] = products
            taken.update(products.taken)
            break
    return found


def compiler_flags(dtype: str) -> tuple[str, ...]:
    """The C compiler's flags: optimised for this machine, no math ``errno``, OpenMP, and no
    builtin sin or cos (so that no sincos(), which has no vector variant, replaces a pair
    of them); no -ffast-math, so NaN and infinity behave as in NumPy. In float64 also
    -fno-trapping-math (branches computed and selected vectorise: 1-14% faster, measured).
    Not in float32: with it gcc 12.2 miscompiles a pass that sums float branches in double
    accumulators (the Huber loss's newton_step summed garbage: tests/test_c_backend.py)."""
    trapping = ("-fno-trapping-math",) if dtype == "float64" else ()
    return (
        *("-O3", "-march=native", "-fno-math-errno", *trapping, "-fopenmp"),
        *("-fno-builtin-sin", "-fno-builtin-cos"),
    )


@dataclass(frozen=True)
class NativeModule:
    source: str
    kernels: tuple[CKernel, ...]
    #: Sizes of the accumulator arrays the calls pass (``_ACCUMULATORS``).
    accumulators: tuple[int, ...]
    #: The checked library cache's functions (``symgen.library_cache``), as the module
    #: carries them.
    cache: tuple[str, ...] = ()
    #: The compiler's flags (``compiler_flags``).
    flags: tuple[str, ...] = ()

    #: The sizes of a matrix (bytes) at most and at least which its products run inside
    #: the pass over its rows (``_FUSED_AT_MOST``, ``_FUSED_AT_LEAST``); None: no such pass.
    fusion: tuple[int, int] | None = None
    #: The rule of thin products (``_THIN``, ``_THIN_FROM``: ``THIN``, ``THIN_FROM``);
    #: None: no matrix product.
    thin: tuple[int, int] | None = None
    #: The most columns of a matrix whose Gram product its pass sums (``_GRAM_AT_MOST``);
    #: None: no such pass.
    gram: int | None = None


#: The source of the library cache's functions, which each module carries (it is standalone).
CACHE_SOURCE = tuple(inspect.getsource(f).rstrip() for f in library_cache.EMBEDDED)


@dataclass
class NativeKernels:
    """Collects the C passes of one module while the NumPy backend plans it."""

    dtype: str
    #: The dimension variables (``N``, ``M``, ...): passed as ``long long``.
    dims: frozenset[str] = frozenset()
    kernels: list[CKernel] = field(default_factory=list)
    #: Whether a pass chooses between fused products and BLAS (``choose``).
    chooses: bool = False
    #: Whether the module checks data declared binary (``not_binary``).
    binary: bool = False
    #: Whether a pass chooses between its Gram sum and BLAS (``choose_gram``).
    chooses_gram: bool = False
    #: Whether the module has a matrix product by BLAS (``product``).
    multiplies: bool = False

    @property
    def ctype(self) -> str:
        return "float" if self.dtype == "float32" else "double"

    def fused_products(self, program: Program, shapes: dict[str, tuple]) -> dict[int, Products]:
        """The matrix-vector products this backend runs inside passes (``fused_products``)."""
        return fused_products(program, shapes)

    def product(self, left: str, right: str) -> str:
        """``left @ right`` by BLAS, through the module's ``_product``: a thin product runs
        on one BLAS thread (``THIN``)."""
        self.multiplies = True
        return f"_product({left}, {right})"

    def choose(self, products: Products, fused: list[str], apart: list[str]) -> list[str]:
        """The lines that run a pass with its products inside (``fused``) when its matrix is
        small, or large and read once instead of twice (both products fused), else the
        products by BLAS around the pass (``apart``): chosen at call time from the matrix's
        size in bytes (``FUSED_AT_MOST``, ``FUSED_AT_LEAST``)."""
        self.chooses = True
        size = f"{products.matrix}.nbytes"
        condition = f"{size} <= _FUSED_AT_MOST"
        if products.out is not None:
            condition += f" or {size} >= _FUSED_AT_LEAST"
        return [
            f"if {condition}:",
            *(f"    {line}" for line in fused),
            "else:",
            *(f"    {line}" for line in apart),
        ]

    def choose_gram(self, products: Products, fused: list[str], apart: list[str]) -> list[str]:
        """The lines that run a pass with its Gram product inside (``fused``) when its
        matrix has at most ``GRAM_AT_MOST`` columns, else ``apart`` (B written out, BLAS)."""
        self.chooses_gram = True
        return [
            f"if {products.matrix}.shape[1] <= _GRAM_AT_MOST:",
            *(f"    {line}" for line in fused),
            "else:",
            *(f"    {line}" for line in apart),
        ]

    def module(self, name: str) -> NativeModule | None:
        """The compiled part of module ``name``: its C source and the passes' signatures."""
        if not self.kernels:
            return None
        if self.binary:
            self.kernels.append(self.not_binary())
        kernels = tuple(self.kernels)
        sizes = sorted({k.sums for k in kernels if k.sums})
        helpers = helpers_used(frozenset().union(*(k.calls for k in kernels)))
        fusion = (FUSED_AT_MOST, FUSED_AT_LEAST) if self.chooses else None
        return NativeModule(
            source(name, self.dtype, kernels, helpers),
            kernels,
            tuple(sizes),
            cache=CACHE_SOURCE,
            flags=compiler_flags(self.dtype),
            fusion=fusion,
            thin=(THIN, THIN_FROM) if self.multiplies else None,
            gram=GRAM_AT_MOST if self.chooses_gram else None,
        )

    def pass_lines(
        self,
        kernel: Kernel,
        prefix: str,
        shapes: dict[str, tuple],
        stored: set[str],
        scalar_line: Callable[[Stmt], str],
        products: Products | None = None,
        columns: dict[str, numpy_backend.Column] | None = None,
        placed: set[str] | None = None,
    ) -> list[str] | None:
        """The Python lines running the array part of ``kernel`` (a pass over samples or
        over the elements of a matrix) as one C function; the scalar set-up before it
        and the scalar results after it stay in Python. None when the pass holds a
        statement the C function does not run (then NumPy runs the pass). Stored values
        in ``columns`` are written into their column (their names go into ``placed``)."""
        if kernel.is_scatter:
            (stmt,) = kernel.stmts
            return self.scatter_lines(stmt, prefix, shapes)
        span = _array_span(kernel)
        if span is None:
            return None
        stmts = list(kernel.stmts)
        first, last = span
        middle = stmts[first : last + 1]
        numbered = [k.name.removeprefix(f"{prefix}_") for k in self.kernels]
        name = f"{prefix}_{sum(n.isdigit() for n in numbered)}"
        lowered = _Pass(self, kernel, middle, shapes, stored, products, columns)
        if placed is not None:
            placed |= set(lowered.columns)
        compiled = lowered.c_kernel(name)
        self.kernels.append(compiled)
        lines = [scalar_line(s) for s in stmts[:first]]
        lines += lowered.python_call(name, compiled.threaded, compiled.allocates)
        lines += [scalar_line(s) for s in stmts[last + 1 :]]
        return lines

    def not_binary(self) -> CKernel:
        """``not_binary(x, _n, _threads, _out)``: how many of the ``_n`` entries of ``x`` are
        neither 0 nor 1 (``x*(x - 1) != 0``: NaN and infinities too), into ``_out[0]``; the
        check of data declared binary, as a pass on the module's threads (the module's
        ``_not_binary``)."""
        x, n = sp.Symbol("x", real=True), sp.Symbol("_n", integer=True, positive=True)
        wrong = sp.Piecewise((sp.S.One, sp.Ne(x * (x - 1), 0)), (sp.S.Zero, True))
        count = Sum(sp.Symbol("_count"), wrong)
        lowered = _Pass(replace(self, dims=frozenset({n.name})), Kernel((n,), (count,)),
                        [count], {x.name: (n,)}, set())  # fmt: skip
        return lowered.c_kernel("not_binary")

    def scatter_lines(self, s: Scatter, prefix: str, shapes: dict[str, tuple]) -> list[str]:
        """A scatter as a C loop over the rows, adding each row's value at its label into
        the target: its base itself (in place), a copy, or zeros; C-contiguous."""
        numbered = [k.name.removeprefix(f"{prefix}_") for k in self.kernels]
        name = f"{prefix}_{sum(n.isdigit() for n in numbered)}"
        names = CNames()
        shapes = {n: (tuple(v) if len(v) == 2 else (v[0], sp.S.One)) for n, v in shapes.items()}
        loads, scalars = operands([s.value], set(), shapes)
        arrays = sorted({array_name(v) for v in loads})
        labels = sorted({s.index.name, *label_arrays(loads)})
        dims = {str(x) for d in s.shape for x in sp.sympify(d).free_symbols}
        for v in loads:
            dims |= {str(x) for d in shapes[array_name(v)] for x in sp.sympify(d).free_symbols}
        dims |= scalars & self.dims
        scalars = sorted(scalars - self.dims)
        domain = (s.shape[0], sp.S.One)
        value = c.Type(self.ctype, const=True)
        body: list[c.Stmt] = []
        for v, var in loads.items():
            if isinstance(v, gathered):
                at = gathered_index(v, shapes, names)
            elif isinstance(v, transposed):
                at = transposed_index(shapes[v.args[0].name], names)
            else:
                at = element_index(shapes[v.name], domain, False, names)
            body.append(c.Declare(value, var, c.Index(c.Var(names.c(array_name(v))), at)))
        registers = {v: sp.Symbol(var) for v, var in loads.items() if not v.is_Symbol}
        at = label_index(s.shape, s.index.name, names)
        body.append(c.Assign(c.Index(c.Var("_w_out"), at), s.value.xreplace(registers), "+="))
        pointer = {"pointer": True, "restrict": True}
        params = (
            c.Param(c.Type(self.ctype, **pointer), "_w_out"),
            *(c.Param(c.Type(self.ctype, const=True, **pointer), names.c(x)) for x in arrays),
            *(c.Param(c.Type("long long", const=True, **pointer), names.c(x)) for x in labels),
            *(c.Param(c.Type(self.ctype, const=True), names.c(x)) for x in scalars),
            *(c.Param(c.Type("long long", const=True), names.c(x)) for x in sorted(dims)),
        )
        rows = c.Loop("_i", c.Literal("0"), names.dim(s.shape[0]), tuple(body))
        comment = "one value per row, added at its label"
        printer = CPrinter(
            self.dtype,
            {
                **{x: names.c(x) for x in (*arrays, *labels, *scalars, *dims)},
                **{str(v): var for v, var in loads.items()},
            },
        )
        text = printer.function(c.Function(name, params, (rows,), comment))
        scalar_type = "ctypes.c_float" if self.ctype == "float" else "ctypes.c_double"
        argtypes = (
            *("ctypes.c_void_p" for _ in (0, *arrays, *labels)),
            *(scalar_type for _ in scalars),
            *("ctypes.c_longlong" for _ in dims),
        )
        self.kernels.append(CKernel(name, argtypes, text, frozenset(printer.calls), 0))
        target = s.target.name
        if s.base == 0:
            start = f"np.zeros({_shape(s.shape, False)}, dtype=DTYPE)"
        elif s.in_place:  # itself, unless a view that is not C-contiguous
            start = f"np.ascontiguousarray({s.base.name})"
        else:
            start = f'np.array({s.base.name}, order="C")'
        args = [f"{x}.ctypes.data" for x in (target, *arrays, *labels)]
        args += [*scalars, *sorted(dims)]
        return [f"{target} = {start}", f"_lib().{name}({', '.join(args)})"]


class _Pass:
    """One pass over ``domain`` as a C function (``c_ast``): loads, statements, reductions,
    stores.

    A domain (M, K) runs as a loop over rows with an inner loop over columns, the
    inner one vectorised (``#pragma omp simd``); a domain (M, 1) or (N,) (samples)
    is one loop over rows, a domain (1, K) one loop over columns. Sums accumulate in
    ``double``: whole sums in scalars (``_acc``), row sums in one scalar per row,
    column sums in a ``double`` array indexed by the column.
    """

    def __init__(
        self, owner: NativeKernels, kernel: Kernel, middle, shapes, stored, products=None,
        columns=None,
    ) -> None:  # fmt: skip
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
        self.loads, symbols = operands([e for s in middle for e in s.inputs], defined, self.shapes)
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
        #: The integer arrays (class labels) that gathered loads index by.
        self.labels = label_arrays(self.loads)
        self.scalars = sorted(scalars)
        self.dims = sorted(dims)
        self.stores = [
            s.target.name
            for s in middle
            if isinstance(s, (Elementwise, Fill)) and s.target.name in stored
        ]
        #: The stores written into a column of a C-ordered matrix (a pass over samples):
        #: element _i at _i*width of the column's first element.
        self.columns = {
            x: columns[x] for x in self.stores if self.flat and columns and x in columns
        }
        reductions = [s for s in middle if isinstance(s, Reduction)]
        self.whole = [s for s in reductions if not s.axes]
        self.rowwise = [s for s in reductions if s.axes == (1,)]
        self.colwise = [s for s in reductions if s.axes == (0,)]
        self.names = CNames()
        self.printer = CPrinter(
            self.dtype,
            {
                **{n: self.names.c(n) for n in (*self.scalars, *self.dims, *defined)},
                **{str(v): var for v, var in self.loads.items()},
            },
        )

    # -- C ------------------------------------------------------------------------------
    def element(self, e: sp.Expr) -> sp.Expr:
        """``e`` reading the registers its transposed and gathered operands are loaded into."""
        views = {
            v: sp.Symbol(var)
            for v, var in self.loads.items()
            if isinstance(v, (transposed, gathered))
        }
        return e.xreplace(views)

    def out(self, name: str, index: c.Expr) -> c.Index:
        """Element ``index`` of the output array of ``name``."""
        return c.Index(c.Var(f"_w_{self.names.c(name)}"), index)

    def c_kernel(self, name: str) -> CKernel:
        t, cname, dim = self.t, self.names.c, self.names.dim
        m, k = self.domain
        value = c.Type(t, const=True)
        threaded = self.loop != "cols"  # a pass over one row runs on the calling thread
        element: list[c.Stmt] = []
        fused = self.products
        for v, var in self.loads.items():
            if fused is not None and array_name(v) == fused.into:  # this chunk's products
                element.append(c.Declare(value, var, c.Index(c.Var("_a"), c.Var("_k"))))
                continue
            if isinstance(v, gathered):
                at = gathered_index(v, self.shapes, self.names)
            elif isinstance(v, transposed):
                at = transposed_index(self.shapes[v.args[0].name], self.names)
            else:
                at = element_index(self.shapes[v.name], self.domain, False, self.names)
            element.append(c.Declare(value, var, c.Index(c.Var(cname(array_name(v))), at)))
        for s in self.middle:
            if isinstance(s, (Elementwise, Fill)):
                element.append(c.Declare(value, cname(s.target.name), self.element(s.value)))
        if fused is not None and fused.value is not None:
            result = c.Cast("double", c.Var(cname(fused.value)))
            element.append(c.Assign(c.Index(c.Var("_r"), c.Var("_k")), result))
        gram = self.gram_code()
        if gram is not None:  # the row's root, for the Gram sum after the chunk's pass
            root = c.Cast("double", c.Var(cname(fused.gram.root)))
            element.append(c.Assign(c.Index(c.Var("_g"), c.Var("_k")), root))
        for x in self.stores:
            at = element_index(self.shapes[x], self.domain, False, self.names)
            if x in self.columns:
                at = c.BinOp("*", at, c.Literal(str(self.columns[x].width)))
            element.append(store(self.out(x, at), c.Var(cname(x)), self.shapes[x], self.domain))
        before: list[c.Stmt] = []  # declarations before the loops (in each task)
        after: list[c.Stmt] = []  # results after them
        outer: list[c.Stmt] = []  # declarations in the loop over rows
        line_finals: list[c.Stmt] = []  # results of the loop over columns
        sums: list[str] = []  # the accumulators the vectorised loop adds to
        has_max = False
        whole_outputs = 0
        #: What each task adds up and the caller combines, task by task: the scalar
        #: reductions, then the column reductions (each a partial array of ``width``).
        scalar_parts: list[tuple[c.Var, Reduction]] = []
        column_parts: list[tuple[c.Var, c.Index, str, sp.Expr, str]] = []
        #: Each element's reductions in a pass over short rows: (accumulator, reduction).
        reduced: list[tuple[c.Expr, Reduction]] = []
        values = len(element)  # the statements before the reductions: loads, values, stores

        scalar_reductions = list(self.whole)
        # a row sum when every row is one element, a column sum over one row: whole sums
        scalar_reductions += self.rowwise if self.loop == "cols" else []
        scalar_reductions += self.colwise if self.loop == "rows" else []
        for r, s in enumerate(scalar_reductions):
            acc = c.Var(f"_acc{r}")
            before.append(c.Declare(c.Type("double"), acc.name, INITIAL[s.op]))
            element.append(accumulate(acc, s, self.element(s.summand)))
            reduced.append((acc, s))
            sums += [acc.name] if s.op == "sum" else []
            has_max |= s.op == "max"
            scalar_parts.append((acc, s))
            if s in self.whole:
                at = c.Literal(str(whole_outputs))
                after.append(c.Assign(c.Index(c.Var("_out"), at), acc))
                whole_outputs += 1
            else:
                after.append(c.Assign(self.out(s.target.name, c.Literal("0")), acc))
        for r, s in enumerate(self.rowwise if self.loop != "cols" else []):
            if self.loop == "rows":  # one element per row: the value itself
                summand = c.Cast("double", self.element(s.summand))
                element.append(c.Assign(self.out(s.target.name, ROW), summand))
                continue
            acc = c.Var(f"_line{r}")
            outer.append(c.Declare(c.Type("double"), acc.name, INITIAL[s.op]))
            element.append(accumulate(acc, s, self.element(s.summand)))
            reduced.append((acc, s))
            sums += [acc.name] if s.op == "sum" else []
            has_max |= s.op == "max"
            line_finals.append(c.Assign(self.out(s.target.name, ROW), acc))
        for s in self.colwise if self.loop != "rows" else []:
            w = self.out(s.target.name, COL)
            if self.loop == "cols":  # one element per column: the value itself
                element.append(c.Assign(w, c.Cast("double", self.element(s.summand))))
                continue
            # each column its own accumulator, in the task's partial array
            part = c.Var(f"_col{len(column_parts)}")
            column_parts.append((part, w, "_j", k, s.op))
            element.append(accumulate(c.Index(part, COL), s, self.element(s.summand)))
            reduced.append((c.Index(part, COL), s))
        if fused is not None and fused.out is not None:
            part = c.Var(f"_col{len(column_parts)}")
            out = c.Index(c.Var(f"_w_{cname(fused.out)}"), c.Var("_q"))
            column_parts.append((part, out, "_q", self.shapes[fused.matrix][1], "sum"))
        # OpenMP's max reduction would not keep a NaN: a pass with a maximum is not vectorised
        simd = None if has_max else c.Simd(tuple(sums))
        zero = c.Literal("0")
        first, last = (c.Var("_first"), c.Var("_last")) if threaded else (zero, dim(m))
        loops: list[c.Stmt] = []
        if fused is not None:
            out = column_parts[-1][0] if fused.out is not None else None
            loops += self.chunked(element, simd, first, last, out)
        elif self.loop == "nested":
            columns = c.Loop("_j", zero, dim(k), tuple(element), simd=simd)
            rows = c.Loop("_i", first, last, (*outer, columns, *line_finals))
            if self.calls():
                short = self.short_rows(element[:values], reduced, outer, line_finals, first, last)
                loops += self.either(short, rows)
            else:
                loops.append(rows)
        elif self.loop == "rows":
            loops.append(c.Loop("_i", first, last, tuple(element), simd=simd))
        else:
            loops.append(c.Loop("_j", zero, dim(k), tuple(element), simd=simd))
        if threaded:
            width = self.shapes[fused.matrix][1] if fused is not None else k
            body = self.tasks(m, width, before, loops, scalar_parts, column_parts, gram)
        else:
            body = [*before, *loops]
        body += [*after, c.Return(zero)]
        what = f"the samples ({m},)" if self.flat else f"the elements ({m}, {k})"
        if fused is not None:
            what = f"the rows of {fused.matrix} with {fused.into} = {fused.matrix} @ {fused.vector}"
            if fused.out is not None:
                what += f" and {fused.out} = {fused.matrix}.T @ {fused.value}"
        reds = len(self.whole) + len(self.rowwise) + len(self.colwise)
        comment = f"one pass over {what}" + (
            f", {reds} reduction{'s' if reds != 1 else ''}" if reds else ""
        )
        if threaded:
            comment += ", in tasks of rows shared among _threads threads"
        written = [*self.stores, *(s.target.name for s in (*self.rowwise, *self.colwise))]
        if fused is not None and fused.out is not None:
            written.append(fused.out)
        if gram is not None:
            written.append(fused.gram.target)
            what += f" and {fused.gram.target} = B.T @ B, B = {fused.matrix} ⊙ {fused.gram.root}"
        pointer = {"pointer": True, "restrict": True}
        params = (
            *(c.Param(c.Type(t, const=True, **pointer), cname(x)) for x in self.arrays),
            *(c.Param(c.Type("long long", const=True, **pointer), cname(x)) for x in self.labels),
            *(c.Param(c.Type(t, **pointer), f"_w_{cname(x)}") for x in self.stores),
            *(
                c.Param(c.Type("double", **pointer), f"_w_{cname(x)}")
                for x in written[len(self.stores) :]
            ),
            *(c.Param(c.Type(t, const=True), cname(x)) for x in self.scalars),
            *(c.Param(c.Type("long long", const=True), cname(x)) for x in self.dims),
            *((c.Param(c.Type("int", const=True), "_threads"),) if threaded else ()),
            *((c.Param(c.Type("double", **pointer), "_out"),) if self.whole else ()),
        )
        scalar_type = "ctypes.c_float" if t == "float" else "ctypes.c_double"
        argtypes = (
            *("ctypes.c_void_p" for _ in (*self.arrays, *self.labels, *written)),
            *(scalar_type for _ in self.scalars),
            *("ctypes.c_longlong" for _ in self.dims),
            *(("ctypes.c_int",) if threaded else ()),
            *(("ctypes.c_void_p",) if self.whole else ()),
        )
        function = c.Function(name, params, tuple(body), comment, returns="int")
        text = self.printer.function(function)
        allocates = threaded and bool(scalar_parts or column_parts)
        return CKernel(
            name, argtypes, text, frozenset(self.printer.calls), len(self.whole), threaded,
            allocates,
        )  # fmt: skip

    def calls(self) -> bool:
        """Whether an element's values call a function other than a comparison (exp, log,
        ...: ``COMPARISONS``): those are what a pass over short rows vectorises
        (``SHORT_ROW_BYTES``)."""
        exprs = [s.value for s in self.middle if isinstance(s, (Elementwise, Fill))]
        exprs += [s.summand for s in self.middle if isinstance(s, Reduction)]
        return any(
            not isinstance(f, COMPARISONS) for e in exprs for f in sp.sympify(e).atoms(sp.Function)
        )

    def short(self) -> c.Expr:
        """Whether the rows are short (``SHORT_ROW_BYTES``): fewer elements than two vectors."""
        width = SHORT_ROW_BYTES // (4 if self.t == "float" else 8)
        return c.BinOp("<", self.names.dim(self.domain[1]), c.Literal(str(width)))

    def either(self, short: list[c.Stmt], rows: c.Loop) -> list[c.Stmt]:
        """The pass over short rows when the rows are short, else the loop over rows (with
        a constant row length, only the one that applies)."""
        k = sp.sympify(self.domain[1])
        if k.is_number:
            width = SHORT_ROW_BYTES // (4 if self.t == "float" else 8)
            return short if int(k) < width else [rows]
        long = c.BinOp(">=", self.short().left, self.short().right)
        return [c.If(self.short(), tuple(short)), c.If(long, (rows,))]

    def short_rows(
        self, values: list[c.Stmt], reduced, outer, line_finals, first: c.Expr, last: c.Expr
    ) -> list[c.Stmt]:
        """The loop over rows ``first`` to ``last`` for rows shorter than a vector: in
        blocks of ``SHORT_BLOCK`` rows, each column of the block a vectorised loop down
        the rows (so that the vector forms of exp and log run: along a row of K < 16
        elements most of them take their scalar forms), each reduction's terms kept in a
        block buffer;
        then the block's terms added row after row, column after column: the order of the
        loop over rows, so that the sums are the same."""
        t, dim = self.t, self.names.dim
        zero, block = c.Literal("0"), c.Literal(str(SHORT_BLOCK))
        width = SHORT_ROW_BYTES // (4 if t == "float" else 8)
        start, stop, row = c.Var("_b"), c.Var("_bl"), c.BinOp("-", ROW, c.Var("_b"))
        slot = c.add(c.mul(COL, block), row)
        buffers = [c.Var(f"_terms{n}") for n in range(len(reduced))]
        down, adds = list(values), []
        for buffer, (acc, s) in zip(buffers, reduced, strict=True):
            term = c.Index(buffer, slot)
            down.append(c.Assign(term, c.Cast("double", self.element(s.summand))))
            adds.append(accumulate(acc, s, term))
        column = c.Loop("_i", start, stop, tuple(down), simd=c.Simd())
        across = c.Loop("_j", zero, dim(self.domain[1]), tuple(adds))
        body = (
            c.Declare(c.Type("long long", const=True), "_bl", c.Ternary(
                c.BinOp("<", c.add(start, block), last), c.add(start, block), last,
            )),
            c.Loop("_j", zero, dim(self.domain[1]), (column,)),
            *((c.Loop("_i", start, stop, (*outer, across, *line_finals)),) if adds else ()),
        )  # fmt: skip
        size = c.Literal(str(width * SHORT_BLOCK))
        declared = [c.Declare(c.Type("double"), b.name, size=size) for b in buffers]
        return [*declared, c.Loop("_b", first, last, body, step=block)]

    def gram_code(self) -> GramCode | None:
        """The Gram sum of this pass (``backends/c/gram``), None when it has none."""
        fused = self.products
        if fused is None or fused.gram is None:
            return None
        cols = self.names.dim(self.shapes[fused.matrix][1])
        out = f"_w_{self.names.c(fused.gram.target)}"
        return GramCode(self.names.c(fused.matrix), self.t, cols, out)

    def tasks(
        self, rows, width, before, loops, scalar_parts, column_parts, gram=None
    ) -> list[c.Stmt]:
        """The loops over rows ``_first`` to ``_last`` as tasks of consecutive rows shared
        among the threads, then what the tasks added up, combined task after task.

        How the rows are cut into tasks depends on the shape alone (``TASK_VALUES``,
        ``MAX_TASKS``), never on the thread count; each task adds its sums into its own
        partial sums (``scalar_parts``, then the arrays of ``column_parts``), and these are
        added in the order of the tasks. So the results are the same, bit for bit, on any
        number of threads; on one task, they are those of one loop over all the rows."""
        dim = self.names.dim
        zero, one = c.Literal("0"), c.Literal("1")
        m, values = dim(rows), c.mul(dim(rows), dim(width))
        tasks, per, task, part = c.Var("_tasks"), c.Var("_per"), c.Var("_t"), c.Var("_part")
        threads, count, stride = c.Var("_threads"), c.Var("_nt"), c.Var("_size")
        first, last = c.Var("_first"), c.Var("_last")
        long, fixed = c.Type("long long"), c.Type("long long", const=True)
        # a task's partial sums: its scalars, then each column reduction's array
        offsets, size = [], c.Literal(str(len(scalar_parts)))
        for *_, extent, _ in column_parts:
            offsets.append(size)
            size = c.add(size, dim(extent))
        gram_at = size  # a task's partial Gram matrix, after its other partial sums
        if gram is not None:
            size = c.add(size, gram.values())

        def at_most(limit: c.Expr) -> c.Stmt:
            return c.If(c.BinOp(">", tasks, limit), (c.Assign(tasks, limit),))

        body: list[c.Stmt] = [
            c.Declare(long, tasks.name, c.BinOp("/", values, c.Literal(str(TASK_VALUES)))),
            at_most(c.Literal(str(MAX_TASKS))),
            at_most(m),
            *([gram.width(), at_most(gram.task_limit(values))] if gram is not None else []),
            c.If(c.BinOp("<", tasks, one), (c.Assign(tasks, one),)),
            c.Declare(fixed, per.name, c.BinOp("/", c.BinOp("-", c.add(m, tasks), one), tasks)),
            c.Declare(
                c.Type("int", const=True),
                count.name,
                c.Ternary(c.BinOp("<", threads, tasks), threads, c.Cast("int", tasks)),
            ),
        ]
        partials = bool(scalar_parts or column_parts or gram)
        if partials:
            # each task's partial sums on cache lines of their own (64 bytes, 8 doubles):
            # tasks running at once on different threads never write to the same line
            line = c.Literal(str(CACHE_LINE // 8))
            padded = c.mul(
                c.BinOp("/", c.add(size, c.Literal(str(CACHE_LINE // 8 - 1))), line), line
            )
            bytes_ = c.mul(c.Call("sizeof", (c.Var("double"),)), c.mul(tasks, stride))
            allocate = c.Call("aligned_alloc", (c.Literal(str(CACHE_LINE)), bytes_))
            body += [
                c.Declare(fixed, stride.name, padded),
                c.Declare(c.Type("double", pointer=True), part.name, allocate),
                c.If(c.BinOp("==", part, c.Var("NULL")), (c.Return(one),)),
            ]
        mine = c.mul(task, stride)  # where this task's partial sums start in _part

        def slot(offset: c.Expr, at: c.Expr | None = None) -> c.Expr:
            """Where partial sum ``offset`` (+ ``at``) of task ``_t`` is in ``_part``."""
            place = mine if offset == c.Literal("0") else c.add(mine, offset)
            return place if at is None else c.add(place, at)

        in_task: list[c.Stmt] = [
            c.Declare(fixed, first.name, c.mul(task, per)),
            c.Declare(
                fixed,
                last.name,
                c.Ternary(c.BinOp("<", c.add(first, per), m), c.add(first, per), m),
            ),
        ]
        array = c.Type("double", pointer=True, restrict=True)
        for (var, _, index, extent, op), offset in zip(column_parts, offsets, strict=True):
            start = c.Assign(c.Index(var, c.Var(index)), INITIAL[op])
            in_task.append(c.Declare(array, var.name, c.add(part, slot(offset))))
            in_task.append(c.Loop(index, zero, dim(extent), (start,)))
        if gram is not None:
            in_task += gram.in_task(c.add(part, slot(gram_at)))
        in_task += [*before, *loops]
        for r, (acc, _) in enumerate(scalar_parts):
            in_task.append(c.Assign(c.Index(part, slot(c.Literal(str(r)))), acc))
        body.append(c.Loop(task.name, zero, tasks, tuple(in_task), parallel=c.Parallel(count)))
        for r, (acc, s) in enumerate(scalar_parts):
            add = combine(acc, c.Index(part, slot(c.Literal(str(r)))), s.op)
            body.append(c.Declare(c.Type("double"), acc.name, INITIAL[s.op]))
            body.append(c.Loop(task.name, zero, tasks, (add,)))
        for (_, target, index, extent, op), offset in zip(column_parts, offsets, strict=True):
            add = combine(target, c.Index(part, slot(offset, c.Var(index))), op)
            simd = c.Simd() if op == "sum" else None  # each column on its own: same sums
            each = c.Loop(index, zero, dim(extent), (add,), simd=simd)
            body.append(c.Loop(task.name, zero, tasks, (each,)))
        if gram is not None:
            body += gram.combined(tasks, lambda at: c.Index(part, slot(gram_at, at)))
        if partials:
            body.append(c.Evaluate(c.Call("free", (part,))))
        return body

    def chunked(
        self, element: list[c.Stmt], simd: c.Simd | None, start: c.Expr, stop: c.Expr, out
    ) -> list[c.Stmt]:
        """The loop over rows ``start`` to ``stop`` in chunks that stay in cache: a chunk's
        products with the matrix, the pass over its rows, then its rows added into ``out``
        (the task's partial sums of ``matrix.T @ value``; None when there is none).

        The products take ``GROUP`` rows at a time (the vector is loaded once for them,
        and ``out`` read and written once), then the rows left one by one. Each row's dot
        product is its own sum, and each element of ``out`` adds the rows in their order:
        the same arithmetic as one row at a time."""
        fused, t, cname = self.products, self.t, self.names.c
        assert fused is not None
        cols = self.names.dim(self.shapes[fused.matrix][1])
        matrix, vector = c.Var(cname(fused.matrix)), c.Var(cname(fused.vector))
        zero, one, k, q = c.Literal("0"), c.Literal("1"), c.Var("_k"), c.Var("_q")
        chunk_rows, first, count = c.Var("_rows"), c.Var("_c"), c.Var("_m")
        grouped = c.Var("_mg")  # the rows of the chunk in whole groups
        limit = c.Literal(str(CHUNK))
        row_type = c.Type(t, const=True, pointer=True, restrict=True)

        def nth(g: int) -> c.Expr:
            return k if g == 0 else c.add(k, c.Literal(str(g)))

        def rows(size: int) -> tuple[list[c.Var], list[c.Stmt]]:
            """Rows _k, _k + 1, ... of the chunk: their names and declarations."""
            names = [c.Var(f"_row{g}" if size > 1 else "_row") for g in range(size)]
            starts = [c.add(matrix, c.mul(c.add(first, nth(g)), cols)) for g in range(size)]
            declared = [
                c.Declare(row_type, n.name, at) for n, at in zip(names, starts, strict=True)
            ]
            return names, declared

        def products(size: int) -> tuple[c.Stmt, ...]:
            """The dot products of ``size`` rows with the vector, into ``_a``."""
            names, declared = rows(size)
            sums = [c.Var(f"_s{g}" if size > 1 else "_s") for g in range(size)]
            terms = tuple(
                c.Assign(s, c.mul(c.Cast("double", c.Index(r, q)), c.Index(vector, q)), "+=")
                for s, r in zip(sums, names, strict=True)
            )
            return (
                *declared,
                *(c.Declare(c.Type("double"), s.name, c.Literal("0.0")) for s in sums),
                c.Loop("_q", zero, cols, terms, simd=c.Simd(tuple(s.name for s in sums))),
                *(c.Assign(c.Index(c.Var("_a"), nth(g)), c.Cast(t, s)) for g, s in enumerate(sums)),
            )

        def added(size: int) -> tuple[c.Stmt, ...]:
            """``size`` rows times their values added into ``out``, row after row."""
            names, declared = rows(size)
            values = [c.Var(f"_rk{g}" if size > 1 else "_rk") for g in range(size)]
            terms = (c.mul(v, c.Index(r, q)) for v, r in zip(values, names, strict=True))
            total = c.add(c.Index(out, q), *terms)
            value_type = c.Type("double", const=True)
            return (
                *declared,
                *(
                    c.Declare(value_type, v.name, c.Index(c.Var("_r"), nth(g)))
                    for g, v in enumerate(values)
                ),
                c.Loop("_q", zero, cols, (c.Assign(c.Index(out, q), total),), simd=c.Simd()),
            )

        def by_groups(each) -> list[c.Stmt]:
            step = c.Literal(str(GROUP))
            return [
                c.Loop("_k", zero, grouped, each(GROUP), step=step),
                c.Loop("_k", grouped, count, each(1)),
            ]

        this_row = c.Declare(c.Type("long long", const=True), "_i", c.add(first, k))
        left = c.BinOp("-", stop, first)
        chunk: list[c.Stmt] = [
            c.Declare(
                c.Type("long long", const=True),
                "_m",
                c.Ternary(c.BinOp("<", left, chunk_rows), left, chunk_rows),
            ),
            c.Declare(
                c.Type("long long", const=True),
                grouped.name,
                c.BinOp("-", count, c.BinOp("%", count, c.Literal(str(GROUP)))),
            ),
            *by_groups(products),
            c.Loop("_k", zero, count, (this_row, *element), simd=simd),
        ]
        if fused.out is not None:
            chunk += by_groups(added)
        gram = self.gram_code()
        if gram is not None:
            chunk += gram.chunk(first, count)
        per_chunk = c.BinOp(
            "/", c.Literal(str(CHUNK_VALUES)), c.Ternary(c.BinOp(">", cols, zero), cols, one)
        )
        return [
            c.Declare(c.Type(t), "_a", size=limit),
            *([c.Declare(c.Type("double"), "_r", size=limit)] if fused.out is not None else []),
            *([c.Declare(c.Type("double"), "_g", size=limit)] if gram is not None else []),
            c.Declare(c.Type("long long"), "_rows", per_chunk),
            c.If(c.BinOp("<", chunk_rows, one), (c.Assign(chunk_rows, one),)),
            c.If(c.BinOp(">", chunk_rows, limit), (c.Assign(chunk_rows, limit),)),
            c.Loop("_c", start, stop, tuple(chunk), step=chunk_rows),
        ]

    # -- Python -------------------------------------------------------------------------
    def python_call(self, name: str, threaded: bool, allocates: bool) -> list[str]:
        lines = []
        for x in self.stores:
            if x in self.columns:
                lines.append(f"{x} = {self.columns[x].view()}")
            else:
                lines.append(f"{x} = np.empty({_shape(self.shapes[x], self.flat)}, dtype=DTYPE)")
        axis_sums = [*self.rowwise, *self.colwise]
        for s in axis_sums:  # written in double, then given the module's dtype
            shape = _shape(self.shapes[s.target.name], self.flat)
            fill = "np.full" if s.op == "max" else "np.zeros"
            extra = ", -np.inf" if s.op == "max" else ""
            lines.append(f"_r_{s.target.name} = {fill}({shape}{extra})")
        fused = self.products
        if fused is not None and fused.out is not None:
            cols = self.shapes[fused.matrix][1]
            lines.append(f"_r_{fused.out} = np.zeros(({cols},))")
        gram = fused.gram if fused is not None else None
        if gram is not None:  # the tasks' partials added into zeros, then mirrored
            cols = self.shapes[fused.matrix][1]
            lines.append(f"_r_{gram.target} = np.zeros(({cols}, {cols}))")
        args = [f"_address({x})" for x in (*self.arrays, *self.labels)]
        args += [f"_address({x})" for x in self.stores]
        args += [f"_address(_r_{s.target.name})" for s in axis_sums]
        if fused is not None and fused.out is not None:
            args.append(f"_address(_r_{fused.out})")
        if gram is not None:
            args.append(f"_address(_r_{gram.target})")
        args += [*self.scalars, *self.dims]
        if threaded:
            args.append("_THREADS")
        if self.whole:
            lines.append(f"_acc = _ACCUMULATORS[{len(self.whole)}]()")
            args.append("_acc")
        call = f"_lib().{name}({', '.join(args)})"
        if allocates:
            lines += [f"if {call}:", f"    _out_of_memory({name!r})"]
        else:
            lines.append(call)
        if self.whole:
            targets = ", ".join(s.target.name for s in self.whole)
            lines.append(f"{targets}{',' if len(self.whole) == 1 else ''} = _acc")
        convert = ".astype(DTYPE)" if self.dtype != "float64" else ""
        for s in axis_sums:
            lines.append(f"{s.target.name} = _r_{s.target.name}{convert}")
        if fused is not None and fused.out is not None:
            cols = self.shapes[fused.matrix][1]
            lines.append(f"{fused.out} = _r_{fused.out}.reshape(({cols}, 1)){convert}")
        if gram is not None:
            lines.append(f"{gram.target} = _r_{gram.target}{convert}")
        return lines


def combine(target: c.Expr, value: c.Expr, op: str) -> c.Stmt:
    """``target`` combined with a task's partial ``value`` of a reduction ``op``."""
    if op == "max":
        return c.Assign(target, c.Call("sg_max", (target, value)))
    return c.Assign(target, value, "+=")


#: A pass is cut into tasks of at least TASK_VALUES elements (rows x width), so that a task
#: is worth handing to a thread; and into at most MAX_TASKS tasks, so that the partial
#: sums stay small. Below 2 x TASK_VALUES elements a pass runs on one thread.
TASK_VALUES = 16384
MAX_TASKS = 256
#: Bytes per cache line: the unit in which tasks' partial sums are kept apart.
CACHE_LINE = 64

#: A pass over rows of fewer than SHORT_ROW_BYTES (two AVX-512 vectors: 16 float64, 32
#: float32) that calls functions runs down the columns of blocks of SHORT_BLOCK rows
#: (``_Pass.short_rows``): along a row shorter than a vector the vectorised loop never runs
#: a whole vector, and along one of 9-15 float64 most of the row is the scalar remainder;
#: there every exp and log takes its scalar form. Measured (N = 10^5, one thread, 2 shared
#: cores; before / after, ms): the multinomial loss at K = 4: 7.9 / 1.7, K = 7: 15.2 / 6.7,
#: K = 9: 4.3 / 3.6, K = 10: 13.1 / 8.8, K = 15: 20.9 / 16.3, K = 8 and 16 within noise;
#: 32 to 256 rows a block alike at K = 4 and 7 but 256 (5.8 ms at K = 4: its buffers leave
#: the L1 cache).
SHORT_ROW_BYTES = 128
SHORT_BLOCK = 64
#: Functions that are comparisons in C (no libm call; their homes say so: ``comparison``), and
#: ``Piecewise`` (a conditional): a pass calling only these keeps its
#: loop over rows (the ReLU pass of the float32 MLP at N_H = 8, M = 20,000: 0.83 ms along
#: the rows, 0.94 ms down the columns).
COMPARISONS = (sp.Piecewise, *(f.sympy for f in FUNCTIONS if f.comparison))

#: Products by a matrix run inside the pass over its rows when the matrix has at most
#: FUSED_AT_MOST bytes (in cache either way: the pass saves two BLAS calls) or, when the
#: pass computes both M @ v and M.T @ r, at least FUSED_AT_LEAST (larger than the
#: last-level cache: read once instead of twice); otherwise BLAS's products (its kernels
#: read the matrix faster) around the pass without them. With M @ v alone, the pass reads
#: M once either way, so large matrices go to BLAS too (measured: the Theano tutorial's
#: logistic regression, whose M.T @ r stays in BLAS, at N = 20,000, D = 128: fused 1.38x
#: the NumPy module's time).
#: Measured (BENCHMARKS.md, "Fused products or BLAS"): fused / BLAS 0.95-1.00 up to 50 KiB,
#: 1.1-1.5 from 128 KiB to 10 MiB, 0.6-0.8 from 16 MiB (D = 128, 784), ~1.0 at D = 16.
FUSED_AT_MOST = 64 << 10
FUSED_AT_LEAST = 16 << 20

#: A matrix product (rows x inner by inner x columns) is thin when two of its three
#: dimensions are at most THIN and it has at least THIN_FROM multiply-adds: the module runs
#: it on one BLAS thread (``_product``), whatever the passes' thread count (OpenBLAS's
#: threads can add in another order: the results would depend on that count).
#: OpenBLAS's threads gain little on such a product (X.T @ G, 20 x 10^5 by 10^5 x 10:
#: 2.9 ms on one thread, 3.1 on two), and after each product they spin for about 0.1 s,
#: taking the cores that the next pass's threads need. Measured on softmax regression
#: (X @ W and X.T @ G around three passes over N x K; N = 10^5, 2 threads, 2 cores), time
#: with both products on one BLAS thread / on BLAS's two: D = 20, 32, 48, 64, 128 (K =
#: 10): 0.59, 0.72, 0.88, 1.01, 1.42; K = 40, 64 (D = 20): 0.77, 0.69; D = K = 64: 1.18.
#: Products with a long second dimension keep BLAS's threads (docs/API.md, "Threads").
THIN = 48
THIN_FROM = 1 << 20

#: Rows per chunk of a pass with fused products at most, and values per chunk of the
#: matrix (2048 float64 values are 16 KiB: a chunk stays in the L1 cache between the
#: products, the pass and the transposed products).
CHUNK = 256
CHUNK_VALUES = 2048
#: Rows whose products are taken together (see ``_Pass.chunked``).
GROUP = 4


def _shape(shape, flat: bool) -> str:
    if flat:
        return f"({shape[0]},)"
    return f"({shape[0]}, {shape[1]})"


def source(name: str, dtype: str, kernels: tuple[CKernel, ...], helpers: frozenset[str]) -> str:
    """The C source of a module's passes (what its ``_SOURCE`` holds), with the ``sg_``
    helpers they use."""
    ctype = "float" if dtype == "float32" else "double"
    return render(
        TEMPLATES,
        "c_kernels.c.j2",
        name=name,
        ctype=ctype,
        kernels=kernels,
        functions=c_definitions(ctype, helpers),
        helpers=helpers,
    )


def generate(compiled: Compiled, source_path: str | None = None, baked: Baked | None = None):
    """The module's source; ``baked``: the optimizer whose hyperparameters are built in."""

    problem = compiled.problem
    lowered = compiled.lowered
    dims = frozenset(str(d) for d, _, _ in lowered.dims)
    refuse_reserved([i.name for i in (*lowered.params, *lowered.data)] + sorted(dims), "C")
    native = NativeKernels(problem.dtype, dims, binary=bool(problem.binary))
    module = numpy_backend.plan(compiled, source_path, baked, native=native)
    if module.native is not None:
        return render(TEMPLATES, "c_module.py.j2", plan=module)
    if native.multiplies:  # products but no pass: the NumPy module's plain products
        module = numpy_backend.plan(compiled, source_path, baked)
    # no pass to compile: the NumPy module, saying so
    return numpy_backend.render_module(replace(module, backend="C", note=SCALAR_NOTE))


#: The docstring's note of a module with no pass to compile.
SCALAR_NOTE = (
    "A loss over scalars has no pass over samples to compile: a call into C costs",
    "more than the whole step, so this module computes on Python floats, exactly",
    "like the NumPy module.",
)
