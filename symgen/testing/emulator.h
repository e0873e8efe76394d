// symgen CUDA emulator: lets CUDA kernel source (written for NVRTC/nvcc, with no
// #include of its own) compile unchanged as C++17 with g++ and run on the CPU.
//
// What it emulates
//   * the qualifiers __global__ __device__ __host__ __forceinline__ __noinline__
//     __launch_bounds__(...) __align__(n) __constant__ and __shared__
//     (__restrict__ is a g++ keyword already);
//   * threadIdx, blockIdx (uint3), blockDim, gridDim (dim3), warpSize (32);
//   * __syncthreads() as a real barrier across all threads of the block;
//   * atomicAdd (float, double, int, unsigned int, unsigned long long), atomicSub,
//     atomicMax / atomicMin (int, unsigned int), atomicExch, atomicCAS;
//   * the <cmath> / <math.h> functions for float and double (expf, log1p, tanhf,
//     fmax, isnan, INFINITY, NAN, ...), CUDA's min / max overloads, rsqrt(f),
//     __expf, __logf, __fdividef, __ldg, __threadfence();
//   * dynamic shared memory: `extern __shared__ T name[];` inside a function body is
//     rewritten by symgen.testing.fakecupy into a pointer to this launch's buffer
//     (up to 48 KiB; filled with 0xff bytes, i.e. NaN, before each block);
//   * __CUDA_ARCH__ is 900 (sm_90) and SYMGEN_CUDA_EMULATOR is 1.
//
// How a launch runs
//   The blocks of the grid run one after another on the calling OS thread (x fastest,
//   then y, then z). The threads of a block are user-level fibers (ucontext:
//   makecontext/swapcontext), one 256 KiB stack each with a guard page, stacks reused
//   between blocks and launches. The fibers run round robin in thread order (x fastest)
//   until each reaches __syncthreads() or returns; a barrier releases only when every
//   thread of the block waits at it. A thread that returns while others wait at a
//   barrier (a divergent barrier, undefined behaviour in CUDA), or threads waiting at
//   different __syncthreads() calls, make the launch fail with a message.
//   A module whose source never mentions __syncthreads runs each thread of a block
//   to completion in turn on the calling stack (no fibers needed: same result, faster).
//   Launches of one compiled module are serialised by a mutex, so __shared__ is plain
//   `static` storage: all fibers of the block run on the one OS thread and see the
//   same variable, and the next block reuses it (as a GPU reuses shared memory; like
//   there, a block must not read shared memory it has not written).
//
// What it does not emulate
//   * warps: no __shfl_*_sync, __ballot_sync, warp-synchronous programming, lane ids;
//   * the memory model: threads of a block interleave only at __syncthreads(), so a
//     data race between threads (a missing barrier) may go unnoticed, and atomics are
//     plain read-modify-writes;
//   * concurrency between blocks: blocks run sequentially, so inter-block
//     communication (spin locks, grid sync, cooperative groups) is not supported;
//   * device floating point: g++ rounds like the host (no FMA contraction, exact
//     libm), CUDA's expf & co. have a few ulp error and nvcc contracts a*b+c into FMA;
//   * memory spaces: pointers are host pointers; no bounds checking;
//   * deep recursion or big local arrays: a fiber overflowing its 256 KiB stack hits
//     the guard page and the process dies with SIGSEGV;
//   * device printf/assert/__trap: printf is the host's (stdout, buffered), assert and
//     __trap are not provided.
#ifndef SYMGEN_TESTING_EMULATOR_H
#define SYMGEN_TESTING_EMULATOR_H

#include <cmath>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <math.h>
#include <pthread.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#define SYMGEN_CUDA_EMULATOR 1
#define __CUDA_ARCH__ 900

// ---------------------------------------------------------------- CUDA types

struct uint3 {
    unsigned int x, y, z;
};

struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1)
        : x(vx), y(vy), z(vz) {}
    constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
};

constexpr int warpSize = 32;

// ------------------------------------------------------------ the launch state

namespace symgen_emu {
namespace detail {

constexpr std::size_t kFiberStackBytes = 256 * 1024;
constexpr std::size_t kMaxThreadsPerBlock = 1024;
constexpr std::size_t kMaxDynamicShared = 48 * 1024;

enum class FiberState : unsigned char { kRunnable, kAtBarrier, kDone };

struct Fiber {
    ucontext_t context;
    uint3 thread_idx;
    FiberState state;
    int barrier_line;
};

struct Launch {
    const char* kernel;
    void (*body)(void*);
    void* args;
    bool with_fibers;
    std::size_t nthreads;
    std::size_t current;      // the running fiber
    std::size_t shared_bytes;  // dynamic shared memory
    char* error;
    std::size_t error_len;
    bool failed;
};

struct alignas(16) SharedBuffer {
    unsigned char bytes[kMaxDynamicShared];
};

// Launches are serialised by g_launch_mutex, so the state is plain globals (one set per
// compiled module); fibers and their stacks are reused between blocks and launches.
inline uint3 g_thread_idx = {0, 0, 0};
inline uint3 g_block_idx = {0, 0, 0};
inline dim3 g_block_dim;
inline dim3 g_grid_dim;
inline Launch* g_launch = nullptr;
inline pthread_mutex_t g_launch_mutex = PTHREAD_MUTEX_INITIALIZER;
inline ucontext_t g_scheduler;
inline Fiber g_fibers[kMaxThreadsPerBlock];
inline char* g_stacks[kMaxThreadsPerBlock];  // mapped on first use, each with a guard page
inline SharedBuffer g_dynamic_shared;

__attribute__((format(printf, 2, 3))) inline void fail(Launch& launch, const char* fmt, ...) {
    if (launch.failed) return;  // keep the first error
    launch.failed = true;
    if (launch.error == nullptr || launch.error_len == 0) return;
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(launch.error, launch.error_len, fmt, ap);
    va_end(ap);
}

// The usable stack of fiber i: kFiberStackBytes above a PROT_NONE guard page, so that
// overflowing the stack faults instead of corrupting the next one.
inline char* fiber_stack(std::size_t i) {
    if (g_stacks[i] != nullptr) return g_stacks[i];
    const long page = sysconf(_SC_PAGESIZE);
    const std::size_t guard = page > 0 ? static_cast<std::size_t>(page) : 4096;
    void* base = mmap(nullptr, kFiberStackBytes + guard, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (base == MAP_FAILED) return nullptr;
    if (mprotect(base, guard, PROT_NONE) != 0) return nullptr;
    g_stacks[i] = static_cast<char*>(base) + guard;
    return g_stacks[i];
}

// Unmap the fiber stacks at the end of a launch. The emulator's globals are hidden in each
// kernel library, so every library keeps stacks of its own: two mappings each (the stack and
// its guard page), up to 2 x 1024 per library, held for the life of the process would use up
// its map count (vm.max_map_count, 65530 by default) after some thirty libraries, and every
// later launch would fail. Mapping them again costs a few microseconds a fiber per launch.
inline void release_fiber_stacks() {
    const long page = sysconf(_SC_PAGESIZE);
    const std::size_t guard = page > 0 ? static_cast<std::size_t>(page) : 4096;
    for (char*& stack : g_stacks) {
        if (stack == nullptr) continue;
        munmap(stack - guard, kFiberStackBytes + guard);
        stack = nullptr;
    }
}

inline uint3 thread_index(std::size_t linear) {
    const std::size_t bx = g_block_dim.x, by = g_block_dim.y;
    return uint3{static_cast<unsigned int>(linear % bx),
                 static_cast<unsigned int>((linear / bx) % by),
                 static_cast<unsigned int>(linear / (bx * by))};
}

// Entry of every fiber: run the kernel body; returning resumes uc_link (the scheduler).
inline void fiber_main() {
    Launch& launch = *g_launch;
    launch.body(launch.args);
    g_fibers[launch.current].state = FiberState::kDone;
}

inline bool start_fibers(Launch& launch) {
    for (std::size_t i = 0; i < launch.nthreads; ++i) {
        Fiber& fiber = g_fibers[i];
        char* stack = fiber_stack(i);
        if (stack == nullptr) {
            fail(launch, "kernel %s: cannot map a %zu-byte fiber stack", launch.kernel,
                 kFiberStackBytes);
            return false;
        }
        if (getcontext(&fiber.context) != 0) {
            fail(launch, "kernel %s: getcontext failed", launch.kernel);
            return false;
        }
        fiber.context.uc_stack.ss_sp = stack;
        fiber.context.uc_stack.ss_size = kFiberStackBytes;
        fiber.context.uc_link = &g_scheduler;
        makecontext(&fiber.context, &fiber_main, 0);
        fiber.thread_idx = thread_index(i);
        fiber.state = FiberState::kRunnable;
        fiber.barrier_line = 0;
    }
    return true;
}

// Run every runnable fiber, in thread order, until it waits at a barrier or returns.
inline void run_runnable_fibers(Launch& launch) {
    for (std::size_t i = 0; i < launch.nthreads; ++i) {
        Fiber& fiber = g_fibers[i];
        if (fiber.state != FiberState::kRunnable) continue;
        launch.current = i;
        g_thread_idx = fiber.thread_idx;
        swapcontext(&g_scheduler, &fiber.context);
    }
}

inline void report_divergence(Launch& launch, const Fiber& done, const Fiber& waiting) {
    fail(launch,
         "kernel %s: divergent __syncthreads() in block (%u,%u,%u): thread (%u,%u,%u) "
         "returned while thread (%u,%u,%u) waits at the barrier on line %d",
         launch.kernel, g_block_idx.x, g_block_idx.y, g_block_idx.z, done.thread_idx.x,
         done.thread_idx.y, done.thread_idx.z, waiting.thread_idx.x, waiting.thread_idx.y,
         waiting.thread_idx.z, waiting.barrier_line);
}

inline void report_mismatch(Launch& launch, const Fiber& a, const Fiber& b) {
    fail(launch,
         "kernel %s: divergent __syncthreads() in block (%u,%u,%u): thread (%u,%u,%u) "
         "waits at the barrier on line %d, thread (%u,%u,%u) at the one on line %d",
         launch.kernel, g_block_idx.x, g_block_idx.y, g_block_idx.z, a.thread_idx.x,
         a.thread_idx.y, a.thread_idx.z, a.barrier_line, b.thread_idx.x, b.thread_idx.y,
         b.thread_idx.z, b.barrier_line);
}

// After a round: true when every thread waits at the same barrier (they are released),
// false when the block has finished or failed.
inline bool release_barrier(Launch& launch) {
    const Fiber* done = nullptr;
    const Fiber* waiting = nullptr;
    for (std::size_t i = 0; i < launch.nthreads; ++i) {
        const Fiber& fiber = g_fibers[i];
        if (fiber.state == FiberState::kDone && done == nullptr) done = &fiber;
        if (fiber.state != FiberState::kAtBarrier) continue;
        if (waiting == nullptr) {
            waiting = &fiber;
        } else if (fiber.barrier_line != waiting->barrier_line) {
            report_mismatch(launch, *waiting, fiber);
            return false;
        }
    }
    if (waiting == nullptr) return false;  // every thread returned
    if (done != nullptr) {
        report_divergence(launch, *done, *waiting);
        return false;
    }
    for (std::size_t i = 0; i < launch.nthreads; ++i) g_fibers[i].state = FiberState::kRunnable;
    return true;
}

inline void run_block_with_fibers(Launch& launch) {
    if (!start_fibers(launch)) return;
    do {
        run_runnable_fibers(launch);
    } while (release_barrier(launch));
}

inline void run_block_directly(Launch& launch) {
    for (std::size_t i = 0; i < launch.nthreads && !launch.failed; ++i) {
        g_thread_idx = thread_index(i);
        launch.body(launch.args);
    }
}

// __syncthreads(): park this fiber and go back to the scheduler.
inline void syncthreads(int line) {
    Launch& launch = *g_launch;
    if (!launch.with_fibers) {
        fail(launch, "kernel %s: __syncthreads() (line %d) in a module launched without fibers",
             launch.kernel, line);
        return;
    }
    Fiber& fiber = g_fibers[launch.current];
    fiber.state = FiberState::kAtBarrier;
    fiber.barrier_line = line;
    swapcontext(&fiber.context, &g_scheduler);
}

inline bool valid_configuration(const unsigned int* grid, const unsigned int* block,
                                unsigned long long shared_bytes) {
    for (int i = 0; i < 3; ++i) {
        if (grid[i] == 0 || block[i] == 0) return false;
    }
    const unsigned long long threads = 1ULL * block[0] * block[1] * block[2];
    return threads <= kMaxThreadsPerBlock && block[2] <= 64 && grid[1] <= 65535 &&
           grid[2] <= 65535 && shared_bytes <= kMaxDynamicShared;
}

inline void run_grid(Launch& launch) {
    for (unsigned int z = 0; z < g_grid_dim.z && !launch.failed; ++z) {
        for (unsigned int y = 0; y < g_grid_dim.y && !launch.failed; ++y) {
            for (unsigned int x = 0; x < g_grid_dim.x && !launch.failed; ++x) {
                g_block_idx = uint3{x, y, z};
                // shared memory nobody wrote reads as NaN (floating point) or -1
                std::memset(g_dynamic_shared.bytes, 0xff, launch.shared_bytes);
                if (launch.with_fibers) {
                    run_block_with_fibers(launch);
                } else {
                    run_block_directly(launch);
                }
            }
        }
    }
}

struct LockGuard {
    explicit LockGuard(pthread_mutex_t* mutex) : mutex_(mutex) { pthread_mutex_lock(mutex_); }
    ~LockGuard() { pthread_mutex_unlock(mutex_); }
    LockGuard(const LockGuard&) = delete;
    LockGuard& operator=(const LockGuard&) = delete;
    pthread_mutex_t* mutex_;
};

}  // namespace detail

// Run body(args) as a kernel over the grid; returns 0, or 1 with a message in error.
// with_fibers = false runs each thread to completion in turn (only for kernels that
// never call __syncthreads()).
inline int launch(const char* kernel, const unsigned int* grid, const unsigned int* block,
                  unsigned long long shared_bytes, bool with_fibers, void (*body)(void*),
                  void* args, char* error, unsigned long long error_len) {
    using namespace detail;
    LockGuard lock(&g_launch_mutex);
    Launch launch{};
    launch.kernel = kernel;
    launch.body = body;
    launch.args = args;
    launch.with_fibers = with_fibers;
    launch.error = error;
    launch.error_len = static_cast<std::size_t>(error_len);
    if (!valid_configuration(grid, block, shared_bytes)) {
        fail(launch, "kernel %s: invalid launch configuration", kernel);
        return 1;
    }
    launch.nthreads = 1ULL * block[0] * block[1] * block[2];
    launch.shared_bytes = static_cast<std::size_t>(shared_bytes);
    g_grid_dim = dim3(grid[0], grid[1], grid[2]);
    g_block_dim = dim3(block[0], block[1], block[2]);
    g_launch = &launch;
    run_grid(launch);
    g_launch = nullptr;
    if (with_fibers) release_fiber_stacks();
    return launch.failed ? 1 : 0;
}

// The dynamic shared memory (`extern __shared__`) of the running launch.
inline void* dynamic_shared_memory() { return detail::g_dynamic_shared.bytes; }

}  // namespace symgen_emu

// ------------------------------------------------------ qualifiers and built-ins

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __constant__
#define __shared__ static

#define threadIdx (static_cast<const uint3&>(::symgen_emu::detail::g_thread_idx))
#define blockIdx (static_cast<const uint3&>(::symgen_emu::detail::g_block_idx))
#define blockDim (static_cast<const dim3&>(::symgen_emu::detail::g_block_dim))
#define gridDim (static_cast<const dim3&>(::symgen_emu::detail::g_grid_dim))

#define __syncthreads() ::symgen_emu::detail::syncthreads(__LINE__)

inline void __threadfence() {}
inline void __threadfence_block() {}

// ------------------------------------------------------------------- atomics
// Fibers of a block never run at the same time and blocks run one after another,
// so a plain read-modify-write is atomic here. Each returns the old value.

inline float atomicAdd(float* address, float value) {
    const float old = *address;
    *address = old + value;
    return old;
}
inline double atomicAdd(double* address, double value) {
    const double old = *address;
    *address = old + value;
    return old;
}
inline int atomicAdd(int* address, int value) {
    const int old = *address;
    *address = old + value;
    return old;
}
inline unsigned int atomicAdd(unsigned int* address, unsigned int value) {
    const unsigned int old = *address;
    *address = old + value;
    return old;
}
inline unsigned long long atomicAdd(unsigned long long* address, unsigned long long value) {
    const unsigned long long old = *address;
    *address = old + value;
    return old;
}
inline int atomicSub(int* address, int value) {
    const int old = *address;
    *address = old - value;
    return old;
}
inline unsigned int atomicSub(unsigned int* address, unsigned int value) {
    const unsigned int old = *address;
    *address = old - value;
    return old;
}
inline int atomicMax(int* address, int value) {
    const int old = *address;
    *address = old > value ? old : value;
    return old;
}
inline unsigned int atomicMax(unsigned int* address, unsigned int value) {
    const unsigned int old = *address;
    *address = old > value ? old : value;
    return old;
}
inline int atomicMin(int* address, int value) {
    const int old = *address;
    *address = old < value ? old : value;
    return old;
}
inline unsigned int atomicMin(unsigned int* address, unsigned int value) {
    const unsigned int old = *address;
    *address = old < value ? old : value;
    return old;
}
template <typename T>
inline T symgen_emu_exchange(T* address, T value) {
    const T old = *address;
    *address = value;
    return old;
}
inline int atomicExch(int* address, int value) { return symgen_emu_exchange(address, value); }
inline unsigned int atomicExch(unsigned int* address, unsigned int value) {
    return symgen_emu_exchange(address, value);
}
inline float atomicExch(float* address, float value) { return symgen_emu_exchange(address, value); }
template <typename T>
inline T symgen_emu_cas(T* address, T compare, T value) {
    const T old = *address;
    if (old == compare) *address = value;
    return old;
}
inline int atomicCAS(int* address, int compare, int value) {
    return symgen_emu_cas(address, compare, value);
}
inline unsigned int atomicCAS(unsigned int* address, unsigned int compare, unsigned int value) {
    return symgen_emu_cas(address, compare, value);
}
inline unsigned long long atomicCAS(unsigned long long* address, unsigned long long compare,
                                    unsigned long long value) {
    return symgen_emu_cas(address, compare, value);
}

// ---------------------------------------------------------- math beyond <cmath>

inline int min(int a, int b) { return a < b ? a : b; }
inline unsigned int min(unsigned int a, unsigned int b) { return a < b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline float min(float a, float b) { return fminf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline double min(float a, double b) { return fmin(a, b); }
inline double min(double a, float b) { return fmin(a, b); }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned int max(unsigned int a, unsigned int b) { return a > b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double max(double a, double b) { return fmax(a, b); }
inline double max(float a, double b) { return fmax(a, b); }
inline double max(double a, float b) { return fmax(a, b); }

inline float rsqrtf(float x) { return 1.0F / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __fdividef(float a, float b) { return a / b; }
template <typename T>
inline T __ldg(const T* address) {
    return *address;
}

#endif  // SYMGEN_TESTING_EMULATOR_H
