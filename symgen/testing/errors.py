"""The errors of the CUDA emulator (compiling or launching a kernel)."""

from __future__ import annotations


class EmulatorError(RuntimeError):
    """An error of the CUDA emulator (compiling or running a kernel)."""


class CompileError(EmulatorError):
    """g++ rejected the kernel source; the message holds the compiler output."""


class KernelLaunchError(EmulatorError):
    """A launch failed: a bad launch configuration or a divergent ``__syncthreads()``."""
