"""The Gram product ``B.T @ B`` of a GLM's Hessian (``B = M ⊙ r``, ``r`` a column), found
in a program and run a block of rows at a time, so that ``B`` is never written whole.

``compiler/second_order`` gives a GLM's Hessian block as ``B.T @ B`` with
``B = X ⊙ sqrt(s)``: an elementwise pass writing ``B`` (as large as ``X``), then BLAS
``syrk``. The NumPy module instead forms ``B`` a block of rows at a time (in cache) and
adds each block's ``syrk`` into the result; a matrix of one block is one product. Each
block's product is exactly symmetric, so their sum is too. The C backend sums the same
product inside its pass over the rows of ``M`` (``backends/c/gram.py``), from what
``products`` finds here.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from symgen.compiler.optimize import Elementwise, MatrixProduct, Program, transposed

#: Values of ``M`` per block (1 MiB of float64: a block of B stays in the L2 cache), and
#: at least ``DEPTH`` x D rows, so that each block's product (rows x D²/2 operations) is
#: large against adding its D x D result. Measured (NumPy module, one thread, interleaved
#: medians): 32,768 values without the floor made D = 256 (N = 2,560) 1.7x slower than B
#: whole; 131,072 with it equals B whole at D = 64 and 256, is 0.92x at D = 1024 and
#: 0.69x for W2 large's newton_step (N = 10^6, D = 16).
BLOCK = 131072
DEPTH = 4
#: The most columns of ``M`` for which the module's ``hessian`` computes each Gram product
#: as ``M.T @ (c * M)`` (``c = r²`` a column computed from one exponential: BLAS gemm, no
#: square root, then the block symmetrized) when ``M`` is one block (at most ``BLOCK``
#: values): there the cost of a call counts, not the operations, and ``syrk`` (which
#: also copies its triangle) and the root's second exponential cost more than the half
#: of the operations they save. Measured (one thread, interleaved medians): see
#: docs/ARCHITECTURE.md, "Second order".
DIRECT_AT_MOST = 32


@dataclass(frozen=True)
class Gram:
    """``target = B.T @ B`` with ``B = matrix ⊙ root`` (``root`` a column): the kernels
    (by index in the program) computing ``B`` and the product."""

    target: str
    matrix: str
    root: str
    absorbed: tuple[int, int]


def products(program: Program) -> list[Gram]:
    """The Gram products of ``program``: an elementwise pass ``B = M * r`` alone in its
    kernel (``M`` an array of the pass's shape, ``r`` a column of as many rows) and a
    later ``B.T @ B``, ``B`` read by nothing else."""
    kernels, shapes = program.kernels, program.array_shapes()
    outputs = {s.name for s in program.outputs}
    reads = program.reads()
    found = []
    for e, ke in enumerate(kernels):
        if ke.is_step or len(ke.stmts) != 1 or not isinstance(ke.stmts[0], Elementwise):
            continue
        (stmt,) = ke.stmts
        factors = stmt.value.args if stmt.value.is_Mul else ()
        if len(factors) != 2 or not all(f.is_Symbol and f.name in shapes for f in factors):
            continue
        domain = tuple(sp.sympify(d) for d in ke.domain)
        matrix = [f.name for f in factors if tuple(shapes[f.name]) == domain]
        column = [f.name for f in factors if tuple(shapes[f.name]) == (domain[0], sp.S.One)]
        if len(domain) != 2 or len(matrix) != 1 or len(column) != 1 or domain[1] == 1:
            continue
        b = stmt.target.name
        for g in range(e + 1, len(kernels)):
            product = kernels[g].stmts[0] if kernels[g].is_matmul else None
            if (
                isinstance(product, MatrixProduct)
                and product.left == transposed(stmt.target)
                and product.right == stmt.target
                and b not in outputs
                and all(b not in r for m, r in enumerate(reads) if m not in (e, g))
            ):
                found.append(Gram(product.target.name, matrix[0], column[0], (e, g)))
                break
    return found


def lines(gram: Gram, shapes: dict[str, tuple]) -> list[str]:
    """The lines computing ``gram.target``: one product for a matrix of one block, else
    the blocks' products added up."""
    rows, cols = shapes[gram.matrix]
    m, r, h = gram.matrix, gram.root, gram.target
    block = f"{m}[_start:_start + _rows]*{r}[_start:_start + _rows]"
    return [
        f"_rows = max({BLOCK}//max({cols}, 1), {DEPTH}*{cols})",
        f"if {rows} <= _rows:",
        f"    _b = {m}*{r}",
        f"    {h} = _b.T @ _b",
        "else:",
        f"    {h} = np.zeros(({cols}, {cols}), dtype=DTYPE)",
        f"    for _start in range(0, {rows}, _rows):",
        f"        _b = {block}",
        f"        {h} += _b.T @ _b",
    ]


def direct_when(program: Program) -> str | None:
    """The condition (a Python expression of the dimensions) under which ``hessian`` runs
    the program whose Gram products are ``M.T @ (c * M)`` (``DIRECT_AT_MOST``); None when
    ``program`` has no Gram product."""
    shapes = program.array_shapes()
    sizes = sorted({tuple(str(d) for d in shapes[g.matrix]) for g in products(program)})
    if not sizes:
        return None
    return " and ".join(
        f"{cols} <= _DIRECT_AT_MOST and {rows}*{cols} <= {BLOCK}" for rows, cols in sizes
    )
