// lpir_cuda.cuh: fixed device helpers that lpir's CUDA backend emits calls to.
//
// Every function here implements one rule of lpir's semantics (lpir/interpreter/elementwise.py,
// lpir/dtypes.py) bit for bit: integer division that truncates and gives 0 for a zero divisor,
// shifts by an amount modulo the bit width, small-float and fp8 decoding (exact) and encoding
// (round to nearest even, saturation or IEEE overflow by variant), float -> int casts that
// truncate and saturate (NaN -> 0), byte-granular atomic bit stores, shared-memory swizzles, and
// the warp-wide ldmatrix, mma and shuffles, and atomic adds.
// The kernel source includes this file once, before the kernels.
#pragma once

#ifdef LPIR_HOST_EMULATION
#include "lpir_host.cuh"
#else
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#endif

#define LPIR_DEVICE static __device__ __forceinline__

// A shared byte array of the kernel, 16-byte aligned; beyond the static 48 KB in all, dynamic
// shared memory sized by the launch (`bytes` is what the kernel needs). The host emulation runs
// one block at a time: static arrays will do, registered for its race check (lpir_host.cuh),
// and `LPIR_AT(pointer)`, one element of shared memory, records each read and write.
#ifdef LPIR_HOST_EMULATION
#define LPIR_SHARED(name, bytes)                        \
    __shared__ __align__(16) unsigned char name[bytes]; \
    lpir_host::register_shared(name, bytes)
#define LPIR_DYNAMIC_SHARED(name, bytes) LPIR_SHARED(name, bytes)
#define LPIR_AT(...) (lpir_host::tracked(__VA_ARGS__))  // (a pointer may hold commas)
#else
#define LPIR_SHARED(name, bytes) __shared__ __align__(16) unsigned char name[bytes]
#define LPIR_DYNAMIC_SHARED(name, bytes) extern __shared__ __align__(16) unsigned char name[]
#define LPIR_AT(...) (*(__VA_ARGS__))
#endif

// ---- bits ------------------------------------------------------------------------------------
template <typename To, typename From>
LPIR_DEVICE To lpir_bit_cast(const From& from) {
    static_assert(sizeof(To) == sizeof(From), "lpir_bit_cast between types of different sizes");
    To to;
    memcpy(&to, &from, sizeof(To));
    return to;
}

LPIR_DEVICE __half lpir_f16_bits(unsigned short bits) { return __ushort_as_half(bits); }
LPIR_DEVICE __nv_bfloat16 lpir_bf16_bits(unsigned short bits) { return __ushort_as_bfloat16(bits); }

// Two 16-bit halves in one 32-bit register (the low one first), as mma operands want them.
template <typename T>
LPIR_DEVICE unsigned lpir_pack2(T low, T high) {
    return (unsigned)lpir_bit_cast<unsigned short>(low) |
           ((unsigned)lpir_bit_cast<unsigned short>(high) << 16);
}

// The 32-bit word at byte `offset` (a multiple of 4) of a thread's byte array.
LPIR_DEVICE unsigned lpir_word(const unsigned char* bytes, int offset) {
    unsigned word;
    memcpy(&word, bytes + offset, 4);
    return word;
}

LPIR_DEVICE void lpir_set_word(unsigned char* bytes, int offset, unsigned word) {
    memcpy(bytes + offset, &word, 4);
}

// ---- integers: C semantics made total ---------------------------------------------------------
template <typename T>
struct lpir_unsigned;
template <> struct lpir_unsigned<bool> { typedef unsigned char type; };
template <> struct lpir_unsigned<signed char> { typedef unsigned char type; };
template <> struct lpir_unsigned<unsigned char> { typedef unsigned char type; };
template <> struct lpir_unsigned<short> { typedef unsigned short type; };
template <> struct lpir_unsigned<unsigned short> { typedef unsigned short type; };
template <> struct lpir_unsigned<int> { typedef unsigned int type; };
template <> struct lpir_unsigned<unsigned int> { typedef unsigned int type; };
template <> struct lpir_unsigned<long long> { typedef unsigned long long type; };
template <> struct lpir_unsigned<unsigned long long> { typedef unsigned long long type; };

// Two's-complement wrap-around for + - * on every width (no signed-overflow UB).
template <typename T>
LPIR_DEVICE T lpir_add(T a, T b) {
    typedef typename lpir_unsigned<T>::type U;
    return (T)(U)((U)a + (U)b);
}
template <typename T>
LPIR_DEVICE T lpir_sub(T a, T b) {
    typedef typename lpir_unsigned<T>::type U;
    return (T)(U)((U)a - (U)b);
}
template <typename T>
LPIR_DEVICE T lpir_mul(T a, T b) {
    typedef typename lpir_unsigned<T>::type U;
    return (T)(U)((U)a * (U)b);
}
template <typename T>
LPIR_DEVICE T lpir_neg(T a) {
    typedef typename lpir_unsigned<T>::type U;
    return (T)(U)((U)0 - (U)a);
}
template <typename T>
LPIR_DEVICE T lpir_abs(T a) { return a < (T)0 ? lpir_neg(a) : a; }
// Integer max and min: a function, so that a tree of them names each operand once (a ternary
// repeats its operands' text, which doubles at each level of a reduction tree).
template <typename T>
LPIR_DEVICE T lpir_max(T a, T b) { return a > b ? a : b; }
template <typename T>
LPIR_DEVICE T lpir_min(T a, T b) { return a < b ? a : b; }

// Division truncates toward zero; a zero divisor gives 0; MIN / -1 wraps to MIN.
template <typename T>
LPIR_DEVICE T lpir_div(T a, T b) {
    if (b == (T)0) return (T)0;
    if ((T)-1 < (T)0 && b == (T)-1) return lpir_neg(a);
    return (T)(a / b);
}
template <typename T>
LPIR_DEVICE T lpir_rem(T a, T b) {
    if (b == (T)0) return (T)0;
    if ((T)-1 < (T)0 && b == (T)-1) return (T)0;
    return (T)(a % b);
}

// Shift amounts are taken modulo the bit width; >> is arithmetic on signed types.
template <typename T>
LPIR_DEVICE T lpir_shl(T a, T b) {
    typedef typename lpir_unsigned<T>::type U;
    const unsigned amount = (unsigned)(U)b & (unsigned)(sizeof(T) * 8 - 1);
    return (T)(U)((U)a << amount);
}
template <typename T>
LPIR_DEVICE T lpir_shr(T a, T b) {
    typedef typename lpir_unsigned<T>::type U;
    const unsigned amount = (unsigned)(U)b & (unsigned)(sizeof(T) * 8 - 1);
    return (T)(a >> amount);
}

// Integers of `BITS` < 8 bits held in a byte: wrap a value into the type's range.
template <int BITS>
LPIR_DEVICE signed char lpir_wrap_signed(int value) {
    return (signed char)((int)((unsigned)value << (32 - BITS)) >> (32 - BITS));
}
template <int BITS>
LPIR_DEVICE unsigned char lpir_wrap_unsigned(int value) {
    return (unsigned char)((unsigned)value & ((1u << BITS) - 1u));
}

// ---- float -> int: truncate toward zero, saturate, NaN -> 0 -----------------------------------
// cvt.rzi saturates to the destination range. It turns NaN into 0 only from f32 into 32 bits:
// from f64, or into 64 bits, an H200 gives the most negative integer (0x80...0), so those
// conversions test for NaN first.
LPIR_DEVICE int lpir_f32_to_i32(float x) { return __float2int_rz(x); }
LPIR_DEVICE unsigned lpir_f32_to_u32(float x) { return __float2uint_rz(x); }
LPIR_DEVICE long long lpir_f32_to_i64(float x) { return x != x ? 0 : __float2ll_rz(x); }
LPIR_DEVICE unsigned long long lpir_f32_to_u64(float x) { return x != x ? 0 : __float2ull_rz(x); }
LPIR_DEVICE int lpir_f64_to_i32(double x) { return x != x ? 0 : __double2int_rz(x); }
LPIR_DEVICE unsigned lpir_f64_to_u32(double x) { return x != x ? 0 : __double2uint_rz(x); }
LPIR_DEVICE long long lpir_f64_to_i64(double x) { return x != x ? 0 : __double2ll_rz(x); }
LPIR_DEVICE unsigned long long lpir_f64_to_u64(double x) { return x != x ? 0 : __double2ull_rz(x); }

// Narrower targets: saturate through i32, then clamp to [LOW, HIGH].
template <int LOW, int HIGH>
LPIR_DEVICE int lpir_f32_to_narrow(float x) { return min(max(__float2int_rz(x), LOW), HIGH); }
template <int LOW, int HIGH>
LPIR_DEVICE int lpir_f64_to_narrow(double x) { return min(max(lpir_f64_to_i32(x), LOW), HIGH); }

// ---- f64 -> f32 rounding to odd: rounding that again to <= 22 bits of precision is correct ----
LPIR_DEVICE float lpir_f64_to_f32_odd(double x) {
    float truncated = __double2float_rz(x);
    if (x == x && (double)truncated != x) {
        return __uint_as_float(__float_as_uint(truncated) | 1u);
    }
    return truncated;
}

// ---- small floats and fp8: codes of 1 + E + M bits -------------------------------------------
// V is the variant: 0 finite (every code a number: saturating, NaN encodes as +0), 1 "fn"
// (f8e4m3: S.1111.111 is NaN, saturating), 2 IEEE (f8e5m2: inf and NaN, overflow to inf).
template <int E, int M>
struct lpir_small {
    static constexpr int bits = 1 + E + M;
    static constexpr int bias = (1 << (E - 1)) - 1;
    static constexpr unsigned sign = 1u << (bits - 1);
    static constexpr unsigned magnitude = sign - 1u;
};

// 2^n as a float, for |n| < 127 (a compile-time constant after inlining).
LPIR_DEVICE float lpir_exp2i(int n) { return __uint_as_float((unsigned)(n + 127) << 23); }

template <int E, int M, int V>
LPIR_DEVICE float lpir_decode_small(unsigned code) {
    typedef lpir_small<E, M> S;
    const unsigned magnitude = code & S::magnitude;
    const unsigned exponent = magnitude >> M;
    const unsigned mantissa = magnitude & ((1u << M) - 1u);
    float value;
    if (V == 1 && magnitude == S::magnitude) {
        value = __int_as_float(0x7fc00000);
    } else if (V == 2 && exponent == (1u << E) - 1u) {
        value = mantissa ? __int_as_float(0x7fc00000) : __int_as_float(0x7f800000);
    } else if (exponent == 0) {
        value = (float)mantissa * lpir_exp2i(1 - S::bias - M);
    } else {
        value = __uint_as_float(((exponent + 127u - S::bias) << 23) | (mantissa << (23 - M)));
    }
    return (code & S::sign) ? -value : value;
}

// E <= 4, or the IEEE f8e5m2: move the fields into an f16 and multiply by 2^(15 - bias); f16
// keeps subnormals, and every code of these formats is exact in f16.
//
// fp8 on sm_89 and newer: one cvt.rn.f16x2.{e4m3,e5m2}x2 per pair (exact; its NaN is the
// canonical positive one, where the shifts below keep the code's sign: NaN payloads are not
// part of lpir's semantics).
template <int E, int M, int V>
LPIR_DEVICE __half2 lpir_small_to_f16x2(unsigned low, unsigned high) {
    typedef lpir_small<E, M> S;
    static_assert(E <= 4 || (E == 5 && V == 2), "the f16 path needs the exponent range of f16");
#if !defined(LPIR_HOST_EMULATION) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
    if constexpr ((E == 4 && M == 3 && V == 1) || (E == 5 && M == 2 && V == 2)) {
        const unsigned short pair = (unsigned short)((low & 0xffu) | ((high & 0xffu) << 8));
        unsigned halves;
        if constexpr (E == 4) {
            asm("cvt.rn.f16x2.e4m3x2 %0, %1;" : "=r"(halves) : "h"(pair));
        } else {
            asm("cvt.rn.f16x2.e5m2x2 %0, %1;" : "=r"(halves) : "h"(pair));
        }
        return lpir_bit_cast<__half2>(halves);
    }
#endif
    const unsigned codes = (low & 0xffffu) | (high << 16);
    const unsigned bits = ((codes & (S::sign * 0x10001u)) << (16 - S::bits)) |
                          ((codes & (S::magnitude * 0x10001u)) << (10 - M));
    __half2 value = lpir_bit_cast<__half2>(bits);
    if (15 - S::bias != 0) {
        const __half scale = __ushort_as_half((unsigned short)((30 - S::bias) << 10));
        value = __hmul2(value, __half2(scale, scale));
    }
    if (V == 1) {
        if ((low & S::magnitude) == S::magnitude) {
            value.x = __ushort_as_half((unsigned short)((low & S::sign) ? 0xfe00 : 0x7e00));
        }
        if ((high & S::magnitude) == S::magnitude) {
            value.y = __ushort_as_half((unsigned short)((high & S::sign) ? 0xfe00 : 0x7e00));
        }
    }
    return value;
}

template <int E, int M, int V>
LPIR_DEVICE __half lpir_small_to_f16(unsigned code) {
    return lpir_small_to_f16x2<E, M, V>(code, 0u).x;
}

template <int E, int M, int V>
LPIR_DEVICE float lpir_small_to_f32_fast(unsigned code) {
    return __half2float(lpir_small_to_f16<E, M, V>(code));
}

// Round to nearest even on the f32 bit pattern; saturate (V 0, 1) or overflow to inf (V 2).
// NaN keeps its sign where the format has NaN (0x7f / 0x7e | sign) and, as in ml_dtypes,
// becomes the zero of the opposite sign where it has none. `negative` is the sign of the
// value being encoded (callers pass the sign of the source's own NaN, which a conversion to
// f32 might not keep).
template <int E, int M, int V>
LPIR_DEVICE unsigned char lpir_encode_small_sign(float x, unsigned negative) {
    typedef lpir_small<E, M> S;
    const unsigned bits = __float_as_uint(x);
    const unsigned absolute = bits & 0x7fffffffu;
    if (absolute > 0x7f800000u) {
        if (V == 0) return negative ? 0u : S::sign;
        return (unsigned char)((V == 1 ? 0x7fu : 0x7eu) | (negative << 7));
    }
    const unsigned largest = V == 0 ? S::magnitude
                             : V == 1 ? S::magnitude - 1u
                                      : ((1u << E) - 1u) << M;  // the code of inf
    unsigned magnitude;
    if (__uint_as_float(absolute) < lpir_exp2i(1 - S::bias)) {
        // Subnormal range: scale to units of the smallest subnormal (exact) and round to even.
        magnitude = __float2uint_rn(__uint_as_float(absolute) * lpir_exp2i(S::bias - 1 + M));
    } else {
        const int shift = 23 - M;
        unsigned rounded = absolute + ((1u << (shift - 1)) - 1u) + ((absolute >> shift) & 1u);
        magnitude = (rounded >> shift) - ((127u - S::bias) << M);
    }
    magnitude = min(magnitude, largest);
    return (unsigned char)((negative ? S::sign : 0u) | magnitude);
}

template <int E, int M, int V>
LPIR_DEVICE unsigned char lpir_encode_small(float x) {
    return lpir_encode_small_sign<E, M, V>(x, __float_as_uint(x) >> 31);
}

// A 64-bit integer as a double that rounds to any narrower format as the integer itself does:
// exact below 2^53; above, the 11 low bits (which a double cannot hold) fold into one sticky
// bit, still 18 places below f32's last. (A plain (double) rounds to nearest, and rounding that
// again is not the integer's rounding: (2^53 + 2^45 + 1) to bf16.)
LPIR_DEVICE double lpir_u64_to_f64_sticky(unsigned long long v) {
    if (v >= (1ull << 53)) v = (v & ~0x7ffull) | ((v & 0x7ffull) != 0 ? 0x800ull : 0ull);
    return (double)v;
}

LPIR_DEVICE double lpir_i64_to_f64_sticky(long long v) {
    const unsigned long long magnitude = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    const double folded = lpir_u64_to_f64_sticky(magnitude);
    return v < 0 ? -folded : folded;
}

template <int E, int M, int V>
LPIR_DEVICE unsigned char lpir_encode_small_f64(double x) {
    const unsigned negative = (unsigned)((unsigned long long)__double_as_longlong(x) >> 63);
    return lpir_encode_small_sign<E, M, V>(lpir_f64_to_f32_odd(x), negative);
}

// ---- low-bit integers -> f16 / f32 by the magic-number trick ---------------------------------
// 0x6400 is f16 1024.0: OR-ing u < 1024 into its mantissa gives 1024 + u exactly; one
// subtraction (two lanes at a time) leaves u. Signed values are biased by 128 first.
// Two halves 0x64XX (1024 + u, u < 256 already in place, e.g. by one prmt) minus 1024 + bias.
LPIR_DEVICE __half2 lpir_magic_f16x2_sub(unsigned bits, float bias) {
    const __half offset = __float2half_rn(1024.0f + bias);
    return __hsub2(lpir_bit_cast<__half2>(bits), __half2(offset, offset));
}

LPIR_DEVICE __half2 lpir_u10x2_to_f16x2(unsigned low, unsigned high, float bias) {
    return lpir_magic_f16x2_sub((low | (high << 16)) | 0x64006400u, bias);
}

// 0x4b000000 is f32 2^23: the same trick in f32 for u < 2^23.
LPIR_DEVICE float lpir_u23_to_f32(unsigned u, float bias) {
    return __uint_as_float(0x4b000000u | u) - (8388608.0f + bias);
}

// ---- fused unpack_bits -> cast: two fields per 32-bit register ------------------------------
// (a & b) | c as one lop3: written as two C operations with two constants, ptxas emits two
// instructions (and rematerializes the constants), which costs a GEMV 1 instruction a weight.
LPIR_DEVICE unsigned lpir_and_or(unsigned a, unsigned b, unsigned c) {
#ifdef LPIR_HOST_EMULATION
    return (a & b) | c;
#else
    unsigned d;
    asm("lop3.b32 %0, %1, %2, %3, 0xea;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
    return d;
#endif
}

// Fields at bits p and q of the two halves, each ORed into the mantissa of 2^(10 - p) (the
// `magic` halves: that power of two's bits), whose unit in the last place is 2^-p: the half is
// 2^(10 - p) + field exactly, and one hadd2 with an immediate subtracts 2^(10 - p) and any
// bias. (Unlike a scale by 2^-p per half, no constant needs a register.)
LPIR_DEVICE __half2 lpir_magic_f16x2_at(unsigned t, unsigned mask, unsigned magic,
                                        __half2 offset) {
    return __hadd2(lpir_bit_cast<__half2>(lpir_and_or(t, mask, magic)), offset);
}

// An unsigned field (word & mask, at bit q <= 23 - width) as an exact f32: OR it into the
// mantissa of 2^23, then one FMA by scale = 2^-q plus offset = -(2^(23-q) + bias).
LPIR_DEVICE float lpir_magic_f32(unsigned word, unsigned mask, float scale, float offset) {
    return fmaf(__uint_as_float(lpir_and_or(word, mask, 0x4b000000u)), scale, offset);
}

// Small floats (see lpir_small_to_f16x2) whose fields sit at bit P of each half.
template <int E, int M, int V, int P>
LPIR_DEVICE __half2 lpir_small_fields_to_f16x2(unsigned t) {
    typedef lpir_small<E, M> S;
    static_assert(E <= 4 || (E == 5 && V == 2), "the f16 path needs the exponent range of f16");
    const unsigned sign = (t << (15 - (P + S::bits - 1))) & 0x80008000u;
    const unsigned field = t & ((S::magnitude << P) * 0x10001u);
    unsigned magnitude;
    if constexpr (10 - M >= P) {
        magnitude = field << (10 - M - P);
    } else {
        magnitude = field >> (P - (10 - M));
    }
    __half2 value = lpir_bit_cast<__half2>(sign | magnitude);
    if constexpr (15 - S::bias != 0) {
        const __half scale = __ushort_as_half((unsigned short)((30 - S::bias) << 10));
        value = __hmul2(value, __half2(scale, scale));
    }
    if constexpr (V == 1) {
        const unsigned low = t >> P, high = t >> (16 + P);
        if ((low & S::magnitude) == S::magnitude) {
            value.x = __ushort_as_half((unsigned short)((low & S::sign) ? 0xfe00 : 0x7e00));
        }
        if ((high & S::magnitude) == S::magnitude) {
            value.y = __ushort_as_half((unsigned short)((high & S::sign) ? 0xfe00 : 0x7e00));
        }
    }
    return value;
}

// ---- memory -----------------------------------------------------------------------------------
// One access of BYTES (1, 2, 4, 8 or 16) between memory and a thread's array; NC reads through
// the read-only (non-coherent) path, for tensors the kernel never writes.
template <int BYTES>
struct lpir_access;
template <> struct lpir_access<1> { typedef unsigned char type; };
template <> struct lpir_access<2> { typedef unsigned short type; };
template <> struct lpir_access<4> { typedef unsigned int type; };
template <> struct lpir_access<8> { typedef uint2 type; };
template <> struct lpir_access<16> { typedef uint4 type; };

template <int BYTES, bool NC>
LPIR_DEVICE void lpir_load(void* to, const void* from) {
    typedef typename lpir_access<BYTES>::type T;
#ifdef LPIR_HOST_EMULATION
    lpir_host::check_alignment(from, BYTES);
    lpir_host::shared_access(from, BYTES, lpir_host::Access::read, nullptr);
#endif
    T value;
    if constexpr (NC) {
        value = __ldg(reinterpret_cast<const T*>(from));
    } else {
        value = *reinterpret_cast<const T*>(from);
    }
    memcpy(to, &value, BYTES);
}

template <int BYTES>
LPIR_DEVICE void lpir_store(void* to, const void* from) {
    typedef typename lpir_access<BYTES>::type T;
#ifdef LPIR_HOST_EMULATION
    lpir_host::check_alignment(to, BYTES);
    lpir_host::shared_access(to, BYTES, lpir_host::Access::write, from);
#endif
    T value;
    memcpy(&value, from, BYTES);
    *reinterpret_cast<T*>(to) = value;
}

template <int BYTES>
LPIR_DEVICE void lpir_zero(void* to) {
    typedef typename lpir_access<BYTES>::type T;
    T value;
    memset(&value, 0, BYTES);
    memcpy(to, &value, BYTES);
}

// lpir_load where `on`, zeros where not, without a branch: one predicated `ld.global` (the
// tensors are global memory). Written as if/else, the branch splits the loop body of a
// pipelined loop, and nvcc then recomputes loop-invariant addresses in every iteration.
template <int BYTES, bool NC>
LPIR_DEVICE void lpir_load_if(void* to, const void* from, bool on) {
#ifdef LPIR_HOST_EMULATION
    lpir_host::check_alignment(from, BYTES);  // the predicated-off ld.global is not issued,
    if (on) {                                 // but its address is computed the same way
        lpir_load<BYTES, NC>(to, from);
    } else {
        lpir_zero<BYTES>(to);
    }
#else
    unsigned word[BYTES >= 4 ? BYTES / 4 : 1] = {};
    const int flag = on;
    if constexpr (BYTES == 16) {
        if constexpr (NC) {
            asm("{\n.reg .pred p;\nsetp.ne.b32 p, %5, 0;\n"
                "@p ld.global.nc.v4.u32 {%0, %1, %2, %3}, [%4];\n}"
                : "+r"(word[0]), "+r"(word[1]), "+r"(word[2]), "+r"(word[3])
                : "l"(from), "r"(flag));
        } else {
            asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %5, 0;\n"
                "@p ld.global.v4.u32 {%0, %1, %2, %3}, [%4];\n}"
                : "+r"(word[0]), "+r"(word[1]), "+r"(word[2]), "+r"(word[3])
                : "l"(from), "r"(flag) : "memory");
        }
    } else if constexpr (BYTES == 8) {
        if constexpr (NC) {
            asm("{\n.reg .pred p;\nsetp.ne.b32 p, %3, 0;\n"
                "@p ld.global.nc.v2.u32 {%0, %1}, [%2];\n}"
                : "+r"(word[0]), "+r"(word[1]) : "l"(from), "r"(flag));
        } else {
            asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %3, 0;\n"
                "@p ld.global.v2.u32 {%0, %1}, [%2];\n}"
                : "+r"(word[0]), "+r"(word[1]) : "l"(from), "r"(flag) : "memory");
        }
    } else if constexpr (BYTES == 4) {
        if constexpr (NC) {
            asm("{\n.reg .pred p;\nsetp.ne.b32 p, %2, 0;\n"
                "@p ld.global.nc.u32 %0, [%1];\n}"
                : "+r"(word[0]) : "l"(from), "r"(flag));
        } else {
            asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %2, 0;\n"
                "@p ld.global.u32 %0, [%1];\n}"
                : "+r"(word[0]) : "l"(from), "r"(flag) : "memory");
        }
    } else {  // 1 or 2 bytes: a select, which nvcc predicates itself
        typedef typename lpir_access<BYTES>::type T;
        const T value = on ? *reinterpret_cast<const T*>(from) : T(0);
        memcpy(word, &value, BYTES);
    }
    memcpy(to, word, BYTES);
#endif
}

// Asynchronous copy of BYTES (4, 8 or 16) from global to shared memory (`cp.async`, sm_80+):
// zeros where `on` is false (no global read: a source size of 0). The copies a thread issues
// between two `lpir_cp_async_commit` form a group; `lpir_cp_async_wait<N>` returns once at most
// the N latest groups of this thread are still in flight: the thread may then read what its
// earlier groups wrote (other threads only after a barrier). Before sm_80 the copy is an ordinary load and store, and commit/wait do
// nothing; the host emulation lands each copy as late as a GPU may (lpir_host::async_wait).
template <int BYTES>
LPIR_DEVICE void lpir_cp_async(void* to, const void* from, bool on) {
#if defined(LPIR_HOST_EMULATION)
    lpir_host::check_alignment(from, BYTES);
    lpir_host::check_alignment(to, BYTES);
    lpir_host::async_copy(to, from, on ? BYTES : 0, BYTES);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    const unsigned shared = static_cast<unsigned>(__cvta_generic_to_shared(to));
    const int source_bytes = on ? BYTES : 0;
    if constexpr (BYTES == 16) {  // .cg: streamed data bypasses L1
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n"
                     :: "r"(shared), "l"(from), "r"(source_bytes) : "memory");
    } else {
        asm volatile("cp.async.ca.shared.global [%0], [%1], %2, %3;\n"
                     :: "r"(shared), "l"(from), "n"(BYTES), "r"(source_bytes) : "memory");
    }
#else
    lpir_load_if<BYTES, true>(to, from, on);
#endif
}

LPIR_DEVICE void lpir_cp_async_commit() {
#if defined(LPIR_HOST_EMULATION)
    lpir_host::async_commit();
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}

template <int N>
LPIR_DEVICE void lpir_cp_async_wait() {
#if defined(LPIR_HOST_EMULATION)
    lpir_host::async_wait(N);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.wait_group %0;\n" :: "n"(N) : "memory");
#endif
}

// atomic_add: *address += value, atomically, giving what *address held before (nvcc issues a
// RED where that is unused). Two's-complement addition is the same bits signed or not: i64
// adds as unsigned long long.
#if defined(LPIR_HOST_EMULATION)
template <typename T>
LPIR_DEVICE T lpir_atomic_add(T* address, T value) {
    lpir_host::check_alignment(address, sizeof(T));
    return lpir_host::atomic_add(address, value);
}
#else
LPIR_DEVICE float lpir_atomic_add(float* address, float value) { return atomicAdd(address, value); }
LPIR_DEVICE double lpir_atomic_add(double* address, double value) {
    return atomicAdd(address, value);
}
LPIR_DEVICE int lpir_atomic_add(int* address, int value) { return atomicAdd(address, value); }
LPIR_DEVICE unsigned lpir_atomic_add(unsigned* address, unsigned value) {
    return atomicAdd(address, value);
}
LPIR_DEVICE unsigned long long lpir_atomic_add(unsigned long long* address,
                                               unsigned long long value) {
    return atomicAdd(address, value);
}
LPIR_DEVICE long long lpir_atomic_add(long long* address, long long value) {
    return (long long)atomicAdd(reinterpret_cast<unsigned long long*>(address),
                                (unsigned long long)value);
}
#endif

// atomic_max, atomic_min: *address = max(*address, value), atomically (integers only), giving
// what *address held before.
#if defined(LPIR_HOST_EMULATION)
template <typename T>
LPIR_DEVICE T lpir_atomic_max(T* address, T value) {
    lpir_host::check_alignment(address, sizeof(T));
    return lpir_host::atomic_extreme(address, value, true);
}
template <typename T>
LPIR_DEVICE T lpir_atomic_min(T* address, T value) {
    lpir_host::check_alignment(address, sizeof(T));
    return lpir_host::atomic_extreme(address, value, false);
}
#else
template <typename T>
LPIR_DEVICE T lpir_atomic_max(T* address, T value) { return atomicMax(address, value); }
template <typename T>
LPIR_DEVICE T lpir_atomic_min(T* address, T value) { return atomicMin(address, value); }
#endif

// atomic_and, atomic_or, atomic_xor: *address = *address op value, atomically, giving what
// *address held before. CUDA has them for int, unsigned and unsigned long long: a long long
// combines as the same bits unsigned.
#if defined(LPIR_HOST_EMULATION)
template <typename T>
LPIR_DEVICE T lpir_atomic_and(T* address, T value) {
    lpir_host::check_alignment(address, sizeof(T));
    return lpir_host::atomic_bits(address, value, '&');
}
template <typename T>
LPIR_DEVICE T lpir_atomic_or(T* address, T value) {
    lpir_host::check_alignment(address, sizeof(T));
    return lpir_host::atomic_bits(address, value, '|');
}
template <typename T>
LPIR_DEVICE T lpir_atomic_xor(T* address, T value) {
    lpir_host::check_alignment(address, sizeof(T));
    return lpir_host::atomic_bits(address, value, '^');
}
#else
template <typename T>
LPIR_DEVICE T lpir_atomic_and(T* address, T value) {
    if constexpr (sizeof(T) == 8) {
        using U = unsigned long long;
        return (T)atomicAnd(reinterpret_cast<U*>(address), (U)value);
    } else {
        return atomicAnd(address, value);
    }
}
template <typename T>
LPIR_DEVICE T lpir_atomic_or(T* address, T value) {
    if constexpr (sizeof(T) == 8) {
        using U = unsigned long long;
        return (T)atomicOr(reinterpret_cast<U*>(address), (U)value);
    } else {
        return atomicOr(address, value);
    }
}
template <typename T>
LPIR_DEVICE T lpir_atomic_xor(T* address, T value) {
    if constexpr (sizeof(T) == 8) {
        using U = unsigned long long;
        return (T)atomicXor(reinterpret_cast<U*>(address), (U)value);
    } else {
        return atomicXor(address, value);
    }
}
#endif

// Copies BYTES (a multiple of 4) from one register array to another a word at a time, as the
// loop-carried tiles of a pipelined loop are passed on: copied lane by lane, arrays of bytes or
// halves cost shifts and merges for every lane.
template <int BYTES>
LPIR_DEVICE void lpir_copy(void* to, const void* from) {
    #pragma unroll
    for (int at = 0; at < BYTES; at += 4) {
        unsigned word;
        memcpy(&word, static_cast<const unsigned char*>(from) + at, 4);
        memcpy(static_cast<unsigned char*>(to) + at, &word, 4);
    }
}

// Byte-granular read-modify-write of the bits of `bitmask`: atomic with respect to other
// threads writing other bits of the same byte (st_bits). Whole bytes need no atomic.
LPIR_DEVICE void lpir_store_bits(unsigned char* byte, unsigned value, unsigned bitmask) {
    bitmask &= 0xffu;
    if (bitmask == 0u) return;
    if (bitmask == 0xffu) {
        LPIR_AT(byte) = (unsigned char)value;
        return;
    }
#ifdef LPIR_HOST_EMULATION
    lpir_host::shared_access(byte, 1, lpir_host::Access::atomic, nullptr);
#endif
    const size_t address = reinterpret_cast<size_t>(byte);
    unsigned* word = reinterpret_cast<unsigned*>(address & ~(size_t)3);
    const unsigned shift = (unsigned)(address & 3u) * 8u;
    const unsigned set = (value & bitmask) << shift;
    const unsigned clear = (~value & bitmask) << shift;
    if (clear) atomicAnd(word, ~clear);
    if (set) atomicOr(word, set);
}

// ---- shared memory ------------------------------------------------------------------------------
// CUTLASS Swizzle<B, M, S> of a strided element offset (lpir.layout.Swizzle): the B bits at
// M + S are XORed into the B bits at M, so runs of 2^M elements move whole.
template <int B, int M, int S>
LPIR_DEVICE int lpir_swizzle(int offset) {
    return offset ^ (((offset >> (M + S)) & ((1 << B) - 1)) << M);
}

// The two 16-bit halves of a 32-bit register into lanes pair[0] (low) and pair[1].
template <typename T>
LPIR_DEVICE void lpir_unpack2(unsigned word, T* pair) {
    pair[0] = lpir_bit_cast<T>((unsigned short)(word & 0xffffu));
    pair[1] = lpir_bit_cast<T>((unsigned short)(word >> 16));
}

// ldmatrix: Count 8x8 matrices of 16-bit elements; this thread gives the row address `row`
// (thread 8j + i: row i of matrix j) and receives lanes 2j, 2j + 1 of each matrix j. Of 8-bit
// elements (T of one byte, never transposed) rows are 16 elements and the thread receives
// lanes 4j .. 4j + 3.
#ifdef LPIR_HOST_EMULATION
template <int Count, bool Transpose, typename T>
LPIR_DEVICE void lpir_ldmatrix(T* result, const T* row) {
    lpir_host::check_alignment(row, 16);  // each thread's row of 8 halves: 16-byte aligned
    lpir_host::shared_access(row, 16, lpir_host::Access::read, nullptr);
    lpir_host::ldmatrix<Count, Transpose>(result, row);
}
#else
template <int Count, bool Transpose, typename T>
LPIR_DEVICE void lpir_ldmatrix(T* result, const T* row) {
    const unsigned address = static_cast<unsigned>(__cvta_generic_to_shared(row));
    unsigned r[4];
    if constexpr (Count == 4 && Transpose) {
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(address) : "memory");
    } else if constexpr (Count == 4) {
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(address) : "memory");
    } else if constexpr (Count == 2 && Transpose) {
        asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n"
                     : "=r"(r[0]), "=r"(r[1]) : "r"(address) : "memory");
    } else if constexpr (Count == 2) {
        asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n"
                     : "=r"(r[0]), "=r"(r[1]) : "r"(address) : "memory");
    } else if constexpr (Transpose) {
        asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];\n"
                     : "=r"(r[0]) : "r"(address) : "memory");
    } else {
        asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n"
                     : "=r"(r[0]) : "r"(address) : "memory");
    }
#pragma unroll
    for (int j = 0; j < Count; ++j) {
        if constexpr (sizeof(T) == 1) {
            static_assert(!Transpose, "ldmatrix transposes 16-bit elements, not bytes");
#pragma unroll
            for (int e = 0; e < 4; ++e) result[4 * j + e] = (T)(r[j] >> (8 * e));
        } else {
            lpir_unpack2(r[j], result + 2 * j);
        }
    }
}
#endif

// ---- warp shuffles -------------------------------------------------------------------------------
// The value that the thread `lane ^ MASK` of this warp passes (shfl.sync.bfly), for any type of
// up to 8 bytes, moved as its bits; MEMBERS are the lanes taking part (all of a block's when it
// has fewer than 32 threads).
template <int MASK, unsigned MEMBERS, typename T>
LPIR_DEVICE T lpir_shfl_xor(T value) {
    static_assert(sizeof(T) <= 8, "lpir_shfl_xor moves up to 8 bytes");
    if constexpr (sizeof(T) == 8) {
        unsigned long long bits;
        memcpy(&bits, &value, 8);
        bits = __shfl_xor_sync(MEMBERS, bits, MASK);
        memcpy(&value, &bits, 8);
    } else {
        unsigned bits = 0;
        memcpy(&bits, &value, sizeof(T));
        bits = __shfl_xor_sync(MEMBERS, bits, MASK);
        memcpy(&value, &bits, sizeof(T));
    }
    return value;
}

// ---- tensor cores -------------------------------------------------------------------------------
// D = A @ B + C for one m16n8k16 tile per warp, with the PTX row.col fragment layouts: lanes
// 2r and 2r + 1 of a and b form register r; c and d hold 4 f32 lanes.
// m16n8k32 of 8-bit integers into i32 (A and B each `signed char` or `unsigned char`: .s8 or
// .u8): lanes 4r .. 4r + 3 of a and b form register r (the lowest byte first); c and d hold 4
// i32 lanes, the sums wrapping modulo 2^32 (no .satfinite).
#ifdef LPIR_HOST_EMULATION
template <typename A, typename B>
LPIR_DEVICE void lpir_mma_m16n8k32(int* d, const A* a, const B* b, const int* c) {
    lpir_host::mma_m16n8k32(d, a, b, c);
}
#else
template <typename T>
LPIR_DEVICE unsigned lpir_pack4(const T* bytes) {
    return (unsigned)(unsigned char)bytes[0] | ((unsigned)(unsigned char)bytes[1] << 8) |
           ((unsigned)(unsigned char)bytes[2] << 16) | ((unsigned)(unsigned char)bytes[3] << 24);
}

#define LPIR_MMA_M16N8K32(TYPES)                                                              \
    asm volatile("mma.sync.aligned.m16n8k32.row.col.s32." TYPES ".s32 "                        \
                 "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%10, %11, %12, %13};\n"      \
                 : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3])                              \
                 : "r"(ra[0]), "r"(ra[1]), "r"(ra[2]), "r"(ra[3]), "r"(rb[0]), "r"(rb[1]),     \
                   "r"(c[0]), "r"(c[1]), "r"(c[2]), "r"(c[3]))

template <typename A, typename B>
LPIR_DEVICE void lpir_mma_m16n8k32(int* d, const A* a, const B* b, const int* c) {
    static_assert(sizeof(A) == 1 && sizeof(B) == 1, "m16n8k32 multiplies 8-bit integers");
    constexpr bool signed_a = A(-1) < A(0), signed_b = B(-1) < B(0);
    const unsigned ra[4] = {lpir_pack4(a), lpir_pack4(a + 4), lpir_pack4(a + 8), lpir_pack4(a + 12)};
    const unsigned rb[2] = {lpir_pack4(b), lpir_pack4(b + 4)};
    if constexpr (signed_a && signed_b) {
        LPIR_MMA_M16N8K32("s8.s8");
    } else if constexpr (signed_a) {
        LPIR_MMA_M16N8K32("s8.u8");
    } else if constexpr (signed_b) {
        LPIR_MMA_M16N8K32("u8.s8");
    } else {
        LPIR_MMA_M16N8K32("u8.u8");
    }
}
#undef LPIR_MMA_M16N8K32
#endif

#ifdef LPIR_HOST_EMULATION
LPIR_DEVICE void lpir_mma_m16n8k16_f16(float* d, const __half* a, const __half* b, const float* c) {
    lpir_host::mma<16>(d, a, b, c, __half2float);
}
LPIR_DEVICE void lpir_mma_m16n8k16_bf16(float* d, const __nv_bfloat16* a,
                                        const __nv_bfloat16* b, const float* c) {
    lpir_host::mma<16>(d, a, b, c, __bfloat162float);
}
LPIR_DEVICE void lpir_mma_m16n8k8_f16(float* d, const __half* a, const __half* b, const float* c) {
    lpir_host::mma<8>(d, a, b, c, __half2float);
}
LPIR_DEVICE void lpir_mma_m16n8k8_bf16(float* d, const __nv_bfloat16* a,
                                       const __nv_bfloat16* b, const float* c) {
    lpir_host::mma<8>(d, a, b, c, __bfloat162float);
}
#else
LPIR_DEVICE void lpir_mma_m16n8k16_f16(float* d, const __half* a, const __half* b,
                                       const float* c) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%10, %11, %12, %13};\n"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(lpir_pack2(a[0], a[1])), "r"(lpir_pack2(a[2], a[3])),
          "r"(lpir_pack2(a[4], a[5])), "r"(lpir_pack2(a[6], a[7])),
          "r"(lpir_pack2(b[0], b[1])), "r"(lpir_pack2(b[2], b[3])),
          "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
}

LPIR_DEVICE void lpir_mma_m16n8k16_bf16(float* d, const __nv_bfloat16* a,
                                        const __nv_bfloat16* b, const float* c) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%10, %11, %12, %13};\n"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(lpir_pack2(a[0], a[1])), "r"(lpir_pack2(a[2], a[3])),
          "r"(lpir_pack2(a[4], a[5])), "r"(lpir_pack2(a[6], a[7])),
          "r"(lpir_pack2(b[0], b[1])), "r"(lpir_pack2(b[2], b[3])),
          "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
}

LPIR_DEVICE void lpir_mma_m16n8k8_f16(float* d, const __half* a, const __half* b,
                                      const float* c) {
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32 "
        "{%0, %1, %2, %3}, {%4, %5}, {%6}, {%7, %8, %9, %10};\n"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(lpir_pack2(a[0], a[1])), "r"(lpir_pack2(a[2], a[3])),
          "r"(lpir_pack2(b[0], b[1])),
          "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
}

LPIR_DEVICE void lpir_mma_m16n8k8_bf16(float* d, const __nv_bfloat16* a,
                                       const __nv_bfloat16* b, const float* c) {
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.bf16.bf16.f32 "
        "{%0, %1, %2, %3}, {%4, %5}, {%6}, {%7, %8, %9, %10};\n"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(lpir_pack2(a[0], a[1])), "r"(lpir_pack2(a[2], a[3])),
          "r"(lpir_pack2(b[0], b[1])),
          "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
}
#endif
