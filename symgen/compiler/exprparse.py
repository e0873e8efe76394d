"""Parse a math expression typed on a command line into a SymPy expression.

``sympy.sympify`` on a string runs ``eval``, so it must never see user input.
Here the text goes through ``ast.parse(..., mode="eval")`` only, and the tree
is walked by hand: numbers, names, ``+ - * / **`` (``^`` also means power, as
in ``x^2``), unary ``+``/``-``, parentheses and calls of the functions listed
in ``FUNCTIONS`` (the ones ``scalar_functions`` names for ``symgen diff``). Everything
else raises ``SpecError`` with a one-line message.

Decimal literals become exact rationals (``0.5`` is ``1/2``, ``1e-3`` is
``1/1000``); ``pi`` and ``E`` are SymPy's constants; any other name (not
starting with ``_``) is a ``Symbol``.
"""

from __future__ import annotations

import ast
import keyword
from fractions import Fraction

import sympy as sp

from symgen.compiler.scalar_functions import PARSED
from symgen.errors import SpecError

MAX_LENGTH = 10_000
MAX_DEPTH = 200
_MAX_BITS = 13_000  # about 3900 digits: Python refuses to print ints over 4300 digits
_MAX_DECIMAL_EXPONENT = 1_000  # 1e1000 is accepted, 1e1001 is not

#: The function names an expression may call (``scalar_functions.PARSED``).
FUNCTIONS: tuple[str, ...] = tuple(sorted(PARSED))
_CONSTANTS: dict[str, sp.Expr] = {"pi": sp.pi, "E": sp.E}

_HINT = f"use numbers, names, + - * / ** ^ and functions: {', '.join(FUNCTIONS)}"
_BINARY = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
}
_SYNTAX_NAMES = {
    ast.Attribute: "attribute access",
    ast.Subscript: "subscript",
    ast.Lambda: "lambda",
    ast.ListComp: "comprehension",
    ast.SetComp: "comprehension",
    ast.DictComp: "comprehension",
    ast.GeneratorExp: "comprehension",
    ast.Compare: "comparison",
    ast.BoolOp: "boolean operator",
    ast.NamedExpr: "assignment expression",
    ast.JoinedStr: "f-string",
    ast.IfExp: "conditional expression",
    ast.Tuple: "tuple",
    ast.List: "list",
    ast.Set: "set",
    ast.Dict: "dict",
    ast.Starred: "starred argument",
    ast.Slice: "slice",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
}


def _quote(text: str, limit: int = 60) -> str:
    """``repr`` of ``text`` shortened to ``limit`` characters: always one line."""
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


class _Parser:
    """Walk one parsed expression; ``src`` is ``text`` with ``^`` spelled ``**``."""

    def __init__(self, text: str) -> None:
        self.text = text
        parts: list[str] = []
        self.back: list[int] = []  # index in src -> index in text
        for i, ch in enumerate(text):
            ch = " " if ch in "\t\n\r\f\v" else ch  # keep everything on line 1
            parts.append("**" if ch == "^" else ch)
            self.back.extend([i] * len(parts[-1]))
        self.src = "".join(parts)
        self.src_bytes = self.src.encode()

    def snippet(self, node: ast.AST) -> str:
        """The user's own text for ``node``."""
        start, end = (
            len(self.src_bytes[:off].decode()) for off in (node.col_offset, node.end_col_offset)
        )
        return self.text[self.back[start] : self.back[end - 1] + 1] if end > start else ""

    def fail(self, node: ast.AST, what: str, detail: str = "") -> SpecError:
        detail = f" ({detail})" if detail else ""
        return SpecError(f"unsupported {what} {_quote(self.snippet(node))}{detail}; {_HINT}")

    def parse(self) -> sp.Expr:
        try:
            tree = ast.parse(self.src, mode="eval")
        except SyntaxError as exc:
            offset = exc.offset or 0
            col = self.back[offset - 1] + 1 if 0 < offset <= len(self.src) else len(self.text) + 1
            raise SpecError(
                f"cannot parse {_quote(self.text)}: {exc.msg} at column {col}"
            ) from None
        except ValueError as exc:
            raise SpecError(f"cannot parse {_quote(self.text)}: {exc}") from None
        except (RecursionError, MemoryError):
            msg = "too deeply nested or too long"
            raise SpecError(f"cannot parse {_quote(self.text)}: {msg}") from None
        return self.build(tree.body, 0)

    def build(self, node: ast.AST, depth: int) -> sp.Expr:
        if depth > MAX_DEPTH:
            limit = f"more than {MAX_DEPTH} levels"
            raise SpecError(f"expression {_quote(self.text)} is nested too deeply ({limit})")
        depth += 1
        match node:
            case ast.Constant(value=bool()):
                raise self.fail(node, "constant", "only numbers")
            case ast.Constant(value=int(value)):
                return sp.Integer(value)
            case ast.Constant(value=float()):
                return self.decimal(node)
            case ast.Constant(value=complex()):
                raise self.fail(node, "complex number")
            case ast.Constant(value=str() | bytes()):
                raise self.fail(node, "syntax", "string")
            case ast.Constant():
                raise self.fail(node, "constant", "only numbers")
            case ast.Name(id=name):
                return self.name(node, name)
            case ast.UnaryOp(op=ast.USub(), operand=operand):
                return -self.build(operand, depth)
            case ast.UnaryOp(op=ast.UAdd(), operand=operand):
                return self.build(operand, depth)
            case ast.BinOp(op=ast.Pow(), left=left, right=right):
                return self.power(node, self.build(left, depth), self.build(right, depth))
            case ast.BinOp(op=op, left=left, right=right) if type(op) in _BINARY:
                return _BINARY[type(op)](self.build(left, depth), self.build(right, depth))
            case ast.BinOp() | ast.UnaryOp():
                raise self.fail(node, "operator in")
            case ast.Call():
                return self.call(node, depth)
        raise self.fail(node, "syntax", _SYNTAX_NAMES.get(type(node), type(node).__name__))

    def decimal(self, node: ast.Constant) -> sp.Expr:
        literal = self.snippet(node).replace("_", "").lower()
        exponent = literal.partition("e")[2].lstrip("+-").lstrip("0")
        if len(exponent) > 4 or int(exponent or 0) > _MAX_DECIMAL_EXPONENT:
            raise SpecError(f"number {_quote(literal)} is out of range")
        value = Fraction(literal)
        return sp.Rational(value.numerator, value.denominator)

    def name(self, node: ast.Name, name: str) -> sp.Expr:
        if name.startswith("_"):
            raise SpecError(f"unsupported name {_quote(name)}: names must not start with '_'")
        if name in PARSED:
            raise SpecError(f"function {_quote(name)} needs an argument, e.g. {name}(x)")
        return _CONSTANTS[name] if name in _CONSTANTS else sp.Symbol(name)

    def power(self, node: ast.BinOp, base: sp.Expr, exponent: sp.Expr) -> sp.Expr:
        if base.is_Rational and exponent.is_Rational:
            bits = max(abs(base.p), base.q).bit_length() * abs(exponent)
            if bits > _MAX_BITS:  # checked before computing it
                raise SpecError(f"number {_quote(self.snippet(node))} is too large")
        return base**exponent

    def call(self, node: ast.Call, depth: int) -> sp.Expr:
        if not isinstance(node.func, ast.Name):
            raise self.fail(node.func, "call target")
        name = node.func.id
        if name not in PARSED:
            raise SpecError(
                f"unsupported function {_quote(name)} in {_quote(self.snippet(node))}; "
                f"supported: {', '.join(FUNCTIONS)}"
            )
        if node.keywords:
            raise self.fail(node, "keyword argument in")
        counts, builder = PARSED[name]
        if len(node.args) not in counts:
            expected = " or ".join(map(str, counts))
            raise SpecError(
                f"{name}() takes {expected} argument(s), got {len(node.args)} "
                f"in {_quote(self.snippet(node))}"
            )
        return builder(*(self.build(arg, depth) for arg in node.args))


def parse_expression(text: str) -> sp.Expr:
    """Parse ``text`` (e.g. ``"(x-4)*(x^2+6)"``) into a SymPy expression.

    Raises ``SpecError`` with a one-line message for anything outside the
    small grammar described in the module docstring; nothing is evaluated.
    """
    if not isinstance(text, str):
        raise SpecError(f"expected an expression string, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise SpecError(f"expression too long ({len(text)} characters; at most {MAX_LENGTH})")
    if not text.strip():
        raise SpecError("empty expression; expected something like 'x**2 + 1'")
    try:
        expr = _Parser(text).parse()
    except SpecError:
        raise
    except (ArithmeticError, TypeError, ValueError, RecursionError, MemoryError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SpecError(f"cannot evaluate {_quote(text)}: {reason}") from None
    if any(max(abs(n.p), n.q).bit_length() > _MAX_BITS for n in expr.atoms(sp.Rational)):
        raise SpecError(f"expression {_quote(text)} contains a number that is too large")
    if expr.has(sp.zoo, sp.nan, sp.oo, -sp.oo, sp.AccumBounds):
        raise SpecError(f"expression {_quote(text)} is undefined (division by zero or log(0)?)")
    return expr


def parse_assignment(text: str) -> tuple[str, sp.Expr]:
    """Parse ``NAME=VALUE`` (e.g. ``"x=pi/2"``); VALUE must have no free symbols."""
    if not isinstance(text, str) or "=" not in text:
        raise SpecError(f"expected NAME=VALUE such as 'x=2', got {_quote(str(text))}")
    name, _, value = (part.strip() for part in text.partition("="))
    if not _is_plain_name(name):
        raise SpecError(
            f"cannot assign to {_quote(name)} in {_quote(text)}: expected a name like 'x' "
            f"(not starting with '_', not pi, E or a function name)"
        )
    try:
        expr = parse_expression(value)
    except SpecError as exc:
        raise SpecError(f"bad value for {_quote(name)} in {_quote(text)}: {exc}") from None
    if expr.free_symbols:
        names = ", ".join(sorted(str(s) for s in expr.free_symbols))
        raise SpecError(f"value of {_quote(name)} must be a number, but uses {names}")
    return name, expr


def _is_plain_name(name: str) -> bool:
    if not name.isidentifier() or keyword.iskeyword(name):
        return False
    try:
        return isinstance(parse_expression(name), sp.Symbol)
    except SpecError:
        return False
