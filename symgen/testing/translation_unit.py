"""The C++ a kernel module is compiled as: ``emulator.h`` (the CUDA built-ins on fibers),
the kernel source with its own line numbers, and one ``extern "C"`` trampoline per
``__global__`` function that ctypes calls to launch it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from symgen.testing.kernel_source import (
    KernelParam,
    KernelSignature,
    blank,
    rewrite_dynamic_shared,
)

HEADER_PATH = Path(__file__).with_name("emulator.h")


def entry_symbol(kernel: str) -> str:
    return f"symgen_launch_{kernel}"


def _trampoline_argument(index: int, param: KernelParam) -> str:
    if param.pointer:
        return f"*static_cast<{param.ctype}* const*>(a[{index}])"
    return f"*static_cast<const {param.ctype}*>(a[{index}])"


def _trampoline(kernel: KernelSignature, with_fibers: bool) -> str:
    """``extern "C" int symgen_launch_NAME(grid, block, shared, args, error, len)``."""
    arguments = ", ".join(_trampoline_argument(i, p) for i, p in enumerate(kernel.params))
    unused = "" if kernel.params else " (void)a;"
    return f"""
extern "C" __attribute__((visibility("default"))) int {entry_symbol(kernel.name)}(
    const unsigned int* grid, const unsigned int* block, unsigned long long shared_bytes,
    void** args, char* error, unsigned long long error_len)
{{
    return ::symgen_emu::launch(
        "{kernel.name}", grid, block, shared_bytes, {"true" if with_fibers else "false"},
        [](void* p) {{ void** a = static_cast<void**>(p);{unused} {kernel.name}({arguments}); }},
        args, error, error_len);
}}
"""


def translation_unit(code: str, kernels: Sequence[KernelSignature]) -> str:
    """emulator.h + the kernel source (its own line numbers) + the trampolines."""
    rewritten = rewrite_dynamic_shared(code)
    with_fibers = "__syncthreads" in blank(code)
    trampolines = "".join(_trampoline(k, with_fibers) for k in kernels)
    return (
        f"{HEADER_PATH.read_text()}\n"
        f'#line 1 "kernel.cu"\n{rewritten}\n'
        f'#line 1 "symgen-trampolines.cpp"\n{trampolines}'
    )
