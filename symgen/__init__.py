"""symgen: symbolic gradients from SymPy losses, emitted as standalone source code."""

from symgen.api import compile, generate, gradients, hessians
from symgen.compiler.functions import (
    abs,
    elementwise,
    exp,
    log,
    logsumexp,
    mean,
    ones,
    sqrt,
    square,
    sum,
    take,
    tanh,
)
from symgen.compiler.problem import Problem
from symgen.compiler.scalar_functions import relu, sigmoid, softplus, stop_gradient, xlogy
from symgen.errors import SpecError
from symgen.runtime.solvers.least_squares import least_squares
from symgen.runtime.solvers.minimize import minimize
from symgen.runtime.training.fitting import fit
from symgen.runtime.training.result import FitResult, NonFiniteError
from symgen.version import __version__

__all__ = [
    "FitResult",
    "NonFiniteError",
    "Problem",
    "SpecError",
    "__version__",
    "abs",
    "compile",
    "elementwise",
    "exp",
    "fit",
    "generate",
    "gradients",
    "hessians",
    "least_squares",
    "log",
    "logsumexp",
    "mean",
    "minimize",
    "ones",
    "relu",
    "sigmoid",
    "softplus",
    "sqrt",
    "square",
    "stop_gradient",
    "sum",
    "take",
    "tanh",
    "xlogy",
]
