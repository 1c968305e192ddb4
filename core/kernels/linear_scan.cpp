// Fused diagonal linear scan h_t = a_t h_{t-1} + b_t (S5, LRU, S4D, minGRU), real or complex,
// forward and backward, for one (batch element, block of kLinW state elements).
// One pass over the sequence with the block's state in a local array (the associative path
// makes ~2 log2(L) passes over memory); the backward pass is the adjoint recurrence
//   g_t = dL/dh_t + conj(a_{t+1}) g_{t+1},  dL/db_t = g_t,  dL/da_t = g_t conj(h_{t-1}),
//   dL/dh0 = conj(a_1) g_1,
// with dL/da summed over t inside the kernel when a is constant in time (La = 1).
// Complex arrays hold (re, im) pairs; the loops over a block have a fixed trip count and vectorise.
#include <algorithm>

#include "kernels.h"

namespace ostinato_fused {
namespace {
constexpr int W = kLinW;
}

template <typename T, bool CPLX>
void linear_fwd_task(const LinArgs<T>& p, int64_t b, int64_t s0) {
  constexpr int K = CPLX ? 2 : 1;  // reals per element
  const int64_t L = p.L, S = p.S;
  const int wc = static_cast<int>(std::min<int64_t>(W, S - s0));
  T h[K * W];
  for (int j = 0; j < K * W; ++j) h[j] = (p.h0 != nullptr && j < K * wc) ? p.h0[K * (b * S + s0) + j] : T(0);
  for (int64_t t = 0; t < L; ++t) {
    const T* at = p.a + K * (b * p.a_sb + t * p.a_sl + s0);
    const T* bt = p.b + K * ((b * L + t) * S + s0);
    T* ht = p.out + K * ((b * L + t) * S + s0);
    if (wc == W) {
#pragma omp simd
      for (int w = 0; w < W; ++w) {
        if (CPLX) {
          const T ar = at[2 * w], ai = at[2 * w + 1], hr = h[2 * w], hi = h[2 * w + 1];
          h[2 * w] = ar * hr - ai * hi + bt[2 * w];
          h[2 * w + 1] = ar * hi + ai * hr + bt[2 * w + 1];
          ht[2 * w] = h[2 * w];
          ht[2 * w + 1] = h[2 * w + 1];
        } else {
          h[w] = at[w] * h[w] + bt[w];
          ht[w] = h[w];
        }
      }
    } else {
      for (int w = 0; w < wc; ++w) {
        if (CPLX) {
          const T ar = at[2 * w], ai = at[2 * w + 1], hr = h[2 * w], hi = h[2 * w + 1];
          h[2 * w] = ar * hr - ai * hi + bt[2 * w];
          h[2 * w + 1] = ar * hi + ai * hr + bt[2 * w + 1];
          ht[2 * w] = h[2 * w];
          ht[2 * w + 1] = h[2 * w + 1];
        } else {
          h[w] = at[w] * h[w] + bt[w];
          ht[w] = h[w];
        }
      }
    }
  }
}

namespace {

// one reverse step on element w: g = gh + conj(a_next) g; g_b = g; ga (+)= g conj(h_prev)
template <typename T, bool CPLX, bool ACC>
inline void adjoint(int w, const T* an, const T* gh, const T* hp, T* g, T* gb, T* ga) {
  if (CPLX) {
    const T ar = an[2 * w], ai = an[2 * w + 1], gr = g[2 * w], gi = g[2 * w + 1];
    const T nr = gh[2 * w] + ar * gr + ai * gi, ni = gh[2 * w + 1] + ar * gi - ai * gr;
    g[2 * w] = nr;
    g[2 * w + 1] = ni;
    gb[2 * w] = nr;
    gb[2 * w + 1] = ni;
    const T hr = hp[2 * w], hi = hp[2 * w + 1];
    const T pr = nr * hr + ni * hi, pi = ni * hr - nr * hi;
    ga[2 * w] = ACC ? ga[2 * w] + pr : pr;
    ga[2 * w + 1] = ACC ? ga[2 * w + 1] + pi : pi;
  } else {
    const T v = gh[w] + an[w] * g[w];
    g[w] = v;
    gb[w] = v;
    ga[w] = ACC ? ga[w] + v * hp[w] : v * hp[w];
  }
}

template <typename T, bool CPLX, bool ACC>
void linear_bwd_block(const LinArgs<T>& p, int64_t b, int64_t s0, int wc) {
  constexpr int K = CPLX ? 2 : 1;
  const int64_t L = p.L, S = p.S;
  T g[K * W], zero[K * W], gacc[K * W];
  std::fill(g, g + K * W, T(0));
  std::fill(zero, zero + K * W, T(0));
  std::fill(gacc, gacc + K * W, T(0));
  const T* h0 = p.h0 != nullptr ? p.h0 + K * (b * S + s0) : zero;
  for (int64_t t = L - 1; t >= 0; --t) {
    const T* an = t + 1 < L ? p.a + K * (b * p.a_sb + (t + 1) * p.a_sl + s0) : zero;  // a_{L+1} = 0
    const T* gh = p.gh + K * ((b * L + t) * S + s0);
    const T* hp = t > 0 ? p.h + K * ((b * L + t - 1) * S + s0) : h0;
    T* gb = p.out + K * ((b * L + t) * S + s0);
    T* ga = ACC ? gacc : p.g_a + K * ((b * L + t) * S + s0);
    if (wc == W) {
#pragma omp simd
      for (int w = 0; w < W; ++w) adjoint<T, CPLX, ACC>(w, an, gh, hp, g, gb, ga);
    } else {
      for (int w = 0; w < wc; ++w) adjoint<T, CPLX, ACC>(w, an, gh, hp, g, gb, ga);
    }
  }
  if (ACC) std::copy(gacc, gacc + K * wc, p.g_a + K * (b * S + s0));
  if (p.h0 != nullptr) {  // dL/dh0 = conj(a_1) g_1
    const T* a1 = p.a + K * (b * p.a_sb + s0);
    T* out = p.g_h0 + K * (b * S + s0);
    for (int w = 0; w < wc; ++w) {
      if (CPLX) {
        out[2 * w] = a1[2 * w] * g[2 * w] + a1[2 * w + 1] * g[2 * w + 1];
        out[2 * w + 1] = a1[2 * w] * g[2 * w + 1] - a1[2 * w + 1] * g[2 * w];
      } else {
        out[w] = a1[w] * g[w];
      }
    }
  }
}

}  // namespace

template <typename T, bool CPLX>
void linear_bwd_task(const LinArgs<T>& p, int64_t b, int64_t s0) {
  const int wc = static_cast<int>(std::min<int64_t>(W, p.S - s0));
  if (p.a_sl == 0) {
    linear_bwd_block<T, CPLX, true>(p, b, s0, wc);
  } else {
    linear_bwd_block<T, CPLX, false>(p, b, s0, wc);
  }
}

template void linear_fwd_task<float, false>(const LinArgs<float>&, int64_t, int64_t);
template void linear_fwd_task<float, true>(const LinArgs<float>&, int64_t, int64_t);
template void linear_fwd_task<double, false>(const LinArgs<double>&, int64_t, int64_t);
template void linear_fwd_task<double, true>(const LinArgs<double>&, int64_t, int64_t);
template void linear_bwd_task<float, false>(const LinArgs<float>&, int64_t, int64_t);
template void linear_bwd_task<float, true>(const LinArgs<float>&, int64_t, int64_t);
template void linear_bwd_task<double, false>(const LinArgs<double>&, int64_t, int64_t);
template void linear_bwd_task<double, true>(const LinArgs<double>&, int64_t, int64_t);

}  // namespace ostinato_fused
