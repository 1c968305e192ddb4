// Raw-pointer kernels of ostinato.core.kernels (no ATen types here: these files compile fast).
// Each *_task function handles one (batch element, block of channels) and is called from
// ops.cpp inside at::parallel_for. Layouts are the core's: time-major rows, channels contiguous.
#pragma once
#include <cstdint>

namespace ostinato_fused {

constexpr int kSelW = 16;  // selective scan: channels per vector block (the state is N x kSelW)
constexpr int kLinW = 64;  // linear scan: state elements per block

template <typename T>
struct SelFwdArgs {
  const T *u, *delta, *A, *Bm, *Cm;  // (B, L, D), (B, L, D), (D, N), (B, L, N), (B, L, N)
  const T *Dv, *z, *bias, *h0;       // nullable: (D), (B, L, D), (D), (B, D, N)
  T *out, *last, *ckpt;              // (B, L, D), (B, D, N), (nC, B, D, N) state entering each chunk
  int64_t Bsz, L, D, N, chunk;
  bool softplus;
};

template <typename T>
struct SelBwdArgs {
  const T *u, *delta, *A, *Bm, *Cm, *Dv, *z, *bias, *ckpt, *dout, *dlast;  // Dv, z, bias, dlast nullable
  T *g_u, *g_delta, *g_z;  // (B, L, D); g_z only with z
  T *g_A, *g_h0;           // (B, D, N): per batch element (summed over B by the caller)
  T *g_B, *g_C;            // (B, G, L, N): per channel group (summed over G by the caller), zeroed
  T *g_D, *g_bias;         // (B, D)
  int64_t Bsz, L, D, N, chunk, G;
  bool softplus;
};

template <typename T>
void selective_fwd_task(const SelFwdArgs<T>& p, int64_t b, int64_t d0);
template <typename T>
void selective_bwd_task(const SelBwdArgs<T>& p, int64_t b, int64_t group, int64_t d_begin, int64_t d_end);

// Linear scan h_t = a_t h_{t-1} + b_t on (B, L, S); a is (B or 1, L or 1, S) via strides
// a_sb, a_sl (0 where broadcast). CPLX: T is the real type and arrays hold (re, im) pairs.
template <typename T>
struct LinArgs {
  const T *a, *b, *h0;  // h0 nullable (B, S)
  const T *h, *gh;      // backward: all states (B, L, S), dL/dh (B, L, S)
  T *out;               // forward: h (B, L, S); backward: g_b (B, L, S)
  T *g_a, *g_h0;        // backward: (B, La, S) with La = L or 1 (summed over t when 1), (B, S)
  int64_t Bsz, L, S, a_sb, a_sl;
};

template <typename T, bool CPLX>
void linear_fwd_task(const LinArgs<T>& p, int64_t b, int64_t s0);
template <typename T, bool CPLX>
void linear_bwd_task(const LinArgs<T>& p, int64_t b, int64_t s0);

}  // namespace ostinato_fused
