// Roofline microbenchmark for the binary kernels (issue 13, deliverable 3), built and run
// by benchmarks/bench_popcount.py. In one run it measures the machine's binary peak, i.e.
// the best XNOR+popcount rate on 64-bit words with both operands in L1, for scalar popcnt,
// the vpshufb nibble lookup (plain and with operands pre-split into nibbles as the AVX2
// kernel stores them), Harley-Seal carry-save accumulation and AVX-512 vpopcntq, and times the real kernels
// (xk::RunBConv, one thread unless --threads says more) on the layers given on the command line:
//   roofline [--rounds N] [--threads T] [--kernels portable,vpshufb,harley_seal,avx512]
//            NAME:SIZE:CHANNELS ...
// vpshufb and harley_seal are the two AVX2 popcount variants (internal::SetAvx2Popcount),
// avx512 the AVX-512 VPOPCNTDQ kernel (isa_avx512.cc; its peak loop and kernel run only
// where the CPU and OS support it, otherwise the run says why).
// (3x3, stride 1, SAME padding with +1, float output). Every figure is the median of
// interleaved rounds. Timings only; exactness is checked by tests/kernel_tests.cc.
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "../isa.h"
#include "../kernels.h"

namespace {

using Clock = std::chrono::steady_clock;
double Now() { return std::chrono::duration<double>(Clock::now().time_since_epoch()).count(); }

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

volatile uint64_t g_sink;

// --- Peaks: kWords 64-bit words of a and b (8 KiB each, in L1), reps passes. -------------
constexpr int kWords = 1024;
alignas(64) uint64_t g_a[kWords], g_b[kWords], g_alo[kWords], g_ahi[kWords], g_blo[kWords],
    g_bhi[kWords];

__attribute__((target("popcnt"))) uint64_t PeakScalar(int reps) {
  uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  for (int r = 0; r < reps; ++r) {
    for (int i = 0; i < kWords; i += 4) {
      s0 += _mm_popcnt_u64(g_a[i] ^ g_b[i]);
      s1 += _mm_popcnt_u64(g_a[i + 1] ^ g_b[i + 1]);
      s2 += _mm_popcnt_u64(g_a[i + 2] ^ g_b[i + 2]);
      s3 += _mm_popcnt_u64(g_a[i + 3] ^ g_b[i + 3]);
    }
    __asm__ volatile("" ::: "memory");
  }
  return s0 + s1 + s2 + s3;
}

#define XK_T __attribute__((target("avx2,popcnt")))
// (AVX-512 loops below: XK_T512.)
XK_T inline __m256i Lut() {
  return _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2,
                          3, 1, 2, 2, 3, 2, 3, 3, 4);
}
XK_T inline __m256i Load(const uint64_t* p) {
  return _mm256_load_si256(reinterpret_cast<const __m256i*>(p));
}
XK_T inline uint64_t Sum64(__m256i v) {
  return _mm256_extract_epi64(v, 0) + _mm256_extract_epi64(v, 1) + _mm256_extract_epi64(v, 2) +
         _mm256_extract_epi64(v, 3);
}
// Per-byte popcount of x (classic nibble lookup).
XK_T inline __m256i BytePop(__m256i lut, __m256i x) {
  const __m256i m = _mm256_set1_epi8(0x0F);
  return _mm256_add_epi8(_mm256_shuffle_epi8(lut, _mm256_and_si256(x, m)),
                         _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(x, 4), m)));
}

// The byte-count peaks: per block of 64 words, `step(j, h)` returns the per-byte counts of
// words [j + h, j + h + 4) (h = 0 or 4); two byte accumulators, one vpsadbw per block.
template <class Step>
XK_T uint64_t ByteCountPeak(int reps, const Step& step) {
  const __m256i zero = _mm256_setzero_si256();
  __m256i total = zero;
  for (int r = 0; r < reps; ++r) {
    for (int i = 0; i < kWords; i += 64) {
      __m256i c0 = zero, c1 = zero;
      for (int j = i; j < i + 64; j += 8) {
        c0 = _mm256_add_epi8(c0, step(j, 0));
        c1 = _mm256_add_epi8(c1, step(j, 4));
      }
      total = _mm256_add_epi64(total, _mm256_sad_epu8(_mm256_add_epi8(c0, c1), zero));
    }
    __asm__ volatile("" ::: "memory");
  }
  return Sum64(total);
}

// vpshufb nibble lookup on plain operands.
XK_T uint64_t PeakVpshufb(int reps) {
  const __m256i lut = Lut();
  return ByteCountPeak(reps, [&](int j, int h) XK_T {
    return BytePop(lut, _mm256_xor_si256(Load(g_a + j + h), Load(g_b + j + h)));
  });
}

// vpshufb on operands stored pre-split into nibbles (the AVX2 kernel's format): per 256
// bits 2 xor + 2 shuffle + 2 add, twice the loads.
XK_T uint64_t PeakVpshufbSplit(int reps) {
  const __m256i lut = Lut();
  return ByteCountPeak(reps, [&](int j, int h) XK_T {
    const __m256i lo =
        _mm256_shuffle_epi8(lut, _mm256_xor_si256(Load(g_alo + j + h), Load(g_blo + j + h)));
    const __m256i hi =
        _mm256_shuffle_epi8(lut, _mm256_xor_si256(Load(g_ahi + j + h), Load(g_bhi + j + h)));
    return _mm256_add_epi8(lo, hi);
  });
}

// AVX-512 VPOPCNTDQ: per 512 bits 1 xor + 1 vpopcntq + 1 add into 64-bit lanes. The
// loop with both operands loaded is bound by the loads (2 per 512 bits); the kernel loads
// one filter vector per 8 output rows, so its ceiling is the second loop: each loaded
// vector of b is XORed with 4 vectors of a held in registers (words a[0..32)), 4 words of
// work per word loaded.
#define XK_T512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vpopcntdq,avx2,popcnt")))
XK_T512 uint64_t PeakVpopcntq(int reps) {
  __m512i s[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(),
                  _mm512_setzero_si512()};
  for (int r = 0; r < reps; ++r) {
    for (int i = 0; i < kWords; i += 32) {
      for (int q = 0; q < 4; ++q) {
        const __m512i x = _mm512_xor_si512(_mm512_load_si512(g_a + i + 8 * q),
                                           _mm512_load_si512(g_b + i + 8 * q));
        s[q] = _mm512_add_epi64(s[q], _mm512_popcnt_epi64(x));
      }
    }
    __asm__ volatile("" ::: "memory");
  }
  return static_cast<uint64_t>(_mm512_reduce_add_epi64(
      _mm512_add_epi64(_mm512_add_epi64(s[0], s[1]), _mm512_add_epi64(s[2], s[3]))));
}

XK_T512 uint64_t PeakVpopcntqReuse(int reps) {
  __m512i a[4], s[8];
  for (int q = 0; q < 4; ++q) a[q] = _mm512_load_si512(g_a + 8 * q);
  for (auto& v : s) v = _mm512_setzero_si512();
  for (int r = 0; r < reps; ++r) {
    for (int i = 0; i < kWords; i += 16) {
      const __m512i b0 = _mm512_load_si512(g_b + i), b1 = _mm512_load_si512(g_b + i + 8);
      for (int q = 0; q < 4; ++q) {
        s[q] = _mm512_add_epi64(s[q], _mm512_popcnt_epi64(_mm512_xor_si512(a[q], b0)));
        s[4 + q] = _mm512_add_epi64(s[4 + q], _mm512_popcnt_epi64(_mm512_xor_si512(a[q], b1)));
      }
    }
    __asm__ volatile("" ::: "memory");
  }
  __m512i t = s[0];
  for (int q = 1; q < 8; ++q) t = _mm512_add_epi64(t, s[q]);
  return static_cast<uint64_t>(_mm512_reduce_add_epi64(t));
}

// What PeakVpopcntqReuse(1) must count.
uint64_t ReuseCount() {
  uint64_t n = 0;
  for (int i = 0; i < kWords; ++i) {
    for (int q = 0; q < 4; ++q) n += __builtin_popcountll(g_a[8 * q + i % 8] ^ g_b[i]);
  }
  return n;
}

XK_T inline void Csa(__m256i& h, __m256i& l, __m256i a, __m256i b, __m256i c) {
  const __m256i u = _mm256_xor_si256(a, b);
  h = _mm256_or_si256(_mm256_and_si256(a, b), _mm256_and_si256(u, c));
  l = _mm256_xor_si256(u, c);
}

// Harley-Seal: 16 vectors per step through a carry-save adder tree; only the "sixteens"
// vector is popcounted per step (vpshufb + vpsadbw), the rest at the end.
XK_T uint64_t PeakHarleySeal(int reps) {
  const __m256i lut = Lut(), zero = _mm256_setzero_si256();
  __m256i total = zero, ones = zero, twos = zero, fours = zero, eights = zero;
  auto x = [](int i) { return _mm256_xor_si256(Load(g_a + i), Load(g_b + i)); };
  for (int r = 0; r < reps; ++r) {
    for (int i = 0; i < kWords; i += 64) {
      __m256i twosA, twosB, foursA, foursB, eightsA, eightsB, sixteens;
      Csa(twosA, ones, ones, x(i + 0), x(i + 4));
      Csa(twosB, ones, ones, x(i + 8), x(i + 12));
      Csa(foursA, twos, twos, twosA, twosB);
      Csa(twosA, ones, ones, x(i + 16), x(i + 20));
      Csa(twosB, ones, ones, x(i + 24), x(i + 28));
      Csa(foursB, twos, twos, twosA, twosB);
      Csa(eightsA, fours, fours, foursA, foursB);
      Csa(twosA, ones, ones, x(i + 32), x(i + 36));
      Csa(twosB, ones, ones, x(i + 40), x(i + 44));
      Csa(foursA, twos, twos, twosA, twosB);
      Csa(twosA, ones, ones, x(i + 48), x(i + 52));
      Csa(twosB, ones, ones, x(i + 56), x(i + 60));
      Csa(foursB, twos, twos, twosA, twosB);
      Csa(eightsB, fours, fours, foursA, foursB);
      Csa(sixteens, eights, eights, eightsA, eightsB);
      total = _mm256_add_epi64(total, _mm256_sad_epu8(BytePop(lut, sixteens), zero));
    }
    __asm__ volatile("" ::: "memory");
  }
  total = _mm256_slli_epi64(total, 4);
  total = _mm256_add_epi64(total, _mm256_slli_epi64(_mm256_sad_epu8(BytePop(lut, eights), zero), 3));
  total = _mm256_add_epi64(total, _mm256_slli_epi64(_mm256_sad_epu8(BytePop(lut, fours), zero), 2));
  total = _mm256_add_epi64(total, _mm256_slli_epi64(_mm256_sad_epu8(BytePop(lut, twos), zero), 1));
  total = _mm256_add_epi64(total, _mm256_sad_epu8(BytePop(lut, ones), zero));
  return Sum64(total);
}

struct Peak {
  const char* name;
  uint64_t (*fn)(int);
  bool avx512;  // needs AVX-512 VPOPCNTDQ
  int work;     // words of work per word of b loaded (1: both operands loaded)
};
const Peak kPeaks[] = {{"scalar popcnt", PeakScalar, false, 1},
                       {"vpshufb", PeakVpshufb, false, 1},
                       {"vpshufb pre-split", PeakVpshufbSplit, false, 1},
                       {"Harley-Seal", PeakHarleySeal, false, 1},
                       {"vpopcntq (2 loads)", PeakVpopcntq, true, 1},
                       {"vpopcntq (reuse)", PeakVpopcntqReuse, true, 4}};

// Seconds per call of fn: enough calls to fill ~`seconds` (calibrated on one call).
template <class Fn>
double SecondsPerCall(const Fn& fn, double seconds) {
  double t0 = Now();
  fn();
  const double once = Now() - t0;
  const int calls = std::max(1, static_cast<int>(seconds / std::max(once, 1e-6)));
  t0 = Now();
  for (int c = 0; c < calls; ++c) fn();
  return (Now() - t0) / calls;
}

// A kernel to time: an ISA, and for AVX2 its popcount variant.
struct Kernel {
  std::string name;
  xk::Isa isa;
  int variant;
};

bool FindKernel(const std::string& name, Kernel* k) {
  k->name = name;
  k->variant = xk::internal::kAvx2Vpshufb;
  if (name == "vpshufb" || name == "harley_seal") {
    k->isa = xk::Isa::kAvx2;
    if (name == "harley_seal") k->variant = xk::internal::kAvx2HarleySeal;
  } else if (name == "portable") {
    k->isa = xk::Isa::kPortable;
  } else if (name == "avx512") {
    k->isa = xk::Isa::kAvx512;
  } else {
    std::fprintf(stderr, "unknown kernel %s (portable, vpshufb, harley_seal, avx512)\n",
                 name.c_str());
    return false;
  }
  const std::string why = xk::IsaUnavailableReason(k->isa);
  if (!why.empty()) std::fprintf(stderr, "kernel %s is not available: %s\n", name.c_str(), why.c_str());
  return why.empty();
}

// --- Real kernels --------------------------------------------------------------------------
struct Layer {
  std::string name;
  int size, channels;
  xk::BConvPlan plan;
  std::vector<int32_t> input;
  std::vector<float> output;
  double macs = 0;
};

}  // namespace

int main(int argc, char** argv) {
  int rounds = 7;
  int threads = 1;
  std::vector<std::string> kernel_names = {"portable", "vpshufb", "avx512"};
  std::vector<Layer> layers;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--rounds" && i + 1 < argc) {
      rounds = std::atoi(argv[++i]);
    } else if (arg == "--threads" && i + 1 < argc) {
      threads = std::atoi(argv[++i]);
      if (threads < 1 || threads > 256) {
        std::fprintf(stderr, "--threads must be in [1, 256]. Received: %s\n", argv[i]);
        return 2;
      }
    } else if (arg == "--kernels" && i + 1 < argc) {
      kernel_names.clear();
      std::string s = argv[++i];
      for (size_t p = 0; p <= s.size();) {
        size_t q = s.find(',', p);
        if (q == std::string::npos) q = s.size();
        kernel_names.push_back(s.substr(p, q - p));
        p = q + 1;
      }
    } else {
      Layer l;
      const size_t c1 = arg.find(':'), c2 = arg.rfind(':');
      if (c1 == std::string::npos || c1 == c2) {
        std::fprintf(stderr, "bad layer %s (want NAME:SIZE:CHANNELS)\n", arg.c_str());
        return 2;
      }
      l.name = arg.substr(0, c1);
      l.size = std::atoi(arg.substr(c1 + 1, c2 - c1 - 1).c_str());
      l.channels = std::atoi(arg.substr(c2 + 1).c_str());
      layers.push_back(std::move(l));
    }
  }
  std::vector<Kernel> kernels(kernel_names.size());
  for (size_t i = 0; i < kernel_names.size(); ++i) {
    if (!FindKernel(kernel_names[i], &kernels[i])) return 2;
  }
  const bool have512 = xk::IsaAvailable(xk::Isa::kAvx512);
  if (!have512) {
    std::printf("AVX-512 VPOPCNTDQ peak skipped: %s\n",
                xk::IsaUnavailableReason(xk::Isa::kAvx512).c_str());
  }
  std::vector<const Peak*> peaks;
  for (const Peak& p : kPeaks) {
    if (!p.avx512 || have512) peaks.push_back(&p);
  }

  std::mt19937_64 rng(1);
  for (int i = 0; i < kWords; ++i) {
    g_a[i] = rng(), g_b[i] = rng();
    g_alo[i] = g_a[i] & 0x0F0F0F0F0F0F0F0Full, g_ahi[i] = (g_a[i] >> 4) & 0x0F0F0F0F0F0F0F0Full;
    g_blo[i] = g_b[i] & 0x0F0F0F0F0F0F0F0Full, g_bhi[i] = (g_b[i] >> 4) & 0x0F0F0F0F0F0F0F0Full;
  }
  // The peaks must agree with each other (a cheap guard against a broken measurement loop).
  const uint64_t want = PeakScalar(1);
  for (const Peak* p : peaks) {
    const uint64_t expected = p->work == 1 ? want : ReuseCount();
    if (p->fn(1) != expected) {
      std::fprintf(stderr, "peak loop %s counts %llu, scalar %llu\n", p->name,
                   static_cast<unsigned long long>(p->fn(1)),
                   static_cast<unsigned long long>(expected));
      return 1;
    }
  }

  // Plans per layer and kernel.
  std::vector<std::vector<xk::BConvPlan>> plans(layers.size());
  for (size_t li = 0; li < layers.size(); ++li) {
    Layer& l = layers[li];
    xk::BConvSpec s;
    s.in_h = s.in_w = l.size;
    s.channels_in = s.channels_out = l.channels;
    s.filter_h = s.filter_w = 3;
    s.padding_same = true;
    s.pad_value = 1;
    const int words = xk::BitpackedWords(l.channels);
    std::vector<int32_t> filter(static_cast<size_t>(l.channels) * 9 * words);
    for (auto& w : filter) w = static_cast<int32_t>(rng());
    l.input.resize(static_cast<size_t>(l.size) * l.size * words);
    for (auto& w : l.input) w = static_cast<int32_t>(rng());
    std::vector<float> mul(l.channels, 1.0f), bias(l.channels, 0.0f);
    for (const Kernel& k : kernels) {
      xk::internal::SetAvx2Popcount(k.variant);
      xk::BConvPlan plan;
      const std::string err = xk::PrepareBConv(k.isa, s, filter.data(), mul.data(), bias.data(),
                                               nullptr, &plan);
      if (!err.empty()) {
        std::fprintf(stderr, "%s: %s\n", l.name.c_str(), err.c_str());
        return 1;
      }
      plans[li].push_back(std::move(plan));
    }
    l.output.resize(static_cast<size_t>(l.size) * l.size * l.channels);
    l.macs = static_cast<double>(l.size) * l.size * l.channels * 9.0 * l.channels;
  }

  // Interleaved rounds: every peak loop and every (layer, kernel) once per round.
  const int peak_reps = 2000;  // 2000 * 1024 words per call
  std::vector<std::vector<double>> peak_t(peaks.size());
  std::vector<std::vector<std::vector<double>>> kern_t(
      layers.size(), std::vector<std::vector<double>>(kernels.size()));
  xk::ThreadPool pool(threads);
  for (int r = 0; r < rounds; ++r) {
    for (size_t p = 0; p < peaks.size(); ++p) {
      peak_t[p].push_back(SecondsPerCall([&] { g_sink = peaks[p]->fn(peak_reps); }, 0.03));
    }
    for (size_t li = 0; li < layers.size(); ++li) {
      for (size_t ki = 0; ki < kernels.size(); ++ki) {
        xk::internal::SetAvx2Popcount(kernels[ki].variant);  // the variant the plan was made for
        Layer& l = layers[li];
        kern_t[li][ki].push_back(SecondsPerCall(
            [&] { xk::RunBConv(plans[li][ki], l.input.data(), l.output.data(), &pool); }, 0.05));
      }
    }
  }

  const double peak_words = static_cast<double>(peak_reps) * kWords;
  double best = 0, best_avx2 = 0;
  std::printf("binary peak (XNOR+popcount of 64-bit words, operands in L1, 1 thread, median of %d "
              "interleaved rounds):\n", rounds);
  for (size_t p = 0; p < peaks.size(); ++p) {
    const double rate = peak_words * peaks[p]->work / Median(peak_t[p]);
    best = std::max(best, rate);
    if (!peaks[p]->avx512) best_avx2 = std::max(best_avx2, rate);
    std::printf("  %-18s %7.2f G words/s = %6.1f G binary MAC/s\n", peaks[p]->name, rate / 1e9,
                rate * 64 / 1e9);
  }
  std::printf("  best               %7.2f G words/s = %6.1f G binary MAC/s (best without "
              "AVX-512: %.2f G words/s)\n", best / 1e9, best * 64 / 1e9, best_avx2 / 1e9);
  std::printf("\nkernels (3x3 stride 1 SAME, float output, %d thread(s), median ms; share of %d x "
              "the best 1-thread peak):\n", threads, threads);
  std::printf("  %-12s", "layer");
  for (const Kernel& k : kernels) std::printf(" %12s %6s", k.name.c_str(), "share");
  std::printf("\n");
  size_t base = 0;  // ratios against vpshufb (today's default) when it was measured
  for (size_t ki = 0; ki < kernels.size(); ++ki) {
    if (kernels[ki].name == "vpshufb") base = ki;
  }
  for (size_t li = 0; li < layers.size(); ++li) {
    std::printf("  %-12s", layers[li].name.c_str());
    for (size_t ki = 0; ki < kernels.size(); ++ki) {
      const double t = Median(kern_t[li][ki]);
      std::printf(" %9.3f ms %5.1f%%", t * 1e3, 100 * layers[li].macs / 64 / t / best / threads);
    }
    for (size_t ki = 0; ki < kernels.size(); ++ki) {
      if (ki == base) continue;
      std::printf("   %s/%s %.2fx", kernel_names[base].c_str(), kernel_names[ki].c_str(),
                  Median(kern_t[li][base]) / Median(kern_t[li][ki]));
    }
    std::printf("\n");
  }
  return 0;
}
