// SIMD helpers for the fused kernels, written with GCC/Clang vector extensions (explicit vectors
// of 16 lanes, lowered to whatever the target has: one AVX-512 register, two AVX2 registers, ...;
// no intrinsics, no libm calls in the fp32 hot loops):
// exp2 by range reduction + a degree-7 Taylor polynomial (relative error < 1e-8 on the reduced
// range, within an ulp of fp32), log1p on [0, 1] by the atanh series (no cancellation), softplus
// and sigmoid built from them, and a butterfly that sums the lanes of 16 vectors at once.
// fp64 (used by tests) runs the same code lane by lane with the libm functions.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

namespace ostinato_fused {

constexpr int kLanes = 16;
constexpr double kLog2e = 1.4426950408889634;

typedef float vf16 __attribute__((vector_size(64)));
typedef int32_t vi16 __attribute__((vector_size(64)));
typedef double vd16 __attribute__((vector_size(128)));

template <typename T>
struct VecOf;
template <>
struct VecOf<float> {
  using type = vf16;
};
template <>
struct VecOf<double> {
  using type = vd16;
};
template <typename T>
using vec_t = typename VecOf<T>::type;

template <typename V, typename S>
inline V splat(S s) {
  return V{} + s;
}

template <typename V, typename T>
inline V loadv(const T* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// first wc lanes from p, zeros after (p may be null when wc == 0)
template <typename V, typename T>
inline V loadv(const T* p, int wc) {
  if (wc == kLanes) return loadv<V>(p);
  V v = V{};
  for (int i = 0; i < wc; ++i) v[i] = p[i];
  return v;
}

template <typename V, typename T>
inline void storev(T* p, V v, int wc) {
  if (wc == kLanes) {
    std::memcpy(p, &v, sizeof v);
  } else {
    for (int i = 0; i < wc; ++i) p[i] = v[i];
  }
}

// 2^x; 0 below 2^-126 (the reference's exp gives < 1.2e-38 there), inf above 2^128, NaN kept
inline vf16 vexp2(vf16 x) {
  const vf16 lo = splat<vf16>(-127.f), hi = splat<vf16>(128.f);
  vf16 xc = x < lo ? lo : x;
  xc = xc > hi ? hi : xc;
  const vf16 magic = splat<vf16>(12582912.f);  // 1.5 * 2^23: round to nearest integer
  vf16 n = (xc + magic) - magic;
  vf16 y = (xc - n) * 0.69314718055994531f;  // |y| <= ln2 / 2
  vf16 p = splat<vf16>(1.f / 5040.f);
  p = p * y + 1.f / 720.f;
  p = p * y + 1.f / 120.f;
  p = p * y + 1.f / 24.f;
  p = p * y + 1.f / 6.f;
  p = p * y + 0.5f;
  p = p * y + 1.f;
  p = p * y + 1.f;
  vi16 bits = (__builtin_convertvector(n, vi16) + 127) << 23;  // 2^n (0 for n = -127)
  vf16 r = p * (vf16)bits;
  r = x < splat<vf16>(-126.f) ? vf16{} : r;
  r = x > splat<vf16>(127.99f) ? splat<vf16>(INFINITY) : r;
  return x != x ? x : r;
}

inline vd16 vexp2(vd16 x) {
  vd16 r;
  for (int i = 0; i < kLanes; ++i) r[i] = std::exp2(x[i]);
  return r;
}

// log(1 + e) for e in [0, 1]: 2 atanh(s), s = e / (2 + e) in [0, 1/3]
inline vf16 vlog1p_unit(vf16 e) {
  vf16 s = e / (2.f + e);
  vf16 s2 = s * s;
  vf16 p = splat<vf16>(1.f / 13.f);
  p = p * s2 + 1.f / 11.f;
  p = p * s2 + 1.f / 9.f;
  p = p * s2 + 1.f / 7.f;
  p = p * s2 + 1.f / 5.f;
  p = p * s2 + 1.f / 3.f;
  p = p * s2 + 1.f;
  return 2.f * s * p;
}

inline vd16 vlog1p_unit(vd16 e) {
  vd16 r;
  for (int i = 0; i < kLanes; ++i) r[i] = std::log1p(e[i]);
  return r;
}

template <typename V>
inline V vexp(V x) {
  return vexp2(x * static_cast<decltype(x[0] + 0)>(kLog2e));
}

// softplus(x) = max(x, 0) + log1p(exp(-|x|)); equals torch's (threshold 20) to fp32 rounding
template <typename V>
inline V vsoftplus(V x) {
  V ax = x < V{} ? -x : x;
  return (x > V{} ? x : V{}) + vlog1p_unit(vexp(-ax));
}

template <typename V>
inline V vsigmoid(V x) {
  return 1 / (1 + vexp(-x));
}

// out[r] = sum of the lanes of v[r], r < 16, for fp32 by a 4-level butterfly (about 3
// instructions per row instead of 8 for separate horizontal sums)
inline vf16 rows_sum16(const vf16* v) {
#if defined(__clang__)
#define OST_SHUF(a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#else
#define OST_SHUF(a, b, ...) __builtin_shuffle(a, b, vi16{__VA_ARGS__})
#endif
  vf16 u[8], w[4], x[2];
  for (int k = 0; k < 8; ++k)
    u[k] = OST_SHUF(v[2 * k], v[2 * k + 1], 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23) +
           OST_SHUF(v[2 * k], v[2 * k + 1], 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
  for (int k = 0; k < 4; ++k)
    w[k] = OST_SHUF(u[2 * k], u[2 * k + 1], 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27) +
           OST_SHUF(u[2 * k], u[2 * k + 1], 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
  for (int k = 0; k < 2; ++k)
    x[k] = OST_SHUF(w[2 * k], w[2 * k + 1], 0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29) +
           OST_SHUF(w[2 * k], w[2 * k + 1], 2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31);
  return OST_SHUF(x[0], x[1], 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30) +
         OST_SHUF(x[0], x[1], 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
#undef OST_SHUF
}

// acc[r] += sum of the lanes of v[r] for r < n (v holds n vectors)
inline void add_rows_sum(float* acc, const vf16* v, int64_t n) {
  int64_t r = 0;
  for (; r + kLanes <= n; r += kLanes) {
    vf16 s = rows_sum16(v + r);
    for (int i = 0; i < kLanes; ++i) acc[r + i] += s[i];
  }
  if (r < n) {
    vf16 tmp[kLanes];
    for (int i = 0; i < kLanes; ++i) tmp[i] = r + i < n ? v[r + i] : vf16{};
    vf16 s = rows_sum16(tmp);
    for (int64_t i = 0; r + i < n; ++i) acc[r + i] += s[i];
  }
}

inline void add_rows_sum(double* acc, const vd16* v, int64_t n) {
  for (int64_t r = 0; r < n; ++r) {
    double s = 0;
    for (int i = 0; i < kLanes; ++i) s += v[r][i];
    acc[r] += s;
  }
}

}  // namespace ostinato_fused
