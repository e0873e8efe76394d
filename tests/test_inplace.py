"""Per-sample passes written into preallocated buffers: same numbers, no allocation per block."""

import re

import numpy as np
import pytest
import sympy as sp

import symgen
from examples import curve_fit
from symgen.backends.numpy.module import BLOCK
from symgen.cli.show import program

a, b, c, t, y = sp.symbols("a b c t y", real=True)

#: Forms the in-place writer handles (sums with negative terms only, powers, ufuncs,
#: constants) and one it leaves to the plain spelling (sigmoid), in one loss.
LOSS = (
    (-a * t - b * y**2 - 3) ** 2 * sp.exp(-c * t)
    + 1 / (2 + sp.cos(b * t)) ** 2
    + (a * t + y) ** 3
    + sp.log(1 + (c * y) ** 2)
    + sp.Abs(a - t) * sp.tanh(b * y)
    + symgen.sigmoid(c * t - y)
)


@pytest.mark.parametrize("n", [1, 7, BLOCK, 2 * BLOCK + 3])
def test_buffered_pass_matches_lambdify(n):
    problem = symgen.Problem(LOSS, [a, b, c], [t, y], reduce="mean", name="inplace")
    module = symgen.compile(problem)
    rng = np.random.default_rng(n)
    ts, ys = rng.uniform(-1.5, 1.5, n), rng.uniform(-1.5, 1.5, n)
    point = (0.3, -0.7, 0.45)
    loss, grads = module.loss_and_grad(*point, ts, ys)
    args = (a, b, c, t, y)
    exprs = [LOSS, *(sp.diff(LOSS, p) for p in (a, b, c))]
    exprs = [e.replace(symgen.sigmoid, lambda u: 1 / (1 + sp.exp(-u))) for e in exprs]
    values = [np.mean(sp.lambdify(args, e, "numpy")(*point, ts, ys) * np.ones(n)) for e in exprs]
    assert loss == pytest.approx(values[0], rel=1e-12)
    np.testing.assert_allclose(grads, values[1:], rtol=1e-10, atol=1e-12)
    assert module.loss(*point, ts, ys) == pytest.approx(loss, rel=1e-14)


def test_w4_pass_allocates_nothing_per_block():
    code = program(curve_fit.curve_fit)
    assert "_work = np.empty((" in code
    body = code[code.index("for _start") : code.index("grad_a")].splitlines()[1:]
    allowed = re.compile(
        r"(_[ty] = [ty]\[_start:_start \+ 8192\]"  # views of the data
        r"|(_w\d+, )+_w\d+ = _work\[:, :N - _start\]"  # the buffers, cut to the block
        r"|(x\d+ = )?np\.\w+\(.*, out=_w\d+\)"  # a ufunc writing a buffer
        r"|_w\d+ [-+*]= \S+"  # an in-place update
        r"|x\d+ = _w\d+"  # a name for a buffer
        r"|x\d+ \+= float\(np\.(dot|add\.reduce)\(.*\)\))$"  # the sums
    )
    for line in body:
        assert allowed.match(line.strip()), line
