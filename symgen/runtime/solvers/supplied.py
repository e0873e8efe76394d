"""The arguments of SciPy's solvers that symgen makes itself from the module and the data
(the function, its derivatives, the extra arguments SciPy would pass them), refused when a
caller passes them: SciPy would get them twice and fail deep inside, or the module's
exact derivatives would be replaced without a word."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from symgen.runtime.solvers.layout import module_name

#: SciPy's extra arguments for the function, where symgen passes the module its data.
EXTRA_ARGUMENTS = ("args", "kwargs")


def refuse_supplied(
    module: Any, caller: str, options: Mapping[str, Any], supplied: tuple[str, ...]
) -> None:
    """A ``TypeError`` when ``options`` (the keywords given to ``symgen.<caller>``) hold any
    of ``supplied``, saying what to do instead."""
    given = [name for name in supplied if name in options]
    if not given:
        return
    advice = []
    if any(name not in EXTRA_ARGUMENTS for name in given):
        advice.append(
            f"to fit with other functions or derivatives, call scipy.optimize.{caller} yourself"
        )
    if any(name in EXTRA_ARGUMENTS for name in given):
        order = ", ".join(module.DATA)
        advice.append(
            f"pass the data in data= (a dict by name, or a tuple in the order {order})"
            if order
            else "the module takes no data"
        )
    keywords = ", ".join(f"{name}=" for name in given)
    raise TypeError(
        f"{module_name(module)}: symgen.{caller} makes {keywords} itself, from the module's "
        f"functions and the data: drop {'it' if len(given) == 1 else 'them'}; " + "; ".join(advice)
    )
