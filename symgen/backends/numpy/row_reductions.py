"""Sums and maxima along the rows of an array (``axis=1``), as the NumPy module computes them.

NumPy reduces along the last axis one row at a time: about 17 ns a row for a sum and 40 ns
for a maximum over 4 to 10 columns (a softmax's classes), several times the cost of the
exponentials. Adding (comparing) the columns one after another does the same work in a
few array operations: 4 to 10 times faster on rows of up to ``SHORT`` columns (measured
on blocks of 8,192 values). The sums add the columns in order, which is the order of
``np.sum`` on rows of up to 7 values (pairwise summation starts at 8).

Sums down the columns of such an array (a bias's gradient) are NumPy's row by row too:
1.6 ms for 10^5 rows of 10 values, against 0.25 ms for BLAS's product of a row of ones
and the array (``gemv``), which ``_column_sums`` calls instead. BLAS adds in its own order
(its kernels keep several partial sums): the sums change within rounding. Not for rows of
one value (a bias's column): NumPy sums a column as one contiguous run, 2-5 times faster
than the product (1.5 against 3.4 us for 400 rows, 19 against 97 us for 10^5).
"""

from __future__ import annotations

#: Rows of at most this many columns are reduced column after column.
SHORT = 16

#: The module-level helpers, by name: their source.
HELPERS = {
    "_row_sums": f'''def _row_sums(a):
    """Sums along the rows of a 2-D array, a column (kept 2-D): the columns added in turn
    when the rows are short (NumPy's reduction along them costs more per row)."""
    if not 0 < a.shape[1] <= {SHORT}:
        return np.add.reduce(a, axis=1, keepdims=True)
    out = a[:, :1].copy()
    for j in range(1, a.shape[1]):
        out += a[:, j:j + 1]
    return out''',
    "_row_maxima": f'''def _row_maxima(a):
    """Maxima along the rows of a 2-D array, a column (kept 2-D), NaN kept: the columns
    compared in turn when the rows are short."""
    if not 0 < a.shape[1] <= {SHORT}:
        return np.maximum.reduce(a, axis=1, keepdims=True)
    out = a[:, :1].copy()
    for j in range(1, a.shape[1]):
        np.maximum(out, a[:, j:j + 1], out=out)
    return out''',
    "_column_sums": f'''def _column_sums(a):
    """Sums down the columns of a 2-D array, a row (kept 2-D): by BLAS (a row of ones
    times the array) when the rows are short (NumPy adds short rows one at a time), but
    not one value long (a column: NumPy's own sum runs down it, faster than BLAS)."""
    if not 1 < a.shape[1] <= {SHORT}:
        return np.add.reduce(a, axis=0, keepdims=True)
    return (np.ones(a.shape[0], dtype=DTYPE) @ a).reshape(1, -1)''',
}
