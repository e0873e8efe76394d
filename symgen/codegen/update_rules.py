"""The little language optimizer updates are written in (``codegen/optimizers.py``).

An update rule is an ordered tuple of operations on named quantities:

* ``Set(target, value)``: a stored quantity (the parameter ``p``, a state slot such as
  Adam's ``m``, the step count) takes a new value;
* ``Let(target, value)``: a value that is not stored takes one: a per-step number
  (Adam's ``c1``), or the gradient ``g``, whose buffer is scratch once it has been read;
* ``Branch(flag, then, otherwise)``: the rule depends on a flag (Nesterov's or classical
  momentum), a keyword argument or fixed when the hyperparameters are baked.

Values are expressions (``Ref``, ``Num``, ``Neg``, ``Bin``, ``Sqrt``; built with Python's
operators) that keep the exact shape they are written in: ``a*b*c`` is ``(a*b)*c``, and
nothing is reordered or folded. So the rule printed in any language (``PythonPrinter``,
``CPrinter``, the NumPy backend's in-place statements) or run here (``run``) does the
same floating-point operations in the same order, and gives the same numbers.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


class Expr:
    """An expression on named quantities; Python's operators build bigger ones."""

    def __add__(self, other: object) -> Bin:
        return Bin("+", self, _expr(other))

    def __radd__(self, other: object) -> Bin:
        return Bin("+", _expr(other), self)

    def __sub__(self, other: object) -> Bin:
        return Bin("-", self, _expr(other))

    def __rsub__(self, other: object) -> Bin:
        return Bin("-", _expr(other), self)

    def __mul__(self, other: object) -> Bin:
        return Bin("*", self, _expr(other))

    def __rmul__(self, other: object) -> Bin:
        return Bin("*", _expr(other), self)

    def __truediv__(self, other: object) -> Bin:
        return Bin("/", self, _expr(other))

    def __rtruediv__(self, other: object) -> Bin:
        return Bin("/", _expr(other), self)

    def __pow__(self, other: object) -> Bin:
        return Bin("**", self, _expr(other))

    def __rpow__(self, other: object) -> Bin:
        return Bin("**", _expr(other), self)

    def __neg__(self) -> Neg:
        return Neg(self)


@dataclass(frozen=True, eq=True)
class Ref(Expr):
    """A named quantity: ``p``, ``g``, a state slot, a hyperparameter, a folded constant."""

    name: str


@dataclass(frozen=True, eq=True)
class Num(Expr):
    """A number (or, for a fixed flag, a bool)."""

    value: float | int | bool


@dataclass(frozen=True, eq=True)
class Neg(Expr):
    arg: Expr


@dataclass(frozen=True, eq=True)
class Bin(Expr):
    """``left op right`` with ``op`` one of ``+ - * / **``."""

    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True, eq=True)
class Sqrt(Expr):
    arg: Expr


def sqrt(arg: Expr) -> Sqrt:
    return Sqrt(arg)


def _expr(value: object) -> Expr:
    if isinstance(value, Expr):
        return value
    if isinstance(value, (int, float)):
        return Num(value)
    raise TypeError(f"not an expression: {value!r}")


@dataclass(frozen=True)
class Set:
    """A stored quantity takes a new value."""

    target: str
    value: Expr


@dataclass(frozen=True)
class Let:
    """A quantity that is not stored takes a value (a per-step number, or the gradient's
    buffer used as scratch)."""

    target: str
    value: Expr


@dataclass(frozen=True)
class Branch:
    """``then`` when the flag is true, else ``otherwise``."""

    flag: str
    then: tuple[Op, ...]
    otherwise: tuple[Op, ...]


Op = Set | Let | Branch


# -- walking expressions and rules -------------------------------------------------------


def refs(e: Expr) -> frozenset[str]:
    """The names an expression reads."""
    if isinstance(e, Ref):
        return frozenset((e.name,))
    if isinstance(e, Num):
        return frozenset()
    if isinstance(e, Bin):
        return refs(e.left) | refs(e.right)
    if isinstance(e, (Neg, Sqrt)):
        return refs(e.arg)
    raise TypeError(f"not an expression: {e!r}")


def substitute(e: Expr, values: Mapping[str, Expr]) -> Expr:
    """``e`` with each ``Ref`` named in ``values`` replaced by its expression."""
    if isinstance(e, Ref):
        return values.get(e.name, e)
    if isinstance(e, Num):
        return e
    if isinstance(e, Bin):
        return Bin(e.op, substitute(e.left, values), substitute(e.right, values))
    if isinstance(e, Neg):
        return Neg(substitute(e.arg, values))
    if isinstance(e, Sqrt):
        return Sqrt(substitute(e.arg, values))
    raise TypeError(f"not an expression: {e!r}")


def rule_refs(ops: tuple[Op, ...]) -> tuple[str, ...]:
    """Every name a rule reads or writes (flags included), in order of first appearance."""
    seen: dict[str, None] = {}

    def walk(e: Expr) -> None:
        if isinstance(e, Ref):
            seen.setdefault(e.name)
        elif isinstance(e, Bin):
            walk(e.left)
            walk(e.right)
        elif isinstance(e, (Neg, Sqrt)):
            walk(e.arg)

    for op in ops:
        if isinstance(op, Branch):
            seen.setdefault(op.flag)
            for name in rule_refs(op.then) + rule_refs(op.otherwise):
                seen.setdefault(name)
        else:
            walk(op.value)
            seen.setdefault(op.target)
    return tuple(seen)


def bind(ops: tuple[Op, ...], values: Mapping[str, Expr], flags: Mapping[str, bool]) -> tuple:
    """The rule with ``values`` substituted and the branches of the ``flags`` given taken."""
    out: list[Op] = []
    for op in ops:
        if isinstance(op, Branch):
            if op.flag in flags:
                out += bind(op.then if flags[op.flag] else op.otherwise, values, flags)
            else:
                then, otherwise = bind(op.then, values, flags), bind(op.otherwise, values, flags)
                out.append(Branch(op.flag, then, otherwise))
        else:
            out.append(type(op)(op.target, substitute(op.value, values)))
    return tuple(out)


def inline(ops: tuple[Op, ...], scratch: Mapping[str, Expr] | None = None) -> tuple:
    """The rule without ``Let``: each value the ``Let`` gives is written where it is read
    (for targets that compute one expression per stored value: floats, a C thread).
    Raises ``ValueError`` where that would read a stored value after it changed."""
    env = dict(scratch or {})
    out: list[Op] = []
    for op in ops:
        if isinstance(op, Let):
            env[op.target] = substitute(op.value, env)
        elif isinstance(op, Set):
            out.append(Set(op.target, substitute(op.value, env)))
            stale = [name for name, value in env.items() if op.target in refs(value)]
            if stale:
                raise ValueError(f"{', '.join(stale)} reads {op.target} before it is set")
        else:
            out.append(Branch(op.flag, inline(op.then, env), inline(op.otherwise, env)))
            changed = {o.target for o in (*op.then, *op.otherwise) if isinstance(o, Let)}
            for name in changed:  # the branches may leave different values: none is known
                env.pop(name, None)
    return tuple(out)


def stored(ops: tuple[Op, ...]) -> tuple[str, ...]:
    """The quantities a rule sets, in order."""
    names: dict[str, None] = {}
    for op in ops:
        if isinstance(op, Branch):
            for name in stored(op.then) + stored(op.otherwise):
                names.setdefault(name)
        elif isinstance(op, Set):
            names.setdefault(op.target)
    return tuple(names)


# -- running a rule ----------------------------------------------------------------------

_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "**": operator.pow,
}


def evaluate(e: Expr, env: Mapping[str, Any]) -> Any:
    """The value of ``e`` on floats and NumPy arrays, one operation at a time."""
    if isinstance(e, Ref):
        return env[e.name]
    if isinstance(e, Num):
        return e.value
    if isinstance(e, Bin):
        return _OPERATORS[e.op](evaluate(e.left, env), evaluate(e.right, env))
    if isinstance(e, Neg):
        return -evaluate(e.arg, env)
    if isinstance(e, Sqrt):
        x = evaluate(e.arg, env)
        return np.sqrt(x) if isinstance(x, np.ndarray) else math.sqrt(x)
    raise TypeError(f"not an expression: {e!r}")


def run(ops: tuple[Op, ...], env: dict[str, Any]) -> None:
    """Runs a rule on ``env`` (names to floats, arrays, bools), which it updates."""
    for op in ops:
        if isinstance(op, Branch):
            run(op.then if env[op.flag] else op.otherwise, env)
        else:
            env[op.target] = evaluate(op.value, env)


# -- printing ----------------------------------------------------------------------------

#: Binding strength: a sum binds less than a product, unary minus more, a power most.
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2, "**": 4}
_UNARY, _ATOM = 3, 5
#: Operators whose operands may be swapped without changing the result.
COMMUTATIVE = frozenset(("+", "*"))


class PythonPrinter:
    """Prints expressions as Python: each ``Ref`` by its name in ``names`` (a missing
    one is an error), numbers as ``repr``, the square root as ``sqrt``. Parentheses
    keep every operation where the expression has it (Python evaluates left to right)."""

    def __init__(self, names: Mapping[str, str], sqrt: str = "math.sqrt") -> None:
        self.names = names
        self.sqrt = sqrt

    def number(self, value: float | int | bool) -> str:
        return repr(value)

    def power(self, base: str, exponent: str) -> str:
        return f"{base}**{exponent}"

    def doprint(self, e: Expr) -> str:
        return self._print(e)[0]

    def _print(self, e: Expr) -> tuple[str, int]:
        if isinstance(e, Ref):
            return self.names[e.name], _ATOM
        if isinstance(e, Num):
            negative = not isinstance(e.value, bool) and e.value < 0
            return self.number(e.value), _UNARY if negative else _ATOM
        if isinstance(e, Sqrt):
            return f"{self.sqrt}({self.doprint(e.arg)})", _ATOM
        if isinstance(e, Neg):
            return f"-{self._operand(e.arg, _UNARY, right=True)}", _UNARY
        strength = _PRECEDENCE[e.op]
        if e.op == "**":  # binds to the right: the base needs parentheses, not the exponent
            base = self._operand(e.left, strength, right=True)
            return self.power(base, self._operand(e.right, strength, right=False)), strength
        left = self._operand(e.left, strength, right=False)
        return f"{left}{_spaced(e.op)}{self._operand(e.right, strength, right=True)}", strength

    def _operand(self, e: Expr, strength: int, right: bool) -> str:
        text, own = self._print(e)
        # a right operand as strong as its operator, or negative, is parenthesized: the
        # operations stay where they are (``a - (b - c)``, ``a*(b*c)``, ``a - (-b)``)
        weaker = own < strength or (right and (own == strength or own == _UNARY))
        return f"({text})" if weaker else text


def _spaced(op: str) -> str:
    return f" {op} " if op in ("+", "-") else op


class CPrinter(PythonPrinter):
    """Prints expressions as C for ``ctype`` (``float`` literals end in ``f``, ``sqrtf``)."""

    def __init__(self, names: Mapping[str, str], ctype: str) -> None:
        super().__init__(names, "sqrtf" if ctype == "float" else "sqrt")
        self.ctype = ctype

    def number(self, value: float | int | bool) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int):
            return str(value)
        return repr(float(value)) + ("f" if self.ctype == "float" else "")

    def power(self, base: str, exponent: str) -> str:
        raise ValueError("a C update rule has no powers (the per-step numbers are the host's)")


def python_lines(ops: tuple[Op, ...], printer: PythonPrinter) -> list[str]:
    """Python statements for a rule on floats: one assignment per operation (augmented
    where the value starts from the target), ``if``/``else`` for a branch."""
    lines: list[str] = []
    for op in ops:
        choice = _conditional(op, printer) if isinstance(op, Branch) else None
        if choice is not None:
            lines.append(choice)
        elif isinstance(op, Branch):
            lines.append(f"if {printer.names[op.flag]}:")
            lines += [f"    {line}" for line in python_lines(op.then, printer)]
            lines.append("else:")
            lines += [f"    {line}" for line in python_lines(op.otherwise, printer)]
        else:
            lines.append(assignment(op.target, op.value, printer))
    return lines


def _conditional(op: Branch, printer: PythonPrinter) -> str | None:
    """``x op= (a if flag else b)`` for a branch whose arms are one ``x op= ...`` each."""
    if len(op.then) != 1 or len(op.otherwise) != 1:
        return None
    (yes,), (no,) = op.then, op.otherwise
    if not (isinstance(yes, Set) and isinstance(no, Set) and yes.target == no.target):
        return None
    here = Ref(yes.target)
    if not all(
        isinstance(v, Bin) and v.left == here and v.op == yes.value.op != "**"
        for v in (yes.value, no.value)
    ):
        return None
    a, b = printer.doprint(yes.value.right), printer.doprint(no.value.right)
    return f"{printer.names[yes.target]} {yes.value.op}= ({a} if {printer.names[op.flag]} else {b})"


def assignment(target: str, value: Expr, printer: PythonPrinter) -> str:
    """``target = value``, or ``target op= rest`` when the value is ``target op rest``."""
    name = printer.names[target]
    if isinstance(value, Bin) and value.left == Ref(target) and value.op != "**":
        return f"{name} {value.op}= {printer.doprint(value.right)}"
    return f"{name} = {printer.doprint(value)}"
