"""How the NumPy module spells a sum: accumulated in float64 whatever the module's dtype.

A float32 module computes its values in float32 and adds them up in float64, as the C
and CUDA modules do with their ``double`` accumulators (issue 15): a sum of 1000 values
of 1e38 is 1e41 (rounded to float32, ``inf``, only where a float32 array holds it), and
a million small values lose no more than float64 rounding. A dot product multiplies in
the module's dtype, then sums in float64, as ``(double)(a*b)`` does in C. Matrix
products (``@``) are BLAS's, in the module's dtype (cuBLAS's in the CUDA module).

A float64 module's spellings are NumPy's plain ones (``np.dot`` is BLAS's ``ddot``).

Sums are spelled ``np.add.reduce``, the ufunc method ``np.sum`` calls for an ndarray (the
same numbers), without ``np.sum``'s Python dispatch: about 1 µs less per call (2.3 µs ->
1.0 µs for an axis sum of 400 values), which is most of the cost at small sizes.
"""

from __future__ import annotations

#: The dtype NumPy accumulates a float32 module's sums in.
WIDE = "np.float64"


def widened(dtype: str) -> bool:
    """Whether a module of ``dtype`` sums in a wider type than it computes in."""
    return dtype == "float32"


def whole_sum(value: str, dtype: str) -> str:
    """The sum of every element of the array ``value``, as a Python float."""
    if widened(dtype):
        return f"float(np.add.reduce({value}, axis=None, dtype={WIDE}))"
    return f"float(np.add.reduce({value}, axis=None))"


def whole_dot(left: str, right: str, dtype: str, flat: bool) -> str:
    """``sum(left*right)`` over every element, as a Python float; ``flat``: 1-D operands."""
    if widened(dtype):
        return f"float(np.add.reduce(np.multiply({left}, {right}), axis=None, dtype={WIDE}))"
    return f"float(np.{'dot' if flat else 'vdot'}({left}, {right}))"


def axis_sum(value: str, axes: tuple[int, ...], dtype: str, accumulator: bool = False) -> str:
    """The sum of ``value`` over ``axes``, keeping them as axes of length 1: an array of
    the module's dtype, or of the accumulating dtype when it is added into an
    ``accumulator`` (see ``accumulator_zeros``)."""
    over = f"axis={axes_text(axes)}, keepdims=True"
    if not widened(dtype):
        return f"np.add.reduce({value}, {over})"
    wide = f"np.add.reduce({value}, {over}, dtype={WIDE})"
    return wide if accumulator else f"{wide}.astype(DTYPE)"


def axes_text(axes: tuple[int, ...]) -> str:
    """The ``axis=`` argument of a reduction over ``axes``: one axis as an int (a ufunc's
    reduce takes a tuple too, but parses an int faster), several as a tuple."""
    return str(axes[0]) if len(axes) == 1 else f"({', '.join(str(x) for x in axes)})"


def accumulator_zeros(shape: str, dtype: str) -> str:
    """A zero array of ``shape`` that block sums are added into (``axis_sum(...,
    accumulator=True)``); ``accumulator_result`` gives it the module's dtype after."""
    return f"np.zeros({shape}, dtype={WIDE if widened(dtype) else 'DTYPE'})"


def accumulator_result(name: str, dtype: str) -> str | None:
    """The line giving the accumulator ``name`` the module's dtype, or None if it has it."""
    return f"{name} = {name}.astype(DTYPE)" if widened(dtype) else None
