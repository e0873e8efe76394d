"""How one scalar expression is spelled in generated Python.

``ScalarPrinter`` prints statements over Python floats (``math``);
``ArrayPrinter`` prints statements over NumPy arrays (``np``), with the
sample-independent factors of a product multiplied first so that they cost
one scalar operation instead of one array pass each; ``CExpressionPrinter`` prints
one element of a C pass or a CUDA kernel in ``float`` or ``double`` (``c_printer``
prints the functions around it). These classes are
the only place that knows how a function is spelled as an expression
(``backends/inplace.py`` writes the one-ufunc functions as ``out=`` calls).
"""

from __future__ import annotations

import sympy as sp
from sympy.codegen.ast import float32, float64, real
from sympy.printing.c import C99CodePrinter
from sympy.printing.numpy import NumPyPrinter
from sympy.printing.precedence import precedence
from sympy.printing.pycode import PythonCodePrinter

from symgen.compiler.functions import sigmoid


def _print_add_subtracting(printer, expr, order=None) -> str | None:
    """``y - x*x`` rather than ``-(x*x) + y``: a negated term costs a negation (one more
    pass over an array, or one more float operation), a subtraction does not. ``None``
    when every term has the same sign."""
    terms = printer._as_ordered_terms(expr, order=order)
    negative = [t for t in terms if t.could_extract_minus_sign()]
    positive = [t for t in terms if not t.could_extract_minus_sign()]
    if not negative or not positive:
        return None
    level = precedence(expr)
    text = " + ".join(printer.parenthesize(t, level) for t in positive)
    return text + "".join(f" - {printer.parenthesize(-t, level)}" for t in negative)


class ScalarPrinter(PythonCodePrinter):
    """Python floats and the ``math`` module."""

    def __init__(self) -> None:
        super().__init__({"fully_qualified_modules": True, "standard": "python3"})
        #: The module's helper functions the printed text calls (``_safelog``, ...);
        #: ``module_imports`` has the modules it uses (``math``).
        self.helpers: set[str] = set()

    def _call_helper(self, name: str, *args: str) -> str:
        self.helpers.add(name)
        return f"{name}({', '.join(args)})"

    def _print_Integer(self, expr):
        # float literals: int * float takes a slower path than float * float in CPython
        return f"{int(expr)}.0"

    def _print_Pow(self, expr, rational=False):
        base, exp = expr.args
        if exp == 2 and base.is_Symbol:  # a multiply is cheaper than pow()
            b = self._print(base)
            return f"({b}*{b})"
        return super()._print_Pow(expr, rational=rational)

    def _print_Add(self, expr, order=None):
        text = _print_add_subtracting(self, expr, order)
        return super()._print_Add(expr, order=order) if text is None else text

    def _print_relu(self, expr):
        return f"max({self._print(expr.args[0])}, 0.0)"

    def _print_sigmoid(self, expr):
        tanh = self._module_format("math.tanh")
        return f"(0.5*{tanh}(0.5*{self.parenthesize(expr.args[0], 50)}) + 0.5)"

    def _print_softplus(self, expr):
        z = self._print(expr.args[0])
        log1p, exp = self._module_format("math.log1p"), self._module_format("math.exp")
        return f"(max({z}, 0.0) + {log1p}({exp}(-abs({z}))))"

    def _print_sigmoid_from_exp(self, expr):
        z, e = (self._print(a) for a in expr.args)
        return f"((1.0 if {z} >= 0 else {e})/(1.0 + {e}))"

    def _print_logaddexp(self, expr):
        return self._call_helper("_logaddexp", *(self._print(x) for x in expr.args))

    def _print_safelog(self, expr):
        return self._call_helper("_safelog", self._print(expr.args[0]))

    def _print_Heaviside(self, expr):
        z = self._print(expr.args[0])
        h0 = self._print(expr.args[1]) if len(expr.args) > 1 else "0.5"
        return f"(1.0 if {z} > 0 else ({h0} if {z} == 0 else 0.0))"


class ArrayPrinter(NumPyPrinter):
    """NumPy arrays as ``np``; ``arrays`` names the symbols that hold arrays."""

    def __init__(self, arrays: frozenset[str] = frozenset()) -> None:
        super().__init__({"fully_qualified_modules": True})
        self.arrays = arrays
        #: The module's helper functions the printed text calls (``_safelog``).
        self.helpers: set[str] = set()

    def _module_format(self, fqn, register=True):
        if fqn.startswith("numpy."):
            fqn = "np." + fqn[len("numpy.") :]
        return super()._module_format(fqn, register)

    def _is_array(self, expr: sp.Expr) -> bool:
        return any(s.name in self.arrays for s in expr.free_symbols)

    def _print_Mul(self, expr):
        # A step function times an array is a mask: ``g*(z > 0)`` costs a comparison,
        # np.heaviside costs several times more. (A float array factor keeps the dtype.)
        steps = [
            f
            for f in expr.args
            if isinstance(f, sp.Heaviside) and len(f.args) == 2 and f.args[1] == 0
        ]
        others = [f for f in expr.args if f not in steps]
        if steps and any(self._is_array(f) for f in others):
            masks = "*".join(f"({self._print(f.args[0])} > 0)" for f in steps)
            return f"{self.parenthesize(sp.Mul(*others), precedence(expr))}*{masks}"
        scalars = [f for f in expr.args if not self._is_array(f)]
        arrays = [f for f in expr.args if self._is_array(f)]
        if not arrays or not scalars or all(f.is_Number for f in scalars):
            return super()._print_Mul(expr)  # a number coefficient is printed first anyway
        head = sp.Mul(*scalars)
        tail = sp.Mul(*arrays)
        level = precedence(expr)
        return f"{self.parenthesize(head, level)}*{self.parenthesize(tail, level)}"

    def _print_Add(self, expr, order=None):
        # sigmoid(a) - sigmoid(b) = (tanh(a/2) - tanh(b/2))/2: the two +0.5 cancel
        plus = [t for t in expr.args if isinstance(t, sigmoid)]
        minus = [t for t in expr.args if isinstance(-t, sigmoid)]
        if not plus or not minus:
            text = _print_add_subtracting(self, expr, order)
            return super()._print_Add(expr, order=order) if text is None else text
        tanh = self._module_format("numpy.tanh")
        pairs = []
        for a, b in zip(plus, minus, strict=False):
            x, y = self.parenthesize(a.args[0], 50), self.parenthesize((-b).args[0], 50)
            pairs.append(f"0.5*({tanh}(0.5*{x}) - {tanh}(0.5*{y}))")
        used = set(plus[: len(pairs)]) | set(minus[: len(pairs)])
        rest = [t for t in expr.args if t not in used]
        return " + ".join(([self._print(sp.Add(*rest))] if rest else []) + pairs)

    def _print_transposed(self, expr):
        return f"{self._print(expr.args[0])}.T"

    def _print_relu(self, expr):
        return f"{self._module_format('numpy.maximum')}({self._print(expr.args[0])}, 0.0)"

    def _print_sigmoid(self, expr):
        z = self.parenthesize(expr.args[0], 50)
        return f"(0.5*{self._module_format('numpy.tanh')}(0.5*{z}) + 0.5)"

    def _print_softplus(self, expr):
        return f"{self._module_format('numpy.logaddexp')}(0.0, {self._print(expr.args[0])})"

    def _print_sigmoid_from_exp(self, expr):
        z, e = (self._print(a) for a in expr.args)
        return f"({self._module_format('numpy.where')}({z} >= 0, 1.0, {e})/(1.0 + {e}))"

    def _print_logaddexp(self, expr):
        a, b = (self._print(x) for x in expr.args)
        return f"{self._module_format('numpy.logaddexp')}({a}, {b})"

    def _print_safelog(self, expr):
        self.helpers.add("_safelog")
        return f"_safelog({self._print(expr.args[0])})"

    def _print_Heaviside(self, expr):
        h0 = self._print(expr.args[1]) if len(expr.args) > 1 else "0.5"
        return f"{self._module_format('numpy.heaviside')}({self._print(expr.args[0])}, {h0})"

    def _print_Max(self, expr):
        return self._fold("numpy.maximum", expr.args)

    def _print_Min(self, expr):
        return self._fold("numpy.minimum", expr.args)

    def _fold(self, fn: str, args) -> str:
        out = self._print(args[0])
        for a in args[1:]:
            out = f"{self._module_format(fn)}({out}, {self._print(a)})"
        return out

    def _print_Pow(self, expr, rational=False):
        base, exp = expr.args
        if exp.is_Integer and self._is_array(base):
            n = int(exp)
            b = self.parenthesize(base, precedence(expr))
            # Composite spellings are parenthesized: they may stand in a denominator.
            if n == -1:
                return f"(1/{b})"
            if n == 3:
                return f"({b}**2*{b})"
            if n == 4:
                return f"({b}**2)**2"
            if n < 0:
                return f"(1/{self.parenthesize(base**-n, precedence(expr))})"
        return super()._print_Pow(expr, rational=rational)


#: Names a kernel must not use for a variable: C++ keywords, CUDA built-ins and the
#: device helpers of ``templates/cuda_kernels.cu.j2``.
C_RESERVED = frozenset(
    """auto bool break case char const continue default do double else enum extern float for
    goto if inline int long register restrict return short signed sizeof static struct switch
    typedef union unsigned void volatile while asm catch class delete friend new operator
    private protected public template this throw try typename virtual namespace using true
    false nullptr bool explicit mutable export constexpr decltype noexcept static_assert
    threadIdx blockIdx blockDim gridDim warpSize dim3 uint3 min max abs exp log sin cos tan
    sqrt pow fabs fmax fmin tanh log1p expm1 INFINITY NAN""".split()
) | {
    f"sg_{h}"
    for h in ("relu", "sigmoid", "sigmoid_e", "softplus", "logaddexp", "safelog", "heaviside")
}


class CExpressionPrinter(C99CodePrinter):
    """C (and CUDA C) for one scalar element, in ``float`` or ``double``.

    Literals carry the type (``2.0F`` in float kernels, so no expression is silently
    promoted to double), math functions take their typed names (``expf``), small integer
    powers are products, and symgen's functions call the ``sg_`` helpers of
    ``sg_functions.j2`` (recorded in ``calls``). ``names`` renames symbols (an array
    element loaded into a register, or a name C reserves).
    """

    def __init__(self, dtype: str, names: dict[str, str] | None = None) -> None:
        self.ctype = "float" if dtype == "float32" else "double"
        alias = float32 if dtype == "float32" else float64
        super().__init__({"type_aliases": {real: alias}})
        self.names = names or {}
        #: The functions of the generated code that the printed text calls (``sg_relu``).
        self.calls: set[str] = set()

    def _sg(self, name: str) -> str:
        """The name of helper ``sg_<name>``, recorded as called."""
        self.calls.add(f"sg_{name}")
        return f"sg_{name}"

    def _literal(self, value: str) -> str:
        return f"{value}F" if self.ctype == "float" else value

    def _print_Symbol(self, expr):
        return self.names.get(expr.name, expr.name)

    def _print_Integer(self, expr):
        return self._literal(f"{int(expr)}.0")

    def _print_Float(self, expr):
        return self._literal(repr(float(expr)))

    def _print_Rational(self, expr):
        return f"({self._literal(f'{expr.p}.0')}/{self._literal(f'{expr.q}.0')})"

    def _print_NumberSymbol(self, expr):
        return self._literal(repr(float(expr)))

    _print_Pi = _print_Exp1 = _print_NumberSymbol

    def _print_Infinity(self, expr):
        return "INFINITY"

    def _print_NegativeInfinity(self, expr):
        return "(-INFINITY)"

    def _print_Pow(self, expr):
        base, exp = expr.args
        b = self.parenthesize(base, precedence(expr))
        if exp.is_Integer and 1 < exp <= 4:
            return "(" + "*".join([b] * int(exp)) + ")"
        if exp == -1:
            return f"({self._literal('1.0')}/{b})"
        if exp.is_Integer and -4 <= exp < -1:
            return f"({self._literal('1.0')}/(" + "*".join([b] * int(-exp)) + "))"
        if exp == -sp.S.Half:
            return f"({self._literal('1.0')}/{self._print(sp.sqrt(base))})"
        return super()._print_Pow(expr)

    def _helper(self, name: str, expr) -> str:
        return f"{self._sg(name)}({', '.join(self._print(a) for a in expr.args)})"

    def _print_relu(self, expr):
        return self._helper("relu", expr)

    def _print_sigmoid(self, expr):
        return self._helper("sigmoid", expr)

    def _print_softplus(self, expr):
        return self._helper("softplus", expr)

    def _print_sigmoid_from_exp(self, expr):
        return self._helper("sigmoid_e", expr)

    def _print_logaddexp(self, expr):
        return self._helper("logaddexp", expr)

    def _print_safelog(self, expr):
        return self._helper("safelog", expr)

    def _nested(self, name: str, args) -> str:
        first, *rest = args
        if not rest:
            return self._print(first)
        return f"{self._sg(name)}({self._print(first)}, {self._nested(name, rest)})"

    def _print_Max(self, expr):
        # NaN-propagating, as NumPy's maximum (fmax would drop a NaN); a comparison,
        # which a C compiler vectorises, rather than a call
        return self._nested("maximum", sorted(expr.args, key=sp.default_sort_key))

    def _print_Min(self, expr):
        return self._nested("minimum", sorted(expr.args, key=sp.default_sort_key))

    def _print_Heaviside(self, expr):
        z = self._print(expr.args[0])
        h0 = self._print(expr.args[1] if len(expr.args) > 1 else sp.S.Half)
        return f"{self._sg('heaviside')}({z}, {h0})"

    def _print_sign(self, expr):
        z = self._print(expr.args[0])
        one = self._literal("1.0")
        return f"(({z} > 0) ? {one} : (({z} < 0) ? -{one} : {z}))"
