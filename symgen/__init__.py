"""symgen: symbolic gradients from SymPy losses, emitted as standalone source code."""

from symgen.api import compile, generate, gradients, hessians
from symgen.compiler.functions import (
    abs,
    elementwise,
    exp,
    log,
    logsumexp,
    mean,
    sqrt,
    square,
    sum,
    tanh,
)
from symgen.compiler.problem import Problem
from symgen.compiler.scalar_functions import relu, sigmoid, softplus
from symgen.errors import SpecError
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
    "log",
    "logsumexp",
    "mean",
    "relu",
    "sigmoid",
    "softplus",
    "sqrt",
    "square",
    "sum",
    "tanh",
]
