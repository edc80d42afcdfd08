// The fused K kernel (see fusion.h).
#include "fusion.h"

#include <chrono>
#include <cmath>

#include "scratch.h"

namespace xk {

namespace {

int64_t Nanoseconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() -
                                                              since)
      .count();
}

std::string Received(const char* what, int64_t value) {
  return std::string(what) + ". Received: " + std::to_string(value);
}

// Sum of |x[0..n)| in eight float lanes (vectorizable without reassociation flags), the
// lanes added in double.
double AbsSum(const float* x, int n) {
  float lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int j = 0; j < 8; ++j) lanes[j] += std::fabs(x[i + j]);
  }
  double sum = 0.0;
  for (int j = 0; j < 8; ++j) sum += lanes[j];
  for (; i < n; ++i) sum += std::fabs(x[i]);
  return sum;
}

// K = A (*) box, eq. 11, from the definition: zero padding outside the map of means.
void BoxFilterMeans(const BoxFilter& box, int batch, int in_h, int in_w, const float* means,
                    int out_h, int out_w, float* k) {
  int oh, ow, pad_top, pad_left;
  WindowGeometry(box.padding_same, in_h, box.filter_h, box.stride_h, box.dilation_h, &oh,
                 &pad_top);
  WindowGeometry(box.padding_same, in_w, box.filter_w, box.stride_w, box.dilation_w, &ow,
                 &pad_left);
  for (int n = 0; n < batch; ++n) {
    const float* a = means + static_cast<int64_t>(n) * in_h * in_w;
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

}  // namespace

std::string CheckKFusionSpec(const KFusionSpec& s) {
  if (s.in_h < 1 || s.in_w < 1) return Received("K fusion: input height and width must be >= 1", s.in_h);
  if (s.channels < 1) return Received("K fusion: channels must be >= 1", s.channels);
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
  if (!(s.lo <= s.hi)) return "K fusion: the activation's lower bound exceeds its upper bound";
  return "";
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
  return "";
}

void KFusion::RowsTask(Isa isa, const float* u, int64_t row_begin, int64_t row_end) {
  const int c = spec_.channels;
  constexpr int64_t kChunk = 64;  // rows per pass: the affine's output stays in L1/L2
  float* x = spec_.affine.empty()
                 ? nullptr
                 : static_cast<float*>(internal::ThreadScratch(1, sizeof(float) * kChunk * c));
  const int64_t per_item = int64_t{spec_.in_h} * spec_.in_w * c;
  for (int64_t r0 = row_begin; r0 < row_end; r0 += kChunk) {
    const int64_t n = row_end - r0 < kChunk ? row_end - r0 : kChunk;
    const float* src = u + r0 * c;
    if (x != nullptr) {
      for (int64_t r = 0; r < n; ++r) {
        const float* in = src + r * c;
        float* out = x + r * c;
        const int64_t flat = ((r0 + r) * c) % per_item;  // index within the batch item
        for (size_t step = 0; step < spec_.affine.size(); ++step) {
          const std::vector<float>& values = affine_values_[step];
          const float* v = values.data() + flat % static_cast<int64_t>(values.size());
          const float* from = step == 0 ? in : out;
          if (spec_.affine[step].kind == AffineStep::kMul) {
            for (int i = 0; i < c; ++i) out[i] = from[i] * v[i];
          } else {
            for (int i = 0; i < c; ++i) out[i] = from[i] + v[i];
          }
        }
      }
      src = x;
    }
    QuantizeFloat(isa, src, n, c, bits_.data() + r0 * words_);
    for (int64_t r = 0; r < n; ++r) row_sums_[r0 + r] = AbsSum(src + r * c, c);
  }
}

void KFusion::RunPrologue(Isa isa, const float* u, ThreadPool* pool, KFusionTimes* times) {
  auto start = std::chrono::steady_clock::now();
  const int64_t rows = int64_t{batch_} * spec_.in_h * spec_.in_w;
  const int threads = pool == nullptr ? 1 : pool->num_threads();
  const int tasks = static_cast<int>(threads == 1 || rows < 128 ? 1 : 4 * threads);
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
                   spec_.out_w, k_.data());
  } else {
    for (size_t i = 0; i < k_.size(); ++i) k_[i] = means_[i];
  }
  if (times != nullptr) times->box_ns = Nanoseconds(start);
}

BConvPixelScale KFusion::scale() const {
  BConvPixelScale e;
  e.scale = k_.data();
  e.lo = spec_.lo;
  e.hi = spec_.hi;
  return e;
}

}  // namespace xk
