"""Jinja2 environments over the backends' ``templates/`` folders.

Each backend keeps its templates in ``symgen/backends/<name>/templates`` and renders
with the folders it needs (its own first, then the ones it builds on); the base
templates they extend (``module.py.j2``, the module every backend generates) are in
``symgen/codegen/templates`` and always found last.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path

import jinja2

#: The base templates (``module.py.j2``): looked up after a backend's folders.
BASE = Path(__file__).parent / "templates"


@cache
def _environment(folders: tuple[str, ...]) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader([*folders, str(BASE)]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


def render(folders: Sequence[Path], template: str, **context: object) -> str:
    """``template`` rendered with ``context``, looked up in ``folders`` in order, then in
    the base templates."""
    return _environment(tuple(str(f) for f in folders)).get_template(template).render(**context)
