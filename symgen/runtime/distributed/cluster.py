"""Dask, imported when it is used (an optional dependency: ``symgen[dask]``), and
``connect`` to a ``dask.distributed`` scheduler."""

from __future__ import annotations

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
