"""A small AST for C-family code: the passes of the C backend and the CUDA kernels.

Backends build each function as these nodes, with the arithmetic of an element as SymPy
expressions inside them (an operand of any node may be a SymPy expression), and a
printer of ``c_printer`` prints it: ``CPrinter`` as C99, ``CudaPrinter`` as CUDA C. No
backend writes C text itself, so what a function contains (the helpers it calls, the
indices it uses) is known from its structure.

Expressions: ``Var``, ``Literal``, ``Index`` (``a[i]``), ``BinOp``, ``Call``, ``Cast``,
``Ternary``; statements: ``Declare``, ``Assign``, ``Loop``, ``If``, ``Block``,
``Comment``, ``Evaluate``, ``Return``; a ``Function`` with its ``Param``s. ``SharedArray``
exists in CUDA only; a loop shared among threads (``Parallel``) in C only.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import Union

import sympy as sp

# -- expressions -----------------------------------------------------------------------


@dataclass(frozen=True)
class Var:
    """A C name: a variable, a parameter, or a built-in (``threadIdx.x``)."""

    name: str


@dataclass(frozen=True)
class Literal:
    """A constant as C spells it: ``0``, ``0.0``, ``256LL``, ``-INFINITY``, ``true``."""

    text: str


@dataclass(frozen=True)
class Index:
    """``array[index]``."""

    array: Expr
    index: Expr


@dataclass(frozen=True)
class BinOp:
    """``left op right``; the printer adds the parentheses that C's precedence needs."""

    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Call:
    """``function(args...)``; a call of an ``sg_`` helper is recorded by the printer."""

    function: str
    args: tuple[Expr, ...]


@dataclass(frozen=True)
class Cast:
    """``(ctype)value``."""

    ctype: str
    value: Expr


@dataclass(frozen=True)
class Ternary:
    """``condition ? then : otherwise``."""

    condition: Expr
    then: Expr
    otherwise: Expr


Expr = Union[Var, Literal, Index, BinOp, Call, Cast, Ternary, sp.Basic]  # noqa: UP007


def add(*terms: Expr) -> Expr:
    """``a + b + ...``, left to right."""
    out = terms[0]
    for t in terms[1:]:
        out = BinOp("+", out, t)
    return out


def mul(*factors: Expr) -> Expr:
    """``a*b*...``, left to right."""
    out = factors[0]
    for f in factors[1:]:
        out = BinOp("*", out, f)
    return out


# -- types and statements --------------------------------------------------------------


@dataclass(frozen=True)
class Type:
    """A C type: ``base``, optionally ``const``, a pointer, ``restrict``."""

    base: str
    const: bool = False
    pointer: bool = False
    restrict: bool = False


@dataclass(frozen=True)
class Declare:
    """``type name = value;``, or ``type name[size];`` for a local array."""

    type: Type
    name: str
    value: Expr | None = None
    size: Expr | None = None


@dataclass(frozen=True)
class Assign:
    """``target = value;`` (``op`` ``=``), or an update such as ``+=``."""

    target: Expr
    value: Expr
    op: str = "="


@dataclass(frozen=True)
class Simd:
    """``#pragma omp simd``, with the sums it reduces (``reduction(+:...)``)."""

    sums: tuple[str, ...] = ()


@dataclass(frozen=True)
class Parallel:
    """``#pragma omp parallel for``: the iterations of a loop shared among ``threads``
    threads (an ``int`` expression), each iteration run whole by one thread, taken in turn
    (``schedule(dynamic, 1)``); no threads are started when ``threads`` is 1."""

    threads: Expr


@dataclass(frozen=True)
class Loop:
    """``for (long long var = start; var < stop; ++var)`` (or ``var += step``), its body,
    the pragma that vectorises it (``Simd``) or None, and the one that shares its
    iterations among threads (``Parallel``) or None."""

    var: str
    start: Expr
    stop: Expr
    body: tuple[Stmt, ...]
    step: Expr | None = None
    simd: Simd | None = None
    parallel: Parallel | None = None


@dataclass(frozen=True)
class If:
    """``if (condition) ...``: one line for a single assignment, else a block."""

    condition: Expr
    body: tuple[Stmt, ...]


@dataclass(frozen=True)
class Block:
    """``{ ... }``: a scope of its own."""

    body: tuple[Stmt, ...]


@dataclass(frozen=True)
class Comment:
    text: str


@dataclass(frozen=True)
class Evaluate:
    """``value;``: an expression evaluated for its effect (a call such as ``free(p)``)."""

    value: Expr


@dataclass(frozen=True)
class Return:
    """``return value;``"""

    value: Expr


@dataclass(frozen=True)
class SharedArray:
    """CUDA's ``__shared__ ctype name[size];`` (the C printer has no such thing)."""

    ctype: str
    name: str
    size: Expr


Stmt = Union[Declare, Assign, Loop, If, Block, Comment, Evaluate, Return, SharedArray]  # noqa: UP007


@dataclass(frozen=True)
class Param:
    type: Type
    name: str


@dataclass(frozen=True)
class Function:
    """A function the host calls: a C pass (``void``) or a CUDA kernel (``__global__``)."""

    name: str
    params: tuple[Param, ...]
    body: tuple[Stmt, ...]
    comment: str = ""
    #: What it returns: a C pass returns ``int`` (0, or 1 when it could not allocate).
    returns: str = "void"
    #: How a CUDA printer declares it (the C printer ignores it): callable from the host.
    exported: bool = field(default=True)


def walk(node) -> Iterator:
    """``node`` and every node and SymPy expression inside it, depth first."""
    yield node
    if isinstance(node, sp.Basic) or not hasattr(node, "__dataclass_fields__"):
        return
    for f in fields(node):
        value = getattr(node, f.name)
        items = value if isinstance(value, tuple) else (value,)
        for item in items:
            if item is not None and not isinstance(item, (str, bool, int)):
                yield from walk(item)


def names_used(node) -> set[str]:
    """The names that the expressions inside ``node`` read: ``Var``s, and SymPy symbols."""
    out: set[str] = set()
    for n in walk(node):
        if isinstance(n, Var):
            out.add(n.name)
        elif isinstance(n, sp.Basic):
            out |= {s.name for s in n.free_symbols}
    return out
