// Torch operators (torch.ops.ostinato_fused.*) around the raw kernels: argument checks, output
// allocation, the parallel loop over (batch x channel blocks) with at::parallel_for (torch's
// intra-op threads: torch.set_num_threads applies), and the sums of per-task partials.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <optional>
#include <vector>

#include "kernels.h"

namespace ostinato_fused {
namespace {

using at::Tensor;
using OptT = std::optional<Tensor>;

void check(const Tensor& t, const char* name, at::ScalarType st) {
  TORCH_CHECK(t.device().is_cpu(), "ostinato_fused: ", name, " must be a CPU tensor");
  TORCH_CHECK(t.is_contiguous(), "ostinato_fused: ", name, " must be contiguous");
  TORCH_CHECK(t.scalar_type() == st, "ostinato_fused: ", name, " has dtype ", t.scalar_type(), ", expected ", st);
}

template <typename T>
const T* ptr(const OptT& t) {
  return t.has_value() ? t->data_ptr<T>() : nullptr;
}

// tasks per thread chunk: small problems run inline (waking a thread costs more than the work)
int64_t grain(int64_t work_per_task) {
  constexpr int64_t kMinWork = 1 << 16;  // elements x steps worth a thread
  return std::max<int64_t>(1, kMinWork / std::max<int64_t>(1, work_per_task));
}

int64_t num_groups(int64_t Bsz, int64_t nblk) {  // channel groups per batch element in the backward pass
  const int64_t want = (4 * at::get_num_threads() + Bsz - 1) / Bsz;
  return std::max<int64_t>(1, std::min(nblk, want));
}

std::vector<Tensor> selective_fwd(const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& Bm,
                                  const Tensor& Cm, const OptT& Dv, const OptT& z, const OptT& bias, const OptT& h0,
                                  bool softplus, int64_t chunk) {
  const auto st = u.scalar_type();
  TORCH_CHECK(st == at::kFloat || st == at::kDouble, "ostinato_fused.selective_fwd: float32 or float64 expected");
  for (auto [t, n] : {std::pair{&u, "u"}, {&delta, "delta"}, {&A, "A"}, {&Bm, "B"}, {&Cm, "C"}}) check(*t, n, st);
  for (auto [t, n] : {std::pair{&Dv, "D"}, {&z, "z"}, {&bias, "delta_bias"}, {&h0, "h0"}})
    if (t->has_value()) check(**t, n, st);
  TORCH_CHECK(chunk >= 1, "ostinato_fused.selective_fwd: chunk must be >= 1");
  const int64_t Bsz = u.size(0), L = u.size(1), D = u.size(2), N = A.size(1);
  const int64_t nC = (L + chunk - 1) / chunk, nblk = (D + kSelW - 1) / kSelW;
  Tensor out = at::empty_like(u), last = at::empty({Bsz, D, N}, u.options());
  Tensor ckpt = at::empty({nC, Bsz, D, N}, u.options());
  AT_DISPATCH_FLOATING_TYPES(st, "selective_fwd", [&] {
    SelFwdArgs<scalar_t> p{u.data_ptr<scalar_t>(), delta.data_ptr<scalar_t>(), A.data_ptr<scalar_t>(),
                           Bm.data_ptr<scalar_t>(), Cm.data_ptr<scalar_t>(), ptr<scalar_t>(Dv), ptr<scalar_t>(z),
                           ptr<scalar_t>(bias), ptr<scalar_t>(h0), out.data_ptr<scalar_t>(),
                           last.data_ptr<scalar_t>(), ckpt.data_ptr<scalar_t>(), Bsz, L, D, N, chunk, softplus};
    at::parallel_for(0, Bsz * nblk, grain(L * N * kSelW), [&](int64_t s, int64_t e) {
      for (int64_t i = s; i < e; ++i) selective_fwd_task(p, i / nblk, (i % nblk) * kSelW);
    });
  });
  return {out, last, ckpt};
}

// returns g_u, g_delta (w.r.t. the raw delta), g_A, g_B, g_C, g_D, g_bias, g_z (size 0 without z), g_h0;
// the caller drops the gradients of absent inputs
std::vector<Tensor> selective_bwd(const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& Bm,
                                  const Tensor& Cm, const OptT& Dv, const OptT& z, const OptT& bias,
                                  const Tensor& ckpt, const Tensor& dout, const OptT& dlast, bool softplus,
                                  int64_t chunk) {
  const auto st = u.scalar_type();
  check(dout, "dout", st);
  check(ckpt, "ckpt", st);
  if (dlast.has_value()) check(*dlast, "dlast", st);
  const int64_t Bsz = u.size(0), L = u.size(1), D = u.size(2), N = A.size(1);
  const int64_t nblk = (D + kSelW - 1) / kSelW, G = num_groups(Bsz, nblk);
  const int64_t per = (nblk + G - 1) / G;  // blocks per group
  Tensor g_u = at::empty_like(u), g_delta = at::empty_like(u);
  Tensor g_z = z.has_value() ? at::empty_like(u) : at::empty({0}, u.options());
  Tensor g_A = at::empty({Bsz, D, N}, u.options()), g_h0 = at::empty({Bsz, D, N}, u.options());
  Tensor g_B = at::zeros({Bsz, G, L, N}, u.options()), g_C = at::zeros({Bsz, G, L, N}, u.options());
  Tensor g_D = at::empty({Bsz, D}, u.options()), g_bias = at::empty({Bsz, D}, u.options());
  AT_DISPATCH_FLOATING_TYPES(st, "selective_bwd", [&] {
    using T = scalar_t;
    SelBwdArgs<T> p{u.data_ptr<T>(), delta.data_ptr<T>(), A.data_ptr<T>(), Bm.data_ptr<T>(), Cm.data_ptr<T>(),
                    ptr<T>(Dv), ptr<T>(z), ptr<T>(bias), ckpt.data_ptr<T>(), dout.data_ptr<T>(), ptr<T>(dlast),
                    g_u.data_ptr<T>(), g_delta.data_ptr<T>(), z.has_value() ? g_z.data_ptr<T>() : nullptr,
                    g_A.data_ptr<T>(), g_h0.data_ptr<T>(), g_B.data_ptr<T>(), g_C.data_ptr<T>(), g_D.data_ptr<T>(),
                    g_bias.data_ptr<T>(), Bsz, L, D, N, chunk, G, softplus};
    at::parallel_for(0, Bsz * G, grain(L * N * kSelW * per), [&](int64_t s, int64_t e) {
      for (int64_t i = s; i < e; ++i) {
        const int64_t b = i / G, g = i % G;
        const int64_t d_begin = g * per * kSelW, d_end = std::min(D, (g + 1) * per * kSelW);
        if (d_begin < d_end) selective_bwd_task(p, b, g, d_begin, d_end);
      }
    });
  });
  return {g_u, g_delta, g_A.sum(0), g_B.sum(1), g_C.sum(1), g_D.sum(0), g_bias.sum(0), g_z, g_h0};
}

// ---- linear scan: a (Ba, La, S) with Ba in {1, B}, La in {1, L}; b (B, L, S); real or complex
template <bool BWD>
void linear_run(const Tensor& a, const Tensor& b, const OptT& h0, const Tensor* h, const Tensor* gh, Tensor& out,
                Tensor* g_a, Tensor* g_h0) {
  const int64_t Bsz = b.size(0), L = b.size(1), S = b.size(2);
  const int64_t a_sb = a.size(0) == 1 ? 0 : a.size(1) * S, a_sl = a.size(1) == 1 ? 0 : S;
  const int64_t nblk = (S + kLinW - 1) / kLinW;
  const bool cplx = b.is_complex();
  AT_DISPATCH_FLOATING_TYPES(at::toRealValueType(b.scalar_type()), "linear_scan", [&] {
    using T = scalar_t;
    auto P = [](const Tensor* t) { return (t != nullptr && t->defined()) ? static_cast<T*>(t->data_ptr()) : nullptr; };
    LinArgs<T> p{static_cast<const T*>(a.data_ptr()), static_cast<const T*>(b.data_ptr()),
                 h0.has_value() ? static_cast<const T*>(h0->data_ptr()) : nullptr, P(h), P(gh),
                 static_cast<T*>(out.data_ptr()), P(g_a), P(g_h0), Bsz, L, S, a_sb, a_sl};
    at::parallel_for(0, Bsz * nblk, grain(L * kLinW), [&](int64_t s, int64_t e) {
      for (int64_t i = s; i < e; ++i) {
        const int64_t bb = i / nblk, s0 = (i % nblk) * kLinW;
        if (BWD) {
          cplx ? linear_bwd_task<T, true>(p, bb, s0) : linear_bwd_task<T, false>(p, bb, s0);
        } else {
          cplx ? linear_fwd_task<T, true>(p, bb, s0) : linear_fwd_task<T, false>(p, bb, s0);
        }
      }
    });
  });
}

void check_linear(const Tensor& a, const Tensor& b, const OptT& h0) {
  const auto st = b.scalar_type();
  TORCH_CHECK(st == at::kFloat || st == at::kDouble || st == at::kComplexFloat || st == at::kComplexDouble,
              "ostinato_fused.linear_scan: float32/64 or complex64/128 expected, got ", st);
  check(a, "a", st);
  check(b, "b", st);
  if (h0.has_value()) check(*h0, "h0", st);
  TORCH_CHECK(b.dim() == 3 && a.dim() == 3 && a.size(2) == b.size(2), "ostinato_fused.linear_scan: a, b must be 3-D");
  TORCH_CHECK((a.size(0) == 1 || a.size(0) == b.size(0)) && (a.size(1) == 1 || a.size(1) == b.size(1)),
              "ostinato_fused.linear_scan: a must be (1 or B, 1 or L, S)");
}

Tensor linear_fwd(const Tensor& a, const Tensor& b, const OptT& h0) {
  check_linear(a, b, h0);
  Tensor h = at::empty_like(b);
  linear_run<false>(a, b, h0, nullptr, nullptr, h, nullptr, nullptr);
  return h;
}

// returns g_a (B, La, S) per batch element, g_b, g_h0 (size 0 without h0)
std::vector<Tensor> linear_bwd(const Tensor& a, const Tensor& h, const OptT& h0, const Tensor& gh) {
  check_linear(a, h, h0);
  check(gh, "grad_h", h.scalar_type());
  Tensor g_b = at::empty_like(h);
  Tensor g_a = at::empty({h.size(0), a.size(1), h.size(2)}, h.options());
  Tensor g_h0 = h0.has_value() ? at::empty_like(*h0) : at::empty({0}, h.options());
  linear_run<true>(a, h, h0, &h, &gh, g_b, &g_a, &g_h0);
  return {g_a, g_b, g_h0};
}

}  // namespace

TORCH_LIBRARY(ostinato_fused, m) {
  m.def("selective_fwd(Tensor u, Tensor delta, Tensor A, Tensor B, Tensor C, Tensor? D, Tensor? z, "
        "Tensor? delta_bias, Tensor? h0, bool softplus, int chunk) -> Tensor[]");
  m.def("selective_bwd(Tensor u, Tensor delta, Tensor A, Tensor B, Tensor C, Tensor? D, Tensor? z, "
        "Tensor? delta_bias, Tensor ckpt, Tensor dout, Tensor? dlast, bool softplus, int chunk) -> Tensor[]");
  m.def("linear_fwd(Tensor a, Tensor b, Tensor? h0) -> Tensor");
  m.def("linear_bwd(Tensor a, Tensor h, Tensor? h0, Tensor grad_h) -> Tensor[]");
}

TORCH_LIBRARY_IMPL(ostinato_fused, CPU, m) {
  m.impl("selective_fwd", &selective_fwd);
  m.impl("selective_bwd", &selective_bwd);
  m.impl("linear_fwd", &linear_fwd);
  m.impl("linear_bwd", &linear_bwd);
}

}  // namespace ostinato_fused
