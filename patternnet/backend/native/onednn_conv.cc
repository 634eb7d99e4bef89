// oneDNN's convolution as three XLA:CPU FFI handlers: forward, input gradient
// (backward data) and weight gradient (backward weights), float32, activations NHWC and
// kernels HWIO as in patternnet/backend/layers.py.  Python side: patternnet/backend/
// onednn.py (the primitives, their differentiation rules and the fallback to XLA).
//
// Why: XLA:CPU runs convolutions through Eigen, whose weight gradient on large maps and
// grouped (depthwise) convolutions reach a small fraction of the machine's dot ceiling
// (docs/performance.md, "oneDNN convolutions").  oneDNN picks a kernel for the CPU it
// runs on (AVX2, AVX-512, ...) at run time, so one build serves every x86-64 CPU.
//
// Every call describes its geometry in attributes; a plan (the primitive, the kernel
// layout it wants and the reorder to it) is built once per geometry and cached.

#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using dnnl::memory;

#ifndef PATTERNNET_SOURCE_SHA
#define PATTERNNET_SOURCE_SHA "unknown"
#endif

namespace {

enum Pass { kForward = 0, kBackwardData = 1, kBackwardWeights = 2 };

// One convolution's sizes: input (n, h, w, c), output (oh, ow, o), kernel (kh, kw),
// strides, per-side padding, dilation (1 = none, XLA's convention) and groups.
struct Geometry {
  int64_t n, h, w, c, oh, ow, o, kh, kw, sh, sw, ph0, ph1, pw0, pw1, dh, dw, groups;
  auto tie() const {
    return std::tie(n, h, w, c, oh, ow, o, kh, kw, sh, sw, ph0, ph1, pw0, pw1, dh, dw, groups);
  }
};

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

memory::desc activations(int64_t n, int64_t h, int64_t w, int64_t c) {
  return memory::desc({n, c, h, w}, memory::data_type::f32, memory::format_tag::nhwc);
}

// The kernel as XLA holds it, HWIO (kh, kw, c / groups, o), described by strides over
// oneDNN's logical (o, i, kh, kw) or, grouped, (g, o / g, i, kh, kw).
memory::desc kernel_hwio(const Geometry& q) {
  const int64_t og = q.o / q.groups, ig = q.c / q.groups;
  if (q.groups == 1)
    return memory::desc({q.o, ig, q.kh, q.kw}, memory::data_type::f32,
                        memory::dims{1, q.o, q.kw * ig * q.o, ig * q.o});
  return memory::desc({q.groups, og, ig, q.kh, q.kw}, memory::data_type::f32,
                      memory::dims{og, 1, q.o, q.kw * ig * q.o, ig * q.o});
}

// The same kernel in whatever layout the chosen implementation prefers.
memory::desc kernel_any(const Geometry& q) {
  const int64_t og = q.o / q.groups, ig = q.c / q.groups;
  if (q.groups == 1)
    return memory::desc({q.o, ig, q.kh, q.kw}, memory::data_type::f32, memory::format_tag::any);
  return memory::desc({q.groups, og, ig, q.kh, q.kw}, memory::data_type::f32,
                      memory::format_tag::any);
}

struct Plan {
  dnnl::primitive primitive;
  memory::desc kernel;       // the layout the primitive reads (writes, for weights)
  memory::desc scratchpad;
  bool reorder_kernel;       // whether that layout differs from HWIO
  dnnl::reorder reorder;     // HWIO -> kernel, or kernel -> HWIO for weights
};

dnnl::primitive_attr user_scratchpad() {
  // The caller owns the scratchpad, so that concurrent calls (XLA may run independent
  // convolutions at once) never share one.
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

dnnl::convolution_forward::primitive_desc forward_desc(const Geometry& q) {
  return dnnl::convolution_forward::primitive_desc(
      engine(), dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
      activations(q.n, q.h, q.w, q.c), kernel_any(q), activations(q.n, q.oh, q.ow, q.o),
      {q.sh, q.sw}, {q.dh - 1, q.dw - 1}, {q.ph0, q.pw0}, {q.ph1, q.pw1}, user_scratchpad());
}

std::shared_ptr<Plan> build_plan(Pass pass, const Geometry& q) {
  auto plan = std::make_shared<Plan>();
  const auto fwd = forward_desc(q);
  const auto x = activations(q.n, q.h, q.w, q.c), y = activations(q.n, q.oh, q.ow, q.o);
  const memory::dims strides{q.sh, q.sw}, dilation{q.dh - 1, q.dw - 1},
      pad_lo{q.ph0, q.pw0}, pad_hi{q.ph1, q.pw1};
  if (pass == kForward) {
    plan->primitive = dnnl::convolution_forward(fwd);
    plan->kernel = fwd.weights_desc();
    plan->scratchpad = fwd.scratchpad_desc();
  } else if (pass == kBackwardData) {
    dnnl::convolution_backward_data::primitive_desc pd(
        engine(), dnnl::algorithm::convolution_direct, x, kernel_any(q), y, strides, dilation,
        pad_lo, pad_hi, fwd, user_scratchpad());
    plan->primitive = dnnl::convolution_backward_data(pd);
    plan->kernel = pd.weights_desc();
    plan->scratchpad = pd.scratchpad_desc();
  } else {
    dnnl::convolution_backward_weights::primitive_desc pd(
        engine(), dnnl::algorithm::convolution_direct, x, kernel_any(q), y, strides, dilation,
        pad_lo, pad_hi, fwd, user_scratchpad());
    plan->primitive = dnnl::convolution_backward_weights(pd);
    plan->kernel = pd.diff_weights_desc();
    plan->scratchpad = pd.scratchpad_desc();
  }
  const auto hwio = kernel_hwio(q);
  plan->reorder_kernel = !(plan->kernel == hwio);
  if (plan->reorder_kernel) {
    plan->reorder = pass == kBackwardWeights
        ? dnnl::reorder(dnnl::reorder::primitive_desc(engine(), plan->kernel, engine(), hwio))
        : dnnl::reorder(dnnl::reorder::primitive_desc(engine(), hwio, engine(), plan->kernel));
  }
  return plan;
}

// Plans by pass and geometry.  A network has a few dozen geometries per batch size; the
// cap only guards a program that keeps changing shapes.
constexpr size_t kMaxPlans = 1024;
std::mutex plans_mutex;
std::map<std::tuple<int, std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                                    int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                                    int64_t, int64_t, int64_t, int64_t, int64_t, int64_t>>,
         std::shared_ptr<Plan>>
    plans;

std::shared_ptr<Plan> plan_for(Pass pass, const Geometry& q) {
  const auto key = std::make_tuple(static_cast<int>(pass), q.tie());
  {
    std::lock_guard<std::mutex> lock(plans_mutex);
    auto it = plans.find(key);
    if (it != plans.end()) return it->second;
  }
  auto plan = build_plan(pass, q);  // outside the lock: building JIT-compiles kernels
  std::lock_guard<std::mutex> lock(plans_mutex);
  if (plans.size() >= kMaxPlans) plans.clear();
  return plans.emplace(key, plan).first->second;
}

// Per-thread buffers for the scratchpad and the reordered kernel, grown as needed.
struct Buffer {
  void* data = nullptr;
  size_t size = 0;
  ~Buffer() { std::free(data); }
  void* at_least(size_t n) {
    if (n > size) {
      std::free(data);
      data = std::aligned_alloc(64, (n + 63) / 64 * 64);
      size = data ? n : 0;
      if (!data) throw std::bad_alloc();
    }
    return data;
  }
};
thread_local Buffer scratch_buffer, kernel_buffer;

ffi::Error check(const Geometry& q) {
  const bool ok = q.groups >= 1 && q.c % q.groups == 0 && q.o % q.groups == 0 &&
                  q.sh >= 1 && q.sw >= 1 && q.dh >= 1 && q.dw >= 1 && q.ph0 >= 0 &&
                  q.ph1 >= 0 && q.pw0 >= 0 && q.pw1 >= 0 &&
                  q.oh == (q.h + q.ph0 + q.ph1 - (q.dh * (q.kh - 1) + 1)) / q.sh + 1 &&
                  q.ow == (q.w + q.pw0 + q.pw1 - (q.dw * (q.kw - 1) + 1)) / q.sw + 1;
  if (ok) return ffi::Error::Success();
  return ffi::Error(ffi::ErrorCode::kInvalidArgument,
                    "patternnet oneDNN convolution: inconsistent geometry (an internal "
                    "error in patternnet/backend/onednn.py)");
}

// x: the input (forward, weights) or the input gradient (data); kernel: HWIO; y: the
// output or its gradient.
ffi::Error run(Pass pass, const Geometry& q, float* x, float* kernel, float* y) {
  if (ffi::Error e = check(q); e.failure()) return e;
  try {
    const auto plan = plan_for(pass, q);
    dnnl::stream stream(engine());
    memory scratch(plan->scratchpad, engine(),
                   scratch_buffer.at_least(plan->scratchpad.get_size()));
    memory hwio(kernel_hwio(q), engine(), kernel);
    memory k = plan->reorder_kernel
        ? memory(plan->kernel, engine(), kernel_buffer.at_least(plan->kernel.get_size()))
        : hwio;
    memory xm(activations(q.n, q.h, q.w, q.c), engine(), x);
    memory ym(activations(q.n, q.oh, q.ow, q.o), engine(), y);
    if (pass != kBackwardWeights && plan->reorder_kernel) plan->reorder.execute(stream, hwio, k);
    if (pass == kForward) {
      plan->primitive.execute(stream, {{DNNL_ARG_SRC, xm}, {DNNL_ARG_WEIGHTS, k},
                                       {DNNL_ARG_DST, ym}, {DNNL_ARG_SCRATCHPAD, scratch}});
    } else if (pass == kBackwardData) {
      plan->primitive.execute(stream, {{DNNL_ARG_DIFF_SRC, xm}, {DNNL_ARG_WEIGHTS, k},
                                       {DNNL_ARG_DIFF_DST, ym}, {DNNL_ARG_SCRATCHPAD, scratch}});
    } else {
      plan->primitive.execute(stream, {{DNNL_ARG_SRC, xm}, {DNNL_ARG_DIFF_WEIGHTS, k},
                                       {DNNL_ARG_DIFF_DST, ym}, {DNNL_ARG_SCRATCHPAD, scratch}});
      if (plan->reorder_kernel) plan->reorder.execute(stream, k, hwio);
    }
    stream.wait();
  } catch (const dnnl::error& e) {
    return ffi::Error(ffi::ErrorCode::kInternal,
                      std::string("patternnet oneDNN convolution: ") + e.what());
  } catch (const std::bad_alloc&) {
    return ffi::Error(ffi::ErrorCode::kResourceExhausted,
                      "patternnet oneDNN convolution: out of memory for its scratchpad");
  }
  return ffi::Error::Success();
}

struct Attrs {
  int64_t sh, sw, ph0, ph1, pw0, pw1, dh, dw, groups;
};

// Sizes from the NHWC input, the NHWC output and the HWIO kernel.
Geometry geometry(ffi::Span<const int64_t> x, ffi::Span<const int64_t> y,
                  ffi::Span<const int64_t> k, const Attrs& a) {
  return Geometry{x[0], x[1], x[2], x[3], y[1], y[2], y[3], k[0], k[1],
                  a.sh, a.sw, a.ph0, a.ph1, a.pw0, a.pw1, a.dh, a.dw, a.groups};
}

using F32 = ffi::Buffer<ffi::F32, 4>;
using F32Out = ffi::ResultBuffer<ffi::F32, 4>;

ffi::Error forward(F32 x, F32 k, F32Out y, int64_t sh, int64_t sw, int64_t ph0, int64_t ph1,
                   int64_t pw0, int64_t pw1, int64_t dh, int64_t dw, int64_t groups) {
  const Attrs a{sh, sw, ph0, ph1, pw0, pw1, dh, dw, groups};
  return run(kForward, geometry(x.dimensions(), y->dimensions(), k.dimensions(), a),
             x.typed_data(), k.typed_data(), y->typed_data());
}

ffi::Error backward_data(F32 gy, F32 k, F32Out gx, int64_t sh, int64_t sw, int64_t ph0,
                         int64_t ph1, int64_t pw0, int64_t pw1, int64_t dh, int64_t dw,
                         int64_t groups) {
  const Attrs a{sh, sw, ph0, ph1, pw0, pw1, dh, dw, groups};
  return run(kBackwardData, geometry(gx->dimensions(), gy.dimensions(), k.dimensions(), a),
             gx->typed_data(), k.typed_data(), gy.typed_data());
}

ffi::Error backward_weights(F32 x, F32 gy, F32Out gk, int64_t sh, int64_t sw, int64_t ph0,
                            int64_t ph1, int64_t pw0, int64_t pw1, int64_t dh, int64_t dw,
                            int64_t groups) {
  const Attrs a{sh, sw, ph0, ph1, pw0, pw1, dh, dw, groups};
  return run(kBackwardWeights, geometry(x.dimensions(), gy.dimensions(), gk->dimensions(), a),
             x.typed_data(), gk->typed_data(), gy.typed_data());
}

auto binding() {
  return ffi::Ffi::Bind()
      .Arg<F32>()
      .Arg<F32>()
      .Ret<F32>()
      .Attr<int64_t>("sh")
      .Attr<int64_t>("sw")
      .Attr<int64_t>("ph0")
      .Attr<int64_t>("ph1")
      .Attr<int64_t>("pw0")
      .Attr<int64_t>("pw1")
      .Attr<int64_t>("dh")
      .Attr<int64_t>("dw")
      .Attr<int64_t>("groups");
}

}  // namespace

#pragma GCC visibility push(default)
XLA_FFI_DEFINE_HANDLER_SYMBOL(PatternnetConvForward, forward, binding());
XLA_FFI_DEFINE_HANDLER_SYMBOL(PatternnetConvBackwardData, backward_data, binding());
XLA_FFI_DEFINE_HANDLER_SYMBOL(PatternnetConvBackwardWeights, backward_weights, binding());

// The SHA-256 of this file when it was built: the loader refuses a stale build.
extern "C" const char* PatternnetConvSourceSha() { return PATTERNNET_SOURCE_SHA; }

// The oneDNN version the library runs with, "major.minor.patch".
extern "C" const char* PatternnetConvOnednnVersion() {
  static const std::string text = [] {
    const dnnl_version_t* v = dnnl_version();
    return std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
           std::to_string(v->patch);
  }();
  return text.c_str();
}
#pragma GCC visibility pop
