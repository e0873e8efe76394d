"""Matrix products with many rows and few columns (``X @ W``, ``X.T @ G``), in blocks of rows.

A softmax regression's products are tall and thin: ``X @ W`` is (N, D) by (D, K) and the
gradient ``X.T @ G`` sums over the N rows, with D and K tens or less. NumPy's OpenBLAS
(0.3.31, SkylakeX kernels on this machine's AVX-512 CPU) runs a product of at most
10^6 multiply-adds with its small-matrix kernels and a larger one with its general
kernel, which packs both operands and is several times slower on such shapes. The
module calls these products a block of rows at a time, each block a small product
(``SMALL`` multiply-adds); ``X.T @ G`` adds up the blocks' products. Measured at N =
10^5, D = 20, one thread: ``X @ W`` 2.0 -> 1.35 ms (K = 10), 1.1 -> 0.7 ms (K = 4);
``X.T @ G`` 6.5 -> 1.3 ms (K = 10), 1.8 -> 0.6 ms (K = 4); at D = 64, K = 10, 24 -> 14 ms
each. The calls cost about 2 µs a block against ``SMALL`` multiply-adds (tens of µs).
With OpenBLAS's Haswell kernels (CPUs without AVX-512; ``OPENBLAS_CORETYPE=Haswell`` on
this machine), which have no small-matrix path, the blocks gain nothing: measured the
same within 5% at D = 20-784, except ``X @ W`` at D = 20, K = 10 (1.9 -> 2.3 ms) and both
products at D = 128, K = 64 (8.6 -> 9.8 ms), 15-25% slower.

The choice is made at call time from the actual sizes (shapes are symbolic): a product
whose block would hold fewer than ``MIN_ROWS`` rows (wide ``X`` or many columns), or
whose rows fit one block, is one call as before. ``X @ W`` computes each row as before;
``X.T @ G`` adds the blocks' sums in block order (numbers within rounding of the whole
product's, which OpenBLAS adds in its own order).
"""

from __future__ import annotations

#: Multiply-adds per block's product: below OpenBLAS's small-matrix limit (10^6), with
#: room for the rows of a block to vary (2^19: at D = 20, K = 10, 2,621 rows).
SMALL = 2**19
#: Fewer rows per block than this and the product is one call.
MIN_ROWS = 64

#: The module-level helpers, by name: their source.
HELPERS = {
    "_tall_product": f'''def _tall_product(a, b):
    """a @ b for a of many rows, a block of rows at a time when the blocks' products are
    small (BLAS's small-matrix kernels are several times faster on thin products)."""
    rows = {SMALL} // max(a.shape[1]*b.shape[1], 1)
    if a.shape[0] <= rows or rows < {MIN_ROWS}:
        return a @ b
    out = np.empty((a.shape[0], b.shape[1]), dtype=np.result_type(a, b))
    for start in range(0, a.shape[0], rows):
        np.matmul(a[start:start + rows], b, out=out[start:start + rows])
    return out''',
    "_tall_inner": f'''def _tall_inner(a, b):
    """a.T @ b for a and b of many rows, summed a block of rows at a time when the blocks'
    products are small (BLAS's small-matrix kernels are several times faster on them)."""
    rows = {SMALL} // max(a.shape[1]*b.shape[1], 1)
    if a.shape[0] <= rows or rows < {MIN_ROWS}:
        return a.T @ b
    out = a[:rows].T @ b[:rows]
    for start in range(rows, a.shape[0], rows):
        out += a[start:start + rows].T @ b[start:start + rows]
    return out''',
}


def helper(left_rows, inner, right_cols, left_transposed: bool) -> str | None:
    """The helper computing a product of these (symbolic) dimensions, or None when it is
    not a tall product: ``left_rows`` x ``inner`` by ``inner`` x ``right_cols``; with
    ``left_transposed`` the left operand is ``a.T`` and ``inner`` its rows (the sum runs
    over them). A dimension that is 1 makes a vector product (BLAS's gemv): one call."""
    if left_transposed:
        return "_tall_inner" if left_rows != 1 and right_cols != 1 else None
    return "_tall_product" if inner != 1 and right_cols != 1 and left_rows != 1 else None
