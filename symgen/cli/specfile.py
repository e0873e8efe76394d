"""Loading a spec: ``path.py``, ``path.py:attr`` or ``package.module:attr``.

A spec file is ordinary Python that builds one ``symgen.Problem`` (or, named
with ``:attr``, a Problem or a list of them). A problem built without ``name=``
is named after where it was found, so that two specs never write the same file:
the file's stem for ``path.py`` (``models/linear.py``: ``linear``), the attribute
for ``:attr`` (``spec.py:ridge``: ``ridge``), with ``_0``, ``_1``, ... for the
items of a list.
"""

from __future__ import annotations

import importlib
import importlib.util
import keyword
import os
import re
import sys
import sysconfig
import traceback
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from symgen.compiler.problem import Problem
from symgen.errors import SpecError

#: Files that mark a project's root folder: a spec's path in headers starts there.
PROJECT_MARKERS = ("pyproject.toml", "setup.py", "setup.cfg", ".git")


@dataclass(frozen=True)
class Spec:
    problems: tuple[Problem, ...]
    #: Where the spec came from, as messages name it (a path relative to the cwd).
    source: str
    #: The spec file (None for ``package.module:attr``), and the ``:attr`` part.
    file: Path | None = None
    attr: str = ""

    @property
    def origin(self) -> str:
        """Where the spec came from, as generated headers say: the same wherever symgen
        runs from. A spec file is named by its path from its project's root (the nearest
        folder above it holding one of ``PROJECT_MARKERS``), or by its file name when it
        is in no project; a module spec by its dotted name."""
        if self.file is None:
            return self.source
        file = self.file.resolve()
        root = project_root(file.parent)
        path = file.relative_to(root).as_posix() if root else file.name
        return f"{path}:{self.attr}" if self.attr else path


def project_root(folder: Path) -> Path | None:
    """The nearest of ``folder`` and the folders above it that holds one of
    ``PROJECT_MARKERS``; None if none does."""
    folder = Path(folder).resolve()
    for candidate in (folder, *folder.parents):
        if any((candidate / marker).exists() for marker in PROJECT_MARKERS):
            return candidate
    return None


def _display_path(path: Path) -> str:
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.name


#: Where the code that is not the user's lives: symgen itself, the standard library and the
#: installed packages (SymPy, NumPy). An error's place is the last frame outside them.
_LIBRARIES = (Path(__file__).resolve().parents[1],) + tuple(
    Path(sysconfig.get_paths()[key]).resolve()
    for key in ("stdlib", "platstdlib", "purelib", "platlib")
)


def _users(filename: str, path: Path) -> bool:
    """Whether a traceback frame's file is the user's: the spec, or none of ``_LIBRARIES``."""
    if filename.startswith("<"):  # <frozen importlib._bootstrap>, <string>
        return False
    file = Path(filename).resolve()
    return file == path.resolve() or not any(file.is_relative_to(lib) for lib in _LIBRARIES)


def _where(exc: BaseException, path: Path) -> str:
    """``FILE:LINE`` of the last frame of ``exc``'s traceback in the user's code (the spec
    file or a module of theirs that it imports), as Python's traceback would name it."""
    if isinstance(exc, SyntaxError) and exc.filename and exc.lineno:
        return f"{_shown(Path(exc.filename), path)}:{exc.lineno}"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if _users(f.filename, path)]
    if not frames:
        return str(path)
    return f"{_shown(Path(frames[-1].filename), path)}:{frames[-1].lineno}"


def _shown(filename: Path, path: Path) -> str:
    """The spec file as the user named it; another file relative to here when it can be."""
    if filename.resolve() == path.resolve():
        return str(path)
    try:
        return str(filename.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(filename)


def _exec_file(path: Path) -> types.ModuleType:
    if not path.is_file():
        raise SpecError(f"spec file not found: {path}")
    name = f"_symgen_spec_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SpecError(f"cannot load {path} as Python")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.resolve().parent))
    try:
        spec.loader.exec_module(module)
    except SpecError as exc:
        raise SpecError(f"{_where(exc, path)}: {exc}") from exc
    except SyntaxError as exc:
        raise SpecError(f"{_where(exc, path)}: {type(exc).__name__}: {exc.msg}") from exc
    except Exception as exc:  # the user's own code failed: say where, in one line
        message = str(exc).splitlines()[0] if str(exc) else ""
        raise SpecError(f"{_where(exc, path)}: {type(exc).__name__}: {message}") from exc
    finally:
        sys.path.remove(str(path.resolve().parent))
    return module


def _identifier(text: str) -> str:
    """``text`` as a problem name: ``my-model`` → ``my_model``, ``2layer`` → ``problem_2layer``."""
    name = re.sub(r"\W", "_", text)
    return name if name.isidentifier() and not keyword.iskeyword(name) else f"problem_{name}"


def _as_problems(value: object, where: str, name: str) -> tuple[Problem, ...]:
    """The Problem or list of Problems ``value``; unnamed ones called ``name`` (a list's
    items ``name_0``, ``name_1``, ...)."""
    if isinstance(value, Problem):
        return (value if value.named else value.renamed(name),)
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, Problem) for v in value):
        return tuple(v if v.named else v.renamed(f"{name}_{i}") for i, v in enumerate(value))
    raise SpecError(f"{where} is not a symgen.Problem (nor a list of them)")


def _import(target: str) -> Any:
    """The module ``target`` imported as ``python -m`` finds it, with the current folder
    first on the path: the ``symgen`` console script has its own folder there instead, so
    ``symgen show examples.curve_fit:curve_fit`` run from a project failed to import it."""
    here = os.getcwd()
    added = here not in sys.path
    if added:
        sys.path.insert(0, here)
    try:
        return importlib.import_module(target)
    finally:
        if added:
            sys.path.remove(here)


def load(spec: str) -> Spec:
    """The problems a SPEC string names."""
    target, _, attr = spec.partition(":")
    if target.endswith(".py") or Path(target).is_file():
        path = Path(target)
        module = _exec_file(path)
        source = _display_path(path)
        stem = path.stem
    else:
        if not attr:
            raise SpecError(f"spec {spec!r}: give a path to a .py file, or package.module:attr")
        try:
            module = _import(target)
        except ImportError as exc:
            raise SpecError(f"cannot import {target!r}: {exc}") from exc
        source = target
        stem = target.rpartition(".")[2]
        path = None
    if attr:
        if not hasattr(module, attr):
            raise SpecError(f"{source} has no attribute {attr!r}")
        problems = _as_problems(getattr(module, attr), f"{source}:{attr}", _identifier(attr))
        return Spec(_distinct(problems, f"{source}:{attr}"), f"{source}:{attr}", path, attr)
    found = {
        k: v for k, v in vars(module).items() if isinstance(v, Problem) and not k.startswith("_")
    }
    unique = list({id(v): v for v in found.values()}.values())
    if not unique:
        lists = sorted(
            k
            for k, v in vars(module).items()
            if not k.startswith("_")
            and isinstance(v, (list, tuple))
            and v
            and all(isinstance(p, Problem) for p in v)
        )
        if lists:
            raise SpecError(
                f"{source} defines no single Problem but lists of them: pick one with "
                + " or ".join(f"{source}:{k}" for k in lists)
            )
        raise SpecError(f"{source} defines no symgen.Problem")
    if len(unique) > 1:
        names = ", ".join(sorted(found))
        raise SpecError(f"{source} defines several Problems ({names}); pick one with {source}:NAME")
    return Spec(_as_problems(unique[0], source, _identifier(stem)), source, path)


def _distinct(problems: tuple[Problem, ...], where: str) -> tuple[Problem, ...]:
    """``problems``, refused when two share a name (they would write the same file)."""
    names = [p.name for p in problems]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise SpecError(
            f"{where}: several problems are named {', '.join(map(repr, twice))}, so their "
            "generated files would overwrite each other; give each its own name="
        )
    return problems
