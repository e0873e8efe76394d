"""How one scalar expression is spelled in generated Python.

``ScalarPrinter`` prints statements over Python floats (``math``);
``ArrayPrinter`` prints statements over NumPy arrays (``np``), with the
sample-independent factors of a product multiplied first so that they cost
one scalar operation instead of one array pass each; ``CExpressionPrinter`` prints
one element of a C pass or a CUDA kernel in ``float`` or ``double`` (``c_printer``
prints the functions around it). How each function is spelled is not written here:
each printer has a ``_print_<Name>`` method for every function that
``compiler/scalar_functions.py`` spells in its target, made from that home's template
(``_spells``), and records the helpers and modules the spelling uses; the C helpers
(``sg_relu`` ...) are defined from the same homes (``c_definitions``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import sympy as sp
from sympy.codegen.ast import float32, float64, real
from sympy.printing.c import C99CodePrinter
from sympy.printing.numpy import NumPyPrinter
from sympy.printing.precedence import PRECEDENCE, precedence
from sympy.printing.pycode import PythonCodePrinter

from symgen.compiler.scalar_functions import FUNCTIONS, HELPERS, Helper, Spelling


class _Argument:
    """A call's argument as a spelling template formats it: ``{0}`` printed as it is,
    ``{0:factor}`` parenthesized as a factor of a product (each printed once)."""

    def __init__(self, printer, expr: sp.Expr) -> None:
        self.printer, self.expr = printer, expr
        self.texts: dict[str, str] = {}

    def __format__(self, spec: str) -> str:
        if spec not in self.texts:
            if spec == "factor":
                self.texts[spec] = self.printer.parenthesize(self.expr, PRECEDENCE["Mul"])
            elif spec:
                raise ValueError(f"unknown argument format {spec!r} in a spelling")
            else:
                self.texts[spec] = self.printer._print(self.expr)
        return self.texts[spec]


class _Arguments:
    """``{args}``: all arguments, comma-separated."""

    def __init__(self, arguments: list[_Argument]) -> None:
        self.arguments = arguments

    def __format__(self, spec: str) -> str:
        return ", ".join(format(a, spec) for a in self.arguments)


def spell(printer, spelling: Spelling, args: tuple, **context: str) -> str:
    """The call ``spelling`` of the arguments ``args``, printed by ``printer``; ``context``:
    the target's other fields (C's ``f`` and ``F``)."""
    if spelling.fold is not None and len(args) > 2:
        if spelling.fold == "left":
            text = spell(printer, spelling, args[:2], **context)
            for a in args[2:]:
                text = spelling.text.format(text, _Argument(printer, a), **context)
            return text
        inner = spell(printer, spelling, args[1:], **context)
        return spelling.text.format(_Argument(printer, args[0]), inner, **context)
    _record(printer, spelling)
    arguments = [_Argument(printer, a) for a in args]
    return spelling.text.format(*arguments, args=_Arguments(arguments), **context)


def _record(printer, spelling: Spelling) -> None:
    """Note in ``printer`` what ``spelling`` calls: the module's Python helpers
    (``helpers``), the standard modules (``module_imports``), the C ``sg_`` helpers
    (``calls``); read off the home's template, before any argument is put in."""
    calls = getattr(printer, "calls", None)
    if calls is not None:
        calls.update(re.findall(r"\b(sg_\w+)\(", spelling.text))
        return
    printer.helpers.update(h.name for h in HELPERS if f"{h.name}(" in spelling.text)
    for module, name in re.findall(r"\b(math)\.(\w+)", spelling.text):
        printer.module_imports[module].add(name)


def _spells(target: str):
    """Class decorator: a ``_print_<Name>`` method for each function spelled in ``target``
    (``numpy``, ``python`` or ``c``), calling the printer's ``_spell``."""

    def method(spelling: Spelling):
        def print_call(self, expr, **kwargs):
            return self._spell(spelling, expr)

        return print_call

    def install(cls):
        for fn in FUNCTIONS:
            spelling = fn.spelling(target)
            if spelling is not None:
                setattr(cls, f"_print_{fn.name}", method(spelling))
        return cls

    return install


def _pieces(printer, expr: sp.Piecewise, otherwise: str) -> tuple[list[tuple[str, str]], str]:
    """The printed ``(value, condition)`` pairs of a ``Piecewise`` and its last value: that of
    its ``True`` piece, else ``otherwise`` (NaN: where no condition holds, SymPy's
    ``Piecewise`` is undefined)."""
    pairs = []
    for value, cond in expr.args:
        if cond == sp.true:
            return pairs, printer._print(value)
        pairs.append((printer._print(value), printer._print(cond)))
    return pairs, otherwise


def python_helpers(names: Iterable[str]) -> tuple[Helper, ...]:
    """The module-level Python helpers named ``names`` (as printers record them), in the
    order of their homes."""
    wanted = set(names)
    return tuple(h for h in HELPERS if h.name in wanted)


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


@_spells("python")
class ScalarPrinter(PythonCodePrinter):
    """Python floats and the ``math`` module."""

    def __init__(self) -> None:
        super().__init__({"fully_qualified_modules": True, "standard": "python3"})
        #: The module's helper functions the printed text calls (``_safelog``, ...);
        #: ``module_imports`` has the modules it uses (``math``).
        self.helpers: set[str] = set()

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

    def _spell(self, spelling: Spelling, expr) -> str:
        return spell(self, spelling, expr.args)

    def _print_Indexed(self, expr):
        # an item of a list (integer positions: not the float literals of _print_Integer)
        positions = ", ".join(str(int(i)) for i in expr.indices)
        return f"{self._print(expr.base.label)}[{positions}]"

    def _print_element(self, expr):
        # an entry of an array, as a Python float (the scalar arithmetic is on floats)
        array, row, col = expr.args
        return f"float({self._print(array)}[{int(row)}, {int(col)}])"

    def _print_Piecewise(self, expr):
        # a conditional expression computes only the branch that holds
        self.module_imports["math"].add("nan")
        pairs, text = _pieces(self, expr, "math.nan")
        for value, cond in reversed(pairs):
            text = f"{value} if {cond} else {text}"
        return f"({text})"


#: ``f(a) - f(b)`` in one NumPy expression, for the functions whose homes spell it.
DIFFERENCES = {fn.sympy: fn.numpy_difference for fn in FUNCTIONS if fn.numpy_difference}


@_spells("numpy")
class ArrayPrinter(NumPyPrinter):
    """NumPy arrays as ``np``; ``arrays`` names the symbols that hold arrays."""

    def __init__(self, arrays: frozenset[str] = frozenset()) -> None:
        super().__init__({"fully_qualified_modules": True})
        self.arrays = arrays
        #: The module's helper functions the printed text calls (``_safelog``).
        self.helpers: set[str] = set()
        #: Symbols printed under another name (a row's tiled copy in a loop over blocks of
        #: rows): the expressions keep the symbol, and so their order of terms.
        self.renamed: dict[str, str] = {}

    def _print_Symbol(self, expr):
        return self.renamed.get(expr.name) or super()._print_Symbol(expr)

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
        # f(a) - f(b) as one expression where f's home spells it so (sigmoid: the +0.5 cancel)
        for cls, spelling in DIFFERENCES.items():
            plus = [t for t in expr.args if isinstance(t, cls)]
            minus = [t for t in expr.args if isinstance(-t, cls)]
            if plus and minus:
                pairs = [
                    spell(self, spelling, (a.args[0], (-b).args[0]))
                    for a, b in zip(plus, minus, strict=False)
                ]
                used = set(plus[: len(pairs)]) | set(minus[: len(pairs)])
                rest = [t for t in expr.args if t not in used]
                return " + ".join(([self._print(sp.Add(*rest))] if rest else []) + pairs)
        text = _print_add_subtracting(self, expr, order)
        return super()._print_Add(expr, order=order) if text is None else text

    def _print_transposed(self, expr):
        return f"{self._print(expr.args[0])}.T"

    # conditions: NumPy's operators on boolean arrays (or Python bools)
    def _print_Relational(self, expr):
        return f"({self._print(expr.lhs)} {expr.rel_op} {self._print(expr.rhs)})"

    def _print_And(self, expr):
        return "(" + " & ".join(self._print(a) for a in expr.args) + ")"

    def _print_Or(self, expr):
        return "(" + " | ".join(self._print(a) for a in expr.args) + ")"

    def _print_Not(self, expr):
        return f"np.logical_not({self._print(expr.args[0])})"

    def _print_BooleanTrue(self, expr):
        return "True"

    def _print_BooleanFalse(self, expr):
        return "False"

    def _print_Piecewise(self, expr):
        """Every piece computed everywhere, the first that holds selected: for pieces that
        are safe to compute anywhere (``compiler.guards.pieces_total``); the NumPy backend
        computes the others only where they hold."""
        pairs, text = _pieces(self, expr, "np.nan")
        if pairs and not any(self._is_array(value) for value, _ in expr.args):
            # no piece is an array to give the result its type: the module's (DTYPE)
            pairs[0] = (f"DTYPE({pairs[0][0]})", pairs[0][1])
        for value, cond in reversed(pairs):
            text = f"np.where({cond}, {value}, {text})"
        return text

    def _print_element(self, expr):
        array, row, col = expr.args
        return f"{self._print(array)}[{int(row)}, {int(col)}]"

    def _print_gathered(self, expr):
        array, index = (self._print(a) for a in expr.args)
        return f"np.take_along_axis({array}, {index}, 1)"

    def _spell(self, spelling: Spelling, expr) -> str:
        args = expr.args
        if isinstance(expr, (sp.Max, sp.Min)) and any(map(self._is_array, args)):
            # np.maximum(0.0, x): NumPy takes a float faster than an int (the same values)
            args = tuple(sp.Float(a) if a.is_Integer else a for a in args)
        return spell(self, spelling, args)

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


def _c_suffixes(ctype: str) -> dict[str, str]:
    """C's ``{f}`` and ``{F}``: the suffixes of a math function and of a literal."""
    return {"f": "f", "F": "F"} if ctype == "float" else {"f": "", "F": ""}


def c_definitions(ctype: str, used: Iterable[str] | None = None) -> tuple[str, ...]:
    """The C definitions of the ``sg_`` helpers that the C spellings call, in ``ctype``
    (``float``/``double``), each to follow its qualifier (``static inline`` ...); only
    those named in ``used`` when it is given (``c_printer.helpers_used``)."""
    wanted = None if used is None else set(used)
    return tuple(
        fn.c_definition.format(T=ctype, **_c_suffixes(ctype))
        for fn in FUNCTIONS
        if fn.c_definition is not None
        and (wanted is None or c_helper_name(fn.c_definition) in wanted)
    )


def c_helper_name(definition: str) -> str:
    """``sg_relu`` for the definition ``{T} sg_relu({T} z) ...``."""
    return definition.split("(", 1)[0].split()[-1]


def c_helper_calls() -> dict[str, tuple[str, ...]]:
    """The ``sg_`` helpers each defined helper calls (``sg_softplus``: ``sg_maximum``)."""
    out = {}
    for fn in FUNCTIONS:
        if fn.c_definition is not None:
            name = c_helper_name(fn.c_definition)
            body = fn.c_definition.split("(", 1)[1]
            calls = tuple(sorted(set(re.findall(r"\b(sg_\w+)\(", body)) - {name}))
            if calls:
                out[name] = calls
    return out


class _Placeholder:
    """Any argument of a spelling, when only the names it calls matter."""

    def __format__(self, spec: str) -> str:
        return "z"


def _c_names() -> frozenset[str]:
    """The C functions that the C spellings call or define, in float and double."""
    texts = [*c_definitions("float"), *c_definitions("double")]
    for fn in FUNCTIONS:
        if fn.c is not None:
            for ctype in ("float", "double"):
                args = [_Placeholder()] * fn.c.text.count("{")
                texts.append(fn.c.text.format(*args, args="z", **_c_suffixes(ctype)))
    return frozenset(re.findall(r"\b([A-Za-z_]\w*)\(", "\n".join(texts)))


#: Names a kernel must not use for a variable: C++ keywords, CUDA built-ins, the
#: functions a power is spelled with, and every function the C spellings call or define.
C_RESERVED = (
    frozenset(
        """auto bool break case char const continue default do double else enum extern float
        for goto if inline int long register restrict return short signed sizeof static struct
        switch typedef union unsigned void volatile while asm catch class delete friend new
        operator private protected public template this throw try typename virtual namespace
        using true false nullptr bool explicit mutable export constexpr decltype noexcept
        static_assert threadIdx blockIdx blockDim gridDim warpSize dim3 uint3 min max abs sqrt
        pow fmax fmin INFINITY NAN""".split()
    )
    | _c_names()
)


@_spells("c")
class CExpressionPrinter(C99CodePrinter):
    """C (and CUDA C) for one scalar element, in ``float`` or ``double``.

    Literals carry the type (``2.0F`` in float kernels, so no expression is silently
    promoted to double), math functions take their typed names (``expf``), small integer
    powers are products, and symgen's functions call the ``sg_`` helpers that the
    templates define from their homes (``c_definitions``), recorded in ``calls``.
    ``names`` renames symbols (an array element loaded into a register, or a name C
    reserves).
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

    def _print_BooleanTrue(self, expr):
        return "1"

    def _print_BooleanFalse(self, expr):
        return "0"

    def _print_Piecewise(self, expr):
        # a ternary computes only the branch that holds
        pairs, text = _pieces(self, expr, "NAN")
        for value, cond in reversed(pairs):
            text = f"({cond} ? {value} : {text})"
        return text

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

    def _spell(self, spelling: Spelling, expr) -> str:
        if expr in self.math_macros:  # log(2) is M_LN2, as SymPy's C printer writes it
            return f"{self.math_macros[expr]}{self._get_math_macro_suffix(real)}"
        return spell(self, spelling, expr.args, **_c_suffixes(self.ctype))
