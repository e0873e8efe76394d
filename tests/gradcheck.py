"""Numerical references for gradients: central differences."""

import numpy as np


def central_differences(f, params, h=1e-3):
    """∂f/∂p_i by the five-point central difference (error O(h**4)), step scaled to p_i.

    A fourth-order stencil with a large step keeps both the truncation error
    (h**4) and the rounding error (eps * |f| / h) near 1e-12, so a comparison
    at rtol 1e-7 is meaningful even for losses summed over many samples.
    """
    params = [float(p) for p in params]
    out = []
    for i, p in enumerate(params):
        step = h * max(1.0, abs(p))

        def at(k, i=i, p=p, step=step):
            shifted = list(params)
            shifted[i] = p + k * step
            return f(*shifted)

        out.append((-at(2) + 8 * at(1) - 8 * at(-1) + at(-2)) / (12 * step))
    return np.array(out)
