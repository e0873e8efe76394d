"""symgen: symbolic gradients from SymPy losses, emitted as standalone source code."""

__version__ = "0.1.0"

from .api import compile, generate, gradients  # noqa: E402
from .errors import SpecError  # noqa: E402
from .functions import (  # noqa: E402
    abs,
    elementwise,
    exp,
    log,
    logsumexp,
    mean,
    relu,
    sigmoid,
    softplus,
    sqrt,
    square,
    sum,
    tanh,
)
from .problem import Problem  # noqa: E402
from .training import FitResult, NonFiniteError, fit  # noqa: E402

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
