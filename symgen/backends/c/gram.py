"""The Gram product ``B.T @ B`` of a GLM's Hessian (``B = M ⊙ r``, ``r`` a column) summed
inside the C pass over the rows of ``M``, instead of ``B`` written out for BLAS ``syrk``.

The Hessian of a GLM comes out of ``compiler/second_order`` as ``B.T @ B`` with
``B = X ⊙ sqrt(s)``: the pass over the rows of ``X`` computes the column ``sqrt(s)``,
an elementwise pass writes ``B`` (N x D), and BLAS multiplies it by itself. For small D
that is mostly memory traffic (``B`` is as large as ``X``): here the pass over the rows,
which already reads each row of ``X`` (its products ``X @ w`` and ``X.T @ r``, see
``fused_products``), also adds each row's ``b b^T`` (``b = r x``, in ``double``) into
its task's partial Gram matrix:

- a block of ``GRAM_ROWS`` rows of ``B`` is formed in a local buffer, its rows padded
  with zeros to a multiple of ``TILE`` (``_dp`` columns), while the rows are in cache;
- the upper triangle is added up tile by tile: a ``TILE x TILE`` tile of accumulators
  (in registers) takes the block's rows, then is added into the task's partial;
- the tasks' partials (fixed by the shape, as every sum of a C pass) are added in the
  order of the tasks into the upper triangle, and mirrored below the diagonal: exactly
  symmetric, and the same bit for bit on any number of threads.

For large D the tiles' partials leave the cache and BLAS's ``syrk`` (blocked for it) is
faster: the module chooses at call time by the number of columns (``GRAM_AT_MOST``).
"""

from __future__ import annotations

from dataclasses import dataclass

from symgen.backends.numpy.gram import Gram, products
from symgen.codegen import c_ast as c
from symgen.compiler.optimize import Elementwise, Program

#: Rows of B formed at a time (a block: ``GRAM_ROWS x _dp`` doubles, in the L1 cache).
GRAM_ROWS = 32
#: The side of a tile of accumulators (64 doubles: registers on AVX-512, or nearly).
TILE = 8
#: The most columns of M for which the pass sums the Gram product (else BLAS ``syrk``
#: on B written out). Measured (BENCHMARKS.md, "Second order"; the logistic Hessian, one
#: thread, fused / BLAS): 0.57-0.75 from D = 8 to 128 at N = 10 D, 0.47-0.76 at
#: N = 200,000; at D = 192 0.95 to 2.8 (a block of B, 32 x 192 doubles, no longer fits
#: the L1 cache), 1.03-1.07 at 256, 1.3-1.75 at 384 and 512.
GRAM_AT_MOST = 128

_CONST = c.Type("double", const=True)
_FIXED = c.Type("long long", const=True)


def fused_gram(program: Program, p: int, matrix: str, read_only_by) -> Gram | None:
    """The Gram product (``numpy.gram.products``) that pass ``p`` over the rows of
    ``matrix`` can sum: its root a column that the pass computes and nothing else reads."""
    defined = {s.target.name for s in program.kernels[p].stmts if isinstance(s, Elementwise)}
    for gram in products(program):
        e = gram.absorbed[0]
        if gram.matrix == matrix and e > p and gram.root in defined:
            if read_only_by(gram.root, {p, e}):
                return gram
    return None


@dataclass(frozen=True)
class GramCode:
    """The C statements of a pass's Gram sum (names: ``_dp`` the padded width, ``_gram``
    the task's partial, ``_b`` the block of B, ``_g`` the roots of the chunk's rows)."""

    #: The matrix (its C name), its element type, its columns, and the output's C name.
    matrix: str
    ctype: str
    cols: c.Expr
    out: str

    dp = c.Var("_dp")
    part = c.Var("_gram")
    block = c.Var("_b")

    def width(self) -> c.Stmt:
        """``_dp``: the columns rounded up to a multiple of ``TILE``, and one tile for a
        matrix of no columns (``task_limit`` divides by ``_dp``)."""
        tile = c.Literal(str(TILE))
        rounded = c.mul(c.BinOp("/", c.add(self.cols, c.Literal(str(TILE - 1))), tile), tile)
        some = c.BinOp(">", self.cols, c.Literal("0"))
        return c.Declare(_FIXED, self.dp.name, c.Ternary(some, rounded, tile))

    def values(self) -> c.Expr:
        return c.mul(self.dp, self.dp)

    def task_limit(self, values: c.Expr) -> c.Expr:
        """The most tasks of a pass over ``values`` elements of the matrix such that each
        task reads at least as many as its partial Gram matrix holds (``_dp x _dp``): the
        partials, zeroed and added up once per task, cost less than the pass."""
        return c.BinOp("/", values, self.values())

    def in_task(self, start: c.Expr) -> list[c.Stmt]:
        """A task's partial (at ``start`` in ``_part``) and its block of B, zeroed."""
        zero, e = c.Literal("0"), c.Var("_e")
        size = c.mul(c.Literal(str(GRAM_ROWS)), self.dp)
        return [
            c.Declare(c.Type("double", pointer=True, restrict=True), self.part.name, start),
            c.Loop("_e", zero, self.values(), (c.Assign(c.Index(self.part, e), c.Literal("0.0")),)),
            c.Declare(c.Type("double"), self.block.name, size=size),
            c.Loop("_e", zero, size, (c.Assign(c.Index(self.block, e), c.Literal("0.0")),)),
        ]

    def chunk(self, first: c.Expr, count: c.Expr) -> list[c.Stmt]:
        """The chunk's rows ``first`` + 0 .. ``count`` - 1 added, a block at a time: B's
        block formed (``b = r x``), then each upper tile summed over the block's rows."""
        zero, q, k = c.Literal("0"), c.Var("_q"), c.Var("_k")
        start, rows, row, root = c.Var("_gb"), c.Var("_gm"), c.Var("_row"), c.Var("_gk")
        limit = c.Literal(str(GRAM_ROWS))
        left = c.BinOp("-", count, start)
        at = c.add(c.Var(self.matrix), c.mul(c.add(first, start, k), self.cols))
        value = c.mul(root, c.Cast("double", c.Index(row, q)))
        fill = c.Assign(c.Index(self.block, c.add(c.mul(k, self.dp), q)), value)
        form = (
            c.Declare(c.Type(self.ctype, const=True, pointer=True, restrict=True), row.name, at),
            c.Declare(_CONST, root.name, c.Index(c.Var("_g"), c.add(start, k))),
            c.Loop("_q", zero, self.cols, (fill,), simd=c.Simd()),
        )
        block = (
            c.Declare(_FIXED, rows.name, c.Ternary(c.BinOp("<", left, limit), left, limit)),
            c.Loop("_k", zero, rows, form),
            self.tiles(rows),
        )
        return [c.Loop(start.name, zero, count, block, step=limit)]

    def tiles(self, rows: c.Expr) -> c.Stmt:
        """Every tile (p0, q0), q0 >= p0, of the upper triangle summed over ``rows`` rows
        of the block, in 64 accumulators, then added into the task's partial."""
        zero, tile, cells = c.Literal("0"), c.Literal(str(TILE)), c.Literal(str(TILE * TILE))
        p0, q0, k, u, v = (c.Var(n) for n in ("_p0", "_q0", "_k", "_u", "_v"))
        acc, row, left = c.Var("_h"), c.Var("_bk"), c.Var("_bu")
        cell = c.Index(acc, c.add(c.mul(u, tile), v))
        term = c.Assign(cell, c.add(cell, c.mul(left, c.Index(row, c.add(q0, v)))))
        of_row = (
            c.Declare(_CONST, left.name, c.Index(row, c.add(p0, u))),
            c.Loop("_v", zero, tile, (term,), simd=c.Simd()),
        )
        this_row = c.Declare(
            c.Type("double", const=True, pointer=True, restrict=True),
            row.name,
            c.add(self.block, c.mul(k, self.dp)),
        )
        over_rows = c.Loop("_k", zero, rows, (this_row, c.Loop("_u", zero, tile, of_row)))
        at = c.add(c.mul(c.add(p0, u), self.dp), q0, v)
        added = c.Assign(c.Index(self.part, at), cell, "+=")
        into = c.Loop("_v", zero, tile, (added,), simd=c.Simd())
        one_tile = (
            c.Declare(c.Type("double"), acc.name, size=cells),
            c.Loop("_e", zero, cells, (c.Assign(c.Index(acc, c.Var("_e")), c.Literal("0.0")),)),
            over_rows,
            c.Loop("_u", zero, tile, (into,)),
        )
        columns = c.Loop("_q0", p0, self.dp, one_tile, step=tile)
        return c.Loop("_p0", zero, self.dp, (columns,), step=tile)

    def combined(self, tasks: c.Expr, slot) -> list[c.Stmt]:
        """The tasks' partials added in task order into the upper triangle of the output
        (zeros to begin with), then mirrored below the diagonal. ``slot(at)``: where entry
        ``at`` of task ``_t``'s partial is in ``_part``."""
        zero, p, q = c.Literal("0"), c.Var("_p"), c.Var("_q")
        out = c.Var(self.out)
        upper, lower = c.add(c.mul(p, self.cols), q), c.add(c.mul(q, self.cols), p)
        add = c.Assign(c.Index(out, upper), slot(c.add(c.mul(p, self.dp), q)), "+=")
        rows = c.Loop("_p", zero, self.cols, (c.Loop("_q", p, self.cols, (add,), simd=c.Simd()),))
        after = c.add(p, c.Literal("1"))
        mirror = c.Assign(c.Index(out, lower), c.Index(out, upper))
        return [
            c.Loop("_t", zero, tasks, (rows,)),
            c.Loop("_p", zero, self.cols, (c.Loop("_q", after, self.cols, (mirror,)),)),
        ]
