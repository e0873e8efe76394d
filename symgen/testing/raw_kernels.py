"""``RawModule`` and ``RawKernel`` of the fake ``cupy``: CUDA source compiled with g++ on
first use (``kernel_build``) and launched on the CPU through its trampolines."""

from __future__ import annotations

import ctypes
import operator
import re
from collections.abc import Sequence
from typing import Any

from symgen.testing.errors import KernelLaunchError
from symgen.testing.kernel_args import PackedArgs, check_configuration, dims
from symgen.testing.kernel_build import gxx_flags, load_library
from symgen.testing.kernel_source import KernelParam, KernelSignature, parse_kernels
from symgen.testing.translation_unit import entry_symbol, translation_unit

_ERROR_BYTES = 1024


class RawModule:
    """CUDA source holding one or more ``__global__`` functions (like ``cupy.RawModule``).

    The source is compiled on the first :meth:`get_function`. ``name_expressions``
    may list kernels without ``extern "C"`` (templates are not supported)."""

    def __init__(
        self,
        code: str,
        *,
        options: Sequence[str] = (),
        name_expressions: Sequence[str] | None = None,
    ) -> None:
        self.code = code
        self.options = tuple(options)
        self.name_expressions = tuple(name_expressions or ())
        self._kernels: dict[str, KernelSignature] | None = None
        self._library: ctypes.CDLL | None = None
        for expression in self.name_expressions:
            if not re.fullmatch(r"[A-Za-z_]\w*", expression):
                raise ValueError(
                    f"name expression {expression!r}: only plain kernel names are supported "
                    "by the CUDA emulator (no templates)"
                )

    def _build(self) -> tuple[dict[str, KernelSignature], ctypes.CDLL]:
        if self._kernels is None or self._library is None:
            kernels = parse_kernels(self.code)
            launchable = [k for k in kernels.values() if not k.template]
            source = translation_unit(self.code, launchable)
            self._library = load_library(source, gxx_flags(self.options))
            self._kernels = kernels
        return self._kernels, self._library

    def get_function(self, name: str) -> RawKernel:
        """The kernel ``name`` (compiles the module on first use)."""
        kernels, library = self._build()
        if name not in kernels:
            raise KeyError(f"no __global__ function {name!r} in the module; it has {list(kernels)}")
        signature = kernels[name]
        if signature.template:
            raise KeyError(f"kernel {name!r} is a template: not supported by the CUDA emulator")
        if not signature.extern_c and name not in self.name_expressions:
            raise KeyError(
                f'kernel {name!r} has C++ linkage: declare it extern "C" or list it in '
                "name_expressions"
            )
        kernel = RawKernel(self.code, name, self.options)
        kernel._bind(signature, getattr(library, entry_symbol(name)))
        return kernel


class RawKernel:
    """One kernel (like ``cupy.RawKernel``): ``kernel(grid, block, args, shared_mem=0)``."""

    def __init__(self, code: str, name: str, options: Sequence[str] = ()) -> None:
        self.code = code
        self.name = name
        self.options = tuple(options)
        self._signature: KernelSignature | None = None
        self._entry: Any = None

    def _bind(self, signature: KernelSignature, entry: Any) -> None:
        entry.restype = ctypes.c_int
        entry.argtypes = [
            ctypes.POINTER(ctypes.c_uint),
            ctypes.POINTER(ctypes.c_uint),
            ctypes.c_ulonglong,
            ctypes.POINTER(ctypes.c_void_p),
            ctypes.c_char_p,
            ctypes.c_ulonglong,
        ]
        self._signature = signature
        self._entry = entry

    @property
    def params(self) -> tuple[KernelParam, ...]:
        """The kernel's parameters as parsed from the source (compiles on first use)."""
        self._ensure_bound()
        assert self._signature is not None
        return self._signature.params

    def _ensure_bound(self) -> None:
        if self._entry is None:
            bound = RawModule(self.code, options=self.options).get_function(self.name)
            self._bind(bound._signature, bound._entry)  # type: ignore[arg-type]

    def __call__(
        self,
        grid: int | tuple[int, ...],
        block: int | tuple[int, ...],
        args: tuple[Any, ...],
        *,
        shared_mem: int = 0,
    ) -> None:
        """Launch on the CPU; returns once every block has run.

        Checks, stricter than CuPy: ``args`` is a tuple with one value per parameter;
        a pointer takes a C-contiguous, aligned device :class:`ndarray` whose dtype
        matches the pointee (``double*`` float64, ``float*`` float32, ``int*`` int32,
        ``long long*`` int64, ...; writable unless ``const``), and arrays passed to
        ``__restrict__`` pointers must not overlap one that is written; a by-value
        parameter takes a NumPy scalar of exactly its type (``double`` numpy.float64,
        ``float`` numpy.float32, ``int`` numpy.int32, ``unsigned int`` numpy.uint32,
        ``long long`` numpy.int64, ``bool`` numpy.bool_), and also a Python float for
        ``double``, a Python int for ``long long`` and a Python bool for ``bool`` (the
        types CuPy passes them as). Block size and grid limits are CUDA's."""
        self._ensure_bound()
        assert self._signature is not None
        grid3 = dims("grid", grid)
        block3 = dims("block", block)
        shared_bytes = operator.index(shared_mem)
        check_configuration(self.name, grid3, block3, shared_bytes)
        packed = PackedArgs(self._signature, args)
        error = ctypes.create_string_buffer(_ERROR_BYTES)
        failed = self._entry(
            (ctypes.c_uint * 3)(*grid3),
            (ctypes.c_uint * 3)(*block3),
            shared_bytes,
            packed.array,
            error,
            _ERROR_BYTES,
        )
        if failed:
            raise KernelLaunchError(error.value.decode(errors="replace"))
