// ISA selection, the thread pool, and the ISA-independent parts of the kernels: plan
// building for binary convolutions (geometry, fused output transform, zero-padding
// corrections) and the memory-bound unpacking ops.
#include "kernels.h"

#include <algorithm>
#include <atomic>
#include <climits>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>

#include "isa.h"
#include "scratch.h"

namespace xk {

using internal::IsaOps;

// ------------------------------------------------------------------ ISA choice ---

const char* IsaName(Isa isa) {
  switch (isa) {
    case Isa::kPortable:
      return "portable";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kAvx512:
      return "avx512";
    case Isa::kNeon:
      return "neon";
  }
  return "unknown";
}

std::string IsaUnavailableReason(Isa isa) {
  switch (isa) {
    case Isa::kPortable:
      return "";
    case Isa::kAvx2:
#if defined(__x86_64__)
      __builtin_cpu_init();
      if (internal::Avx2Ops() != nullptr && __builtin_cpu_supports("avx2") &&
          __builtin_cpu_supports("popcnt") && __builtin_cpu_supports("bmi2")) {
        return "";
      }
      return "the CPU lacks AVX2, POPCNT or BMI2";
#else
      return "this build is not for x86-64";
#endif
    case Isa::kAvx512:
      return internal::Avx512Ops() == nullptr ? "this build is not for x86-64"
                                              : internal::Avx512Missing();
    case Isa::kNeon:
      return internal::NeonOps() != nullptr ? "" : "this build is not for aarch64";
  }
  return "unknown ISA";
}

bool IsaAvailable(Isa isa) { return IsaUnavailableReason(isa).empty(); }

// The automatic choice: AVX-512 VPOPCNTDQ where the CPU and OS support it (it measured
// faster than AVX2 on every benchmark layer, see native/README.md), then AVX2, NEON.
static Isa BestIsa() {
  for (Isa isa : {Isa::kAvx512, Isa::kAvx2, Isa::kNeon}) {
    if (IsaAvailable(isa)) return isa;
  }
  return Isa::kPortable;
}

std::string ParseIsa(const std::string& name, Isa* isa) {
  if (name == "auto") {
    *isa = BestIsa();
    return "";
  }
  for (Isa candidate : kAllIsas) {
    if (name != IsaName(candidate)) continue;
    const std::string why = IsaUnavailableReason(candidate);
    if (!why.empty()) return "isa " + name + " is not available: " + why;
    *isa = candidate;
    return "";
  }
  return "isa must be one of auto, portable, avx2, avx512, neon. Received: " + name;
}

Isa SelectIsa(std::string* error) {
  const char* env = std::getenv("XNOR_KERAS_NATIVE_ISA");
  Isa isa = Isa::kPortable;
  const std::string problem = ParseIsa(env == nullptr || *env == '\0' ? "auto" : env, &isa);
  if (!problem.empty()) {
    if (error != nullptr) *error = "XNOR_KERAS_NATIVE_ISA: " + problem;
    return Isa::kPortable;
  }
  return isa;
}

static const IsaOps& OpsFor(Isa isa) {
  if (isa == Isa::kAvx2 && internal::Avx2Ops() != nullptr) return *internal::Avx2Ops();
  if (isa == Isa::kAvx512 && internal::Avx512Ops() != nullptr) return *internal::Avx512Ops();
  if (isa == Isa::kNeon && internal::NeonOps() != nullptr) return *internal::NeonOps();
  return internal::PortableOps();
}

// ------------------------------------------------------------- threads, scratch ---

struct ThreadPool::State {
  std::mutex run_mu;  // one Run at a time (callers from several threads queue up)
  std::mutex mu;
  std::condition_variable work_cv, done_cv;
  std::vector<std::thread> workers;
  uint64_t generation = 0;
  bool stop = false;
  int busy = 0;
  void (*call)(const void*, int) = nullptr;
  const void* fn = nullptr;
  int num_tasks = 0;
  std::atomic<int> next{0};

  void Drain() {
    for (int i = next.fetch_add(1); i < num_tasks; i = next.fetch_add(1)) call(fn, i);
  }
};

ThreadPool::ThreadPool(int num_threads)
    : num_threads_(std::max(1, num_threads)), state_(new State) {
  State* s = state_.get();
  for (int t = 1; t < num_threads_; ++t) {
    s->workers.emplace_back([s] {
      uint64_t seen = 0;
      for (;;) {
        {
          std::unique_lock<std::mutex> lock(s->mu);
          s->work_cv.wait(lock, [&] { return s->stop || s->generation != seen; });
          if (s->stop) return;
          seen = s->generation;
        }
        s->Drain();
        std::lock_guard<std::mutex> lock(s->mu);
        if (--s->busy == 0) s->done_cv.notify_one();
      }
    });
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->stop = true;
  }
  state_->work_cv.notify_all();
  for (auto& w : state_->workers) w.join();
}

void ThreadPool::RunImpl(int num_tasks, void (*call)(const void*, int), const void* fn) {
  State* s = state_.get();
  if (s->workers.empty() || num_tasks <= 1) {
    for (int i = 0; i < num_tasks; ++i) call(fn, i);
    return;
  }
  std::lock_guard<std::mutex> run_lock(s->run_mu);
  {
    std::lock_guard<std::mutex> lock(s->mu);
    s->call = call;
    s->fn = fn;
    s->num_tasks = num_tasks;
    s->next.store(0);
    s->busy = static_cast<int>(s->workers.size());
    ++s->generation;
  }
  s->work_cv.notify_all();
  s->Drain();
  std::unique_lock<std::mutex> lock(s->mu);
  s->done_cv.wait(lock, [&] { return s->busy == 0; });
}

namespace internal {

void* ThreadScratch(int slot, size_t bytes) {
  struct Buffers {
    void* ptr[4] = {nullptr, nullptr, nullptr, nullptr};
    size_t size[4] = {0, 0, 0, 0};
    ~Buffers() {
      for (void* p : ptr) std::free(p);
    }
  };
  thread_local Buffers buffers;
  if (buffers.size[slot] < bytes) {
    std::free(buffers.ptr[slot]);
    const size_t rounded = (bytes + 63) / 64 * 64;
    buffers.ptr[slot] = std::aligned_alloc(64, rounded);
    buffers.size[slot] = rounded;
  }
  return buffers.ptr[slot];
}

}  // namespace internal

// ------------------------------------------------------------ packing, pooling ---

void QuantizeFloat(Isa isa, const float* in, int64_t rows, int cols, int32_t* out) {
  OpsFor(isa).quantize_float(in, rows, cols, out);
}

void QuantizeInt8(Isa isa, const int8_t* in, int64_t rows, int cols, int32_t zero_point,
                  int32_t* out) {
  OpsFor(isa).quantize_int8(in, rows, cols, zero_point, out);
}

void QuantizeBool(const bool* in, int64_t rows, int cols, int32_t* out) {
  const int words = BitpackedWords(cols);
  for (int64_t r = 0; r < rows; ++r) {
    for (int w = 0; w < words; ++w) {
      uint32_t bits = 0;
      for (int i = 32 * w; i < cols && i < 32 * w + 32; ++i) {
        bits |= static_cast<uint32_t>(!in[r * cols + i]) << (i - 32 * w);
      }
      out[r * words + w] = static_cast<int32_t>(bits);
    }
  }
}

template <class T>
static void Unpack(const int32_t* in, int64_t rows, int cols, T zero_bit, T one_bit, T* out) {
  const int words = BitpackedWords(cols);
  for (int64_t r = 0; r < rows; ++r) {
    const uint32_t* src = reinterpret_cast<const uint32_t*>(in) + r * words;
    T* dst = out + r * cols;
    for (int i = 0; i < cols; ++i) dst[i] = (src[i >> 5] >> (i & 31) & 1u) ? one_bit : zero_bit;
  }
}

void DequantizeFloat(const int32_t* in, int64_t rows, int cols, float* out) {
  Unpack<float>(in, rows, cols, 1.0f, -1.0f, out);
}

void DequantizeInt8(const int32_t* in, int64_t rows, int cols, int8_t zero_bit_value,
                    int8_t one_bit_value, int8_t* out) {
  Unpack<int8_t>(in, rows, cols, zero_bit_value, one_bit_value, out);
}

void DequantizeBool(const int32_t* in, int64_t rows, int cols, bool* out) {
  Unpack<bool>(in, rows, cols, true, false, out);
}

void WindowGeometry(bool same, int in_size, int filter_size, int stride, int dilation,
                    int* out_size, int* pad_before) {
  const int effective = (filter_size - 1) * dilation + 1;
  *out_size = same ? (in_size + stride - 1) / stride : (in_size - effective + stride) / stride;
  const int total = (*out_size - 1) * stride + effective - in_size;
  *pad_before = same && total > 0 ? total / 2 : 0;
}

void BMaxPool(Isa isa, const BMaxPoolSpec& spec, const int32_t* in, int32_t* out, int* out_h,
              int* out_w, ThreadPool* pool) {
  int pad_top = 0, pad_left = 0;
  WindowGeometry(spec.padding_same, spec.in_h, spec.filter_h, spec.stride_h, 1, out_h, &pad_top);
  WindowGeometry(spec.padding_same, spec.in_w, spec.filter_w, spec.stride_w, 1, out_w,
                 &pad_left);
  if (in == nullptr || out == nullptr) return;  // geometry only
  const IsaOps& ops = OpsFor(isa);
  const int64_t rows = static_cast<int64_t>(spec.batch) * *out_h;
  const int oh = *out_h, ow = *out_w;
  if (pool == nullptr || pool->num_threads() == 1 || rows < 2) {
    ops.bmaxpool_rows(spec, oh, ow, pad_top, pad_left, in, out, 0, rows);
    return;
  }
  const int tasks = static_cast<int>(std::min<int64_t>(rows, 4 * pool->num_threads()));
  pool->Run(tasks, [&](int t) {
    ops.bmaxpool_rows(spec, oh, ow, pad_top, pad_left, in, out, rows * t / tasks,
                      rows * (t + 1) / tasks);
  });
}

// --------------------------------------------------------------- binary conv2d ---

static int Popcount32(uint32_t x) {
  int n = 0;
  for (; x != 0; x &= x - 1) ++n;
  return n;
}

std::string PrepareBConv(Isa isa, const BConvSpec& s, const int32_t* filter,
                         const float* multiplier, const float* bias, const int32_t* thresholds,
                         BConvPlan* plan) {
  auto bad = [](const char* what, int value) {
    return std::string(what) + ". Received: " + std::to_string(value);
  };
  if (s.batch < 1) return bad("batch must be >= 1", s.batch);
  if (s.in_h < 1 || s.in_w < 1) return bad("input height and width must be >= 1", s.in_h);
  if (s.channels_in < 1) return bad("channels_in must be >= 1", s.channels_in);
  if (s.channels_out < 1) return bad("channels_out must be >= 1", s.channels_out);
  if (s.filter_h < 1 || s.filter_w < 1) return bad("filter size must be >= 1", s.filter_h);
  if (s.stride_h < 1 || s.stride_w < 1) return bad("strides must be >= 1", s.stride_h);
  if (s.dilation_h < 1 || s.dilation_w < 1) return bad("dilations must be >= 1", s.dilation_h);
  if (s.pad_value != 0 && s.pad_value != 1) return bad("pad_values must be 0 or 1", s.pad_value);
  if (s.activation < kActNone || s.activation > kActRelu6) {
    return bad("unsupported fused activation", s.activation);
  }
  if (s.groups < 1) return bad("groups must be >= 1", s.groups);
  if (s.groups > 1) {
    if (s.channels_in % s.groups != 0 || (s.channels_in / s.groups) % 32 != 0) {
      return bad("grouped binary convolutions need channels_in / groups to be a multiple of 32",
                 s.channels_in);
    }
    if (s.channels_out % s.groups != 0) {
      return bad("channels_out must be a multiple of groups", s.channels_out);
    }
  }
  if (filter == nullptr) return "the filter is missing";
  if (s.output_type == OutputType::kBitpacked) {
    if (thresholds == nullptr) return "bitpacked output needs thresholds";
  } else if (multiplier == nullptr || bias == nullptr) {
    return "float and int8 output need a multiplier and a bias";
  }
  if (s.output_type == OutputType::kInt8 && !(s.output_scale > 0.0f)) {
    return "int8 output needs a positive output scale";
  }

  BConvPlan& p = *plan;
  p = BConvPlan();
  p.spec = s;
  p.isa = isa;
  WindowGeometry(s.padding_same, s.in_h, s.filter_h, s.stride_h, s.dilation_h, &p.out_h,
                 &p.pad_top);
  WindowGeometry(s.padding_same, s.in_w, s.filter_w, s.stride_w, s.dilation_w, &p.out_w,
                 &p.pad_left);
  if (p.out_h < 1 || p.out_w < 1) return bad("the filter does not fit the input", s.in_h);
  const int cin_g = s.channels_in / s.groups;
  p.in_words = BitpackedWords(s.channels_in);
  p.group_words = s.groups == 1 ? p.in_words : cin_g / 32;
  p.oc_per_group = s.channels_out / s.groups;
  p.panels_per_group = (p.oc_per_group + 15) / 16;
  p.k32 = s.filter_h * s.filter_w * p.group_words;
  p.k64 = (p.k32 + 1) / 2;
  p.backtransform = s.filter_h * s.filter_w * cin_g;
  p.out_depth = s.output_type == OutputType::kBitpacked ? BitpackedWords(s.channels_out)
                                                        : s.channels_out;
  const IsaOps& ops = OpsFor(isa);
  // Blocks of packed activations of up to ~64 KiB (L2) that stream past each filter
  // panel (<= k64 * 256 bytes, L1) in turn.
  const int row_bytes = p.k64 * ops.a_words_per_k * 8;
  int block = (64 * 1024) / row_bytes;
  block = std::max(ops.micro_rows, std::min(512, block));
  p.block_pixels = block / ops.micro_rows * ops.micro_rows;

  // Filters, 16 channels per panel; missing channels are zero rows.
  const int panel_words = p.k64 * ops.b_words_per_k;
  p.packed_filter.assign(static_cast<size_t>(s.groups) * p.panels_per_group * panel_words, 0);
  const uint32_t* f = reinterpret_cast<const uint32_t*>(filter);
  for (int g = 0; g < s.groups; ++g) {
    for (int panel = 0; panel < p.panels_per_group; ++panel) {
      const uint32_t* rows[16];
      for (int c = 0; c < 16; ++c) {
        const int local = panel * 16 + c;
        rows[c] = local < p.oc_per_group
                      ? f + static_cast<size_t>(g * p.oc_per_group + local) * p.k32
                      : nullptr;
      }
      ops.pack_panel(rows, p.k32, p.k64,
                     p.packed_filter.data() +
                         static_cast<size_t>(g * p.panels_per_group + panel) * panel_words);
    }
  }

  // Fused output transform, computed as LCE does (double precision, then float):
  // y = float(clamp(2 * acc)) * (-m / scale) + (b + K * m) / scale + zero_point.
  const int slots = p.slots();
  auto slot_channel = [&](int slot) {
    const int g = slot / (p.panels_per_group * 16);
    const int local = slot % (p.panels_per_group * 16);
    return local < p.oc_per_group ? g * p.oc_per_group + local : -1;
  };
  const int K = p.backtransform;
  if (s.output_type == OutputType::kBitpacked) {
    p.thresholds.assign(slots, INT32_MAX);
    for (int slot = 0; slot < slots; ++slot) {
      const int oc = slot_channel(slot);
      if (oc >= 0) p.thresholds[slot] = thresholds[oc];
    }
  } else {
    const bool int8 = s.output_type == OutputType::kInt8;
    const double scale = int8 ? static_cast<double>(s.output_scale) : 1.0;
    const double zero_point = int8 ? static_cast<double>(s.output_zero_point) : 0.0;
    p.multiplier.assign(slots, 0.0f);
    p.bias.assign(slots, 0.0f);
    for (int slot = 0; slot < slots; ++slot) {
      const int oc = slot_channel(slot);
      if (oc < 0) continue;
      const double m = multiplier[oc], b = bias[oc];
      p.multiplier[slot] = static_cast<float>(-1 * m / scale);
      p.bias[slot] = static_cast<float>((b + static_cast<double>(K) * m) / scale + zero_point);
    }
    int32_t lo = INT32_MIN, hi = INT32_MAX;
    if (s.activation == kActRelu) lo = 0;
    if (s.activation == kActReluN1To1) lo = -1, hi = 1;
    if (s.activation == kActRelu6) lo = 0, hi = 6;
    lo = std::max(lo, -K);
    hi = std::min(hi, K);
    p.clamp_min = -hi + K;
    p.clamp_max = -lo + K;
  }

  // SAME padding with zeros. The kernels pad with bit 0 (+1); per output pixel whose
  // window leaves the input, the taps outside form a pattern (rows x columns outside).
  // Exact integer correction (LCE's reference kernel): a padded tap contributes
  // cin_g / 2 instead of popcount(filter tap). Float output without activation instead
  // gets LCE's optimized kernels' float correction, -m * sum(cin_g - 2 popcount), added
  // after the transform, so results match those kernels bit for bit.
  if (s.padding_same && s.pad_value == 0) {
    p.float_correction = s.output_type == OutputType::kFloat && s.activation == kActNone;
    p.int_correction = !p.float_correction;
    const int taps = s.filter_h * s.filter_w;
    std::vector<int32_t> tap_pop(static_cast<size_t>(s.channels_out) * taps, 0);
    for (int oc = 0; oc < s.channels_out; ++oc) {
      for (int t = 0; t < taps; ++t) {
        const uint32_t* w = f + static_cast<size_t>(oc) * p.k32 + t * p.group_words;
        int n = 0;
        for (int c = 0; c < p.group_words; ++c) n += Popcount32(w[c]);
        tap_pop[static_cast<size_t>(oc) * taps + t] = n;
      }
    }
    std::map<std::string, int> patterns;
    std::vector<std::string> pattern_taps;
    p.pixel_pattern.assign(static_cast<size_t>(p.out_h) * p.out_w, -1);
    for (int oy = 0; oy < p.out_h; ++oy) {
      for (int ox = 0; ox < p.out_w; ++ox) {
        std::string outside(taps, '\0');
        bool any = false;
        for (int kh = 0; kh < s.filter_h; ++kh) {
          const int iy = oy * s.stride_h - p.pad_top + kh * s.dilation_h;
          for (int kw = 0; kw < s.filter_w; ++kw) {
            const int ix = ox * s.stride_w - p.pad_left + kw * s.dilation_w;
            if (iy < 0 || iy >= s.in_h || ix < 0 || ix >= s.in_w) {
              outside[kh * s.filter_w + kw] = 1;
              any = true;
            }
          }
        }
        if (!any) continue;
        auto it = patterns.find(outside);
        if (it == patterns.end()) {
          it = patterns.emplace(outside, static_cast<int>(pattern_taps.size())).first;
          pattern_taps.push_back(outside);
        }
        p.pixel_pattern[static_cast<size_t>(oy) * p.out_w + ox] = it->second;
      }
    }
    const int n_patterns = static_cast<int>(pattern_taps.size());
    if (p.int_correction) p.int_corrections.assign(static_cast<size_t>(n_patterns) * slots, 0);
    if (p.float_correction) {
      p.float_corrections.assign(static_cast<size_t>(n_patterns) * slots, 0.0f);
    }
    for (int q = 0; q < n_patterns; ++q) {
      for (int slot = 0; slot < slots; ++slot) {
        const int oc = slot_channel(slot);
        if (oc < 0) continue;
        int padded = 0, pop = 0;
        for (int t = 0; t < taps; ++t) {
          if (!pattern_taps[q][t]) continue;
          ++padded;
          pop += tap_pop[static_cast<size_t>(oc) * taps + t];
        }
        const size_t at = static_cast<size_t>(q) * slots + slot;
        if (p.int_correction) {
          p.int_corrections[at] = padded * (cin_g / 2) - pop;
        } else {
          const float sum = static_cast<float>(padded * cin_g - 2 * pop);
          p.float_corrections[at] = (-1.0f * multiplier[oc]) * sum;
        }
      }
    }
  }
  return "";
}

void RunBConv(const BConvPlan& plan, const int32_t* input, void* output, ThreadPool* pool) {
  const IsaOps& ops = OpsFor(plan.isa);
  const int64_t pixels = static_cast<int64_t>(plan.spec.batch) * plan.out_h * plan.out_w;
  const int64_t blocks = (pixels + plan.block_pixels - 1) / plan.block_pixels;
  const int panels = plan.spec.groups * plan.panels_per_group;
  const int threads = pool == nullptr ? 1 : pool->num_threads();
  if (threads == 1) {
    for (int64_t b = 0; b < blocks; ++b) ops.bconv_task(plan, input, output, b, 0, panels);
    return;
  }
  // Enough tasks to balance the threads: split the channel panels when there are few
  // pixel blocks. Bitpacked output splits only at word boundaries (2 panels), and only
  // when panels of a group start on a word.
  int chunks = 1;
  if (blocks < 4 * threads) {
    chunks = static_cast<int>(std::min<int64_t>(panels, (4 * threads + blocks - 1) / blocks));
  }
  int per_chunk = (panels + chunks - 1) / chunks;
  if (plan.spec.output_type == OutputType::kBitpacked) {
    const bool aligned = plan.spec.groups == 1 || plan.oc_per_group % 32 == 0;
    per_chunk = aligned ? (per_chunk + 1) / 2 * 2 : panels;
  }
  chunks = (panels + per_chunk - 1) / per_chunk;
  const int64_t tasks = blocks * chunks;
  pool->Run(static_cast<int>(tasks), [&](int task) {
    const int64_t b = task / chunks;
    const int c = static_cast<int>(task % chunks);
    ops.bconv_task(plan, input, output, b, c * per_chunk, std::min(panels, (c + 1) * per_chunk));
  });
}

}  // namespace xk
