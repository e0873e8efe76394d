"""Jinja2 environments over the backends' ``templates/`` folders.

Each backend keeps its templates in ``symgen/backends/<name>/templates`` and renders
with the folders it needs (its own first, then the ones it builds on).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path

import jinja2


@cache
def _environment(folders: tuple[str, ...]) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(list(folders)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


def render(folders: Sequence[Path], template: str, **context: object) -> str:
    """``template`` rendered with ``context``, looked up in ``folders`` in order."""
    return _environment(tuple(str(f) for f in folders)).get_template(template).render(**context)
