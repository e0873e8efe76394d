"""Reading CUDA kernel source as the emulator needs it: the ``__global__`` functions and
their parameters (``parse_kernels``), comments and literals blanked, and ``extern
__shared__`` arrays rewritten to the launch's buffer."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from symgen.testing.errors import CompileError

_C_TYPES: dict[str, np.dtype] = {
    spelling: np.dtype(dt)
    for dt, spellings in {
        np.float64: ("double",),
        np.float32: ("float",),
        np.bool_: ("bool",),
        np.int8: ("signed char", "int8_t"),
        np.uint8: ("unsigned char", "uint8_t"),
        np.int16: ("short", "short int", "signed short", "signed short int", "int16_t"),
        np.uint16: ("unsigned short", "unsigned short int", "uint16_t"),
        np.int32: ("int", "signed", "signed int", "int32_t"),
        np.uint32: ("unsigned", "unsigned int", "uint32_t"),
        np.int64: (
            "long long",
            "long long int",
            "signed long long",
            "signed long long int",
            "int64_t",
        ),
        np.uint64: ("unsigned long long", "unsigned long long int", "uint64_t"),
    }.items()
    for spelling in spellings
}
_QUALIFIERS = {"const", "volatile", "__restrict__", "__restrict"}


@dataclass(frozen=True)
class KernelParam:
    """One parameter of a ``__global__`` function."""

    name: str
    ctype: str  # the C spelling of the value's type, or of the pointee for a pointer
    dtype: np.dtype
    pointer: bool
    const: bool  # pointee is const (pointers only)
    restrict: bool

    def __str__(self) -> str:
        const = "const " if self.pointer and self.const else ""
        star = "*" + (" __restrict__" if self.restrict else "") if self.pointer else ""
        return f"{const}{self.ctype}{star} {self.name}"


@dataclass(frozen=True)
class KernelSignature:
    """A ``__global__`` function found in the source."""

    name: str
    params: tuple[KernelParam, ...]
    extern_c: bool
    template: bool


_COMMENT_OR_LITERAL = re.compile(
    r"//[^\n]*|/\*.*?\*/|\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*'", re.S
)
_SCOPE_TOKEN = re.compile(
    r'(?P<externc>\bextern\s*"C"\s*\{)'
    r"|(?P<namespace>\bnamespace\b[\w\s]*\{)"
    r"|(?P<open>\{)"
    r"|(?P<close>\})"
)
_KERNEL = re.compile(
    r"""
    (?P<template>\btemplate\s*<[^{};]*>\s*)?
    (?P<externc>\bextern\s*"C"\s*)?
    \b__global__\s+
    (?:__launch_bounds__\s*\([^()]*\)\s*)?
    void\s+
    (?:__launch_bounds__\s*\([^()]*\)\s*)?
    (?P<name>[A-Za-z_]\w*)\s*
    \((?P<params>[^()]*)\)\s*
    (?P<end>[{;])
    """,
    re.X,
)
_DYNAMIC_SHARED = re.compile(
    r"\bextern\s+__shared__\s+(?:__align__\s*\(\s*\d+\s*\)\s*)?"
    r"(?P<type>[A-Za-z_][\w\s]*?)\s+(?:__align__\s*\(\s*\d+\s*\)\s*)?"
    r"(?P<name>[A-Za-z_]\w*)\s*\[\s*\]\s*;"
)


def blank(source: str) -> str:
    """``source`` with comments and string/char literal contents turned into spaces.

    Offsets and line numbers are kept, and so is ``"C"`` (for ``extern "C"``)."""

    def blank(match: re.Match[str]) -> str:
        text = match.group()
        if text == '"C"':
            return text
        if text[0] in "\"'":
            return text[0] + re.sub(r"[^\n]", " ", text[1:-1]) + text[-1]
        return re.sub(r"[^\n]", " ", text)

    return _COMMENT_OR_LITERAL.sub(blank, source)


def _scopes_at(blanked: str, position: int) -> list[str]:
    """The open braces enclosing ``position``: "externc", "namespace" or "open"."""
    stack: list[str] = []
    for match in _SCOPE_TOKEN.finditer(blanked, 0, position):
        if match.lastgroup == "close":
            if stack:
                stack.pop()
        else:
            stack.append(match.lastgroup or "open")
    return stack


def _parse_param(kernel: str, index: int, text: str) -> KernelParam:
    """One parameter such as ``const double* __restrict__ x`` or ``const long long n``."""
    tokens = re.findall(r"[A-Za-z_]\w*|\S", text)
    unsupported = f"kernel {kernel!r}, parameter {index} ({text.strip()!r})"
    if any(t != "*" and not re.fullmatch(r"[A-Za-z_]\w*", t) for t in tokens):
        raise TypeError(f"{unsupported}: only scalars and plain pointers are supported")
    stars = tokens.count("*")
    if stars > 1:
        raise TypeError(f"{unsupported}: pointers to pointers are not supported")
    star = tokens.index("*") if stars else len(tokens)
    before = [t for t in tokens[:star] if t not in _QUALIFIERS]
    after = [t for t in tokens[star + 1 :] if t not in _QUALIFIERS] if stars else []
    name = after[0] if after else ""
    if not stars and " ".join(before) not in _C_TYPES and len(before) > 1:
        name, before = before[-1], before[:-1]
    ctype = " ".join(before)
    if ctype not in _C_TYPES or len(after) > 1:
        supported = ", ".join(sorted(_C_TYPES))
        raise TypeError(f"{unsupported}: unsupported type; supported: {supported}")
    return KernelParam(
        name=name or f"arg{index}",
        ctype=ctype,
        dtype=_C_TYPES[ctype],
        pointer=bool(stars),
        const=bool(stars) and "const" in tokens[:star],
        restrict=bool(stars) and any(t in ("__restrict__", "__restrict") for t in tokens[star:]),
    )


def parse_kernels(source: str) -> dict[str, KernelSignature]:
    """Every ``__global__`` function defined in ``source``, by name.

    Kernel signatures must be written out (not produced by macros), at file scope or
    in an ``extern "C" {}`` block; parameters are scalars or pointers of the types in
    ``_C_TYPES``."""
    blanked = blank(source)
    kernels: dict[str, KernelSignature] = {}
    for match in _KERNEL.finditer(blanked):
        if match["end"] == ";":
            continue  # a declaration; the definition comes elsewhere
        name = match["name"]
        if name in kernels:
            raise TypeError(f"kernel {name!r} is defined twice (overloads are not supported)")
        scopes = _scopes_at(blanked, match.start())
        if "namespace" in scopes:
            raise TypeError(f"kernel {name!r}: kernels inside a namespace are not supported")
        params_text = match["params"].strip()
        pieces = [] if params_text in ("", "void") else params_text.split(",")
        extern_c = bool(match["externc"]) or "externc" in scopes
        template = bool(match["template"])
        kernels[name] = KernelSignature(
            name=name,
            params=()
            if template
            else tuple(_parse_param(name, i, p) for i, p in enumerate(pieces)),
            extern_c=extern_c,
            template=template,
        )
    return kernels


def rewrite_dynamic_shared(source: str) -> str:
    """``extern __shared__ T name[];`` (in a function) → a pointer to the launch's buffer.

    The replacement keeps the line count, so compiler messages keep their line numbers."""
    blanked = blank(source)
    pieces = []
    last = 0
    for match in _DYNAMIC_SHARED.finditer(blanked):
        if "open" not in _scopes_at(blanked, match.start()):
            line = blanked.count("\n", 0, match.start()) + 1
            raise CompileError(
                f"line {line}: file-scope `extern __shared__` arrays are not supported by the "
                "CUDA emulator; declare them inside the kernel"
            )
        ctype = " ".join(match["type"].split())
        newlines = "\n" * match.group().count("\n")
        pieces.append(source[last : match.start()])
        pieces.append(
            f"{ctype}* const {match['name']} = "
            f"static_cast<{ctype}*>(::symgen_emu::dynamic_shared_memory());{newlines}"
        )
        last = match.end()
    pieces.append(source[last:])
    return "".join(pieces)
