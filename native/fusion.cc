// The fused K kernel (see fusion.h).
#include "fusion.h"

#include <chrono>
#include <cmath>
#include <cstring>

#include "scratch.h"

namespace xk {

namespace {

inline int MinOf(int a, int b) { return a < b ? a : b; }
inline int MaxOf(int a, int b) { return a > b ? a : b; }

int64_t Nanoseconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() -
                                                              since)
      .count();
}

std::string Received(const char* what, int64_t value) {
  return std::string(what) + ". Received: " + std::to_string(value);
}

// The elementwise loops below are compiled for AVX-512, AVX2 and baseline x86-64 and
// picked by the CPU at load time (GCC target_clones). Each is the same IEEE operations in
// the same order in every clone (no reassociation: -ffp-contract=off, no fast-math; the
// sum keeps eight explicit lanes), so every clone gives the same bits, whichever `isa`.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define XK_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define XK_CLONES
#endif

// Rows of the prologue: per row of n values, y = the affine steps on `in` (written to
// `out` when there are any), and sums[r] = the sum of |y| accumulated in 16 explicit
// float lanes (added pairwise), the tail in double. Step s's constants for row r start at
// offset[s] (advanced by n per row, wrapping at size[s], a multiple of n).
struct RowConstants {
  const float* values[2] = {nullptr, nullptr};
  int64_t size[2] = {1, 1};
  int64_t offset[2] = {0, 0};
};

// 16 float lanes as a GCC/Clang vector: each clone lowers it to its widest registers (one
// zmm, two ymm, four xmm), so the lanes and their pairwise sum stay in registers (a float
// array here went through the stack, a store-forwarding stall per row). Vectors are not
// passed to functions: that would change with the clone's ABI.
typedef float Lanes16 __attribute__((vector_size(64)));
typedef int32_t Ints16 __attribute__((vector_size(64)));
typedef float Lanes8 __attribute__((vector_size(32)));
typedef float Lanes4 __attribute__((vector_size(16)));
typedef float Lanes2 __attribute__((vector_size(8)));

template <int kSteps, bool kMul0, bool kMul1>
inline __attribute__((always_inline)) void RowsPassT(const float* in, RowConstants* k, int n,
                                                     int64_t rows, float* out, double* sums) {
  const Ints16 magnitude = Ints16{} + 0x7fffffff;  // |y| = y with the sign bit cleared
  for (int64_t r = 0; r < rows; ++r, in += n) {
    const float* v0 = k->values[0] + k->offset[0];
    const float* v1 = k->values[1] + k->offset[1];
    for (int s = 0; s < kSteps; ++s) {
      k->offset[s] += n;
      if (k->offset[s] == k->size[s]) k->offset[s] = 0;
    }
    float* o = kSteps > 0 ? out + r * n : nullptr;
    auto apply = [&](int i) {
      float y = in[i];
      if (kSteps > 0) y = kMul0 ? y * v0[i] : y + v0[i];
      if (kSteps > 1) y = kMul1 ? y * v1[i] : y + v1[i];
      if (kSteps > 0) o[i] = y;
      return y;
    };
    Lanes16 lanes = {};
    int i = 0;
    for (; i + 16 <= n; i += 16) {
      Lanes16 y, c0, c1;
      std::memcpy(&y, in + i, sizeof y);
      if (kSteps > 0) std::memcpy(&c0, v0 + i, sizeof c0), y = kMul0 ? y * c0 : y + c0;
      if (kSteps > 1) std::memcpy(&c1, v1 + i, sizeof c1), y = kMul1 ? y * c1 : y + c1;
      if (kSteps > 0) std::memcpy(o + i, &y, sizeof y);
      lanes += reinterpret_cast<Lanes16>(reinterpret_cast<Ints16>(y) & magnitude);
    }
    // lanes[j] += lanes[j + half] for half = 8, 4, 2, 1: a fixed pairwise order.
    const Lanes8 l8 = __builtin_shufflevector(lanes, lanes, 0, 1, 2, 3, 4, 5, 6, 7) +
                      __builtin_shufflevector(lanes, lanes, 8, 9, 10, 11, 12, 13, 14, 15);
    const Lanes4 l4 = __builtin_shufflevector(l8, l8, 0, 1, 2, 3) +
                      __builtin_shufflevector(l8, l8, 4, 5, 6, 7);
    const Lanes2 l2 = __builtin_shufflevector(l4, l4, 0, 1) + __builtin_shufflevector(l4, l4, 2, 3);
    double sum = l2[0] + l2[1];
    for (; i < n; ++i) sum += std::fabs(apply(i));
    sums[r] = sum;
  }
}

XK_CLONES void RowsPass(int steps, bool mul0, bool mul1, const float* in, RowConstants* k,
                        int n, int64_t rows, float* out, double* sums) {
  if (steps == 0) return RowsPassT<0, true, true>(in, k, n, rows, out, sums);
  if (steps == 1) {
    return mul0 ? RowsPassT<1, true, true>(in, k, n, rows, out, sums)
                : RowsPassT<1, false, true>(in, k, n, rows, out, sums);
  }
  if (mul0) {
    return mul1 ? RowsPassT<2, true, true>(in, k, n, rows, out, sums)
                : RowsPassT<2, true, false>(in, k, n, rows, out, sums);
  }
  return mul1 ? RowsPassT<2, false, true>(in, k, n, rows, out, sums)
              : RowsPassT<2, false, false>(in, k, n, rows, out, sums);
}

// Pixels [pixel_begin, pixel_end) of u = maxpool(v) (flat over the batch, `oh` x `ow`
// pixels per item) into `out`: per channel the max over the window's taps inside v (SAME's
// padding is -inf: never the max), `m < t ? t : m` in tap order (TFLite's std::max), then
// clamp(m, lo, hi) as TFLite's activation: the same floats, not a rounding of them.
XK_CLONES void MaxPoolPixels(const MaxPoolSpec& p, int oh, int ow, int pad_top, int pad_left,
                             const float* v, int64_t pixel_begin, int64_t pixel_end,
                             float* out) {
  const int c = p.channels;
  const bool clamp = p.lo != -__builtin_inff() || p.hi != __builtin_inff();
  const Lanes16 lo16 = Lanes16{} + p.lo, hi16 = Lanes16{} + p.hi;
  // The pixel's (item, oy, ox), divided out once and then stepped.
  int64_t item = pixel_begin / (int64_t{oh} * ow);
  int oy = static_cast<int>(pixel_begin / ow % oh), ox = static_cast<int>(pixel_begin % ow);
  for (int64_t q = pixel_begin; q < pixel_end; ++q, out += c) {
    const int y0 = MaxOf(0, oy * p.stride_h - pad_top);
    const int y1 = MinOf(p.in_h, oy * p.stride_h - pad_top + p.filter_h);
    const int x0 = MaxOf(0, ox * p.stride_w - pad_left);
    const int x1 = MinOf(p.in_w, ox * p.stride_w - pad_left + p.filter_w);
    const float* window = v + ((item * p.in_h + y0) * p.in_w + x0) * c;
    const int64_t row_step = int64_t{p.in_w} * c;
    // 16 channels at a time, the max kept in registers across the taps (through `out` each
    // tap would wait on its own store); per lane the same `m < t ? t : m` in tap order.
    // The first tap starts m (windows are never empty: WindowGeometry), the rest follow
    // in row-major order.
    const int taps_h = y1 - y0, taps_w = x1 - x0;
    int i = 0;
    for (; i + 16 <= c; i += 16) {
      Lanes16 m, t;
      std::memcpy(&m, window + i, sizeof m);
      for (int y = 0; y < taps_h; ++y) {
        for (int x = y == 0 ? 1 : 0; x < taps_w; ++x) {
          std::memcpy(&t, window + y * row_step + x * c + i, sizeof t);
          m = m < t ? t : m;
        }
      }
      if (clamp) {
        m = m < lo16 ? lo16 : m;
        m = m > hi16 ? hi16 : m;
      }
      std::memcpy(out + i, &m, sizeof m);
    }
    for (; i < c; ++i) {
      float m = window[i];
      for (int y = 0; y < taps_h; ++y) {
        for (int x = y == 0 ? 1 : 0; x < taps_w; ++x) {
          const float t = window[y * row_step + x * c + i];
          m = m < t ? t : m;
        }
      }
      if (clamp) {
        m = m < p.lo ? p.lo : m;
        m = m > p.hi ? p.hi : m;
      }
      out[i] = m;
    }
    if (++ox == ow) {
      ox = 0;
      if (++oy == oh) oy = 0, ++item;
    }
  }
}

// K = A (*) box, eq. 11: zero padding outside the map of means, so a window's sum is the
// sum over its part inside the map, read from a summed-area table (in double) when the
// box is not dilated. `table` holds (in_h + 1) * (in_w + 1) doubles.
void BoxFilterMeans(const BoxFilter& box, int batch, int in_h, int in_w, const float* means,
                    int out_h, int out_w, double* table, float* k) {
  int oh, ow, pad_top, pad_left;
  WindowGeometry(box.padding_same, in_h, box.filter_h, box.stride_h, box.dilation_h, &oh,
                 &pad_top);
  WindowGeometry(box.padding_same, in_w, box.filter_w, box.stride_w, box.dilation_w, &ow,
                 &pad_left);
  const bool dense = box.dilation_h == 1 && box.dilation_w == 1;
  const int64_t tw = in_w + 1;
  for (int n = 0; n < batch; ++n) {
    const float* a = means + static_cast<int64_t>(n) * in_h * in_w;
    if (dense) {
      for (int x = 0; x <= in_w; ++x) table[x] = 0.0;
      for (int y = 0; y < in_h; ++y) {
        double row = 0.0;
        table[(y + 1) * tw] = 0.0;
        for (int x = 0; x < in_w; ++x) {
          row += a[static_cast<int64_t>(y) * in_w + x];
          table[(y + 1) * tw + x + 1] = table[y * tw + x + 1] + row;
        }
      }
      for (int oy = 0; oy < out_h; ++oy) {
        const int y0 = MaxOf(0, oy * box.stride_h - pad_top);
        const int y1 = MinOf(in_h, oy * box.stride_h - pad_top + box.filter_h);
        for (int ox = 0; ox < out_w; ++ox) {
          const int x0 = MaxOf(0, ox * box.stride_w - pad_left);
          const int x1 = MinOf(in_w, ox * box.stride_w - pad_left + box.filter_w);
          const double sum = y1 <= y0 || x1 <= x0 ? 0.0
                                                  : table[y1 * tw + x1] - table[y0 * tw + x1] -
                                                        table[y1 * tw + x0] + table[y0 * tw + x0];
          k[(static_cast<int64_t>(n) * out_h + oy) * out_w + ox] =
              static_cast<float>(static_cast<double>(box.value) * sum +
                                 static_cast<double>(box.bias));
        }
      }
      continue;
    }
    for (int oy = 0; oy < out_h; ++oy) {
      for (int ox = 0; ox < out_w; ++ox) {
        double sum = 0.0;
        for (int ky = 0; ky < box.filter_h; ++ky) {
          const int y = oy * box.stride_h - pad_top + ky * box.dilation_h;
          if (y < 0 || y >= in_h) continue;
          for (int kx = 0; kx < box.filter_w; ++kx) {
            const int x = ox * box.stride_w - pad_left + kx * box.dilation_w;
            if (x >= 0 && x < in_w) sum += a[static_cast<int64_t>(y) * in_w + x];
          }
        }
        k[(static_cast<int64_t>(n) * out_h + oy) * out_w + ox] =
            static_cast<float>(static_cast<double>(box.value) * sum +
                               static_cast<double>(box.bias));
      }
    }
  }
}

std::string CheckMaxPool(const KFusionSpec& s) {
  const MaxPoolSpec& p = s.pool;
  if (p.in_h < 1 || p.in_w < 1 || p.channels < 1) {
    return Received("K fusion: the max-pool's input height, width and channels must be >= 1",
                    p.in_h);
  }
  if (int64_t{p.in_h} * p.in_w * p.channels > (int64_t{1} << 30)) {
    return Received("K fusion: the max-pool's input is implausibly large, height", p.in_h);
  }
  if (p.filter_h < 1 || p.filter_w < 1 || p.stride_h < 1 || p.stride_w < 1) {
    return Received("K fusion: max-pool filter sizes and strides must be >= 1", p.filter_h);
  }
  int oh, ow, pad;
  WindowGeometry(p.padding_same, p.in_h, p.filter_h, p.stride_h, 1, &oh, &pad);
  WindowGeometry(p.padding_same, p.in_w, p.filter_w, p.stride_w, 1, &ow, &pad);
  if (oh < 1 || ow < 1 || s.channels % p.channels != 0 ||
      int64_t{oh} * ow * p.channels != int64_t{s.in_h} * s.in_w * s.channels) {
    return Received("K fusion: the max-pool's output is not the quantized input, pooled height",
                    oh);
  }
  if (!(p.lo <= p.hi)) return "K fusion: the max-pool's activation bounds are reversed";
  return "";
}

}  // namespace

int64_t KFusionInputValues(const KFusionSpec& s) {
  return s.has_pool ? int64_t{s.pool.in_h} * s.pool.in_w * s.pool.channels
                    : int64_t{s.in_h} * s.in_w * s.channels;
}

std::string CheckKFusionSpec(const KFusionSpec& s) {
  if (s.in_h < 1 || s.in_w < 1) return Received("K fusion: input height and width must be >= 1", s.in_h);
  if (s.channels < 1) return Received("K fusion: channels must be >= 1", s.channels);
  if (int64_t{s.in_h} * s.in_w > (int64_t{1} << 30) || s.channels > (1 << 20)) {
    return Received("K fusion: the input is implausibly large, height", s.in_h);
  }
  if (s.affine.size() > 2) {
    return Received("K fusion: at most 2 affine steps", static_cast<int64_t>(s.affine.size()));
  }
  for (const AffineStep& a : s.affine) {
    if (a.values == nullptr || a.length < 1 || (a.length != 1 && a.length % s.channels != 0)) {
      return Received("K fusion: an affine constant must have 1 or a multiple of the channels "
                      "values", a.length);
    }
    if (a.length > int64_t{s.in_h} * s.in_w * s.channels ||
        (int64_t{s.in_h} * s.in_w * s.channels) % a.length != 0) {
      return Received("K fusion: an affine constant must tile the input", a.length);
    }
  }
  const int64_t per_item = int64_t{s.in_h} * s.in_w * s.channels;
  if (per_item > (int64_t{1} << 30) || int64_t{s.out_h} * s.out_w > (int64_t{1} << 30)) {
    return Received("K fusion: the input or output is implausibly large, values per item",
                    per_item);
  }
  if (s.mean_length < s.channels || s.mean_length % s.channels != 0 ||
      per_item % s.mean_length != 0) {
    return Received("K fusion: the mean must run over whole pixels of the input", s.mean_length);
  }
  if (s.out_h < 1 || s.out_w < 1) return Received("K fusion: empty output", s.out_h);
  if (s.has_box) {
    const BoxFilter& b = s.box;
    if (s.mean_length != s.channels) {
      return Received("K fusion: a box filter needs per-pixel means", s.mean_length);
    }
    if (b.filter_h < 1 || b.filter_w < 1 || b.stride_h < 1 || b.stride_w < 1 ||
        b.dilation_h < 1 || b.dilation_w < 1) {
      return Received("K fusion: box filter sizes, strides and dilations must be >= 1",
                      b.filter_h);
    }
    int oh, ow, pad;
    WindowGeometry(b.padding_same, s.in_h, b.filter_h, b.stride_h, b.dilation_h, &oh, &pad);
    WindowGeometry(b.padding_same, s.in_w, b.filter_w, b.stride_w, b.dilation_w, &ow, &pad);
    if (oh != s.out_h || ow != s.out_w) {
      return Received("K fusion: the box filter's output does not match the convolution's "
                      "output height", oh);
    }
  } else if (per_item / s.mean_length != int64_t{s.out_h} * s.out_w) {
    return Received("K fusion: one mean per output pixel needed, means per item",
                    per_item / s.mean_length);
  }
  if (!(s.lo <= s.hi) || !(s.residual_lo <= s.residual_hi)) {
    return "K fusion: an activation's lower bound exceeds its upper bound";
  }
  return s.has_pool ? CheckMaxPool(s) : "";
}

std::string KFusion::Prepare(const KFusionSpec& spec, int batch) {
  const std::string problem = CheckKFusionSpec(spec);
  if (!problem.empty()) return problem;
  if (batch < 1) return Received("K fusion: batch must be >= 1", batch);
  spec_ = spec;
  batch_ = batch;
  words_ = BitpackedWords(spec.channels);
  const int64_t rows = int64_t{batch} * spec.in_h * spec.in_w;
  const int64_t per_item = int64_t{spec.in_h} * spec.in_w * spec.channels;
  affine_values_.clear();
  for (const AffineStep& a : spec.affine) {
    // Tiled to max(length, channels) values so that a row's constants are contiguous.
    const int64_t n = a.length == 1 ? spec.channels : a.length;
    std::vector<float> v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) v[i] = a.values[a.length == 1 ? 0 : i];
    affine_values_.push_back(std::move(v));
  }
  bits_.assign(static_cast<size_t>(rows * words_), 0);
  row_sums_.assign(static_cast<size_t>(rows), 0.0);
  means_.assign(static_cast<size_t>(batch * (per_item / spec.mean_length)), 0.0f);
  k_.assign(static_cast<size_t>(int64_t{batch} * spec.out_h * spec.out_w), 0.0f);
  table_.assign(static_cast<size_t>(int64_t{spec.in_h + 1} * (spec.in_w + 1)), 0.0);
  return "";
}

void KFusion::RowsTask(Isa isa, const float* u, int64_t row_begin, int64_t row_end) {
  const int c = spec_.channels;
  constexpr int64_t kChunk = 64;  // rows per pass: the affine's output stays in L1/L2
  float* x = spec_.affine.empty()
                 ? nullptr
                 : static_cast<float*>(internal::ThreadScratch(1, sizeof(float) * kChunk * c));
  // With a pool, u exists only per chunk (pixels of u tile the rows: c % pool.channels == 0).
  float* pooled = spec_.has_pool
                      ? static_cast<float*>(internal::ThreadScratch(2, sizeof(float) * kChunk * c))
                      : nullptr;
  const MaxPoolSpec& p = spec_.pool;
  int oh = 0, ow = 0, pad_top = 0, pad_left = 0;
  if (spec_.has_pool) {
    WindowGeometry(p.padding_same, p.in_h, p.filter_h, p.stride_h, 1, &oh, &pad_top);
    WindowGeometry(p.padding_same, p.in_w, p.filter_w, p.stride_w, 1, &ow, &pad_left);
  }
  const int64_t pixels_per_row = spec_.has_pool ? c / p.channels : 0;
  const int64_t per_item = int64_t{spec_.in_h} * spec_.in_w * c;
  const int steps = static_cast<int>(spec_.affine.size());
  const bool mul0 = steps > 0 && spec_.affine[0].kind == AffineStep::kMul;
  const bool mul1 = steps > 1 && spec_.affine[1].kind == AffineStep::kMul;
  RowConstants k;
  for (int step = 0; step < steps; ++step) {
    k.values[step] = affine_values_[step].data();
    k.size[step] = static_cast<int64_t>(affine_values_[step].size());
    k.offset[step] = ((row_begin * c) % per_item) % k.size[step];
  }
  for (int64_t r0 = row_begin; r0 < row_end; r0 += kChunk) {
    const int64_t n = row_end - r0 < kChunk ? row_end - r0 : kChunk;
    const float* in = u + r0 * c;
    if (pooled != nullptr) {
      MaxPoolPixels(p, oh, ow, pad_top, pad_left, u, r0 * pixels_per_row,
                    (r0 + n) * pixels_per_row, pooled);
      in = pooled;
    }
    RowsPass(steps, mul0, mul1, in, &k, c, n, x, row_sums_.data() + r0);
    QuantizeFloat(isa, x == nullptr ? in : x, n, c, bits_.data() + r0 * words_);
  }
}

void KFusion::RunPrologue(Isa isa, const float* u, ThreadPool* pool, KFusionTimes* times) {
  auto start = std::chrono::steady_clock::now();
  const int64_t rows = int64_t{batch_} * spec_.in_h * spec_.in_w;
  const int threads = pool == nullptr ? 1 : pool->num_threads();
  const int tasks = threads == 1 || rows < 128 ? 1 : kTasksPerThread * threads;
  if (tasks == 1) {
    RowsTask(isa, u, 0, rows);
  } else {
    pool->Run(tasks, [&](int t) { RowsTask(isa, u, rows * t / tasks, rows * (t + 1) / tasks); });
  }
  // MEAN: the float mean of each group of rows, as TFLite's MEAN's output tensor holds it.
  const int64_t rows_per_mean = spec_.mean_length / spec_.channels;
  for (size_t g = 0; g < means_.size(); ++g) {
    double sum = 0.0;
    for (int64_t r = 0; r < rows_per_mean; ++r) sum += row_sums_[g * rows_per_mean + r];
    means_[g] = static_cast<float>(sum / static_cast<double>(spec_.mean_length));
  }
  if (times != nullptr) times->prologue_ns = Nanoseconds(start);
  start = std::chrono::steady_clock::now();
  if (spec_.has_box) {
    BoxFilterMeans(spec_.box, batch_, spec_.in_h, spec_.in_w, means_.data(), spec_.out_h,
                   spec_.out_w, table_.data(), k_.data());
  } else {
    for (size_t i = 0; i < k_.size(); ++i) k_[i] = means_[i];
  }
  if (times != nullptr) times->box_ns = Nanoseconds(start);
}

BConvPixelScale KFusion::scale(const float* residual) const {
  BConvPixelScale e;
  e.scale = k_.data();
  e.lo = spec_.lo;
  e.hi = spec_.hi;
  if (spec_.has_residual) {
    e.residual = residual;
    e.residual_lo = spec_.residual_lo;
    e.residual_hi = spec_.residual_hi;
  }
  return e;
}

}  // namespace xk
