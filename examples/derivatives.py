"""W0: derivatives to print and evaluate.

symgen show examples/derivatives.py:TABLE
symgen generate examples/derivatives.py:TABLE -o generated
python examples/derivatives.py         # evaluates the generated gradients
"""

import sympy as sp

import symgen

x, y = sp.symbols("x y")

TABLE = [
    symgen.Problem(x**2, params=[x], name="d_square"),
    symgen.Problem(sp.exp(x), params=[x], name="d_exp"),
    symgen.Problem(sp.sin(x), params=[x], name="d_sin"),
    symgen.Problem((x - 4) * (x**2 + 6), params=[x], name="d_cubic"),
    symgen.Problem((x - 4) * (2 * x**2 + 6), params=[x], name="d_cubic2"),
    symgen.Problem((sp.sqrt(x) + 1) ** 3, params=[x], name="d_sqrt_cube"),
    symgen.Problem((x + 2 * y) ** 2, params=[x, y], name="d_binomial"),
]

#: Where each row is evaluated (W0 in WORKLOADS.md).
POINTS = {
    "d_square": [(2,), (3,), (4,)],
    "d_exp": [(2,), (3,), (4,)],
    "d_sin": [(0,), (sp.pi / 2,), (sp.pi,)],
    "d_cubic": [(0,), (1,), (2,)],
    "d_cubic2": [(0,), (1,), (2,)],
    "d_sqrt_cube": [(2,), (3,)],
    "d_binomial": [(1, 2), (2, 2)],
}

if __name__ == "__main__":
    import importlib
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    formulas = {p.name: symgen.gradients(p) for p in TABLE}
    for problem in TABLE:
        module = importlib.import_module(f"generated.{problem.name}_numpy")
        for param, formula in formulas[problem.name].items():
            values = [
                module.grad(*(float(v) for v in point))[problem.params.index(param)]
                for point in POINTS[problem.name]
            ]
            shown = ", ".join(f"{v:.12g}" for v in values)
            print(f"{str(problem.loss):22} d/d{param} = {str(formula):32} -> {shown}")
