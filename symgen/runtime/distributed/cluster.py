"""Dask, imported when it is used (an optional dependency: ``symgen[dask]``), and
``connect`` to a ``dask.distributed`` scheduler."""

from __future__ import annotations

import sys
from typing import Any


def dask_modules() -> tuple[Any, Any]:
    """``(dask, dask.array)``, or ``ImportError`` saying how to install them."""
    try:
        import dask
        import dask.array as da
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("symgen.distributed needs dask: pip install 'symgen[dask]'") from None
    return dask, da


def connect() -> Any:
    """A ``dask.distributed.Client`` for the scheduler at ``DASK_SCHEDULER_ADDRESS`` (Dask's
    ``scheduler-address`` setting) when one is set and no client is active; else ``None``
    (the active client, or Dask's local threads, run the work)."""
    dask, _ = dask_modules()
    address = dask.config.get("scheduler-address", None)
    if not address:
        return None
    from distributed import Client, default_client

    try:
        return default_client()
    except ValueError:
        return Client(address)


def lost_worker_errors() -> tuple[type[BaseException], ...]:
    """What ``dask.distributed`` raises when the workers running a task kept dying
    (``KilledWorker``); none while it is not loaded (then it cannot have raised it)."""
    module = sys.modules.get("distributed")
    killed = getattr(module, "KilledWorker", None)
    return (killed,) if killed is not None else ()


def lost_worker_message(error: BaseException) -> str:
    """One line for a ``KilledWorker``: which task, how many tries, the last worker."""
    task = getattr(error, "task", None) or (error.args[0] if error.args else "?")
    tries = getattr(error, "allowed_failures", None)
    worker = getattr(error, "last_worker", None)
    address = getattr(worker, "address", worker)
    return (
        f"the Dask workers running task {task} kept dying"
        + (f" ({tries + 1} tries" if isinstance(tries, int) else " (")
        + (f", the last on {address})" if address else ")")
        + "; look at the workers' logs and memory limits"
    )
