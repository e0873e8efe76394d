"""The source a generated module is shipped to the workers as: generated here from a
``Problem`` (checked to split over rows), or found for a module (its file, or the
``linecache`` entry ``symgen.compile`` made) and checked against the module's code."""

from __future__ import annotations

import linecache
import os
import types
import weakref
from typing import Any

from symgen.api import generate
from symgen.compiler.separable import RowSplit, row_split
from symgen.runtime.distributed.loading import load_module, module_name

_SOURCES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_PROBLEMS: dict[str, tuple[str, RowSplit]] = {}
_FUNCTIONS = ("loss", "loss_and_grad", "grad", "sgd_step", "momentum_step", "adam_step")


def problem_module(problem: Any) -> types.ModuleType:
    """The generated module of ``problem`` (checked to split over rows), loaded as the
    workers load it."""
    return load_module(problem_source(problem)[0])


def problem_source(problem: Any) -> tuple[str, RowSplit]:
    """The generated source of ``problem`` and how its loss splits over rows (cached)."""
    key = problem.spec_hash()
    if key not in _PROBLEMS:
        split = row_split(problem)
        _PROBLEMS[key] = (generate(problem), split)
    return _PROBLEMS[key]


def module_source(module: Any) -> str:
    """The source a generated module was executed from, checked against its code.

    Looked for in its file (``generated/*.py``) and in ``linecache`` (where
    ``symgen.compile`` puts it)."""
    try:
        cached = _SOURCES.get(module)
    except TypeError:
        cached = None
    if cached is not None:
        return cached
    missing = [a for a in ("PARAMS", "DATA", "DTYPE", *_FUNCTIONS[:2]) if not hasattr(module, a)]
    if missing:
        raise TypeError(
            f"{module_name(module)!r} is not a generated module (no {', '.join(missing)}); "
            "pass symgen.compile(problem), an imported generated/*.py, or a symgen.Problem"
        )
    candidates = []
    filename = getattr(module, "__file__", None) or ""
    if filename and os.path.isfile(filename):
        with open(filename, encoding="utf-8") as handle:
            candidates.append(handle.read())
    if filename:
        lines = linecache.getlines(filename)
        if lines:
            candidates.append("".join(lines))
    for text in candidates:
        if _same_code(module, text):
            try:
                _SOURCES[module] = text
            except TypeError:
                pass
            return text
    raise TypeError(
        f"{module_name(module)}: cannot find the source this module was generated from "
        "(its file changed, or another module of the same name was compiled since); pass the "
        "symgen.Problem instead, or compile it again"
    )


def _same_code(module: Any, text: str) -> bool:
    namespace: dict[str, Any] = {}
    try:
        exec(compile(text, "<symgen check>", "exec", dont_inherit=True), namespace)
    except Exception:  # noqa: BLE001 - any failure means: not this module's source
        return False
    for name in _FUNCTIONS:
        mine, theirs = getattr(module, name, None), namespace.get(name)
        if (mine is None) != (theirs is None):
            return False
        if mine is not None and _code_key(mine.__code__) != _code_key(theirs.__code__):
            return False
    return True


def _code_key(code: types.CodeType) -> tuple:
    consts = tuple(_code_key(c) if isinstance(c, types.CodeType) else c for c in code.co_consts)
    return (code.co_code, code.co_names, code.co_varnames, consts)
