"""The CPU emulation of CUDA kernels (symgen/testing/emulator.h) and the fake cupy.

Small hand-written kernels, checked against NumPy. The same kernel source is also
compiled with nvcc (when it is on PATH) to show it is valid CUDA.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import numpy as np
import pytest

from symgen.testing import (
    CompileError,
    KernelLaunchError,
    emulator_available,
    fake_cupy_installed,
)
from symgen.testing import fakecupy as cp

pytestmark = pytest.mark.skipif(not emulator_available(), reason="g++ is not on PATH")

# Valid CUDA: compiled once by the emulator for the whole file, and by nvcc.
KERNELS = r"""
// Grid-stride elementwise: y = a*x + b (b: one element).
extern "C" __global__ void axpb(const double* __restrict__ x, const double* __restrict__ b,
                                double* __restrict__ y, const double a, const long long n)
{
    for (long long i = (long long)blockIdx.x*blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x*blockDim.x) {
        y[i] = a*x[i] + b[0];
    }
}

// Tree reduction in shared memory: partial[blockIdx.x] = sum of this block's share.
// Threads read what other threads wrote, so it needs a real barrier.
extern "C" __global__ void block_sum(const double* __restrict__ x,
                                     double* __restrict__ partial, const long long n)
{
    __shared__ double s[256];
    double acc = 0.0;
    for (long long i = (long long)blockIdx.x*blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x*blockDim.x) {
        acc += x[i];
    }
    s[threadIdx.x] = acc;
    __syncthreads();
    for (unsigned int half = blockDim.x/2; half > 0; half /= 2) {
        if (threadIdx.x < half) s[threadIdx.x] += s[threadIdx.x + half];
        __syncthreads();
    }
    if (threadIdx.x == 0) partial[blockIdx.x] = s[0];
}

// A value written by one thread, overwritten by another, read by all.
extern "C" __global__ void handoff(int* __restrict__ out)
{
    __shared__ int slot;
    if (threadIdx.x == 0) slot = 1;
    __syncthreads();
    if (threadIdx.x == blockDim.x - 1) slot = slot + 41;
    __syncthreads();
    out[blockIdx.x*blockDim.x + threadIdx.x] = slot;
}

// Reverse each block's share through dynamic shared memory.
extern "C" __global__ void reverse_blocks(const double* __restrict__ x, double* __restrict__ y)
{
    extern __shared__ double buffer[];
    const unsigned int t = threadIdx.x;
    const unsigned int base = blockIdx.x*blockDim.x;
    buffer[t] = x[base + t];
    __syncthreads();
    y[base + t] = buffer[blockDim.x - 1 - t];
}

extern "C" __global__ void atomic_sum(const double* __restrict__ x, double* __restrict__ total,
                                      int* __restrict__ counter, int* __restrict__ order,
                                      int* __restrict__ biggest, const long long n)
{
    const long long i = (long long)blockIdx.x*blockDim.x + threadIdx.x;
    if (i >= n) return;
    atomicAdd(total, x[i]);
    order[atomicAdd(counter, 1)] = (int)i;
    atomicMax(biggest, (int)(i*7 % 1000));
    atomicMin(biggest + 1, (int)(i*7 % 1000) - 500);
}

extern "C" __global__ void exp_scale(const float* __restrict__ x, float* __restrict__ y,
                                     const float a, const int n)
{
    const int i = blockIdx.x*blockDim.x + threadIdx.x;
    if (i < n) y[i] = a*expf(x[i]) + log1pf(fabsf(x[i])) + tanhf(x[i]);
}

extern "C" __global__ void double_math(const double* __restrict__ x, double* __restrict__ y,
                                       const unsigned int n, const bool flip)
{
    const unsigned int i = blockIdx.x*blockDim.x + threadIdx.x;
    if (i >= n) return;
    const double v = x[i];
    double r = exp(v) + log(fabs(v) + 1.0) + log1p(v*v) + expm1(v) + sin(v) + cos(v)
             + tanh(v) + sqrt(fabs(v)) + pow(fabs(v), 1.5) + fmax(v, 0.0) + fmin(v, 0.0)
             + copysign(1.0, v) + floor(v) + ceil(v);
    if (isnan(v) || v == INFINITY) r = NAN;
    y[i] = flip ? -r : r;
}

// Every thread of a 3-D grid of 3-D blocks writes its own indices.
extern "C" __global__ void index_map(long long* __restrict__ out)
{
    const long long bx = blockIdx.x, by = blockIdx.y, bz = blockIdx.z;
    const long long block = bx + gridDim.x*(by + gridDim.y*bz);
    const long long thread = threadIdx.x + blockDim.x*(threadIdx.y + blockDim.y*threadIdx.z);
    const long long code = threadIdx.x + 10*threadIdx.y + 100*threadIdx.z
                         + 1000*bx + 10000*by + 100000*bz + 1000000LL*warpSize;
    out[block*blockDim.x*blockDim.y*blockDim.z + thread] = code;
}

// Matrix fill over a 2-D grid of 2-D blocks, rows and columns not multiples of the block.
extern "C" __global__ void fill_2d(float* __restrict__ m, const int rows, const int cols)
{
    const int r = blockIdx.y*blockDim.y + threadIdx.y;
    const int c = blockIdx.x*blockDim.x + threadIdx.x;
    if (r < rows && c < cols) m[r*cols + c] = 100.0F*r + c;
}

// A __device__ global, __launch_bounds__, no parameters.
__device__ unsigned long long launches;
extern "C" __global__ void __launch_bounds__(64) count_threads() { atomicAdd(&launches, 1ULL); }
extern "C" __global__ void read_count(unsigned long long* out) { out[0] = launches; }

extern "C" __global__ void more_atomics(float* f, unsigned int* u, unsigned long long* ull,
                                        int* i)
{
    atomicAdd(f, 0.5F);
    atomicAdd(u, 2U);
    atomicAdd(ull, 3ULL);
    atomicCAS(i, 0, (int)threadIdx.x + 1);  // only the first thread finds 0
    atomicExch(i + 1, 7);
    atomicSub(i + 2, 1);
    atomicMax(i + 3, (int)threadIdx.x);
}

// Templates compile (CUDA-valid) but cannot be launched through the emulator.
template <typename T>
__global__ void templated(T* x) { x[threadIdx.x] = T(1); }

// Undefined behaviour in CUDA: some threads leave while others wait at a barrier.
extern "C" __global__ void divergent_return(double* __restrict__ out)
{
    if (threadIdx.x >= 16) return;
    __syncthreads();
    out[threadIdx.x] = 1.0;
}

// Undefined behaviour in CUDA: threads wait at two different barriers.
extern "C" __global__ void divergent_branches(double* __restrict__ out)
{
    if (threadIdx.x % 2 == 0) {
        out[threadIdx.x] = 1.0;
        __syncthreads();
    } else {
        __syncthreads();
        out[threadIdx.x] = 2.0;
    }
}
"""

# A module with C++-linkage kernels, and one inside an extern "C" block.
LINKAGE = r"""
__global__ void mangled(double* y) { y[threadIdx.x] = 1.0; }
extern "C" {
__global__ void in_block(double* y) { y[threadIdx.x] = 2.0; }
}
"""


@pytest.fixture(scope="module")
def module() -> cp.RawModule:
    return cp.RawModule(code=KERNELS)


def _rand(n: int, seed: int = 0, dtype: type = np.float64) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(n).astype(dtype)


# ------------------------------------------------------------------- device arrays


def test_device_arrays_are_a_numpy_subclass_kept_by_operations() -> None:
    host = np.arange(6.0).reshape(2, 3)
    dev = cp.asarray(host)
    assert isinstance(dev, cp.ndarray) and not isinstance(host, cp.ndarray)
    for result in (dev + 1, dev * dev, dev @ dev.T, dev.T, dev[1:], dev[:, ::2], -dev):
        assert isinstance(result, cp.ndarray)
    assert isinstance(dev.sum(), cp.ndarray) and dev.sum().ndim == 0  # 0-d, as in CuPy
    assert isinstance(dev[0, 1], cp.ndarray) and float(dev[0, 1]) == 1.0
    for function in (cp.sum, cp.sqrt):
        assert isinstance(function(dev), cp.ndarray)
    assert isinstance(cp.dot(dev, dev.T), cp.ndarray)
    assert isinstance(cp.matmul(dev, dev.T), cp.ndarray)
    for function in (cp.add, cp.subtract, cp.multiply, cp.divide):
        assert isinstance(function(dev, 2.0), cp.ndarray)
    got = dev.get()
    assert type(got) is np.ndarray and np.array_equal(got, host)
    got[0, 0] = 99.0
    assert dev[0, 0] == 0.0  # .get() copies
    assert type(cp.asnumpy(dev)) is np.ndarray


def test_mixing_host_and_device_arrays_is_an_error() -> None:
    dev = cp.ones(3)
    with pytest.raises(TypeError, match="numpy.ndarray"):
        _ = dev + np.ones(3)
    with pytest.raises(TypeError, match="numpy.ndarray"):
        _ = np.ones(3) * dev
    with pytest.raises(TypeError, match="numpy.ndarray"):
        cp.sum(np.ones(3))
    with pytest.raises(TypeError):
        cp.ascontiguousarray(np.ones(3))


def test_creation_functions() -> None:
    assert np.isnan(cp.empty(4).get()).all()  # uninitialised memory is poisoned
    assert cp.empty((2, 2), dtype=cp.int32).get().tolist() == [[-1515870811] * 2] * 2
    assert cp.zeros(3, dtype=cp.float32).dtype == np.float32
    assert cp.ones((2, 2)).get().tolist() == [[1.0, 1.0], [1.0, 1.0]]
    assert cp.full(2, 7, dtype=cp.int64).get().tolist() == [7, 7]
    like = cp.zeros_like(cp.ones((2, 3), dtype=cp.float32))
    assert like.shape == (2, 3) and like.dtype == np.float32 and isinstance(like, cp.ndarray)
    assert cp.full_like(like, 2.5).get().tolist() == [[2.5] * 3] * 2
    assert cp.empty_like(like).dtype == np.float32
    assert cp.arange(4, dtype=cp.int32).get().tolist() == [0, 1, 2, 3]
    dev = cp.asarray([1.0, 2.0])
    assert cp.asarray(dev) is dev and cp.asarray(dev, dtype=cp.float32).dtype == np.float32
    strided = cp.asarray(np.arange(6.0))[::2]
    assert not strided.flags.c_contiguous and cp.ascontiguousarray(strided).flags.c_contiguous
    assert cp.dtype("float32") == cp.float32


def test_fake_cupy_installed_as_cupy() -> None:
    before = sys.modules.get("cupy")
    with fake_cupy_installed():
        import cupy

        assert cupy is cp
    assert sys.modules.get("cupy") is before


# ----------------------------------------------------------------- running kernels


@pytest.mark.parametrize("n", [1, 100, 256, 1000, 5000])
def test_grid_stride_elementwise(module: cp.RawModule, n: int) -> None:
    kernel = module.get_function("axpb")
    x = _rand(n)
    y = cp.empty(n)
    kernel((4,), (256,), (cp.asarray(x), cp.full(1, 0.5), y, 2.0, n))
    np.testing.assert_array_equal(y.get(), 2.0 * x + 0.5)


def test_block_reduction_and_two_stage_sum(module: cp.RawModule) -> None:
    kernel = module.get_function("block_sum")
    n, blocks = 10_000, 7
    x = _rand(n, seed=1)
    partial = cp.empty(blocks)
    kernel((blocks,), (256,), (cp.asarray(x), partial, n))
    stride = np.arange(n) % (blocks * 256) // 256  # block of each element
    np.testing.assert_allclose(partial.get(), [x[stride == b].sum() for b in range(blocks)])
    total = cp.empty(1)
    kernel((1,), (256,), (partial, total, blocks))
    np.testing.assert_allclose(total.get()[0], x.sum(), rtol=1e-12)


def test_the_reduction_is_wrong_without_a_real_barrier() -> None:
    # The same kernel with __syncthreads() a no-op: threads run to completion in turn
    # and read partial sums other threads have not written yet.
    no_barrier = "#undef __syncthreads\n#define __syncthreads()\n" + KERNELS
    kernel = cp.RawModule(code=no_barrier).get_function("block_sum")
    x = _rand(4096, seed=2)
    total = cp.empty(1)
    kernel((1,), (256,), (cp.asarray(x), total, 4096))
    assert not np.isclose(total.get()[0], x.sum())


def test_shared_value_written_by_another_thread(module: cp.RawModule) -> None:
    out = cp.zeros(3 * 64, dtype=cp.int32)
    module.get_function("handoff")((3,), (64,), (out,))
    assert (out.get() == 42).all()


def test_dynamic_shared_memory(module: cp.RawModule) -> None:
    x = _rand(4 * 32, seed=3)
    y = cp.empty(4 * 32)
    module.get_function("reverse_blocks")((4,), (32,), (cp.asarray(x), y), shared_mem=32 * 8)
    np.testing.assert_array_equal(y.get(), x.reshape(4, 32)[:, ::-1].reshape(-1))


def test_atomics(module: cp.RawModule) -> None:
    n = 1000
    x = _rand(n, seed=4)
    total = cp.zeros(1)
    counter = cp.zeros(1, dtype=cp.int32)
    order = cp.full(n, -1, dtype=cp.int32)
    extremes = cp.asarray(np.array([-(2**31), 2**31 - 1], dtype=np.int32))
    args = (cp.asarray(x), total, counter, order, extremes, n)
    module.get_function("atomic_sum")((8,), (128,), args)
    np.testing.assert_allclose(total.get()[0], x.sum(), rtol=1e-12)
    assert counter.get()[0] == n
    assert sorted(order.get().tolist()) == list(range(n))  # each old value once
    values = np.arange(n) * 7 % 1000
    assert extremes.get().tolist() == [values.max(), values.min() - 500]


def test_float32_kernel(module: cp.RawModule) -> None:
    n = 300
    x = _rand(n, seed=5, dtype=np.float32)
    y = cp.empty(n, dtype=cp.float32)
    module.get_function("exp_scale")((2,), (256,), (cp.asarray(x), y, np.float32(1.5), np.int32(n)))
    expected = np.float32(1.5) * np.exp(x) + np.log1p(np.abs(x)) + np.tanh(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.get(), expected, rtol=1e-6)


def test_double_math_functions(module: cp.RawModule) -> None:
    x = np.array([-2.5, -0.3, 0.0, 0.7, 3.2, np.nan])
    y = cp.empty(x.size)
    module.get_function("double_math")((1,), (32,), (cp.asarray(x), y, np.uint32(x.size), True))
    v = x[:-1]
    r = (
        np.exp(v) + np.log(np.abs(v) + 1) + np.log1p(v * v) + np.expm1(v) + np.sin(v)
        + np.cos(v) + np.tanh(v) + np.sqrt(np.abs(v)) + np.abs(v) ** 1.5 + np.fmax(v, 0)
        + np.fmin(v, 0) + np.copysign(1.0, v) + np.floor(v) + np.ceil(v)
    )  # fmt: skip
    got = y.get()
    np.testing.assert_allclose(got[:-1], -r, rtol=1e-14)
    assert np.isnan(got[-1])


def test_3d_grids_and_blocks(module: cp.RawModule) -> None:
    grid, block = (3, 2, 2), (4, 3, 2)
    out = cp.zeros(12 * 24, dtype=cp.int64)
    module.get_function("index_map")(grid, block, (out,))
    tz, ty, tx = np.meshgrid(range(2), range(3), range(4), indexing="ij")
    threads = (tx + 10 * ty + 100 * tz).reshape(-1)
    bz, by, bx = np.meshgrid(range(2), range(2), range(3), indexing="ij")
    blocks = (1000 * bx + 10000 * by + 100000 * bz).reshape(-1)
    expected = (blocks[:, None] + threads[None, :] + 32_000_000).reshape(-1)
    np.testing.assert_array_equal(out.get(), expected)


def test_2d_matrix_fill(module: cp.RawModule) -> None:
    rows, cols = 10, 13
    m = cp.zeros((rows, cols), dtype=cp.float32)
    grid = ((cols + 7) // 8, (rows + 3) // 4)
    module.get_function("fill_2d")(grid, (8, 4), (m, np.int32(rows), np.int32(cols)))
    r, c = np.mgrid[:rows, :cols]
    np.testing.assert_array_equal(m.get(), (100 * r + c).astype(np.float32))


def test_one_dimensional_sizes_may_be_ints(module: cp.RawModule) -> None:
    y = cp.empty(5)
    module.get_function("axpb")(1, 8, (cp.ones(5), cp.zeros(1), y, 3.0, 5))
    assert y.get().tolist() == [3.0] * 5


def test_device_globals_and_launch_bounds(module: cp.RawModule) -> None:
    module.get_function("count_threads")((3,), (64,), ())
    out = cp.zeros(1, dtype=cp.uint64)
    module.get_function("read_count")(1, 1, (out,))
    assert out.get()[0] == 192


def test_more_atomics(module: cp.RawModule) -> None:
    f, u = cp.zeros(1, dtype=cp.float32), cp.zeros(1, dtype=cp.uint32)
    ull, i = cp.zeros(1, dtype=np.uint64), cp.zeros(4, dtype=cp.int32)
    module.get_function("more_atomics")((2,), (32,), (f, u, ull, i))
    assert (f.get()[0], u.get()[0], ull.get()[0]) == (32.0, 128, 192)
    assert i.get().tolist() == [1, 7, -64, 31]


# --------------------------------------------------------------- emulator errors


def test_divergent_return_before_barrier(module: cp.RawModule) -> None:
    kernel = module.get_function("divergent_return")
    with pytest.raises(KernelLaunchError, match=r"divergent_return.*divergent __syncthreads"):
        kernel((1,), (32,), (cp.zeros(32),))


def test_threads_at_different_barriers(module: cp.RawModule) -> None:
    kernel = module.get_function("divergent_branches")
    with pytest.raises(KernelLaunchError, match=r"divergent_branches.*line \d+.*line \d+"):
        kernel((1,), (32,), (cp.zeros(32),))
    # the module still works after a failed launch
    y = cp.empty(4)
    module.get_function("axpb")((1,), (4,), (cp.ones(4), cp.zeros(1), y, 1.0, 4))
    assert y.get().tolist() == [1.0] * 4


@pytest.mark.parametrize(
    ("grid", "block", "shared_mem"),
    [
        ((1,), (2048,), 0),
        ((1,), (64, 32), 0),  # 2048 threads
        ((1,), (1, 1, 65), 0),
        ((0,), (32,), 0),
        ((1, 70000), (32,), 0),
        ((1,), (32,), 64 * 1024),
    ],
)
def test_impossible_launch_configurations(
    module: cp.RawModule, grid: tuple[int, ...], block: tuple[int, ...], shared_mem: int
) -> None:
    kernel = module.get_function("axpb")
    args = (cp.ones(1), cp.zeros(1), cp.empty(1), 1.0, 1)
    with pytest.raises(KernelLaunchError, match="axpb.*CUDA_ERROR_INVALID_VALUE"):
        kernel(grid, block, args, shared_mem=shared_mem)


def test_1024_threads_per_block_are_allowed(module: cp.RawModule) -> None:
    out = cp.zeros(3 * 1024, dtype=cp.int32)
    module.get_function("handoff")((3,), (1024,), (out,))
    assert (out.get() == 42).all()


# ------------------------------------------------------------------ argument checks


def _axpb_args(**changes: object) -> tuple[object, ...]:
    args = {"x": cp.ones(4), "b": cp.zeros(1), "y": cp.empty(4), "a": 2.0, "n": 4}
    args.update(changes)
    return tuple(args.values())


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"x": np.ones(4)}, TypeError, r"argument 0 .*numpy\.ndarray.*cupy\.asarray"),
        ({"x": [1.0] * 4}, TypeError, "expected a cupy.ndarray"),
        ({"x": cp.ones(4, dtype=cp.float32)}, TypeError, "expected an array of float64"),
        ({"y": cp.empty(8)[::2]}, ValueError, "not C-contiguous"),
        ({"a": np.float32(2.0)}, TypeError, r"argument 3 .*numpy\.float64.*got numpy\.float32"),
        ({"a": 2}, TypeError, r"numpy\.float64 or a Python float, got int"),
        ({"a": cp.asarray(2.0)}, TypeError, "device arrays are passed as pointers"),
        ({"n": 4.0}, TypeError, r"numpy\.int64 or a Python int, got float"),
        ({"n": np.int32(4)}, TypeError, r"got numpy\.int32"),
        ({"n": True}, TypeError, "got bool"),
        ({"n": 2**63}, OverflowError, "long long"),
    ],
)
def test_argument_checks(
    module: cp.RawModule, changes: dict[str, object], error: type, message: str
) -> None:
    kernel = module.get_function("axpb")
    with pytest.raises(error, match=message):
        kernel((1,), (32,), _axpb_args(**changes))


def test_numpy_scalars_of_the_exact_type_are_accepted(module: cp.RawModule) -> None:
    y = cp.empty(4)
    module.get_function("axpb")((1,), (32,), _axpb_args(y=y, a=np.float64(3.0), n=np.int64(4)))
    assert y.get().tolist() == [3.0] * 4


def test_python_int_is_rejected_for_an_int_parameter(module: cp.RawModule) -> None:
    # CuPy passes a Python int as a long long: 8 bytes where `int` takes 4.
    kernel = module.get_function("fill_2d")
    with pytest.raises(TypeError, match=r"argument 1 \(int rows\): expected numpy\.int32, got int"):
        kernel((1,), (8, 4), (cp.zeros((2, 2), dtype=cp.float32), 2, np.int32(2)))


def test_argument_count_and_container(module: cp.RawModule) -> None:
    kernel = module.get_function("axpb")
    with pytest.raises(TypeError, match=r"'axpb' takes 5 arguments .*got 4"):
        kernel((1,), (32,), _axpb_args()[:4])
    with pytest.raises(TypeError, match="args must be a tuple"):
        kernel((1,), (32,), list(_axpb_args()))


def test_restrict_pointers_must_not_alias_written_arrays(module: cp.RawModule) -> None:
    x = cp.ones(4)
    with pytest.raises(ValueError, match=r"arguments 0 \(x\) and 2 \(y\) overlap"):
        module.get_function("axpb")((1,), (32,), _axpb_args(x=x, y=x))


def test_read_only_array_for_a_non_const_pointer(module: cp.RawModule) -> None:
    y = cp.empty(4)
    y.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        module.get_function("axpb")((1,), (32,), _axpb_args(y=y))


# --------------------------------------------------------- modules and compilation


def test_linkage_and_name_expressions() -> None:
    module = cp.RawModule(code=LINKAGE)
    y = cp.zeros(2)
    module.get_function("in_block")((1,), (2,), (y,))
    assert y.get().tolist() == [2.0, 2.0]
    with pytest.raises(KeyError, match="C\\+\\+ linkage"):
        module.get_function("mangled")
    with pytest.raises(KeyError, match="no __global__ function 'missing'"):
        module.get_function("missing")
    named = cp.RawModule(code=LINKAGE, name_expressions=["mangled"])
    named.get_function("mangled")((1,), (2,), (y,))
    assert y.get().tolist() == [1.0, 1.0]


def test_raw_kernel(module: cp.RawModule) -> None:
    kernel = cp.RawKernel(KERNELS, "axpb")
    y = cp.empty(3)
    kernel(1, 3, (cp.ones(3), cp.ones(1), y, 2.0, 3))
    assert y.get().tolist() == [3.0] * 3
    assert [p.name for p in kernel.params] == ["x", "b", "y", "a", "n"]
    assert str(kernel.params[0]) == "const double* __restrict__ x"


def test_compile_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYMGEN_EMULATOR_CACHE", str(tmp_path))
    code = f"// {uuid.uuid4()}\n" + LINKAGE  # new source: not in any cache yet
    before = cp.compile_stats()
    cp.RawModule(code=code).get_function("in_block")
    cp.RawModule(code=code).get_function("in_block")
    after_memory = cp.compile_stats()
    cp.clear_memory_cache()
    cp.RawModule(code=code).get_function("in_block")
    after_disk = cp.compile_stats()
    assert after_memory["compiles"] == before["compiles"] + 1
    assert after_memory["memory_hits"] == before["memory_hits"] + 1
    assert after_disk["compiles"] == after_memory["compiles"]
    assert after_disk["disk_hits"] == after_memory["disk_hits"] + 1
    assert len(list(tmp_path.glob("*.so"))) == 1  # no temporary files left behind
    assert not list(tmp_path.glob(".*"))


def test_options_are_part_of_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYMGEN_EMULATOR_CACHE", str(tmp_path))
    code = r"""
extern "C" __global__ void fill(double* y) { y[threadIdx.x] = VALUE; }
"""
    y = cp.zeros(2)
    cp.RawModule(code=code, options=("-DVALUE=3.0", "--use_fast_math")).get_function("fill")(
        1, 2, (y,)
    )
    assert y.get().tolist() == [3.0, 3.0]
    cp.RawModule(code=code, options=("-DVALUE=4.0",)).get_function("fill")(1, 2, (y,))
    assert y.get().tolist() == [4.0, 4.0]
    with pytest.raises(ValueError, match="not supported"):
        cp.RawModule(code=code, options=("--bogus",)).get_function("fill")


def test_compiler_errors_are_readable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYMGEN_EMULATOR_CACHE", str(tmp_path))
    broken = 'extern "C" __global__ void broken(double* y)\n{\n    y[0] = undefined_name;\n}\n'
    with pytest.raises(CompileError, match=r"(?s)kernel\.cu:3:.*undefined_name"):
        cp.RawModule(code=broken).get_function("broken")
    unused = 'extern "C" __global__ void warns(double* y)\n{\n    int unused = 1;\n}\n'
    with pytest.raises(CompileError, match="unused"):  # -Wall -Werror
        cp.RawModule(code=unused).get_function("warns")
    assert not list(tmp_path.glob("*.so"))


def test_unsupported_source_forms(module: cp.RawModule) -> None:
    with pytest.raises(KeyError, match="template"):
        module.get_function("templated")
    with pytest.raises(ValueError, match="no templates"):
        cp.RawModule(code=KERNELS, name_expressions=["templated<float>"])
    in_namespace = 'namespace n { extern "C" __global__ void k(double* y) {} }'
    with pytest.raises(TypeError, match="namespace"):
        cp.RawModule(code=in_namespace).get_function("k")
    file_scope = 'extern __shared__ double s[];\nextern "C" __global__ void k(double* y) {}'
    with pytest.raises(CompileError, match="line 1: file-scope `extern __shared__`"):
        cp.RawModule(code=file_scope).get_function("k")


def test_unsupported_parameter_types_are_reported() -> None:
    code = 'extern "C" __global__ void k(size_t n, double** p) {}'
    with pytest.raises(TypeError, match="size_t n.*unsupported type"):
        cp.RawModule(code=code).get_function("k")


# ------------------------------------------------------------------------- nvcc


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on PATH")
def test_kernels_are_valid_cuda(tmp_path: Path) -> None:
    source = tmp_path / "kernels.cu"
    source.write_text(KERNELS + LINKAGE)
    command = ["nvcc", "-arch=sm_90", "-cubin", "-Werror", "all-warnings", "-std=c++17"]
    done = subprocess.run(
        [*command, "-o", str(tmp_path / "kernels.cubin"), str(source)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr


def test_launches_from_several_python_threads(module: cp.RawModule) -> None:

    kernel = module.get_function("block_sum")
    inputs = [_rand(3000, seed=s) for s in range(6)]
    results: dict[int, float] = {}

    def run(i: int) -> None:
        partial, total = cp.empty(4), cp.empty(1)
        kernel((4,), (256,), (cp.asarray(inputs[i]), partial, 3000))
        kernel((1,), (256,), (partial, total, 4))
        results[i] = float(total.get()[0])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, x in enumerate(inputs):
        assert results[i] == pytest.approx(x.sum(), rel=1e-12)


def _mappings() -> int:
    with open("/proc/self/maps", encoding="ascii") as maps:
        return sum(1 for _ in maps)


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc/self/maps")
def test_a_launch_with_barriers_gives_its_fiber_stacks_back() -> None:
    """Each kernel library has its own fiber stacks (two mappings each, with the guard page);
    kept after a launch, some thirty libraries of 1024-thread blocks used up the process's
    map count (vm.max_map_count) and every later launch failed: "cannot map a fiber stack"."""
    # a library of its own (nothing launched from it yet), loaded before counting
    fresh = cp.RawModule(code=f"// {uuid.uuid4()}\n" + KERNELS)
    kernel = fresh.get_function("handoff")
    out = cp.empty(2 * 1024, dtype=np.int32)
    before = _mappings()
    kernel((2,), (1024,), (out,))
    assert _mappings() <= before + 8  # 2048 more when the stacks stayed mapped
    np.testing.assert_array_equal(out.get(), 42)
