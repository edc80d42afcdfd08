// Unit tests for the binary kernels, for every ISA this build and CPU can run.
//
// The reference is written from the definitions, on unpacked {-1,+1} values: a
// convolution is a sum of products over the window (padding contributes 0 for
// pad_values=0 and +1 * w for pad_values=1), the fused transform is
// y = m * act(dot) + b, bitpacked output is the sign bit of that y expressed through the
// threshold on the XOR-popcount (acc = (K - dot) / 2 > threshold), max-pooling is a max.
// Every ISA must match the reference (floats to 1e-5 relative, integers exactly, int8
// exactly except where q lies within float rounding error of a .5 boundary) and all ISAs
// must agree bit for bit with the first one (portable) on every output type. On x86-64 both AVX2 popcount
// variants (vpshufb, the default, and Harley-Seal) are checked.
//
// The fused K kernel (fusion.h) is checked against eq. 11 written from the definition
// (affine in float as TFLite's MUL/ADD, then signs and means of |x| in double, the box
// filter with zero padding), bitpacked output exactly, K to 1e-5 relative and bit for bit
// across ISAs; the K epilogue of the binary convolution (bconv.h BConvPixelScale) equals
// the plain convolution's output times K, clamped, bit for bit.
//
// Usage: kernel_tests [--isa NAME] [--cases N] [--seed S]; prints one line per ISA (SKIP
// with the reason for ISAs this CPU/build cannot run) and exits non-zero on the first
// mismatch. --isa NAME checks portable and NAME only, and fails if NAME is unavailable.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "../fusion.h"
#include "../isa.h"
#include "../kernels.h"

namespace {

std::mt19937_64 rng;

int Uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "FAIL: %s\n", what.c_str());
  std::exit(1);
}

// Packs {-1,+1} values (rows x cols) independently of the code under test.
std::vector<int32_t> PackSigns(const std::vector<int8_t>& v, int64_t rows, int cols) {
  const int words = (cols + 31) / 32;
  std::vector<int32_t> out(rows * words, 0);
  for (int64_t r = 0; r < rows; ++r) {
    for (int c = 0; c < cols; ++c) {
      if (v[r * cols + c] < 0) {
        out[r * words + c / 32] =
            static_cast<int32_t>(static_cast<uint32_t>(out[r * words + c / 32]) | 1u << (c % 32));
      }
    }
  }
  return out;
}

std::vector<int8_t> RandomSigns(int64_t n) {
  std::vector<int8_t> v(n);
  for (auto& x : v) x = Uniform(0, 1) ? 1 : -1;
  return v;
}

struct Case {
  xk::BConvSpec spec;
  std::string Describe() const {
    const auto& s = spec;
    char buf[400];
    std::snprintf(buf, sizeof(buf),
                  "n=%d %dx%dx%d groups=%d oc=%d k=%dx%d stride=%d,%d dil=%d,%d same=%d pad=%d "
                  "act=%d out=%d",
                  s.batch, s.in_h, s.in_w, s.channels_in, s.groups, s.channels_out, s.filter_h,
                  s.filter_w, s.stride_h, s.stride_w, s.dilation_h, s.dilation_w,
                  s.padding_same, s.pad_value, s.activation, static_cast<int>(s.output_type));
    return buf;
  }
};

int RefOutSize(bool same, int in, int k, int stride, int dil, int* pad) {
  const int eff = (k - 1) * dil + 1;
  const int out = same ? (in + stride - 1) / stride : (in - eff) / stride + 1;
  const int total = std::max(0, (out - 1) * stride + eff - in);
  *pad = same ? total / 2 : 0;
  return out;
}

void CheckBConv(const std::vector<xk::Isa>& isas, const Case& c) {
  const xk::BConvSpec& s = c.spec;
  const int cin_g = s.channels_in / s.groups, ocg = s.channels_out / s.groups;
  const auto x = RandomSigns(static_cast<int64_t>(s.batch) * s.in_h * s.in_w * s.channels_in);
  const auto w = RandomSigns(static_cast<int64_t>(s.channels_out) * s.filter_h * s.filter_w *
                             cin_g);
  std::vector<float> m(s.channels_out), b(s.channels_out);
  std::vector<int32_t> thr(s.channels_out);
  const int K = s.filter_h * s.filter_w * cin_g;
  for (int o = 0; o < s.channels_out; ++o) {
    m[o] = std::uniform_real_distribution<float>(-2.0f, 2.0f)(rng);
    b[o] = std::uniform_real_distribution<float>(-3.0f, 3.0f)(rng);
    thr[o] = Uniform(-2, K + 1);
  }
  const auto xp = PackSigns(x, static_cast<int64_t>(s.batch) * s.in_h * s.in_w, s.channels_in);
  // Filter words: [oc][kh][kw][words of cin_g]
  const auto wp = PackSigns(w, static_cast<int64_t>(s.channels_out) * s.filter_h * s.filter_w,
                            cin_g);

  int pt, pl;
  const int oh = RefOutSize(s.padding_same, s.in_h, s.filter_h, s.stride_h, s.dilation_h, &pt);
  const int ow = RefOutSize(s.padding_same, s.in_w, s.filter_w, s.stride_w, s.dilation_w, &pl);
  const int64_t pixels = static_cast<int64_t>(s.batch) * oh * ow;
  // Reference: dot products.
  std::vector<int32_t> dot(pixels * s.channels_out);
  for (int n = 0; n < s.batch; ++n) {
    for (int oy = 0; oy < oh; ++oy) {
      for (int ox = 0; ox < ow; ++ox) {
        for (int o = 0; o < s.channels_out; ++o) {
          const int g = o / ocg;
          int sum = 0;
          for (int kh = 0; kh < s.filter_h; ++kh) {
            for (int kw = 0; kw < s.filter_w; ++kw) {
              const int iy = oy * s.stride_h - pt + kh * s.dilation_h;
              const int ix = ox * s.stride_w - pl + kw * s.dilation_w;
              const bool inside = iy >= 0 && iy < s.in_h && ix >= 0 && ix < s.in_w;
              for (int ci = 0; ci < cin_g; ++ci) {
                const int wv = w[((static_cast<int64_t>(o) * s.filter_h + kh) * s.filter_w + kw) *
                                     cin_g + ci];
                int xv = s.pad_value;  // +1 or 0 outside
                if (inside) {
                  xv = x[((static_cast<int64_t>(n) * s.in_h + iy) * s.in_w + ix) * s.channels_in +
                         g * cin_g + ci];
                }
                sum += xv * wv;
              }
            }
          }
          dot[((static_cast<int64_t>(n) * oh + oy) * ow + ox) * s.channels_out + o] = sum;
        }
      }
    }
  }
  int lo = -K, hi = K;
  if (s.activation == xk::kActRelu) lo = 0;
  if (s.activation == xk::kActReluN1To1) lo = -1, hi = 1;
  if (s.activation == xk::kActRelu6) lo = 0, hi = std::min(6, K);

  std::vector<uint8_t> first;
  for (xk::Isa isa : isas) {
    xk::BConvPlan plan;
    const std::string err =
        xk::PrepareBConv(isa, s, wp.data(), m.data(), b.data(), thr.data(), &plan);
    if (!err.empty()) Fail(c.Describe() + ": prepare: " + err);
    if (plan.out_h != oh || plan.out_w != ow) Fail(c.Describe() + ": output size");
    size_t bytes = 0;
    if (s.output_type == xk::OutputType::kFloat) bytes = pixels * s.channels_out * 4;
    if (s.output_type == xk::OutputType::kInt8) bytes = pixels * s.channels_out;
    if (s.output_type == xk::OutputType::kBitpacked) bytes = pixels * ((s.channels_out + 31) / 32) * 4;
    std::vector<uint8_t> out(bytes, 0xAB);
    xk::ThreadPool pool(Uniform(1, 3));
    xk::RunBConv(plan, xp.data(), out.data(), &pool);
    for (int64_t i = 0; i < pixels * s.channels_out; ++i) {
      const int64_t px = i / s.channels_out;
      const int o = static_cast<int>(i % s.channels_out);
      const int d = std::max(lo, std::min(hi, dot[i]));
      const double y = static_cast<double>(m[o]) * d + b[o];
      if (s.output_type == xk::OutputType::kFloat) {
        float got;
        std::memcpy(&got, out.data() + 4 * i, 4);
        const double tol = 1e-5 * (std::fabs(y) + std::fabs(m[o]) * K + std::fabs(b[o])) + 1e-6;
        if (std::fabs(got - y) > tol) {
          Fail(c.Describe() + " isa=" + xk::IsaName(isa) + ": float output " +
               std::to_string(got) + " != " + std::to_string(y) + " at " + std::to_string(i));
        }
      } else if (s.output_type == xk::OutputType::kInt8) {
        // The kernels (as LCE) compute q in float as X * mul + bias with X = K - d,
        // mul = float(-m / scale), bias = float((b + K m) / scale + zero_point): bias is
        // of the order of K |m| / scale (up to ~1e5 here), so float rounding moves q by up
        // to a few ulps of it, far more than 1e-3. A result one unit off is right iff the
        // rounding boundary between the two lies within that error bound of q.
        const double q = y / s.output_scale + s.output_zero_point;
        const int want = static_cast<int>(std::max(-128.0, std::min(127.0, std::round(q))));
        const int got = static_cast<int8_t>(out[i]);
        const double x_term = static_cast<double>(K - d) * m[o] / s.output_scale;
        const double bias = (static_cast<double>(b[o]) + static_cast<double>(K) * m[o]) /
                                s.output_scale + s.output_zero_point;
        const double bound =
            FLT_EPSILON * (2 * std::fabs(x_term) + std::fabs(bias) + std::fabs(q)) + 1e-9;
        const bool boundary = std::abs(got - want) == 1 &&
                              std::fabs(q - (std::min(got, want) + 0.5)) <= bound;
        if (got != want && !boundary) {
          Fail(c.Describe() + " isa=" + xk::IsaName(isa) + ": int8 output " +
               std::to_string(got) + " != " + std::to_string(want) + " (q = " +
               std::to_string(q) + ", float error bound " + std::to_string(bound) + ")");
        }
      } else {
        const int words = (s.channels_out + 31) / 32;
        uint32_t word;
        std::memcpy(&word, out.data() + 4 * (px * words + o / 32), 4);
        const bool got = word >> (o % 32) & 1u;
        const bool want = (K - dot[i]) > 2 * thr[o];  // acc = (K - dot) / 2 > threshold
        if (got != want) {
          Fail(c.Describe() + " isa=" + xk::IsaName(isa) + ": bit at " + std::to_string(i));
        }
      }
    }
    if (s.output_type == xk::OutputType::kBitpacked && s.channels_out % 32 != 0) {
      const int words = (s.channels_out + 31) / 32;
      for (int64_t px = 0; px < pixels; ++px) {
        uint32_t word;
        std::memcpy(&word, out.data() + 4 * (px * words + words - 1), 4);
        if (word >> (s.channels_out % 32) != 0) Fail(c.Describe() + ": padding bits not zero");
      }
    }
    if (first.empty()) {
      first = out;
    } else if (out != first) {
      Fail(c.Describe() + " isa=" + xk::IsaName(isa) + ": differs from " + xk::IsaName(isas[0]));
    }
  }
}

Case RandomCase() {
  Case c;
  xk::BConvSpec& s = c.spec;
  s.batch = Uniform(1, 2);
  s.groups = Uniform(0, 4) == 0 ? 2 : 1;
  static const int kChannels[] = {1, 3, 16, 31, 32, 33, 64, 65, 96, 128, 160, 256, 520};
  s.channels_in = s.groups == 1 ? kChannels[Uniform(0, 12)] : 32 * s.groups * Uniform(1, 3);
  static const int kOut[] = {1, 2, 7, 16, 17, 32, 33, 48, 64, 80};
  s.channels_out = kOut[Uniform(0, 9)] * s.groups;
  s.filter_h = Uniform(1, 3) * 2 - 1;
  s.filter_w = Uniform(0, 3) == 0 ? Uniform(1, 4) : s.filter_h;
  s.stride_h = Uniform(1, 2);
  s.stride_w = Uniform(0, 3) == 0 ? Uniform(1, 3) : s.stride_h;
  s.dilation_h = Uniform(0, 3) == 0 ? 2 : 1;
  s.dilation_w = Uniform(0, 3) == 0 ? 2 : 1;
  s.padding_same = Uniform(0, 2) != 0;
  s.pad_value = Uniform(0, 1);
  s.activation = Uniform(0, 3);
  s.output_type = static_cast<xk::OutputType>(Uniform(0, 2));
  s.output_scale = std::uniform_real_distribution<float>(0.05f, 0.5f)(rng);
  s.output_zero_point = Uniform(-20, 20);
  // VALID windows must fit; SAME ones may be larger than the input. Odd channel counts
  // with zero padding and integer outputs are outside what LCE supports (its reference
  // adds channels / 2 per padded tap); keep the reference comparable.
  const int min_h = s.padding_same ? 1 : (s.filter_h - 1) * s.dilation_h + 1;
  const int min_w = s.padding_same ? 1 : (s.filter_w - 1) * s.dilation_w + 1;
  s.in_h = Uniform(min_h, min_h + 9);
  s.in_w = Uniform(min_w, min_w + 9);
  if (s.padding_same && s.pad_value == 0 && s.channels_in / s.groups % 2 == 1) s.pad_value = 1;
  return c;
}

void CheckPoolAndPacking(const std::vector<xk::Isa>& isas) {
  // Quantize: float signs including -0.0 (not negative) and int8 around a zero point.
  const int rows = Uniform(1, 5), cols = Uniform(1, 100);
  std::vector<float> f(rows * cols);
  std::vector<int8_t> q(rows * cols), sgn(rows * cols), sgn8(rows * cols);
  const int zp = Uniform(-5, 5);
  for (int i = 0; i < rows * cols; ++i) {
    f[i] = Uniform(0, 9) == 0 ? -0.0f : std::uniform_real_distribution<float>(-1, 1)(rng);
    sgn[i] = f[i] < 0 ? -1 : 1;
    q[i] = static_cast<int8_t>(Uniform(-128, 127));
    sgn8[i] = q[i] < zp ? -1 : 1;
  }
  const auto want_f = PackSigns(sgn, rows, cols), want_q = PackSigns(sgn8, rows, cols);
  for (xk::Isa isa : isas) {
    std::vector<int32_t> got(want_f.size(), -1);
    xk::QuantizeFloat(isa, f.data(), rows, cols, got.data());
    if (got != want_f) Fail(std::string("QuantizeFloat isa=") + xk::IsaName(isa));
    xk::QuantizeInt8(isa, q.data(), rows, cols, zp, got.data());
    if (got != want_q) Fail(std::string("QuantizeInt8 isa=") + xk::IsaName(isa));
  }
  std::vector<float> back(rows * cols);
  xk::DequantizeFloat(want_f.data(), rows, cols, back.data());
  for (int i = 0; i < rows * cols; ++i) {
    if (back[i] != sgn[i]) Fail("DequantizeFloat");
  }

  // Max-pool on {-1,+1}: the max of a window, windows clipped at the border.
  xk::BMaxPoolSpec s;
  s.batch = Uniform(1, 2);
  s.in_h = Uniform(1, 9);
  s.in_w = Uniform(1, 9);
  const int ch = Uniform(1, 100);
  s.words = (ch + 31) / 32;
  s.filter_h = Uniform(1, 3);
  s.filter_w = Uniform(1, 3);
  s.stride_h = Uniform(1, 3);
  s.stride_w = Uniform(1, 3);
  s.padding_same = Uniform(0, 1);
  if (!s.padding_same && (s.in_h < s.filter_h || s.in_w < s.filter_w)) s.padding_same = true;
  const auto x = RandomSigns(static_cast<int64_t>(s.batch) * s.in_h * s.in_w * ch);
  const auto xp = PackSigns(x, static_cast<int64_t>(s.batch) * s.in_h * s.in_w, ch);
  int pt, pl;
  const int oh = RefOutSize(s.padding_same, s.in_h, s.filter_h, s.stride_h, 1, &pt);
  const int ow = RefOutSize(s.padding_same, s.in_w, s.filter_w, s.stride_w, 1, &pl);
  std::vector<int8_t> ref(static_cast<int64_t>(s.batch) * oh * ow * ch, -1);
  for (int n = 0; n < s.batch; ++n) {
    for (int oy = 0; oy < oh; ++oy) {
      for (int ox = 0; ox < ow; ++ox) {
        for (int c = 0; c < ch; ++c) {
          int best = -1;
          for (int ky = 0; ky < s.filter_h; ++ky) {
            for (int kx = 0; kx < s.filter_w; ++kx) {
              const int iy = oy * s.stride_h - pt + ky, ix = ox * s.stride_w - pl + kx;
              if (iy < 0 || iy >= s.in_h || ix < 0 || ix >= s.in_w) continue;
              best = std::max<int>(best, x[((static_cast<int64_t>(n) * s.in_h + iy) * s.in_w + ix) * ch + c]);
            }
          }
          ref[((static_cast<int64_t>(n) * oh + oy) * ow + ox) * ch + c] = static_cast<int8_t>(best);
        }
      }
    }
  }
  const auto want = PackSigns(ref, static_cast<int64_t>(s.batch) * oh * ow, ch);
  for (xk::Isa isa : isas) {
    std::vector<int32_t> got(want.size(), 0);
    int got_h, got_w;
    xk::ThreadPool pool(2);
    xk::BMaxPool(isa, s, xp.data(), got.data(), &got_h, &got_w, &pool);
    if (got_h != oh || got_w != ow) Fail("BMaxPool output size");
    // Only real channel bits are defined (padding bits of the input are 0, so they AND to 0).
    if (got != want) Fail(std::string("BMaxPool isa=") + xk::IsaName(isa));
  }
}

xk::KFusionSpec RandomKSpec(int* batch) {
  xk::KFusionSpec s;
  *batch = Uniform(1, 2);
  static const int kChannels[] = {1, 3, 16, 31, 32, 33, 64, 100, 128, 300};
  s.channels = kChannels[Uniform(0, 9)];
  s.has_box = Uniform(0, 3) != 0;
  xk::BoxFilter& b = s.box;
  if (s.has_box) {
    b.filter_h = Uniform(1, 5);
    b.filter_w = Uniform(0, 2) == 0 ? Uniform(1, 5) : b.filter_h;
    b.stride_h = Uniform(1, 2);
    b.stride_w = Uniform(1, 2);
    b.dilation_h = Uniform(0, 3) == 0 ? 2 : 1;
    b.dilation_w = Uniform(0, 3) == 0 ? 2 : 1;
    b.padding_same = Uniform(0, 2) != 0;
    b.value = 1.0f / static_cast<float>(b.filter_h * b.filter_w);
    b.bias = Uniform(0, 3) == 0 ? 0.25f : 0.0f;
    const int min_h = b.padding_same ? 1 : (b.filter_h - 1) * b.dilation_h + 1;
    const int min_w = b.padding_same ? 1 : (b.filter_w - 1) * b.dilation_w + 1;
    s.in_h = Uniform(min_h, min_h + 8);
    s.in_w = Uniform(min_w, min_w + 8);
    int pad;
    s.out_h = RefOutSize(b.padding_same, s.in_h, b.filter_h, b.stride_h, b.dilation_h, &pad);
    s.out_w = RefOutSize(b.padding_same, s.in_w, b.filter_w, b.stride_w, b.dilation_w, &pad);
    s.mean_length = s.channels;
  } else {  // a dense layer: one mean over the whole item
    s.in_h = Uniform(1, 4);
    s.in_w = Uniform(1, 4);
    s.out_h = s.out_w = 1;
    s.mean_length = int64_t{s.in_h} * s.in_w * s.channels;
  }
  static const float kLo[] = {-INFINITY, 0.0f, -1.0f, 0.0f};
  static const float kHi[] = {INFINITY, INFINITY, 1.0f, 6.0f};
  const int act = Uniform(0, 3);
  s.lo = kLo[act];
  s.hi = kHi[act];
  return s;
}

void CheckKFusion(const std::vector<xk::Isa>& isas) {
  int batch;
  xk::KFusionSpec s = RandomKSpec(&batch);
  const int c = s.channels;
  const int64_t per_item = int64_t{s.in_h} * s.in_w * c;
  std::vector<std::vector<float>> constants;
  const int steps = Uniform(0, 2);
  for (int i = 0; i < steps; ++i) {
    xk::AffineStep a;
    a.kind = Uniform(0, 1) ? xk::AffineStep::kMul : xk::AffineStep::kAdd;
    a.length = Uniform(0, 3) == 0 ? 1 : (Uniform(0, 2) == 0 ? per_item : c);
    constants.emplace_back(a.length);
    for (float& v : constants.back()) v = std::uniform_real_distribution<float>(-2.0f, 2.0f)(rng);
    s.affine.push_back(a);
  }
  for (int i = 0; i < steps; ++i) s.affine[i].values = constants[i].data();
  const std::string problem = xk::CheckKFusionSpec(s);
  if (!problem.empty()) Fail("CheckKFusionSpec rejected a valid spec: " + problem);
  std::vector<float> u(static_cast<size_t>(batch * per_item));
  for (float& v : u) v = std::uniform_real_distribution<float>(-3.0f, 3.0f)(rng);
  for (size_t i = 0; i < u.size(); i += 13) u[i] = (i / 13) % 2 ? 0.0f : -0.0f;
  // Half of the cases read v and pool it to u first: TFLite's MAX_POOL_2D from the
  // definition (the max over the taps inside v, then the activation's clamp).
  std::vector<float> v;
  if (Uniform(0, 1) == 1) {
    xk::MaxPoolSpec& p = s.pool;
    s.has_pool = true;
    p.channels = c;
    p.filter_h = Uniform(1, 3);
    p.filter_w = Uniform(1, 3);
    p.stride_h = Uniform(1, 2);
    p.stride_w = Uniform(1, 2);
    p.padding_same = Uniform(0, 1) == 1;
    const int act = Uniform(0, 3);
    static const float kPoolLo[] = {-INFINITY, 0.0f, -1.0f, 0.0f};
    static const float kPoolHi[] = {INFINITY, INFINITY, 1.0f, 6.0f};
    p.lo = kPoolLo[act];
    p.hi = kPoolHi[act];
    // Any input size that pools to in_h x in_w.
    p.in_h = p.padding_same ? (s.in_h - 1) * p.stride_h + Uniform(1, p.stride_h)
                            : (s.in_h - 1) * p.stride_h + p.filter_h + Uniform(0, p.stride_h - 1);
    p.in_w = p.padding_same ? (s.in_w - 1) * p.stride_w + Uniform(1, p.stride_w)
                            : (s.in_w - 1) * p.stride_w + p.filter_w + Uniform(0, p.stride_w - 1);
    v.resize(static_cast<size_t>(batch) * p.in_h * p.in_w * c);
    for (float& e : v) e = std::uniform_real_distribution<float>(-3.0f, 3.0f)(rng);
    int pt, pl;
    RefOutSize(p.padding_same, p.in_h, p.filter_h, p.stride_h, 1, &pt);
    RefOutSize(p.padding_same, p.in_w, p.filter_w, p.stride_w, 1, &pl);
    for (int n = 0; n < batch; ++n) {
      for (int oy = 0; oy < s.in_h; ++oy) {
        for (int ox = 0; ox < s.in_w; ++ox) {
          for (int ch = 0; ch < c; ++ch) {
            float m = -INFINITY;
            for (int ky = 0; ky < p.filter_h; ++ky) {
              for (int kx = 0; kx < p.filter_w; ++kx) {
                const int y = oy * p.stride_h - pt + ky, xx = ox * p.stride_w - pl + kx;
                if (y >= 0 && y < p.in_h && xx >= 0 && xx < p.in_w) {
                  m = std::max(m, v[((static_cast<int64_t>(n) * p.in_h + y) * p.in_w + xx) * c + ch]);
                }
              }
            }
            u[((static_cast<int64_t>(n) * s.in_h + oy) * s.in_w + ox) * c + ch] =
                std::min(std::max(m, p.lo), p.hi);
          }
        }
      }
    }
    const std::string pooled_problem = xk::CheckKFusionSpec(s);
    if (!pooled_problem.empty()) Fail("CheckKFusionSpec rejected a valid pool: " + pooled_problem);
  }
  // The definition.
  std::vector<float> x(u.size());
  for (size_t i = 0; i < u.size(); ++i) {
    float v = u[i];
    for (const xk::AffineStep& a : s.affine) {
      const float k = a.values[a.length == 1 ? 0 : (i % per_item) % a.length];
      v = a.kind == xk::AffineStep::kMul ? v * k : v + k;
    }
    x[i] = v;
  }
  std::vector<int8_t> signs(x.size());
  for (size_t i = 0; i < x.size(); ++i) signs[i] = x[i] < 0.0f ? -1 : 1;
  const auto bits = PackSigns(signs, static_cast<int64_t>(x.size()) / c, c);
  const int64_t groups = static_cast<int64_t>(x.size()) / s.mean_length;
  std::vector<double> means(groups, 0.0);
  for (size_t i = 0; i < x.size(); ++i) means[i / s.mean_length] += std::fabs(x[i]);
  for (double& m : means) m /= static_cast<double>(s.mean_length);
  std::vector<double> k(static_cast<size_t>(batch) * s.out_h * s.out_w);
  if (!s.has_box) {
    for (size_t i = 0; i < k.size(); ++i) k[i] = means[i];
  } else {
    const xk::BoxFilter& b = s.box;
    int pt, pl;
    RefOutSize(b.padding_same, s.in_h, b.filter_h, b.stride_h, b.dilation_h, &pt);
    RefOutSize(b.padding_same, s.in_w, b.filter_w, b.stride_w, b.dilation_w, &pl);
    for (int n = 0; n < batch; ++n) {
      for (int oy = 0; oy < s.out_h; ++oy) {
        for (int ox = 0; ox < s.out_w; ++ox) {
          double sum = b.bias;
          for (int ky = 0; ky < b.filter_h; ++ky) {
            for (int kx = 0; kx < b.filter_w; ++kx) {
              const int y = oy * b.stride_h - pt + ky * b.dilation_h;
              const int xx = ox * b.stride_w - pl + kx * b.dilation_w;
              if (y >= 0 && y < s.in_h && xx >= 0 && xx < s.in_w) {
                sum += b.value * means[(static_cast<int64_t>(n) * s.in_h + y) * s.in_w + xx];
              }
            }
          }
          k[(static_cast<int64_t>(n) * s.out_h + oy) * s.out_w + ox] = sum;
        }
      }
    }
  }
  std::vector<float> first_k;
  for (xk::Isa isa : isas) {
    for (int threads : {1, 2}) {
      xk::ThreadPool pool(threads);
      xk::KFusion f;
      const std::string error = f.Prepare(s, batch);
      if (!error.empty()) Fail("KFusion::Prepare: " + error);
      f.RunPrologue(isa, s.has_pool ? v.data() : u.data(), &pool, nullptr);
      const std::string where = std::string("K fusion isa=") + xk::IsaName(isa) + " C=" +
                                std::to_string(c) + " box=" + std::to_string(s.has_box) +
                                " pool=" + std::to_string(s.has_pool);
      if (std::memcmp(f.bits(), bits.data(), bits.size() * 4) != 0) Fail(where + ": bits");
      const xk::BConvPixelScale e = f.scale();
      if (e.lo != s.lo || e.hi != s.hi) Fail(where + ": activation bounds");
      std::vector<float> got(e.scale, e.scale + k.size());
      for (size_t i = 0; i < k.size(); ++i) {
        if (std::fabs(got[i] - k[i]) > 1e-5 * std::fabs(k[i]) + 1e-30) {
          Fail(where + ": K[" + std::to_string(i) + "] = " + std::to_string(got[i]) + " != " +
               std::to_string(k[i]));
        }
      }
      if (first_k.empty()) first_k = got;
      if (got != first_k) Fail(where + ": K differs between ISAs or thread counts");
    }
  }
}

// The K epilogue: RunBConv with BConvPixelScale = clamp(RunBConv * K[pixel], lo, hi), then
// (half of the cases) clamp(+ residual, residual_lo, residual_hi).
void CheckPixelScale(const std::vector<xk::Isa>& isas) {
  Case c = RandomCase();
  xk::BConvSpec& s = c.spec;
  s.output_type = xk::OutputType::kFloat;
  const int cin_g = s.channels_in / s.groups;
  const auto x = RandomSigns(static_cast<int64_t>(s.batch) * s.in_h * s.in_w * s.channels_in);
  const auto w = RandomSigns(static_cast<int64_t>(s.channels_out) * s.filter_h * s.filter_w * cin_g);
  std::vector<float> m(s.channels_out), b(s.channels_out);
  for (int o = 0; o < s.channels_out; ++o) {
    m[o] = std::uniform_real_distribution<float>(-2.0f, 2.0f)(rng);
    b[o] = std::uniform_real_distribution<float>(-3.0f, 3.0f)(rng);
  }
  const auto xp = PackSigns(x, static_cast<int64_t>(s.batch) * s.in_h * s.in_w, s.channels_in);
  const auto wp = PackSigns(w, static_cast<int64_t>(s.channels_out) * s.filter_h * s.filter_w, cin_g);
  static const float kLo[] = {-INFINITY, 0.0f, -1.0f, 0.0f};
  static const float kHi[] = {INFINITY, INFINITY, 1.0f, 6.0f};
  const int act = Uniform(0, 3);
  const bool with_residual = Uniform(0, 1) != 0;
  const int residual_act = Uniform(0, 3);
  for (xk::Isa isa : isas) {
    xk::BConvPlan plan;
    const std::string error = xk::PrepareBConv(isa, s, wp.data(), m.data(), b.data(), nullptr, &plan);
    if (!error.empty()) Fail("PrepareBConv: " + error);
    const int64_t pixels = static_cast<int64_t>(s.batch) * plan.out_h * plan.out_w;
    std::vector<float> k(pixels);
    for (float& v : k) v = std::uniform_real_distribution<float>(-1.5f, 1.5f)(rng);
    xk::BConvPixelScale e;
    e.scale = k.data();
    e.lo = kLo[act];
    e.hi = kHi[act];
    std::vector<float> residual(pixels * s.channels_out);
    for (float& v : residual) v = std::uniform_real_distribution<float>(-4.0f, 4.0f)(rng);
    if (with_residual) {
      e.residual = residual.data();
      e.residual_lo = kLo[residual_act];
      e.residual_hi = kHi[residual_act];
    }
    std::vector<float> plain(pixels * s.channels_out), scaled(plain.size());
    xk::ThreadPool pool(1);
    xk::RunBConv(plan, xp.data(), plain.data(), &pool);
    xk::RunBConv(plan, xp.data(), scaled.data(), &pool, &e);
    for (size_t i = 0; i < plain.size(); ++i) {
      const float v = plain[i] * k[i / s.channels_out];
      float want = std::min(std::max(v, e.lo), e.hi);
      if (with_residual) want = std::min(std::max(want + residual[i], e.residual_lo), e.residual_hi);
      if (std::memcmp(&want, &scaled[i], 4) != 0 && !(want == 0.0f && scaled[i] == 0.0f)) {
        Fail(c.Describe() + " isa=" + xk::IsaName(isa) + ": K epilogue at " + std::to_string(i) +
             ": " + std::to_string(scaled[i]) + " != " + std::to_string(want));
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  int cases = 200;
  uint64_t seed = 1234;
  std::string only;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--cases") cases = std::atoi(argv[i + 1]);
    else if (flag == "--seed") seed = std::strtoull(argv[i + 1], nullptr, 10);
    else if (flag == "--isa") only = argv[i + 1];
    else Fail("unknown flag " + flag);
  }
  rng.seed(seed);
  // Portable first: it is the oracle every other ISA must match bit for bit.
  std::vector<xk::Isa> isas = {xk::Isa::kPortable};
  for (xk::Isa isa : xk::kAllIsas) {
    if (isa == xk::Isa::kPortable) continue;
    if (!only.empty() && only != xk::IsaName(isa)) continue;
    const std::string why = xk::IsaUnavailableReason(isa);
    if (why.empty()) {
      isas.push_back(isa);
    } else if (!only.empty()) {
      Fail("--isa " + only + " is not available: " + why);
    } else {
      std::printf("SKIP %s: %s\n", xk::IsaName(isa), why.c_str());
    }
  }
  if (!only.empty() && only != "portable" && isas.size() == 1) Fail("unknown --isa " + only);
  bool avx2 = false;
  for (xk::Isa isa : isas) avx2 = avx2 || isa == xk::Isa::kAvx2;
  for (int i = 0; i < cases; ++i) {
    CheckBConv(isas, RandomCase());  // AVX2: vpshufb
    if (i % 4 == 0) CheckPoolAndPacking(isas);
    if (i % 2 == 0) CheckKFusion(isas);
    if (i % 4 == 1) CheckPixelScale(isas);
  }
  if (avx2) {  // cases from the same seed on the Harley-Seal AVX2 kernel
    rng.seed(seed);
    xk::internal::SetAvx2Popcount(xk::internal::kAvx2HarleySeal);
    for (int i = 0; i < cases; ++i) CheckBConv({xk::Isa::kAvx2}, RandomCase());
    xk::internal::SetAvx2Popcount(xk::internal::kAvx2Vpshufb);
  }
  for (xk::Isa isa : isas) {
    std::printf("PASS %s: %d binary convolutions, %d fused K prologues, %d K epilogues\n",
                xk::IsaName(isa), cases, (cases + 1) / 2, (cases + 2) / 4);
  }
  if (avx2) std::printf("PASS avx2 (Harley-Seal): %d binary convolutions\n", cases);
  return 0;
}
