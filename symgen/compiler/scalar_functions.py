"""The scalar functions symgen knows, one home each.

Each ``ScalarFunction`` below states everything about one function: its SymPy class, its
derivative (symgen's own classes take ``fdiff`` from it; SymPy's classes bring their
own), how each target spells a call, the helpers a spelling needs, whether a loss may
use it and how ``symgen diff`` names it. Every list of functions elsewhere (what a loss
may contain, what ``symgen diff`` parses, the printers' methods, the in-place ufuncs,
the C device helpers, the names C kernels must not use) is derived from ``FUNCTIONS``.

Spellings are ``str.format`` templates, plain data read by ``codegen.printers``:

- ``{0}``, ``{1}`` ...: the printed arguments; ``{0:factor}`` parenthesizes the argument
  as a factor of a product; ``{args}``: all of them, comma-separated;
- in C, ``{f}`` and ``{F}``: the suffix of a math function and of a literal in the
  kernel's type (``expf``, ``1.0F`` in float; ``exp``, ``1.0`` in double);
- an in-place ufunc (``ufunc``): ``{0}`` the operand, ``{out}`` the buffer written;
- a C definition (``c_definition``, after its qualifier ``static inline`` or
  ``__device__ __forceinline__``): ``{T}`` the type, ``{f}``/``{F}``; C's braces doubled.

A ``Spelling`` with ``fold`` writes a call of any number of arguments with a two-argument
spelling, nested to the left (``f(f(a, b), c)``) or to the right (``f(a, f(b, c))``).

Roles: ``"loss"``: a loss may use it; ``"data_only"``: a loss may use it in terms that do
not depend on the parameters (it is evaluated, never differentiated: ``loggamma``, whose
derivative no target spells); ``"internal"``: made by symgen's rewrites (stable forms,
shared exponentials), printed but refused in a user's loss; ``"diff"``: only ``symgen
diff`` parses it (no target spells it). ``SHORTHANDS`` are names for powers
(``sqrt``, ``square``) that ``symgen diff`` parses too; the printers spell them as powers.

By convention the derivative of ``relu`` at 0 is 0: ``relu'(z) = Heaviside(z, 0)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p
from sympy.matrices.expressions import MatrixExpr
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

Role = Literal["loss", "data_only", "internal", "diff"]


@dataclass(frozen=True)
class Spelling:
    """A call in one target: a template (see the module docstring) and how it folds."""

    text: str
    fold: Literal["left", "right"] | None = None


@dataclass(frozen=True)
class Helper:
    """A module-level Python function that a Python or NumPy spelling calls.

    ``source`` takes Python floats (the scalar lines of a module); ``array_source``, when
    the NumPy spelling calls it too, takes NumPy arrays as well (the NumPy module's)."""

    name: str
    source: str
    array_source: str | None = None


@dataclass(frozen=True)
class ScalarFunction:
    """One function's home (spellings: see the module docstring)."""

    #: The SymPy class (symgen's own are defined in this module).
    sympy: type
    role: Role
    #: An array expression in NumPy (``np``).
    numpy: Spelling | str | None = None
    #: ``f(a) - f(b)`` in NumPy, where one expression is cheaper than two calls.
    numpy_difference: Spelling | str | None = None
    #: A one-argument function whose NumPy spelling is one ufunc, written into a buffer.
    ufunc: str | None = None
    #: On Python floats (``math``).
    python: Spelling | str | None = None
    #: In C and CUDA, float or double.
    c: Spelling | str | None = None
    #: The ``sg_`` helper that the C spelling calls, when it needs one.
    c_definition: str | None = None
    #: The module-level Python helper that the ``python``/``numpy`` spellings call.
    helper: Helper | None = None
    #: The partial derivatives, given the arguments: symgen's own classes take ``fdiff``
    #: from here; None for SymPy's (they differentiate themselves) and for a function that
    #: is never differentiated.
    partials: Callable[..., tuple[sp.Expr, ...]] | None = None
    #: Symgen's own function in SymPy's terms: its rewrites, and the reference that its
    #: spellings are tested against.
    meaning: Callable[..., sp.Expr] | None = None
    #: Its name in ``symgen diff`` expressions, and the argument counts accepted there.
    parse: str | None = None
    parse_counts: tuple[int, ...] = (1,)
    #: Its name in symgen's matrix formulas, where it differs from the class name.
    shown: str | None = None
    #: Defined, finite and silent (no error, no floating-point warning) at every finite
    #: real argument: a ``Piecewise`` branch calling only such functions may be computed
    #: where its condition does not hold (``compiler/guards.py``); any other is computed
    #: only where it holds.
    total: bool = False
    #: In C, comparisons and arithmetic only, no call into the math library (``relu``,
    #: ``Max``): a C pass over short rows that calls nothing else keeps its loop along the
    #: rows (``backends/c``, ``COMPARISONS``).
    comparison: bool = False

    def __post_init__(self) -> None:
        for target in (*TARGETS, "numpy_difference"):
            text = getattr(self, target)
            if isinstance(text, str):
                object.__setattr__(self, target, Spelling(text))

    @property
    def name(self) -> str:
        """The SymPy class name: what the printers dispatch on (``_print_<name>``)."""
        return self.sympy.__name__

    def spelling(self, target: str) -> Spelling | None:
        return getattr(self, target)


#: The targets every printed function is spelled in.
TARGETS = ("numpy", "python", "c")


@dataclass(frozen=True)
class Shorthand:
    """A name for a power that ``symgen diff`` parses (the printers spell powers)."""

    name: str
    build: Callable[[sp.Expr], sp.Expr]
    meaning: str
    parse_counts: tuple[int, ...] = (1,)


# -- symgen's own classes ---------------------------------------------------------------
class _Defined(sp.Function):
    """A symgen function: its derivative is the one its home states."""

    def fdiff(self, argindex=1):
        partials = BY_CLASS[type(self)].partials
        if partials is None:
            return super().fdiff(argindex)
        return partials(*self.args)[argindex - 1]

    def _meaning(self, *args, **kwargs):
        return BY_CLASS[type(self)].meaning(*args)


class _ElementwiseFunction(_Defined):
    """A scalar function that, given a matrix expression, applies elementwise."""

    def __new__(cls, *args, **kwargs):
        if len(args) == 1 and isinstance(args[0], MatrixExpr):
            z = sp.Dummy("z")
            return ElementwiseApplyFunction(sp.Lambda(z, cls(z)), args[0])
        return super().__new__(cls, *args, **kwargs)


class relu(_ElementwiseFunction):  # noqa: N801 - reads like the math
    """max(z, 0); derivative Heaviside(z, 0) (0 at z = 0)."""

    nargs = 1

    @classmethod
    def eval(cls, z):
        if z is sp.S.NaN:
            return sp.S.NaN
        if z.is_Number and z.is_extended_real:
            return z if z > 0 else sp.S.Zero
        if z.is_nonnegative:
            return z
        if z.is_nonpositive:
            return sp.S.Zero
        return None

    _eval_rewrite_as_Max = _Defined._meaning


class sigmoid(_ElementwiseFunction):  # noqa: N801
    """1 / (1 + exp(-z)); derivative sigmoid(z) * (1 - sigmoid(z))."""

    nargs = 1

    @classmethod
    def eval(cls, z):
        if z.is_zero:
            return sp.S.Half
        return None

    _eval_rewrite_as_exp = _Defined._meaning


class sigmoid_from_exp(_Defined):  # noqa: N801
    """sigmoid(z) given e = exp(-|z|): (1 if z >= 0 else e) / (1 + e), exact for every z.

    Made by the optimizer (never by users) when sigmoid and softplus of the same z meet
    in one kernel: they share the exponential. It is never differentiated."""

    nargs = 2


class softplus(_ElementwiseFunction):  # noqa: N801
    """log(1 + exp(z)), evaluated stably; derivative sigmoid(z)."""

    nargs = 1

    @classmethod
    def eval(cls, z):
        if z.is_zero:
            return sp.log(2)
        return None

    _eval_rewrite_as_exp = _eval_rewrite_as_log = _Defined._meaning


class logaddexp(_Defined):  # noqa: N801
    """log(exp(a) + exp(b)), evaluated stably; its partials are sigmoid(a - b), sigmoid(b - a)."""

    nargs = 2


class safelog(_Defined):  # noqa: N801
    """log(u) for u >= 0, with log(0) = -inf and no warning (used by the stable forms)."""

    nargs = 1


class xlogy(_Defined):  # noqa: N801
    """x*log(y), 0 where x == 0 (and y is not NaN), as ``scipy.special.xlogy``: the
    convention 0*log(0) = 0 of entropies, KL divergences and Poisson deviances. Partials
    log(y) and xdivy(x, y), 0 where x == 0."""

    nargs = 2

    @classmethod
    def eval(cls, x, y):
        if x.is_zero or y == 1:
            return sp.S.Zero
        if x.is_Number and y.is_Number:
            return x * sp.log(y)
        return None


class xdivy(_Defined):  # noqa: N801
    """x/y, 0 where x == 0 (and y is not NaN): xlogy's derivative in y."""

    nargs = 2

    @classmethod
    def eval(cls, x, y):
        if x.is_zero:
            return sp.S.Zero
        if y == 1:
            return x
        if x.is_Number and y.is_Number:
            return x / y
        return None


class logcosh(_ElementwiseFunction):  # noqa: N801
    """log(cosh(r)) as |r| + log1p(exp(-2|r|)) - log(2), finite for every r; derivative tanh(r)."""

    nargs = 1

    @classmethod
    def eval(cls, r):
        if r.is_zero:
            return sp.S.Zero
        if r.could_extract_minus_sign():
            return cls(-r)
        return None


class log1mexp(_Defined):  # noqa: N801
    """log(1 - exp(-x)) for x > 0, accurate for small and large x (Maechler's two
    branches); derivative 1/expm1(x), written exp(-x)/(-expm1(-x)) to stay finite."""

    nargs = 1


class stop_gradient(_ElementwiseFunction):  # noqa: N801
    """Its argument's value, with derivative 0 (JAX's ``lax.stop_gradient``): no gradient
    flows through it."""

    nargs = 1

    @classmethod
    def eval(cls, z):
        if z.is_number or isinstance(z, stop_gradient):
            return z
        return None


# -- Python helpers -------------------------------------------------------------------------
_LOGADDEXP = Helper(
    "_logaddexp",
    '''def _logaddexp(a, b):
    """log(exp(a) + exp(b)) on floats."""
    m = max(a, b)
    return m if m == -math.inf else m + math.log1p(math.exp(-abs(a - b)))''',
)

_SAFELOG = Helper(
    "_safelog",
    '''def _safelog(u):
    """log(u) for u >= 0, with log(0) = -inf."""
    return math.log(u) if u > 0 else -math.inf''',
    array_source='''def _safelog(u):
    """log(u) for u >= 0, with log(0) = -inf and no warning."""
    if np.ndim(u) == 0:
        return math.log(u) if u > 0 else -math.inf
    return np.log(u, out=np.full(np.shape(u), -np.inf, dtype=np.result_type(u)), where=u > 0)''',
)


_XLOGY = Helper(
    "_xlogy",
    '''def _xlogy(x, y):
    """x*log(y) on floats, 0 where x == 0 and y is not NaN."""
    return 0.0 if x == 0 and y == y else x * math.log(y)''',
    array_source='''def _xlogy(x, y):
    """x*log(y), 0 where x == 0 and y is not NaN (log(1) there: no warning)."""
    return x * np.log(np.where((x == 0) & (y == y), 1.0, y))''',
)

_XDIVY = Helper(
    "_xdivy",
    '''def _xdivy(x, y):
    """x/y on floats, 0 where x == 0 and y is not NaN."""
    return 0.0 if x == 0 and y == y else x / y''',
    array_source='''def _xdivy(x, y):
    """x/y, 0 where x == 0 and y is not NaN (x/1 there: no warning)."""
    return x / np.where((x == 0) & (y == y), 1.0, y)''',
)

_LOG1MEXP = Helper(
    "_log1mexp",
    '''def _log1mexp(x):
    """log(1 - exp(-x)) on floats: -inf at 0, NaN below."""
    if x > 0.6931471805599453:
        return math.log1p(-math.exp(-x))
    u = -math.expm1(-x)
    return math.log(u) if u > 0 else (-math.inf if u == 0 else math.nan)''',
    array_source='''def _log1mexp(x):
    """log(1 - exp(-x)): log(-expm1(-x)) up to log(2), log1p(-exp(-x)) above."""
    small = x <= 0.6931471805599453
    near = np.log(-np.expm1(-np.where(small, x, 1.0)))
    far = np.log1p(-np.exp(-np.where(small, 1.0, x)))
    return np.where(small, near, far)''',
)

_LOGGAMMA = Helper(
    "_loggamma",
    '''def _loggamma(x):
    """log|gamma(x)| on floats; inf at the poles 0, -1, -2, ... (as C's lgamma)."""
    try:
        return math.lgamma(x)
    except ValueError:
        return math.inf''',
    array_source='''def _loggamma(x):
    """log|gamma(x)| elementwise; inf at the poles 0, -1, -2, ... (as C's lgamma). NumPy has
    no log-gamma: this is math.lgamma on each element (a few tenths of a microsecond each)."""

    def one(v):
        try:
            return math.lgamma(v)
        except ValueError:
            return math.inf

    if np.ndim(x) == 0:
        return one(x)
    return np.frompyfunc(one, 1, 1)(x).astype(np.result_type(x, 0.0))''',
)


def _per_element(name: str) -> Helper:
    """A helper that applies ``math.<name>`` to each element of an array: the NumPy
    spelling of a function NumPy does not have (generated modules import only NumPy and the
    standard library), at a few tenths of a microsecond per element; C and CUDA call
    their own."""
    return Helper(
        f"_{name}",
        f'''def _{name}(x):
    """math.{name} on a float."""
    return math.{name}(x)''',
        array_source=f'''def _{name}(x):
    """math.{name} elementwise (NumPy has no {name}: one call per element)."""
    if np.ndim(x) == 0:
        return math.{name}(x)
    return np.frompyfunc(math.{name}, 1, 1)(x).astype(np.result_type(x, 0.0))''',
    )


def _math(name: str, np_name: str = "", *, parse: bool = False, in_place: bool = True):
    """The spellings of a function that NumPy (``np_name`` when it differs), ``math`` and
    C's <math.h> each have as one call; ``parse``: ``symgen diff`` knows it by ``name``;
    ``in_place=False``: blocked passes keep its plain spelling (not yet written with
    ``out=``: that would change the generated modules that use it)."""
    np_name = np_name or name
    return dict(
        numpy=f"np.{np_name}({{0}})",
        ufunc=f"np.{np_name}({{0}}, out={{out}})" if in_place else None,
        python=f"math.{name}({{0}})",
        c=f"{name}{{f}}({{0}})",
        parse=name if parse else None,
    )


# -- the homes ------------------------------------------------------------------------------
# The order is the order of the C definitions (a definition calls only earlier ones) and
# of a module's Python helpers.
FUNCTIONS: tuple[ScalarFunction, ...] = (
    # smooth functions of <math.h>
    ScalarFunction(sp.exp, "loss", **_math("exp", parse=True)),
    ScalarFunction(sp.log, "loss", **_math("log", parse=True), parse_counts=(1, 2)),
    ScalarFunction(sp.sin, "loss", **_math("sin", parse=True), total=True),
    ScalarFunction(sp.cos, "loss", **_math("cos", parse=True), total=True),
    ScalarFunction(sp.tan, "loss", **_math("tan", parse=True)),
    ScalarFunction(sp.asin, "loss", **_math("asin", "arcsin", parse=True)),
    ScalarFunction(sp.acos, "loss", **_math("acos", "arccos", parse=True)),
    ScalarFunction(sp.atan, "loss", **_math("atan", "arctan", parse=True), total=True),
    ScalarFunction(
        sp.atan2,
        "loss",
        numpy="np.arctan2({0}, {1})",
        python="math.atan2({0}, {1})",
        c="atan2{f}({0}, {1})",
        total=True,
    ),
    ScalarFunction(sp.sinh, "loss", **_math("sinh", parse=True)),
    ScalarFunction(sp.cosh, "loss", **_math("cosh", parse=True)),
    ScalarFunction(sp.tanh, "loss", **_math("tanh", parse=True), total=True),
    ScalarFunction(sp.asinh, "loss", **_math("asinh", "arcsinh", in_place=False), total=True),
    ScalarFunction(sp.acosh, "loss", **_math("acosh", "arccosh", in_place=False)),
    ScalarFunction(sp.atanh, "loss", **_math("atanh", "arctanh", in_place=False)),
    # SymPy's own spellings (sympy.codegen.cfunctions) of log(1 + x) and exp(x) - 1, which
    # symgen's stable forms make too
    ScalarFunction(log1p, "loss", **_math("log1p", parse=True)),
    ScalarFunction(expm1, "loss", **_math("expm1", parse=True)),
    # the error function (the normal CDF, GELU): NumPy has none, so the NumPy module calls
    # math.erf on each element; C and CUDA their own erf
    ScalarFunction(
        sp.erf,
        "loss",
        numpy="_erf({0})",
        python="math.erf({0})",
        c="erf{f}({0})",
        helper=_per_element("erf"),
        parse="erf",
        total=True,
    ),
    ScalarFunction(
        sp.erfc,
        "loss",
        numpy="_erfc({0})",
        python="math.erfc({0})",
        c="erfc{f}({0})",
        helper=_per_element("erfc"),
        parse="erfc",
        total=True,
    ),
    # evaluated in terms constant in the parameters (a Poisson NLL's log(y!) = loggamma(y + 1)):
    # its derivative, digamma, has no NumPy or C spelling
    ScalarFunction(
        sp.loggamma,
        "data_only",
        numpy="_loggamma({0})",
        python="_loggamma({0})",
        c="lgamma{f}({0})",
        helper=_LOGGAMMA,
    ),
    # piecewise linear; maxima are comparisons, not fmax(): a C compiler vectorises a
    # comparison, while fmax() is a library call without a vector variant; and a NaN
    # propagates, as in NumPy's maximum
    ScalarFunction(
        relu,
        "loss",
        comparison=True,
        total=True,
        numpy="np.maximum({0}, 0.0)",
        ufunc="np.maximum({0}, 0.0, out={out})",
        python="max({0}, 0.0)",
        c="sg_relu({0})",
        c_definition="{T} sg_relu({T} z) {{ return z < 0 ? ({T})0 : z; }}",
        partials=lambda z: (sp.Heaviside(z, 0),),
        meaning=lambda z: sp.Max(z, 0),
        parse="relu",
    ),
    ScalarFunction(
        sp.Heaviside,  # SymPy keeps the value at 0 as the second argument
        "loss",
        comparison=True,
        total=True,
        numpy="np.heaviside({0}, {1})",
        python="(1.0 if {0} > 0 else ({1} if {0} == 0 else 0.0))",
        c="sg_heaviside({0}, {1})",
        c_definition="""{T} sg_heaviside({T} z, {T} h0)
{{
    return z > 0 ? ({T})1 : (z < 0 ? ({T})0 : (z == 0 ? h0 : z));
}}""",
        shown="heaviside",
    ),
    ScalarFunction(
        sp.Max,
        "loss",
        comparison=True,
        total=True,
        numpy=Spelling("np.maximum({0}, {1})", fold="left"),
        python="max({args})",
        c=Spelling("sg_maximum({0}, {1})", fold="right"),
        c_definition="{T} sg_maximum({T} a, {T} b) {{ return (a > b || a != a) ? a : b; }}",
    ),
    ScalarFunction(
        sp.Min,
        "loss",
        comparison=True,
        total=True,
        numpy=Spelling("np.minimum({0}, {1})", fold="left"),
        python="min({args})",
        c=Spelling("sg_minimum({0}, {1})", fold="right"),
        c_definition="{T} sg_minimum({T} a, {T} b) {{ return (a < b || a != a) ? a : b; }}",
    ),
    ScalarFunction(
        sp.Abs,
        "loss",
        comparison=True,
        total=True,
        numpy="abs({0})",
        ufunc="np.absolute({0}, out={out})",
        python="abs({0})",
        c="fabs{f}({0})",
        parse="abs",
        shown="abs",
    ),
    ScalarFunction(
        sp.sign,
        "loss",
        comparison=True,
        total=True,
        numpy="np.sign({0})",  # (not yet written with out=, as asinh)
        python="(0.0 if {0} == 0 else math.copysign(1, {0}))",
        c="(({0} > 0) ? 1.0{F} : (({0} < 0) ? -1.0{F} : {0}))",
    ),
    # the logistic family: stable spellings
    ScalarFunction(
        sigmoid,
        "loss",
        total=True,
        numpy="(0.5*np.tanh(0.5*{0:factor}) + 0.5)",
        numpy_difference="0.5*(np.tanh(0.5*{0:factor}) - np.tanh(0.5*{1:factor}))",
        python="(0.5*math.tanh(0.5*{0:factor}) + 0.5)",
        c="sg_sigmoid({0})",
        c_definition="{T} sg_sigmoid({T} z) {{ return 0.5{F}*tanh{f}(0.5{F}*z) + 0.5{F}; }}",
        partials=lambda z: (sigmoid(z) * (1 - sigmoid(z)),),
        meaning=lambda z: 1 / (1 + sp.exp(-z)),
        parse="sigmoid",
    ),
    ScalarFunction(
        sigmoid_from_exp,
        "internal",
        numpy="(np.where({0} >= 0.0, 1.0, {1})/(1.0 + {1}))",  # 0.0: NumPy compares faster
        python="((1.0 if {0} >= 0 else {1})/(1.0 + {1}))",
        c="sg_sigmoid_e({0}, {1})",
        c_definition=(
            "{T} sg_sigmoid_e({T} z, {T} e) {{ return (z >= 0.0{F} ? 1.0{F} : e)/(1.0{F} + e); }}"
        ),
        meaning=lambda z, e: sp.Piecewise((1, z >= 0), (e, True)) / (1 + e),
    ),
    ScalarFunction(
        softplus,
        "loss",
        total=True,
        numpy="np.logaddexp(0.0, {0})",
        ufunc="np.logaddexp(0.0, {0}, out={out})",
        python="(max({0}, 0.0) + math.log1p(math.exp(-abs({0}))))",
        c="sg_softplus({0})",
        c_definition=(
            "{T} sg_softplus({T} z) "
            "{{ return sg_maximum(z, 0.0{F}) + log1p{f}(exp{f}(-fabs{f}(z))); }}"
        ),
        partials=lambda z: (sigmoid(z),),
        meaning=lambda z: sp.log(1 + sp.exp(z)),
        parse="softplus",
    ),
    ScalarFunction(
        logaddexp,
        "internal",
        total=True,
        numpy="np.logaddexp({0}, {1})",
        python="_logaddexp({0}, {1})",
        c="sg_logaddexp({0}, {1})",
        c_definition="""{T} sg_logaddexp({T} a, {T} b)
{{
    const {T} m = sg_maximum(a, b);
    return m == -INFINITY ? m : m + log1p{f}(exp{f}(-fabs{f}(a - b)));
}}""",
        helper=_LOGADDEXP,
        partials=lambda a, b: (sigmoid(a - b), sigmoid(b - a)),
        meaning=lambda a, b: sp.log(sp.exp(a) + sp.exp(b)),
    ),
    ScalarFunction(
        safelog,
        "internal",
        numpy="_safelog({0})",
        python="_safelog({0})",
        c="sg_safelog({0})",
        c_definition="{T} sg_safelog({T} u) {{ return u > 0 ? log{f}(u) : -INFINITY; }}",
        helper=_SAFELOG,
        partials=lambda u: (1 / u,),
        meaning=lambda u: sp.Piecewise((sp.log(u), u > 0), (-sp.oo, True)),
    ),
    ScalarFunction(
        xlogy,
        "loss",
        numpy="_xlogy({0}, {1})",
        python="_xlogy({0}, {1})",
        c="sg_xlogy({0}, {1})",
        c_definition="{T} sg_xlogy({T} x, {T} y) "
        "{{ return x*log{f}((x == 0 && y == y) ? 1.0{F} : y); }}",
        helper=_XLOGY,
        partials=lambda x, y: (sp.log(y), xdivy(x, y)),
        meaning=lambda x, y: sp.Piecewise((0, sp.Eq(x, 0)), (x * sp.log(y), True)),
        parse="xlogy",
        parse_counts=(2,),
    ),
    ScalarFunction(
        xdivy,
        "internal",
        numpy="_xdivy({0}, {1})",
        python="_xdivy({0}, {1})",
        c="sg_xdivy({0}, {1})",
        c_definition="{T} sg_xdivy({T} x, {T} y) {{ return x/((x == 0 && y == y) ? 1.0{F} : y); }}",
        helper=_XDIVY,
        partials=lambda x, y: (1 / y, -xdivy(x, y**2)),
        meaning=lambda x, y: sp.Piecewise((0, sp.Eq(x, 0)), (x / y, True)),
    ),
    ScalarFunction(
        logcosh,
        "internal",
        numpy="(np.logaddexp({0}, -{0:factor}) - 0.6931471805599453)",
        python="(abs({0}) + math.log1p(math.exp(-2.0*abs({0}))) - 0.6931471805599453)",
        c="sg_logcosh({0})",
        c_definition=(
            "{T} sg_logcosh({T} r) {{ const {T} a = fabs{f}(r); "
            "return a + log1p{f}(exp{f}(-2.0{F}*a)) - 0.6931471805599453{F}; }}"
        ),
        partials=lambda r: (sp.tanh(r),),
        meaning=lambda r: sp.log(sp.cosh(r)),
    ),
    ScalarFunction(
        log1mexp,
        "internal",
        numpy="_log1mexp({0})",
        python="_log1mexp({0})",
        c="sg_log1mexp({0})",
        c_definition="""{T} sg_log1mexp({T} x)
{{
    return x <= 0.6931471805599453{F} ? log{f}(-expm1{f}(-x)) : log1p{f}(-exp{f}(-x));
}}""",
        helper=_LOG1MEXP,
        partials=lambda x: (-sp.exp(-x) / expm1(-x),),
        meaning=lambda x: sp.log(1 - sp.exp(-x)),
    ),
    ScalarFunction(
        stop_gradient,
        "loss",
        numpy="({0})",
        python="({0})",
        c="({0})",
        partials=lambda z: (sp.S.Zero,),
        meaning=lambda z: z,
        parse="stop_gradient",
    ),
)

#: Each function's home, by its SymPy class.
BY_CLASS: dict[type, ScalarFunction] = {fn.sympy: fn for fn in FUNCTIONS}

SHORTHANDS: tuple[Shorthand, ...] = (
    Shorthand("sqrt", sp.sqrt, "z**(1/2)"),
    Shorthand("square", lambda z: z**2, "z**2"),
)

#: The function classes a loss may apply (besides + - * / and powers), by name.
SUPPORTED_FUNCTIONS: dict[str, type] = {fn.name: fn.sympy for fn in FUNCTIONS if fn.role == "loss"}

#: The function classes a loss may apply only in terms constant in the parameters, by name.
DATA_ONLY_FUNCTIONS: dict[str, type] = {
    fn.name: fn.sympy for fn in FUNCTIONS if fn.role == "data_only"
}

#: ``symgen diff``'s functions: name -> (argument counts accepted, builder).
PARSED: dict[str, tuple[tuple[int, ...], Callable[..., sp.Expr]]] = {
    name: entry
    for name, entry in sorted(
        [(fn.parse, (fn.parse_counts, fn.sympy)) for fn in FUNCTIONS if fn.parse]
        + [(s.name, (s.parse_counts, s.build)) for s in SHORTHANDS]
    )
}

#: The Python helpers the spellings call, in order.
HELPERS: tuple[Helper, ...] = tuple(fn.helper for fn in FUNCTIONS if fn.helper is not None)
