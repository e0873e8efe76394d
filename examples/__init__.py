"""Example specs; each has its generated module(s) committed under generated/."""

#: Every spec whose output lives in generated/ (CI runs `symgen check` on each).
SPECS = [
    "examples/derivatives.py:TABLE",
    "examples/rosenbrock.py",
    "examples/curve_fit.py",
    "examples/logistic.py",
    "examples/mlp.py",
    "examples/softmax.py",
]
