// lpir_host.cuh: just enough of CUDA to run lpir's generated kernels on the host (g++ -std=c++20).
//
// Used by lpir.backends.cuda.emulation to check the emitted CUDA C without a GPU: each thread
// of a block is an OS thread, __syncthreads() a std::barrier, a warp's mma a rendezvous of its
// 32 threads; blocks run one after another. The f16/bf16 types and intrinsics are implemented
// in software with the rounding that the CUDA documentation specifies (to nearest even, IEEE
// overflow; float -> int conversions truncate, saturate and map NaN to 0).
#pragma once

#include <algorithm>
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))

struct uint2 { unsigned x, y; };
struct uint4 { unsigned x, y, z, w; };
struct float2 { float x, y; };
struct lpir_dim3 { unsigned x, y, z; };

namespace lpir_host {
// The first vector access whose address is not a multiple of its size: a GPU faults on it
// ("misaligned address"), x86 does not, so the emulation records it and the runner raises.
inline std::atomic<std::size_t> misaligned_address{0};
inline std::atomic<int> misaligned_bytes{0};
inline void check_alignment(const void* pointer, int bytes) {
    const std::size_t address = reinterpret_cast<std::size_t>(pointer);
    std::size_t none = 0;
    if (address % bytes && misaligned_address.compare_exchange_strong(none, address)) {
        misaligned_bytes = bytes;
    }
}

inline thread_local lpir_dim3 thread_index{0, 0, 0};
inline thread_local lpir_dim3 block_index{0, 0, 0};
inline std::barrier<>* block_barrier = nullptr;
inline std::vector<std::unique_ptr<std::barrier<>>>* warp_barriers = nullptr;

template <typename To, typename From>
inline To bits_as(From from) {
    To to;
    std::memcpy(&to, &from, sizeof(To));
    return to;
}

// Round a double to a binary format with E exponent and M mantissa bits (IEEE: inf, NaN),
// to nearest even; the result's bit pattern.
inline unsigned encode_ieee(double x, int E, int M) {
    const int bias = (1 << (E - 1)) - 1;
    const unsigned sign = std::signbit(x) ? 1u << (E + M) : 0u;
    const unsigned inf = ((1u << E) - 1u) << M;
    if (std::isnan(x)) return inf | (1u << (M - 1));
    double a = std::fabs(x);
    if (std::isinf(a)) return sign | inf;
    const double smallest_normal = std::ldexp(1.0, 1 - bias);
    if (a < smallest_normal) {
        double q = std::nearbyint(std::ldexp(a, bias - 1 + M));  // ties to even
        return sign | (unsigned)q;  // q == 2^M is the smallest normal: contiguous codes
    }
    int exponent;
    std::frexp(a, &exponent);  // a = f * 2^exponent, f in [0.5, 1)
    exponent -= 1;
    double q = std::nearbyint(std::ldexp(a, M - exponent));  // in [2^M, 2^(M+1)]
    if (q == std::ldexp(1.0, M + 1)) {
        q = std::ldexp(1.0, M);
        exponent += 1;
    }
    if (exponent + bias >= (1 << E) - 1) return sign | inf;
    return sign | ((unsigned)(exponent + bias) << M) | ((unsigned)q - (1u << M));
}

inline double decode_ieee(unsigned bits, int E, int M) {
    const int bias = (1 << (E - 1)) - 1;
    const bool negative = (bits >> (E + M)) & 1u;
    const unsigned exponent = (bits >> M) & ((1u << E) - 1u);
    const unsigned mantissa = bits & ((1u << M) - 1u);
    double value;
    if (exponent == (1u << E) - 1u) {
        value = mantissa ? NAN : INFINITY;
    } else if (exponent == 0) {
        value = std::ldexp((double)mantissa, 1 - bias - M);
    } else {
        value = std::ldexp((double)(mantissa | (1u << M)), (int)exponent - bias - M);
    }
    return negative ? -value : value;
}

template <typename T>
inline T saturate(double x, double low, double high) {
    if (std::isnan(x)) return (T)0;
    x = std::trunc(x);
    if (x <= low) return (T)low;
    if (x >= high) return (T)high;
    return (T)x;
}
}  // namespace lpir_host

// ---- shared-memory races ------------------------------------------------------------------------
// What a missing __syncthreads() breaks on a GPU, this emulation (OS threads, in no set order
// between barriers) may or may not show in values; so every byte of shared memory remembers,
// in the block's current barrier phase, which thread wrote it and which thread(s) read it.
// Two threads conflict on a byte in one phase where one writes it and the other reads or
// writes it (a write that leaves the byte as it was does not count: replicas may store alike;
// nor do atomic bit stores among themselves); a cp.async copy writes its bytes from its issue
// until it lands (lpir_cp_async_wait), so any access in between conflicts, the copying
// thread's own included. A read of a byte no thread of the block has written is an error too
// (a GPU's shared memory holds what the previous block left). The first error of a run is
// kept and the runner raises it (emulation.py).
namespace lpir_host {
struct ByteHistory {
    int write_phase = -1, writer = -1;
    int read_phase = -1, reader = -1;  // reader -2: several threads
    int atomic_phase = -1;             // phase of atomic bit stores (any threads)
    int copier = -1;                   // the thread whose cp.async copy is in flight, or -1
};
struct SharedRange {
    const unsigned char* begin = nullptr;
    std::size_t bytes = 0;
    long long block = -1;  // which block's history `history` holds
    std::vector<ByteHistory> history;
};
inline std::mutex race_mutex;
inline std::vector<SharedRange> shared_ranges;
inline thread_local int barrier_phase = 0;
inline std::atomic<long long> block_serial{0};  // counts the blocks of all runs
inline thread_local long long current_block = 0;
inline std::atomic<bool> race_found{false};
inline char race_text[512];
// Every registered array lies in [shared_low, shared_high): the test that spares global
// accesses the lock.
inline std::atomic<std::uintptr_t> shared_low{UINTPTR_MAX}, shared_high{0};

// Called by every thread at its kernel's shared declarations: the first in a block clears the
// array's history (the same static array serves every block).
inline void register_shared(const void* begin, std::size_t bytes) {
    std::lock_guard<std::mutex> lock(race_mutex);
    const auto* start = static_cast<const unsigned char*>(begin);
    for (SharedRange& range : shared_ranges) {
        if (range.begin == start) {
            if (range.block != current_block) {
                range.block = current_block;
                range.history.assign(bytes, ByteHistory{});
            }
            return;
        }
    }
    shared_ranges.push_back(SharedRange{start, bytes, current_block, {}});
    shared_ranges.back().history.assign(bytes, ByteHistory{});
    const auto low = reinterpret_cast<std::uintptr_t>(start);
    shared_low = std::min<std::uintptr_t>(shared_low, low);
    shared_high = std::max<std::uintptr_t>(shared_high, low + bytes);
}

// Keep the run's first error, "<kind> in block (x, y, z): <details>" (the runner raises it).
inline void report(const char* kind, const char* format, ...)
    __attribute__((format(printf, 2, 3)));
inline void report(const char* kind, const char* format, ...) {
    bool none = false;
    if (!race_found.compare_exchange_strong(none, true)) return;
    const int prefix = std::snprintf(race_text, sizeof race_text, "%s in block (%u, %u, %u): ",
                                     kind, block_index.x, block_index.y, block_index.z);
    std::va_list arguments;
    va_start(arguments, format);
    std::vsnprintf(race_text + prefix, sizeof race_text - prefix, format, arguments);
    va_end(arguments);
}

// Two threads on one byte between the same two barriers (other: a thread, -2 several, -1
// unknown).
inline void report_race(const SharedRange& range, std::size_t at, const char* mine, int other,
                        const char* theirs) {
    char who[32];
    if (other >= 0) {
        std::snprintf(who, sizeof who, "thread %d", other);
    } else {
        std::snprintf(who, sizeof who, other == -2 ? "other threads" : "another thread");
    }
    report("shared-memory race", "thread %u %s byte %zu of a %zu-byte shared array that %s %s, "
           "with no barrier between them (after %d barriers)",
           thread_index.x, mine, at, range.bytes, who, theirs, barrier_phase);
}

enum class Access { read, write, atomic, copy_issue, copy_land };

// Record one access of `bytes` bytes at `pointer` (nothing unless it lies in shared memory).
// For a write, `value` holds the bytes about to be written (null: unknown, always a change).
inline void shared_access(const void* pointer, int bytes, Access kind, const void* value) {
    const auto* at = static_cast<const unsigned char*>(pointer);
    const auto address = reinterpret_cast<std::uintptr_t>(at);
    if (address + bytes <= shared_low || address >= shared_high) return;
    std::lock_guard<std::mutex> lock(race_mutex);
    for (SharedRange& range : shared_ranges) {
        if (at < range.begin || at >= range.begin + range.bytes || range.block != current_block) {
            continue;
        }
        const int me = (int)thread_index.x, phase = barrier_phase;
        for (int i = 0; i < bytes && at + i < range.begin + range.bytes; ++i) {
            const std::size_t index = (std::size_t)(at + i - range.begin);
            ByteHistory& h = range.history[index];
            if (h.copier >= 0 && kind != Access::copy_land) {  // a copy in flight: hands off
                if (h.copier != me) {
                    report_race(range, index, "accesses", h.copier, "is copying into (cp.async)");
                } else {
                    report("shared-memory race", "thread %u accesses byte %zu of a %zu-byte "
                           "shared array before its own cp.async copy there has landed (no "
                           "lpir_cp_async_wait covers it)",
                           thread_index.x, index, range.bytes);
                }
                return;
            }
            if (kind == Access::read) {
                if (h.write_phase == phase && h.writer != me) {
                    report_race(range, index, "reads", h.writer, "writes");
                    return;
                }
                if (h.atomic_phase == phase) {
                    report_race(range, index, "reads", -1, "(some) stores bits of");
                    return;
                }
                if (h.write_phase < 0 && h.atomic_phase < 0) {
                    report("uninitialized shared memory", "thread %u reads byte %zu of a "
                           "%zu-byte shared array that no thread of the block has written",
                           thread_index.x, index, range.bytes);
                    return;
                }
                h.reader = h.read_phase == phase && h.reader != me ? -2 : me;
                h.read_phase = phase;
                continue;
            }
            if (kind == Access::copy_issue) {
                h.copier = me;
            } else if (kind == Access::copy_land) {
                h.copier = -1;
            }
            const auto* written = static_cast<const unsigned char*>(value);
            const bool changes = written == nullptr || written[i] != at[i];
            if (kind == Access::atomic) {
                if ((h.write_phase == phase && h.writer != me) ||
                    (h.read_phase == phase && h.reader != me)) {
                    const int other = h.write_phase == phase ? h.writer : h.reader;
                    report_race(range, index, "stores bits of", other, "accesses");
                    return;
                }
                h.atomic_phase = phase;
                continue;
            }
            if (changes && h.read_phase == phase && h.reader != me) {
                report_race(range, index, "writes", h.reader, "reads");
                return;
            }
            if (changes && h.write_phase == phase && h.writer != me) {
                report_race(range, index, "writes", h.writer, "writes");
                return;
            }
            if (changes || h.write_phase != phase) {
                h.write_phase = phase;
                h.writer = me;
            }
        }
        return;
    }
}

// `*pointer` of one element of shared memory, recording the read or the write.
template <typename T>
struct TrackedElement {
    T* pointer;
    operator T() const {
        shared_access(pointer, sizeof(T), Access::read, nullptr);
        return *pointer;
    }
    TrackedElement& operator=(const T& value) {
        shared_access(pointer, sizeof(T), Access::write, &value);
        *pointer = value;
        return *this;
    }
};
template <typename T>
inline TrackedElement<T> tracked(T* pointer) {
    return TrackedElement<T>{pointer};
}
}  // namespace lpir_host

#define threadIdx (lpir_host::thread_index)
#define blockIdx (lpir_host::block_index)

inline void __syncthreads() {
    lpir_host::block_barrier->arrive_and_wait();
    ++lpir_host::barrier_phase;
}

// ---- 16-bit floats -----------------------------------------------------------------------------
struct __half {
    unsigned short bits;
};
struct __nv_bfloat16 {
    unsigned short bits;
};
struct __half2 {
    __half x, y;
    __half2() = default;
    __half2(__half a, __half b) : x(a), y(b) {}
};

inline __half __ushort_as_half(unsigned short b) { return __half{b}; }
inline unsigned short __half_as_ushort(__half h) { return h.bits; }
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short b) { return __nv_bfloat16{b}; }
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.bits; }

inline float __half2float(__half h) { return (float)lpir_host::decode_ieee(h.bits, 5, 10); }
inline float __bfloat162float(__nv_bfloat16 h) { return (float)lpir_host::decode_ieee(h.bits, 8, 7); }
inline __half __float2half_rn(float x) { return __half{(unsigned short)lpir_host::encode_ieee(x, 5, 10)}; }
inline __half __double2half(double x) { return __half{(unsigned short)lpir_host::encode_ieee(x, 5, 10)}; }
inline __nv_bfloat16 __float2bfloat16_rn(float x) {
    return __nv_bfloat16{(unsigned short)lpir_host::encode_ieee(x, 8, 7)};
}
inline __nv_bfloat16 __double2bfloat16(double x) {
    return __nv_bfloat16{(unsigned short)lpir_host::encode_ieee(x, 8, 7)};
}

// The device's conversions round the integer's exact value once; a plain (double) of a 64-bit
// integer past 2^53 would round twice, so those go through the sticky double of lpir_cuda.cuh.
static inline double lpir_i64_to_f64_sticky(long long v);
static inline double lpir_u64_to_f64_sticky(unsigned long long v);
#define LPIR_HOST_INT_TO_16(name, type, to_double)                                                \
    inline __half __##name##2half_rn(type v) { return __double2half(to_double(v)); }              \
    inline __nv_bfloat16 __##name##2bfloat16_rn(type v) { return __double2bfloat16(to_double(v)); }
LPIR_HOST_INT_TO_16(short, short, (double))
LPIR_HOST_INT_TO_16(ushort, unsigned short, (double))
LPIR_HOST_INT_TO_16(int, int, (double))
LPIR_HOST_INT_TO_16(uint, unsigned, (double))
LPIR_HOST_INT_TO_16(ll, long long, lpir_i64_to_f64_sticky)
LPIR_HOST_INT_TO_16(ull, unsigned long long, lpir_u64_to_f64_sticky)

namespace lpir_host {
// A GPU's float min and max (fminf/fmaxf, fmin/fmax, __hmin/__hmax: PTX min and max) return the
// other operand when one is NaN, signalling or quiet alike (GPUs have no signalling NaNs), and
// the canonical NaN (all fraction bits set) when both are. glibc's fmaxf makes a signalling NaN
// quiet and returns it, so fmaxf(sNaN, 1) was NaN here and 1 on the GPU.
template <typename F, typename Bits>
inline F min_max_number(F a, F b, bool maximum) {
    if (std::isnan(a) && std::isnan(b)) return bits_as<F>(Bits(~Bits(0) >> 1));
    if (std::isnan(a)) return b;
    if (std::isnan(b)) return a;
    return maximum ? std::fmax(a, b) : std::fmin(a, b);
}
template <typename T, typename ToFloat, typename FromFloat>
inline T half_min_max(T a, T b, bool maximum, ToFloat to_float, FromFloat from_float) {
    const bool a_nan = std::isnan(to_float(a)), b_nan = std::isnan(to_float(b));
    if (a_nan && b_nan) return T{(unsigned short)0x7fffu};
    if (a_nan) return b;
    if (b_nan) return a;
    const float wide = maximum ? std::fmax(to_float(a), to_float(b)) : std::fmin(to_float(a), to_float(b));
    return from_float(wide);
}
}  // namespace lpir_host

#define LPIR_HOST_HALF_OPS(T, to_float, from_float)                                               \
    inline T __hadd(T a, T b) { return from_float(to_float(a) + to_float(b)); }                   \
    inline T __hsub(T a, T b) { return from_float(to_float(a) - to_float(b)); }                   \
    inline T __hmul(T a, T b) { return from_float(to_float(a) * to_float(b)); }                   \
    inline T __hmax(T a, T b) { return lpir_host::half_min_max(a, b, true, to_float, from_float); } \
    inline T __hmin(T a, T b) { return lpir_host::half_min_max(a, b, false, to_float, from_float); } \
    inline T __hneg(T a) { return T{(unsigned short)(a.bits ^ 0x8000u)}; }                        \
    inline T __habs(T a) { return T{(unsigned short)(a.bits & 0x7fffu)}; }
LPIR_HOST_HALF_OPS(__half, __half2float, __float2half_rn)
LPIR_HOST_HALF_OPS(__nv_bfloat16, __bfloat162float, __float2bfloat16_rn)

struct __nv_bfloat162 {
    __nv_bfloat16 x, y;
    __nv_bfloat162() = default;
    __nv_bfloat162(__nv_bfloat16 a, __nv_bfloat16 b) : x(a), y(b) {}
};

#define LPIR_HOST_PAIR_OPS(P, T)                                                                  \
    inline P __hmul2(P a, P b) { return P(__hmul(a.x, b.x), __hmul(a.y, b.y)); }                  \
    inline P __hsub2(P a, P b) { return P(__hsub(a.x, b.x), __hsub(a.y, b.y)); }                  \
    inline P __hadd2(P a, P b) { return P(__hadd(a.x, b.x), __hadd(a.y, b.y)); }                  \
    inline P __hmax2(P a, P b) { return P(__hmax(a.x, b.x), __hmax(a.y, b.y)); }                  \
    inline P __hmin2(P a, P b) { return P(__hmin(a.x, b.x), __hmin(a.y, b.y)); }
LPIR_HOST_PAIR_OPS(__half2, __half)
LPIR_HOST_PAIR_OPS(__nv_bfloat162, __nv_bfloat16)
inline __half2 __halves2half2(__half a, __half b) { return __half2(a, b); }
inline __nv_bfloat162 __halves2bfloat162(__nv_bfloat16 a, __nv_bfloat16 b) { return __nv_bfloat162(a, b); }
inline __half2 __floats2half2_rn(float a, float b) { return __half2(__float2half_rn(a), __float2half_rn(b)); }
inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b) {
    return __nv_bfloat162(__float2bfloat16_rn(a), __float2bfloat16_rn(b));
}
inline __nv_bfloat16 __low2bfloat16(__nv_bfloat162 a) { return a.x; }
inline __nv_bfloat16 __high2bfloat16(__nv_bfloat162 a) { return a.y; }
inline __half2 __hfma2(__half2 a, __half2 b, __half2 c) {
    return __half2(__double2half((double)__half2float(a.x) * __half2float(b.x) + __half2float(c.x)),
                   __double2half((double)__half2float(a.y) * __half2float(b.y) + __half2float(c.y)));
}
inline __half __low2half(__half2 a) { return a.x; }
inline __half __high2half(__half2 a) { return a.y; }
inline float __low2float(__half2 a) { return __half2float(a.x); }
inline float __high2float(__half2 a) { return __half2float(a.y); }
inline float2 __half22float2(__half2 a) { return float2{__half2float(a.x), __half2float(a.y)}; }

// ---- bits and conversions ----------------------------------------------------------------------
inline float __int_as_float(int v) { return lpir_host::bits_as<float>(v); }
inline float __uint_as_float(unsigned v) { return lpir_host::bits_as<float>(v); }
inline unsigned __float_as_uint(float v) { return lpir_host::bits_as<unsigned>(v); }
inline int __float_as_int(float v) { return lpir_host::bits_as<int>(v); }
inline double __longlong_as_double(long long v) { return lpir_host::bits_as<double>(v); }
inline long long __double_as_longlong(double v) { return lpir_host::bits_as<long long>(v); }

inline int __float2int_rz(float x) { return lpir_host::saturate<int>(x, -2147483648.0, 2147483647.0); }
inline unsigned __float2uint_rz(float x) { return lpir_host::saturate<unsigned>(x, 0.0, 4294967295.0); }
inline long long __float2ll_rz(float x) {
    return lpir_host::saturate<long long>(x, -9223372036854775808.0, 9223372036854775807.0);
}
inline unsigned long long __float2ull_rz(float x) {
    return lpir_host::saturate<unsigned long long>(x, 0.0, 18446744073709551615.0);
}
inline int __double2int_rz(double x) { return lpir_host::saturate<int>(x, -2147483648.0, 2147483647.0); }
inline unsigned __double2uint_rz(double x) { return lpir_host::saturate<unsigned>(x, 0.0, 4294967295.0); }
inline long long __double2ll_rz(double x) {
    return lpir_host::saturate<long long>(x, -9223372036854775808.0, 9223372036854775807.0);
}
inline unsigned long long __double2ull_rz(double x) {
    return lpir_host::saturate<unsigned long long>(x, 0.0, 18446744073709551615.0);
}
inline unsigned __float2uint_rn(float x) {
    return lpir_host::saturate<unsigned>(std::nearbyint((double)x), 0.0, 4294967295.0);
}
inline float __double2float_rz(double x) {
    float f = (float)x;
    if (std::isfinite(x) && std::fabs((double)f) > std::fabs(x)) f = std::nextafter(f, 0.0f);
    return f;
}

inline unsigned __funnelshift_r(unsigned low, unsigned high, unsigned shift) {
    const unsigned long long both = ((unsigned long long)high << 32) | low;
    return (unsigned)(both >> (shift & 31u));
}
inline unsigned __byte_perm(unsigned a, unsigned b, unsigned selector) {
    const unsigned long long bytes = ((unsigned long long)b << 32) | a;
    unsigned result = 0;
    for (int i = 0; i < 4; ++i) {
        const unsigned index = (selector >> (4 * i)) & 7u;
        result |= (unsigned)((bytes >> (8 * index)) & 0xffu) << (8 * i);
    }
    return result;
}

template <typename T> inline T __ldg(const T* p) { return *p; }

inline unsigned atomicAnd(unsigned* p, unsigned v) { return __atomic_fetch_and(p, v, __ATOMIC_SEQ_CST); }
inline unsigned atomicOr(unsigned* p, unsigned v) { return __atomic_fetch_or(p, v, __ATOMIC_SEQ_CST); }

template <typename T> inline T min(T a, T b) { return a < b ? a : b; }
template <typename T> inline T max(T a, T b) { return a < b ? b : a; }

// ---- warp-wide mma: the 32 threads of a warp meet, each computes its own lanes of D ----------
namespace lpir_host {
struct MmaExchange {
    double a[32][8];
    double b[32][4];
    double c[32][4];
};
inline MmaExchange mma_exchange[32];  // one per warp of a block (up to 1024 threads)

template <int K, typename T>
inline void mma(float* d, const T* a, const T* b, const float* c, float (*to_float)(T)) {
    const unsigned thread = thread_index.x;
    const unsigned warp = thread / 32, lane = thread % 32;
    MmaExchange& exchange = mma_exchange[warp];
    const int a_lanes = K / 2, b_lanes = K / 4;
    for (int i = 0; i < a_lanes; ++i) exchange.a[lane][i] = to_float(a[i]);
    for (int i = 0; i < b_lanes; ++i) exchange.b[lane][i] = to_float(b[i]);
    for (int i = 0; i < 4; ++i) exchange.c[lane][i] = c[i];
    (*warp_barriers)[warp]->arrive_and_wait();
    // PTX fragments: g = lane / 4, t = lane % 4; A row-major 16 x K, B K x 8, C/D 16 x 8.
    double A[16][16], B[16][8], C[16][8];
    for (int l = 0; l < 32; ++l) {
        const int g = l / 4, t = l % 4;
        for (int r = 0; r < a_lanes / 2; ++r) {
            const int row = g + 8 * (r % 2), col = 2 * t + 8 * (r / 2);
            A[row][col] = exchange.a[l][2 * r];
            A[row][col + 1] = exchange.a[l][2 * r + 1];
        }
        for (int r = 0; r < b_lanes / 2; ++r) {
            B[2 * t + 8 * r][g] = exchange.b[l][2 * r];
            B[2 * t + 8 * r + 1][g] = exchange.b[l][2 * r + 1];
        }
        for (int r = 0; r < 2; ++r) {
            C[g + 8 * r][2 * t] = exchange.c[l][2 * r];
            C[g + 8 * r][2 * t + 1] = exchange.c[l][2 * r + 1];
        }
    }
    const int g = lane / 4, t = lane % 4;
    for (int r = 0; r < 2; ++r) {
        for (int j = 0; j < 2; ++j) {
            const int row = g + 8 * r, col = 2 * t + j;
            double sum = C[row][col];
            for (int k = 0; k < K; ++k) sum += A[row][k] * B[k][col];
            d[2 * r + j] = (float)sum;
        }
    }
    (*warp_barriers)[warp]->arrive_and_wait();
}

// m16n8k32 of 8-bit integers into i32 (A, B: signed or unsigned char): lanes 4r .. 4r + 3 of a
// and b form register r; each lane of D is C plus the exact sum of its 32 products, wrapped to
// 32 bits (the PTX without .satfinite).
struct MmaIntegerExchange {
    int a[32][16];
    int b[32][8];
    int c[32][4];
};
inline MmaIntegerExchange mma_integer_exchange[32];  // one per warp of a block

template <typename A, typename B>
inline void mma_m16n8k32(int* d, const A* a, const B* b, const int* c) {
    const unsigned thread = thread_index.x;
    const unsigned warp = thread / 32, lane = thread % 32;
    MmaIntegerExchange& exchange = mma_integer_exchange[warp];
    for (int i = 0; i < 16; ++i) exchange.a[lane][i] = a[i];
    for (int i = 0; i < 8; ++i) exchange.b[lane][i] = b[i];
    for (int i = 0; i < 4; ++i) exchange.c[lane][i] = c[i];
    (*warp_barriers)[warp]->arrive_and_wait();
    // PTX fragments: g = lane / 4, t = lane % 4; A row-major 16 x 32, B 32 x 8, C/D 16 x 8.
    long long A_[16][32], B_[32][8], C_[16][8];
    for (int l = 0; l < 32; ++l) {
        const int g = l / 4, t = l % 4;
        for (int r = 0; r < 4; ++r) {
            for (int e = 0; e < 4; ++e) {
                A_[g + 8 * (r % 2)][4 * t + 16 * (r / 2) + e] = exchange.a[l][4 * r + e];
            }
        }
        for (int r = 0; r < 2; ++r) {
            for (int e = 0; e < 4; ++e) B_[4 * t + 16 * r + e][g] = exchange.b[l][4 * r + e];
        }
        for (int r = 0; r < 2; ++r) {
            C_[g + 8 * r][2 * t] = exchange.c[l][2 * r];
            C_[g + 8 * r][2 * t + 1] = exchange.c[l][2 * r + 1];
        }
    }
    const int g = lane / 4, t = lane % 4;
    for (int r = 0; r < 2; ++r) {
        for (int j = 0; j < 2; ++j) {
            const int row = g + 8 * r, col = 2 * t + j;
            long long sum = C_[row][col];
            for (int k = 0; k < 32; ++k) sum += A_[row][k] * B_[k][col];
            d[2 * r + j] = (int)(unsigned)(unsigned long long)sum;
        }
    }
    (*warp_barriers)[warp]->arrive_and_wait();
}

// ---- atomic_add: a read-modify-write under one lock (blocks run one after another, but a
// block's threads are OS threads that may add into the same element) --------------------------
inline std::mutex atomic_lock;

template <typename T>
inline T atomic_add(T* address, T value) {
    std::lock_guard<std::mutex> guard(atomic_lock);
    const T old = *address;
    if constexpr (std::is_integral_v<T>) {  // wraps, as on the GPU (no signed overflow)
        using U = std::make_unsigned_t<T>;
        *address = (T)((U)old + (U)value);
    } else {
        *address = old + value;
    }
    return old;
}

// atomic_max / atomic_min under the same lock
template <typename T>
inline T atomic_extreme(T* address, T value, bool maximum) {
    std::lock_guard<std::mutex> guard(atomic_lock);
    const T old = *address;
    if (maximum ? value > old : value < old) {
        *address = value;
    }
    return old;
}

// atomic_and / atomic_or / atomic_xor under the same lock (`op`: '&', '|' or '^')
template <typename T>
inline T atomic_bits(T* address, T value, char op) {
    std::lock_guard<std::mutex> guard(atomic_lock);
    const T old = *address;
    *address = op == '&' ? (T)(old & value) : op == '|' ? (T)(old | value) : (T)(old ^ value);
    return old;
}

// ---- warp shuffles: each thread publishes its bits, then reads its partner's -------------------
inline unsigned long long shuffle_bits[32][32];  // [warp][lane]

inline unsigned long long shfl_xor(unsigned long long bits, int mask) {
    const unsigned thread = thread_index.x;
    const unsigned warp = thread / 32, lane = thread % 32;
    shuffle_bits[warp][lane] = bits;
    (*warp_barriers)[warp]->arrive_and_wait();
    const unsigned long long partner = shuffle_bits[warp][lane ^ (unsigned)mask];
    (*warp_barriers)[warp]->arrive_and_wait();
    return partner;
}

// ---- warp-wide ldmatrix: each thread publishes its row address, then reads its pairs ---------
inline const void* ldmatrix_rows[32][32];  // [warp][lane]

template <int Count, bool Transpose, typename T>
inline void ldmatrix(T* result, const T* row) {
    const unsigned thread = thread_index.x;
    const unsigned warp = thread / 32, lane = thread % 32;
    ldmatrix_rows[warp][lane] = row;
    (*warp_barriers)[warp]->arrive_and_wait();
    // a thread's elements of each matrix: 2 of 16 bits, or 4 of 8 bits (never transposed)
    constexpr unsigned per = 4 / sizeof(T);
    static_assert(per == 2 || !Transpose, "ldmatrix transposes 16-bit elements, not bytes");
    for (int j = 0; j < Count; ++j) {
        for (unsigned e = 0; e < per; ++e) {
            // plain: (row lane / 4, column per (lane % 4) + e); transposed: the mirror image.
            const unsigned r = Transpose ? 2 * (lane % 4) + e : lane / 4;
            const unsigned c = Transpose ? lane / 4 : per * (lane % 4) + e;
            result[per * j + e] = static_cast<const T*>(ldmatrix_rows[warp][8 * j + r])[c];
        }
    }
    (*warp_barriers)[warp]->arrive_and_wait();
}

// ---- cp.async, as late as the GPU may complete it ----------------------------------------------
// A copy lands only when a `cp.async.wait_group` makes the thread wait for its group: until
// then its target keeps the old bytes. A kernel that reads a slot before waiting for it (a
// wrong group count) reads stale data here, where on a GPU it might only sometimes.
struct AsyncCopy {
    void* to;
    const void* from;
    int source_bytes;  // the rest of `bytes` is zero-filled
    int bytes;
};
inline thread_local std::vector<AsyncCopy> async_open;                 // not yet committed
inline thread_local std::vector<std::vector<AsyncCopy>> async_groups;  // committed, oldest first

inline void async_copy(void* to, const void* from, int source_bytes, int bytes) {
    shared_access(to, bytes, Access::copy_issue, nullptr);
    async_open.push_back(AsyncCopy{to, from, source_bytes, bytes});
}

inline void async_commit() {
    async_groups.push_back(std::move(async_open));
    async_open.clear();
}

inline void async_wait(int pending) {
    const std::size_t keep = static_cast<std::size_t>(pending);
    std::size_t done = 0;
    for (; async_groups.size() - done > keep; ++done) {
        for (const AsyncCopy& copy : async_groups[done]) {
            shared_access(copy.to, copy.bytes, Access::copy_land, nullptr);
            std::memcpy(copy.to, copy.from, copy.source_bytes);
            std::memset(static_cast<unsigned char*>(copy.to) + copy.source_bytes, 0,
                        copy.bytes - copy.source_bytes);
        }
    }
    async_groups.erase(async_groups.begin(), async_groups.begin() + done);
}

// Run `kernel` over a grid: `threads` OS threads, one block after another.
inline void run_grid(unsigned gx, unsigned gy, unsigned gz, unsigned threads,
                     const std::function<void()>& kernel) {
    std::barrier<> barrier((std::ptrdiff_t)threads);
    std::vector<std::unique_ptr<std::barrier<>>> warps;
    for (unsigned w = 0; w < (threads + 31) / 32; ++w) {
        warps.push_back(std::make_unique<std::barrier<>>(std::min(32u, threads - 32 * w)));
    }
    block_barrier = &barrier;
    warp_barriers = &warps;
    std::vector<std::thread> pool;
    for (unsigned t = 0; t < threads; ++t) {
        pool.emplace_back([&, t] {
            thread_index = lpir_dim3{t, 0, 0};
            for (unsigned z = 0; z < gz; ++z)
                for (unsigned y = 0; y < gy; ++y)
                    for (unsigned x = 0; x < gx; ++x) {
                        block_index = lpir_dim3{x, y, z};
                        async_open.clear();  // copies never waited for die with their block
                        async_groups.clear();
                        barrier_phase = 0;
                        current_block = block_serial + ((z * gy + y) * gx + x);
                        kernel();
                        barrier.arrive_and_wait();  // the next block reuses __shared__ arrays
                    }
        });
    }
    for (auto& thread : pool) thread.join();
    block_serial += (long long)gx * gy * gz;
}
}  // namespace lpir_host

inline unsigned __shfl_xor_sync(unsigned /*members*/, unsigned value, int mask) {
    return (unsigned)lpir_host::shfl_xor(value, mask);
}
inline unsigned long long __shfl_xor_sync(unsigned /*members*/, unsigned long long value, int mask) {
    return lpir_host::shfl_xor(value, mask);
}

// The kernels call fmaxf and friends unqualified, which would find glibc's (see
// lpir_host::min_max_number); defined last, so that this header's own std::fmax stays std's.
#define fmaxf(...) lpir_host::min_max_number<float, unsigned>(__VA_ARGS__, true)
#define fminf(...) lpir_host::min_max_number<float, unsigned>(__VA_ARGS__, false)
#define fmax(...) lpir_host::min_max_number<double, unsigned long long>(__VA_ARGS__, true)
#define fmin(...) lpir_host::min_max_number<double, unsigned long long>(__VA_ARGS__, false)
