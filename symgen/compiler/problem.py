"""``Problem``: a loss, its parameters, its data, and how it is reduced.

A ``Problem`` is validated when it is built, so that a mistake in a spec is
reported where it was made, with a ``SpecError`` naming the offending piece.
"""

from __future__ import annotations

import builtins
import copy
import hashlib
import keyword
from collections.abc import Iterable, Sequence
from typing import Literal

import sympy as sp
from sympy.matrices.expressions import MatrixExpr

from symgen.compiler.frontend import lower
from symgen.compiler.indexed import is_index_notation, translate
from symgen.compiler.shown import shown
from symgen.compiler.supported import check_scalar_expression
from symgen.errors import SpecError

#: Names a parameter or data symbol may not take: generated code uses them.
RESERVED_NAMES = frozenset(
    {"np", "math", "lr", "state", "momentum", "nesterov", "beta1", "beta2", "eps"}
)


def _check_problem_name(name: object) -> None:
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise SpecError(f"problem name {name!r} must be a Python identifier")


def _check_name(sym: sp.Basic, role: str) -> str:
    if isinstance(sym, sp.MatrixSymbol):
        for d in sym.shape:
            if not (isinstance(d, sp.Symbol) or (d.is_Integer and d > 0)):
                raise SpecError(
                    f"{role} '{sym.name}' has dimension {d}; dimensions must be symbols "
                    "(integer=True, positive=True) or positive integers"
                )
        sym = sp.Symbol(sym.name)
    if not isinstance(sym, sp.Symbol):
        raise SpecError(f"{role} {sym!r} must be a sympy.Symbol, got {type(sym).__name__}")
    name = sym.name
    if not name.isidentifier() or keyword.iskeyword(name):
        raise SpecError(f"{role} name '{name}' is not a valid Python identifier; rename it")
    if name.startswith("_") or name in RESERVED_NAMES or hasattr(builtins, name):
        raise SpecError(
            f"{role} name '{name}' is reserved in generated code (a leading underscore, a "
            f"Python builtin, or one of {', '.join(sorted(RESERVED_NAMES))}); rename it"
        )
    return name


def _canonical_dummies(expr: sp.Basic) -> sp.Basic:
    """``expr`` with its ``Dummy`` symbols (lambda variables) renamed by position, so that
    its text does not depend on how many dummies the process created before."""
    dummies = []
    for node in sp.preorder_traversal(expr):
        if isinstance(node, sp.Dummy) and node not in dummies:
            dummies.append(node)
    return expr.xreplace({d: sp.Symbol(f"_lambda{i}") for i, d in enumerate(dummies)})


class Problem:
    """A loss to differentiate.

    ``loss`` is a scalar SymPy expression over ``params`` (the symbols to
    differentiate with respect to) and ``data``. Per-sample problems: ``data``
    are symbols bound to 1-D arrays of samples at call time, and the loss is
    reduced over samples by ``reduce`` ("sum" or "mean"). Matrix problems:
    params and data are ``MatrixSymbol``s with symbolic dimensions and the loss
    is an explicit scalar (``symgen.sum``, a trace, a 1 x 1 product).
    ``dtype`` is the floating type of the generated code, ``name`` names the
    generated module and its functions (without one, the command line names the
    problem after its spec file or variable; ``"problem"`` elsewhere). ``binary``
    lists data whose entries are 0 or 1 (labels): then ``log(f(t))`` is
    ``t*log(f(1)) + (1 - t)*log(f(0))``, which turns a naive likelihood into the
    cross-entropy (one ``softplus`` instead of a log-sum-exp of two logs); the
    generated code checks the values.

    Index notation: params and data may be ``IndexedBase`` arrays and the loss a ``Sum``
    over their entries (``Sum((y[i] - a*x[i] - b)**2, (i, 0, n - 1))``); the problem is
    then the equivalent per-sample or matrix problem (``compiler/indexed.py``), whose
    symbols ``params`` and ``data`` hold; ``written`` keeps the loss as written.
    """

    def __init__(
        self,
        loss: sp.Basic,
        params: Sequence[sp.Symbol],
        data: Iterable[sp.Symbol] = (),
        reduce: Literal["sum", "mean"] = "sum",
        dtype: Literal["float64", "float32"] = "float64",
        name: str | None = None,
        binary: Iterable[sp.Symbol] = (),
    ) -> None:
        if isinstance(params, sp.Basic) or isinstance(params, str):
            raise SpecError("params must be a list of symbols, e.g. params=[x, y]")
        params = tuple(params)
        data = tuple(data)
        if not params:
            raise SpecError("a problem needs at least one parameter")
        if reduce not in ("sum", "mean"):
            raise SpecError(f"reduce must be 'sum' or 'mean', got {reduce!r}")
        if dtype not in ("float64", "float32"):
            raise SpecError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
        if name is not None:
            _check_problem_name(name)
        try:
            loss = sp.sympify(loss, strict=True)
        except (sp.SympifyError, TypeError) as exc:
            raise SpecError(
                f"the loss must be a SymPy expression, got {type(loss).__name__}"
            ) from exc
        #: The loss as written (in index notation, the ``Sum``; ``loss`` is what it means).
        self.written = loss
        if isinstance(loss, sp.Expr) and is_index_notation(loss, (*params, *data)):
            translated = translate(loss, params, data, reduce)
            loss, params, data = translated.loss, translated.params, translated.data
            reduce = translated.reduce
        matrix = any(isinstance(s, MatrixExpr) for s in (*params, *data))
        if isinstance(loss, sp.MatrixBase) or (
            isinstance(loss, MatrixExpr) and tuple(loss.shape) != (1, 1)
        ):
            raise SpecError(
                f"the loss must be a scalar, got a matrix of shape {tuple(loss.shape)}; reduce "
                "it to a scalar (symgen.sum, symgen.mean, a trace)"
            )
        if not isinstance(loss, (sp.Expr, MatrixExpr)):
            raise SpecError(
                f"the loss must be a scalar expression, got {type(loss).__name__}: {shown(loss)}"
            )
        names = [_check_name(s, "param") for s in params] + [_check_name(s, "data") for s in data]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise SpecError(f"symbol name(s) used more than once: {', '.join(duplicates)}")
        free = {s.name for s in loss.free_symbols}
        for role, syms in (("param", params), ("data", data)):
            for s in syms:
                if s.name not in free:
                    raise SpecError(f"{role} '{s.name}' does not appear in the loss {shown(loss)}")
        dims = {
            d.name
            for s in (*params, *data)
            if isinstance(s, MatrixExpr)
            for d in s.shape
            if isinstance(d, sp.Symbol)
        }
        clash = sorted(dims & set(names))
        if clash:
            raise SpecError(f"dimension name(s) {', '.join(clash)} also name a param or data")
        stray = sorted(free - set(names) - dims)
        if stray:
            raise SpecError(
                f"the loss uses {', '.join(repr(s) for s in stray)}, which is neither a param nor "
                "data; add it to params or data, or substitute a number"
            )
        if not matrix:
            if isinstance(loss, MatrixExpr) or loss.has(MatrixExpr):
                raise SpecError("a loss over matrix expressions needs MatrixSymbol params or data")
            check_scalar_expression(loss, {p: frozenset({p.name}) for p in params})

        binary = tuple(binary)
        data_names = {d.name for d in data}
        for b in binary:
            if getattr(b, "name", None) not in data_names:
                raise SpecError(
                    f"binary={b!r}: only data can be declared binary (0 or 1 entries); "
                    f"the data are {', '.join(sorted(data_names)) or 'none'}"
                )
        self.loss = loss
        self.params = params
        self.data = data
        #: Data whose entries are 0 or 1 (labels): ``log`` of an expression in them is
        #: split into its two cases, and generated code checks the values.
        self.binary = tuple(d for d in data if d.name in {b.name for b in binary})
        self.reduce = reduce
        self.dtype = dtype
        #: Whether ``name=`` was given (else a spec loader may name the problem: ``renamed``).
        self.named = name is not None
        self.name = "problem" if name is None else name
        self.kind: Literal["scalar", "per_sample", "matrix"] = (
            "matrix" if matrix else "per_sample" if data else "scalar"
        )
        if matrix:
            lower(self)  # lowering checks every node and every shape

    def renamed(self, name: str) -> Problem:
        """The same problem under another name (a copy; this one is unchanged)."""
        _check_problem_name(name)
        other = copy.copy(self)
        other.name, other.named = name, True
        return other

    def real_symbols(self) -> dict[sp.Symbol, sp.Symbol]:
        """The user's symbols mapped to real symbols of the same name.

        Differentiation happens over real symbols, so that ``Abs``, ``sqrt``
        and ``sign`` differentiate the way a person expects.
        """
        return {s: sp.Symbol(s.name, real=True) for s in (*self.params, *self.data)}

    def real_loss(self) -> sp.Expr:
        by_name = {s.name: r for s, r in self.real_symbols().items()}
        return self.loss.xreplace({s: by_name[s.name] for s in self.loss.free_symbols})

    def describe(self) -> str:
        """A canonical, hash-seed independent text of the whole specification."""
        return "\n".join(
            [
                f"name={self.name}",
                f"params={','.join(s.name for s in self.params)}",
                f"data={','.join(s.name for s in self.data)}",
                f"reduce={self.reduce}",
                f"dtype={self.dtype}",
                f"loss={sp.srepr(_canonical_dummies(self.loss))}",
            ]
            + ([f"binary={','.join(s.name for s in self.binary)}"] if self.binary else [])
        )

    def spec_hash(self) -> str:
        return hashlib.sha256(self.describe().encode()).hexdigest()[:16]

    def __repr__(self) -> str:
        data = f", data=[{', '.join(s.name for s in self.data)}], reduce={self.reduce!r}"
        return (
            f"Problem({self.loss}, params=[{', '.join(s.name for s in self.params)}]"
            f"{data if self.data else ''}, dtype={self.dtype!r}, name={self.name!r})"
        )
