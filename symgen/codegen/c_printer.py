"""Printers of the C-family AST (``c_ast``): ``CPrinter`` prints C99 (the C backend's
passes), ``CudaPrinter`` CUDA C (the kernels of the CUDA backend).

Both print the arithmetic of an element as ``CExpressionPrinter`` does (``printers.py``)
and record in ``calls`` every function of the generated code that the printed text calls,
so that a module defines the ``sg_`` helpers it uses and no others (``helpers_used``).
"""

from __future__ import annotations

from collections.abc import Iterable

import sympy as sp

from symgen.codegen.c_ast import (
    Assign,
    BinOp,
    Block,
    Call,
    Cast,
    Comment,
    Declare,
    Evaluate,
    Function,
    If,
    Index,
    Literal,
    Loop,
    Parallel,
    Param,
    Return,
    SharedArray,
    Simd,
    Ternary,
    Type,
    Var,
)
from symgen.codegen.printers import CExpressionPrinter, c_helper_calls

#: C's precedence of each binary operator (a smaller number binds tighter).
_PRECEDENCE = {
    "*": 3,
    "/": 3,
    "%": 3,
    "+": 4,
    "-": 4,
    "<": 6,
    "<=": 6,
    ">": 6,
    ">=": 6,
    "==": 7,
    "!=": 7,
    "&&": 11,
    "||": 12,
}
_CAST = 2
_TERNARY = 13

#: The ``sg_`` helpers that call others: those defined by the functions' homes, and
#: the CUDA reduction of ``cuda_kernels.cu.j2``.
HELPER_CALLS = {**c_helper_calls(), "sg_block_reduce": ("sg_max",)}


def helpers_used(calls: Iterable[str]) -> frozenset[str]:
    """The helpers that code calling ``calls`` needs: those, and the ones they call."""
    out: set[str] = set()
    todo = [c for c in calls if c.startswith("sg_")]
    while todo:
        name = todo.pop()
        if name not in out:
            out.add(name)
            todo.extend(HELPER_CALLS.get(name, ()))
    return frozenset(out)


class CPrinter(CExpressionPrinter):
    """C99: a ``Function`` is a ``void`` function with ``restrict`` pointers, a loop may be
    vectorised with ``#pragma omp simd``."""

    restrict = "restrict"
    indent = "    "

    # -- expressions --------------------------------------------------------------------
    def _precedence(self, e) -> int:
        if isinstance(e, BinOp):
            return _PRECEDENCE[e.op]
        if isinstance(e, Cast):
            return _CAST
        if isinstance(e, Ternary):
            return _TERNARY
        if isinstance(e, sp.Basic) and not e.is_Atom:
            return _TERNARY  # a SymPy expression inside an operation is parenthesized
        return 1 if isinstance(e, (Index, Call)) else 0  # postfix, or a name

    def _operand(self, e, level: int, right: bool = False) -> str:
        text = self._print(e)
        inner = self._precedence(e)
        return f"({text})" if inner > level or (right and inner == level) else text

    def expression(self, e) -> str:
        """The text of an expression: a ``c_ast`` node, or a SymPy expression."""
        return self._print(e)

    def _print_Var(self, e: Var) -> str:
        return e.name

    def _print_Literal(self, e: Literal) -> str:
        return e.text

    def _print_Index(self, e: Index) -> str:
        return f"{self._operand(e.array, 1)}[{self._print(e.index)}]"

    def _print_BinOp(self, e: BinOp) -> str:
        level = _PRECEDENCE[e.op]
        op = "*" if e.op == "*" else f" {e.op} "  # products tight, as the arithmetic prints them
        return f"{self._operand(e.left, level)}{op}{self._operand(e.right, level, True)}"

    def _print_Call(self, e: Call) -> str:
        self.calls.add(e.function)
        return f"{e.function}({', '.join(self._print(a) for a in e.args)})"

    def _print_Cast(self, e: Cast) -> str:
        return f"({e.ctype}){self._operand(e.value, _CAST)}"

    def _print_Ternary(self, e: Ternary) -> str:
        parts = (self._operand(x, _TERNARY - 1) for x in (e.condition, e.then, e.otherwise))
        return "{} ? {} : {}".format(*parts)

    # -- statements ---------------------------------------------------------------------
    def type_name(self, t: Type) -> str:
        text = f"{'const ' if t.const else ''}{t.base}{'*' if t.pointer else ''}"
        return f"{text} {self.restrict}" if t.restrict else text

    def simd(self, pragma: Simd) -> list[str]:
        clause = f" reduction(+:{', '.join(pragma.sums)})" if pragma.sums else ""
        return [f"#pragma omp simd{clause}"]

    def parallel(self, pragma: Parallel) -> list[str]:
        threads = self._print(pragma.threads)
        return [
            f"#pragma omp parallel for schedule(dynamic, 1) num_threads({threads})"
            f" if({threads} > 1)"
        ]

    def lines(self, stmts, depth: int = 0) -> list[str]:
        """The lines of ``stmts``, indented ``depth`` levels."""
        out: list[str] = []
        for s in stmts:
            out += [f"{self.indent * depth}{line}" for line in self.statement(s)]
        return out

    def statement(self, s) -> list[str]:
        """The lines of one statement, relative to its own indentation."""
        match s:
            case Declare(type=t, name=name, value=value, size=size):
                head = f"{self.type_name(t)} {name}"
                if size is not None:
                    return [f"{head}[{self._print(size)}];"]
                return [f"{head};" if value is None else f"{head} = {self._print(value)};"]
            case Assign(target=target, value=value, op=op):
                return [f"{self._print(target)} {op} {self._print(value)};"]
            case Loop():
                step = f"++{s.var}" if s.step is None else f"{s.var} += {self._print(s.step)}"
                head = (
                    f"for (long long {s.var} = {self._print(s.start)}; "
                    f"{s.var} < {self._print(s.stop)}; {step}) {{"
                )
                pragma = self.parallel(s.parallel) if s.parallel is not None else []
                pragma += self.simd(s.simd) if s.simd is not None else []
                return [*pragma, head, *self.lines(s.body, 1), "}"]
            case If(condition=condition, body=body):
                head = f"if ({self._print(condition)})"
                if len(body) == 1 and isinstance(body[0], Assign):
                    return [f"{head} {self.statement(body[0])[0]}"]
                return [f"{head} {{", *self.lines(body, 1), "}"]
            case Block(body=body):
                return ["{", *self.lines(body, 1), "}"]
            case Comment(text=text):
                return [f"// {text}"]
            case Evaluate(value=value):
                return [f"{self._print(value)};"]
            case Return(value=value):
                return [f"return {self._print(value)};"]
            case SharedArray():
                return self.shared(s)
        raise TypeError(f"{type(self).__name__} cannot print {type(s).__name__}")

    def shared(self, s: SharedArray) -> list[str]:
        raise TypeError("C has no shared memory: SharedArray is for CUDA kernels")

    def param(self, p: Param) -> str:
        return f"{self.type_name(p.type)} {p.name}"

    def signature(self, f: Function) -> str:
        return f"{f.returns} {f.name}({', '.join(self.param(p) for p in f.params)})"

    def function(self, f: Function) -> str:
        """The text of a function: its comment, signature and body."""
        head = [f"// {f.name}: {f.comment}"] if f.comment else []
        return "\n".join([*head, self.signature(f), "{", *self.lines(f.body, 1), "}"])


class CudaPrinter(CPrinter):
    """CUDA C: a ``Function`` is an ``extern "C" __global__`` kernel with ``__restrict__``
    pointers; ``SharedArray`` is ``__shared__`` memory; no OpenMP pragmas."""

    restrict = "__restrict__"

    def simd(self, pragma: Simd) -> list[str]:
        return []

    def parallel(self, pragma: Parallel) -> list[str]:
        raise TypeError("a CUDA kernel's loops are not shared among host threads (Parallel)")

    def shared(self, s: SharedArray) -> list[str]:
        return [f"__shared__ {s.ctype} {s.name}[{self._print(s.size)}];"]

    def signature(self, f: Function) -> str:
        qualifiers = 'extern "C" __global__' if f.exported else "__device__"
        return f"{qualifiers} {super().signature(f)}"
