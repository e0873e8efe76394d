"""Run a command's symbolic work under a budget of time and memory.

``symgen diff`` and ``symgen show`` hand SymPy whatever the user typed; a short input
can ask for a polynomial with a billion terms (``(x+1)**10**9``) or a number with
2**100 digits. Rather than guess every such case, the work runs in a forked worker
process limited to ``SYMGEN_MEMORY_BUDGET`` megabytes in all (``RLIMIT_AS``) and
killed after ``SYMGEN_TIME_BUDGET`` seconds; whatever
goes wrong in it comes back as one line (a ``SpecError``). Where ``fork`` does not
exist (Windows) the work runs in this process, without a budget.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from multiprocessing.connection import Connection

from symgen.errors import SpecError

try:
    import resource
except ImportError:  # Windows: no fork either, so no worker
    resource = None

#: Seconds the work may take (environment: ``SYMGEN_TIME_BUDGET``).
SECONDS = 5.0
#: Megabytes the worker may use in all (``SYMGEN_MEMORY_BUDGET``).
MEGABYTES = 500


def limits() -> tuple[float, int]:
    """The budget: (seconds, megabytes), from the environment or the defaults."""
    try:
        seconds = float(os.environ.get("SYMGEN_TIME_BUDGET", SECONDS))
        megabytes = int(os.environ.get("SYMGEN_MEMORY_BUDGET", MEGABYTES))
    except ValueError as exc:
        raise SpecError(f"SYMGEN_TIME_BUDGET / SYMGEN_MEMORY_BUDGET: {exc}") from None
    if seconds <= 0 or megabytes <= 0:
        raise SpecError("SYMGEN_TIME_BUDGET and SYMGEN_MEMORY_BUDGET must be positive")
    return seconds, megabytes


def run(work: Callable[[], str], what: str) -> str:
    """``work()``'s text, computed within the budget; else a one-line ``SpecError``
    that says which limit ``what`` (e.g. ``"the derivative"``) ran into."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return work()
    seconds, megabytes = limits()
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    worker = context.Process(target=_work, args=(work, send, megabytes), daemon=True)
    worker.start()
    send.close()
    try:
        answered = receive.poll(seconds)
        kind, text = receive.recv() if answered else ("late", "")
    except EOFError:  # the worker died without answering
        kind, text = "died", ""
    finally:
        if worker.is_alive():
            worker.kill()
        worker.join()
        receive.close()
    if kind == "late":
        raise SpecError(
            f"{what} took longer than {seconds:g} s; gave up "
            "(a bigger budget: SYMGEN_TIME_BUDGET=SECONDS)"
        )
    if kind == "died":  # GMP, for one, aborts when it cannot allocate
        raise SpecError(
            f"{what} stopped without an answer (exit status {worker.exitcode}), perhaps for "
            f"want of memory (a bigger budget than {megabytes} MB: SYMGEN_MEMORY_BUDGET=MEGABYTES)"
        )
    if kind == "error":
        raise SpecError(text)
    return text


def _work(work: Callable[[], str], send: Connection, megabytes: int) -> None:
    """In the worker: limit memory, run ``work``, send back ("ok", text) or ("error", line)."""
    _limit_memory(megabytes)
    try:
        answer = ("ok", work())
    except MemoryError:
        answer = ("error", f"needs more than {megabytes} MB of memory; gave up")
    except RecursionError:
        answer = ("error", "the expression is nested too deeply for SymPy (RecursionError)")
    except (SpecError, OSError, ValueError, TypeError) as exc:
        answer = ("error", " ".join(str(exc).split()) or type(exc).__name__)
    except Exception as exc:  # noqa: BLE001 - any failure is one line, never a traceback
        detail = " ".join(str(exc).split())[:200]
        answer = ("error", f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__)
    send.send(answer)
    send.close()


def _limit_memory(megabytes: int) -> None:
    """Let this process use ``megabytes`` in all: its address space is capped at what it
    has reserved but not touched (thread stacks, malloc arenas) plus ``megabytes``, and at
    least 64 MB more than now."""
    try:
        with open("/proc/self/statm") as handle:
            size, resident = (
                int(n) * os.sysconf("SC_PAGE_SIZE") for n in handle.read().split()[:2]
            )
    except (OSError, ValueError, AttributeError):
        return  # no /proc (macOS, where RLIMIT_AS is not enforced anyway): time only
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = max(size - resident + megabytes * 2**20, size + 64 * 2**20)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
