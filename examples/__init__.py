"""Example specs; each has its generated module(s) committed under generated/."""

#: Every spec whose output lives in generated/ (CI runs `symgen check` on each).
SPECS = [
    "examples/derivatives.py:TABLE",
    "examples/rosenbrock.py",
    "examples/curve_fit.py",
    "examples/logistic.py",
    "examples/mlp.py",
    "examples/softmax.py",
    "examples/huber.py",
]

#: Specs whose CUDA module is committed too (generated/NAME_cuda.py; CI checks them with
#: ``--backend cuda``). Scalar losses are left out: their CUDA module computes on the host.
CUDA_SPECS = [
    "examples/curve_fit.py",
    "examples/logistic.py",
    "examples/mlp.py",
    "examples/softmax.py",
    "examples/huber.py",
]

#: Specs whose C-backend module is committed too (generated/NAME_c.py; CI checks them with
#: ``--backend c``). Scalar losses are left out: their C module computes on Python floats.
C_SPECS = [
    "examples/curve_fit.py",
    "examples/logistic.py",
    "examples/mlp.py",
    "examples/softmax.py",
    "examples/huber.py",
]
