"""A generated module made from its source, once per process (on the workers and here),
and the name messages give a module."""

from __future__ import annotations

import hashlib
import linecache
import types
from typing import Any

_LOADED: dict[str, types.ModuleType] = {}


def load_module(source: str) -> types.ModuleType:
    """The generated module whose source is ``source``, executed once per process. A C
    module's passes run on one thread here: Dask's workers and threads each take a chunk,
    and threads of the passes on top of them would oversubscribe the cores."""
    digest = hashlib.sha256(source.encode()).hexdigest()
    module = _LOADED.get(digest)
    if module is None:
        filename = f"<symgen {digest[:16]}>"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        namespace: dict[str, Any] = {"__name__": "symgen_distributed_module"}
        exec(compile(source, filename, "exec", dont_inherit=True), namespace)
        doc = namespace.get("__doc__") or ""
        name = doc.split(":", 1)[0].strip() if ":" in doc else "problem"
        module = types.ModuleType(f"{name}_numpy", doc)
        module.__dict__.update(namespace)
        module.__name__ = f"{name}_numpy"
        module.__file__ = filename
        if hasattr(module, "set_num_threads"):  # a C module: Dask runs the chunks in parallel
            module.set_num_threads(1)
        _LOADED[digest] = module
    return module


def module_name(module: Any) -> str:
    """The name messages use for a generated module: its problem's name."""
    name = getattr(module, "__name__", None) or type(module).__name__
    return name.rsplit(".", 1)[-1].removesuffix("_numpy")
