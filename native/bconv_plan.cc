// Binary convolution plans in caller-provided memory (see bconv.h). Freestanding: no libc
// calls, no allocation, no exceptions; built into the TFLite delegate and into the Android
// JNI library alike.
#include "bconv.h"

#include "isa.h"

namespace xk {

namespace {

inline int MinI(int a, int b) { return a < b ? a : b; }
inline int MaxI(int a, int b) { return a > b ? a : b; }
inline int64_t Align64(int64_t n) { return (n + 63) / 64 * 64; }
inline int Words(int channels) { return (channels + 31) / 32; }

int Popcount32(uint32_t x) {
  int n = 0;
  for (; x != 0; x &= x - 1) ++n;
  return n;
}

BConvProblem Bad(const char* what, int value) {
  BConvProblem p;
  p.what = what;
  p.value = value;
  p.has_value = true;
  return p;
}

BConvProblem Bad(const char* what) {
  BConvProblem p;
  p.what = what;
  return p;
}

// The taps of output position `o` outside the input along one axis: since the window's
// positions increase with the tap, they are a prefix (`low` taps before the input) and a
// suffix (`high` taps after it). Along the output both counts change monotonically, so
// equal pairs form one contiguous run.
struct Outside {
  int low = 0, high = 0;
  bool operator!=(const Outside& o) const { return low != o.low || high != o.high; }
  bool empty() const { return low == 0 && high == 0; }
};

Outside OutsideAt(int o, int stride, int pad, int filter, int dilation, int in_size) {
  Outside r;
  const int start = o * stride - pad;
  for (int k = 0; k < filter; ++k) {
    const int i = start + k * dilation;
    if (i < 0) ++r.low;
    if (i >= in_size) ++r.high;
  }
  return r;
}

int CountRuns(int n, int stride, int pad, int filter, int dilation, int in_size) {
  int runs = 0;
  Outside prev;
  for (int o = 0; o < n; ++o) {
    const Outside cur = OutsideAt(o, stride, pad, filter, dilation, in_size);
    if (o == 0 || cur != prev) ++runs;
    prev = cur;
  }
  return runs;
}

void ZeroBytes(void* p, size_t n) {
  volatile unsigned char* b = static_cast<volatile unsigned char*>(p);
  for (size_t i = 0; i < n; ++i) b[i] = 0;
}

// The channel of padded slot `slot`, -1 for a padding slot.
int SlotChannel(const BConvLayout& p, int slot) {
  const int g = slot / (p.panels_per_group * 16);
  const int local = slot % (p.panels_per_group * 16);
  return local < p.oc_per_group ? g * p.oc_per_group + local : -1;
}

template <class T>
T* At(void* arena, int64_t offset) {
  return offset < 0 ? nullptr
                    : reinterpret_cast<T*>(static_cast<unsigned char*>(arena) + offset);
}

template <class T>
const T* At(const void* arena, int64_t offset) {
  return offset < 0 ? nullptr
                    : reinterpret_cast<const T*>(static_cast<const unsigned char*>(arena) +
                                                 offset);
}

}  // namespace

void WindowGeometry(bool same, int in_size, int filter_size, int stride, int dilation,
                    int* out_size, int* pad_before) {
  const int effective = (filter_size - 1) * dilation + 1;
  *out_size = same ? (in_size + stride - 1) / stride : (in_size - effective + stride) / stride;
  const int total = (*out_size - 1) * stride + effective - in_size;
  *pad_before = same && total > 0 ? total / 2 : 0;
}

BConvProblem BConvPlanLayout(const internal::IsaOps& ops, Isa isa, const BConvSpec& s,
                             BConvLayout* layout) {
  if (s.batch < 1) return Bad("batch must be >= 1", s.batch);
  if (s.in_h < 1 || s.in_w < 1) return Bad("input height and width must be >= 1", s.in_h);
  if (s.channels_in < 1) return Bad("channels_in must be >= 1", s.channels_in);
  if (s.channels_out < 1) return Bad("channels_out must be >= 1", s.channels_out);
  if (s.filter_h < 1 || s.filter_w < 1) return Bad("filter size must be >= 1", s.filter_h);
  if (s.stride_h < 1 || s.stride_w < 1) return Bad("strides must be >= 1", s.stride_h);
  if (s.dilation_h < 1 || s.dilation_w < 1) return Bad("dilations must be >= 1", s.dilation_h);
  // Upper bounds (far beyond real layers) that keep the geometry below inside int
  // arithmetic; without them a corrupt model overflows it (tests/test_native_fuzz.py).
  constexpr int kMaxWindow = 1 << 14, kMaxInput = 1 << 16, kMaxChannels = 1 << 20;
  if (s.in_h > kMaxInput || s.in_w > kMaxInput) return Bad("input height and width must be <= 65536", s.in_h);
  if (s.filter_h > kMaxWindow || s.filter_w > kMaxWindow) return Bad("filter size must be <= 16384", s.filter_h);
  if (s.stride_h > kMaxWindow || s.stride_w > kMaxWindow) return Bad("strides must be <= 16384", s.stride_h);
  if (s.dilation_h > kMaxWindow || s.dilation_w > kMaxWindow) return Bad("dilations must be <= 16384", s.dilation_h);
  if (s.channels_in > kMaxChannels || s.channels_out > kMaxChannels) {
    return Bad("channels must be <= 2^20", s.channels_in);
  }
  if (static_cast<int64_t>(s.filter_h) * s.filter_w * s.channels_in > (int64_t{1} << 28)) {
    return Bad("the receptive field must be <= 2^28 values", s.filter_h);
  }
  if (s.pad_value != 0 && s.pad_value != 1) return Bad("pad_values must be 0 or 1", s.pad_value);
  if (s.activation < kActNone || s.activation > kActRelu6) {
    return Bad("unsupported fused activation", s.activation);
  }
  if (s.groups < 1) return Bad("groups must be >= 1", s.groups);
  if (s.groups > 1) {
    if (s.channels_in % s.groups != 0 || (s.channels_in / s.groups) % 32 != 0) {
      return Bad("grouped binary convolutions need channels_in / groups to be a multiple of 32",
                 s.channels_in);
    }
    if (s.channels_out % s.groups != 0) {
      return Bad("channels_out must be a multiple of groups", s.channels_out);
    }
  }
  const int ot = static_cast<int>(s.output_type);
  if (ot < 0 || ot > 2) return Bad("unknown output type", ot);
  if (s.output_type == OutputType::kInt8 && !(s.output_scale > 0.0f)) {
    return Bad("int8 output needs a positive output scale");
  }

  ZeroBytes(layout, sizeof(*layout));  // padding bytes too: layouts compare byte for byte
  BConvLayout& p = *layout;
  p.packed_filter_at = p.multiplier_at = p.bias_at = p.thresholds_at = -1;
  p.pixel_pattern_at = p.int_corrections_at = p.float_corrections_at = -1;
  p.spec = s;
  p.isa = isa;
  WindowGeometry(s.padding_same, s.in_h, s.filter_h, s.stride_h, s.dilation_h, &p.out_h, &p.pad_top);
  WindowGeometry(s.padding_same, s.in_w, s.filter_w, s.stride_w, s.dilation_w, &p.out_w, &p.pad_left);
  if (p.out_h < 1 || p.out_w < 1) return Bad("the filter does not fit the input", s.in_h);
  const int cin_g = s.channels_in / s.groups;
  p.in_words = Words(s.channels_in);
  p.group_words = s.groups == 1 ? p.in_words : cin_g / 32;
  p.oc_per_group = s.channels_out / s.groups;
  p.panels_per_group = (p.oc_per_group + 15) / 16;
  p.k32 = s.filter_h * s.filter_w * p.group_words;
  p.k64 = (p.k32 + 1) / 2;
  p.backtransform = s.filter_h * s.filter_w * cin_g;
  p.out_depth = s.output_type == OutputType::kBitpacked ? Words(s.channels_out) : s.channels_out;
  // Blocks of packed activations of up to ~64 KiB (L2) that stream past each filter
  // panel (<= k64 * 256 bytes, L1) in turn.
  p.a_row_words = p.k64 * ops.a_words_per_k;
  p.panel_words = p.k64 * ops.b_words_per_k;
  int block = (64 * 1024) / (p.a_row_words * 8);
  block = MaxI(ops.micro_rows, MinI(512, block));
  p.block_pixels = block / ops.micro_rows * ops.micro_rows;
  p.micro_rows = ops.micro_rows;

  const int K = p.backtransform;
  if (s.output_type != OutputType::kBitpacked) {
    int32_t lo = INT32_MIN, hi = INT32_MAX;
    if (s.activation == kActRelu) lo = 0;
    if (s.activation == kActReluN1To1) lo = -1, hi = 1;
    if (s.activation == kActRelu6) lo = 0, hi = 6;
    lo = lo > -K ? lo : -K;
    hi = hi < K ? hi : K;
    p.clamp_min = -hi + K;
    p.clamp_max = -lo + K;
  }
  if (s.padding_same && s.pad_value == 0) {
    p.float_correction = s.output_type == OutputType::kFloat && s.activation == kActNone;
    p.int_correction = !p.float_correction;
    p.row_runs = CountRuns(p.out_h, s.stride_h, p.pad_top, s.filter_h, s.dilation_h, s.in_h);
    p.col_runs = CountRuns(p.out_w, s.stride_w, p.pad_left, s.filter_w, s.dilation_w, s.in_w);
    p.n_patterns = p.row_runs * p.col_runs;
  }

  const int64_t slots = p.slots();
  int64_t at = 0;
  auto take = [&at](int64_t bytes) {
    const int64_t here = at;
    at += Align64(bytes);
    return here;
  };
  p.packed_filter_at = take(8 * int64_t{s.groups} * p.panels_per_group * p.panel_words);
  if (s.output_type == OutputType::kBitpacked) {
    p.thresholds_at = take(4 * slots);
  } else {
    p.multiplier_at = take(4 * slots);
    p.bias_at = take(4 * slots);
  }
  if (p.n_patterns > 0) {
    p.pixel_pattern_at = take(4 * int64_t{p.out_h} * p.out_w);
    if (p.int_correction) p.int_corrections_at = take(4 * p.n_patterns * slots);
    if (p.float_correction) p.float_corrections_at = take(4 * p.n_patterns * slots);
  }
  p.arena_bytes = at;
  p.scratch_bytes = Align64(8 * int64_t{p.block_pixels} * p.a_row_words) +
                    Align64(8 * int64_t{p.k64 + 1}) + Align64(4 * int64_t{p.block_pixels});
  return BConvProblem();
}

BConvProblem BConvPlanFill(const internal::IsaOps& ops, const BConvLayout& p,
                           const int32_t* filter, const float* multiplier, const float* bias,
                           const int32_t* thresholds, void* arena) {
  const BConvSpec& s = p.spec;
  if (filter == nullptr) return Bad("the filter is missing");
  if (s.output_type == OutputType::kBitpacked) {
    if (thresholds == nullptr) return Bad("bitpacked output needs thresholds");
  } else if (multiplier == nullptr || bias == nullptr) {
    return Bad("float and int8 output need a multiplier and a bias");
  }
  if (arena == nullptr) return Bad("the plan has no memory");
  ZeroBytes(arena, static_cast<size_t>(p.arena_bytes));

  // Filters, 16 channels per panel; missing channels are zero rows.
  const uint32_t* f = reinterpret_cast<const uint32_t*>(filter);
  uint64_t* packed = At<uint64_t>(arena, p.packed_filter_at);
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
                     packed + static_cast<size_t>(g * p.panels_per_group + panel) * p.panel_words);
    }
  }

  // Fused output transform, computed as LCE does (double precision, then float):
  // y = float(clamp(2 * acc)) * (-m / scale) + (b + K * m) / scale + zero_point.
  const int slots = p.slots();
  const int K = p.backtransform;
  if (s.output_type == OutputType::kBitpacked) {
    int32_t* thr = At<int32_t>(arena, p.thresholds_at);
    for (int slot = 0; slot < slots; ++slot) {
      const int oc = SlotChannel(p, slot);
      thr[slot] = oc >= 0 ? thresholds[oc] : INT32_MAX;
    }
  } else {
    const bool int8 = s.output_type == OutputType::kInt8;
    const double scale = int8 ? static_cast<double>(s.output_scale) : 1.0;
    const double zero_point = int8 ? static_cast<double>(s.output_zero_point) : 0.0;
    float* mul = At<float>(arena, p.multiplier_at);
    float* add = At<float>(arena, p.bias_at);
    for (int slot = 0; slot < slots; ++slot) {
      const int oc = SlotChannel(p, slot);
      if (oc < 0) continue;
      const double m = multiplier[oc], b = bias[oc];
      mul[slot] = static_cast<float>(-1 * m / scale);
      add[slot] = static_cast<float>((b + static_cast<double>(K) * m) / scale + zero_point);
    }
  }

  // SAME padding with zeros. The kernels pad with bit 0 (+1); per output pixel whose
  // window leaves the input, the taps outside form a pattern (row run x column run).
  // Exact integer correction (LCE's reference kernel): a padded tap contributes
  // cin_g / 2 instead of popcount(filter tap). Float output without activation instead
  // gets LCE's optimized kernels' float correction, -m * sum(cin_g - 2 popcount), added
  // after the transform, so results match those kernels bit for bit.
  if (p.n_patterns == 0) return BConvProblem();
  const int cin_g = s.channels_in / s.groups;
  int32_t* pixel_pattern = At<int32_t>(arena, p.pixel_pattern_at);
  int32_t* int_corr = At<int32_t>(arena, p.int_corrections_at);
  float* float_corr = At<float>(arena, p.float_corrections_at);
  Outside row_prev, row;
  int ri = -1;
  for (int oy = 0; oy < p.out_h; ++oy) {
    row = OutsideAt(oy, s.stride_h, p.pad_top, s.filter_h, s.dilation_h, s.in_h);
    const bool new_row_run = oy == 0 || row != row_prev;
    if (new_row_run) ++ri;
    row_prev = row;
    Outside col_prev, col;
    int ci = -1;
    for (int ox = 0; ox < p.out_w; ++ox) {
      col = OutsideAt(ox, s.stride_w, p.pad_left, s.filter_w, s.dilation_w, s.in_w);
      const bool new_col_run = ox == 0 || col != col_prev;
      if (new_col_run) ++ci;
      col_prev = col;
      const int q = ri * p.col_runs + ci;
      pixel_pattern[static_cast<size_t>(oy) * p.out_w + ox] = row.empty() && col.empty() ? -1 : q;
      if (!new_row_run || !new_col_run) continue;
      // The first pixel of pattern q: its corrections.
      for (int slot = 0; slot < slots; ++slot) {
        const int oc = SlotChannel(p, slot);
        if (oc < 0) continue;
        int padded = 0, pop = 0;
        for (int kh = 0; kh < s.filter_h; ++kh) {
          const bool kh_out = kh < row.low || kh >= s.filter_h - row.high;
          for (int kw = 0; kw < s.filter_w; ++kw) {
            if (!kh_out && kw >= col.low && kw < s.filter_w - col.high) continue;
            ++padded;
            const uint32_t* w = f + static_cast<size_t>(oc) * p.k32 +
                                (kh * s.filter_w + kw) * p.group_words;
            for (int c = 0; c < p.group_words; ++c) pop += Popcount32(w[c]);
          }
        }
        const size_t at = static_cast<size_t>(q) * slots + slot;
        if (int_corr != nullptr) {
          int_corr[at] = padded * (cin_g / 2) - pop;
        } else {
          const float sum = static_cast<float>(padded * cin_g - 2 * pop);
          float_corr[at] = (-1.0f * multiplier[oc]) * sum;
        }
      }
    }
  }
  return BConvProblem();
}

BConvView BConvViewOf(const BConvLayout& layout, const void* arena) {
  BConvView v;
  static_cast<BConvLayout&>(v) = layout;
  v.packed_filter = At<uint64_t>(arena, layout.packed_filter_at);
  v.multiplier = At<float>(arena, layout.multiplier_at);
  v.bias = At<float>(arena, layout.bias_at);
  v.thresholds = At<int32_t>(arena, layout.thresholds_at);
  v.pixel_pattern = At<int32_t>(arena, layout.pixel_pattern_at);
  v.int_corrections = At<int32_t>(arena, layout.int_corrections_at);
  v.float_corrections = At<float>(arena, layout.float_corrections_at);
  return v;
}

BConvScratch BConvScratchIn(const BConvLayout& p, void* scratch) {
  BConvScratch s;
  int64_t at = 0;
  s.a = At<uint64_t>(scratch, at);
  at += Align64(8 * int64_t{p.block_pixels} * p.a_row_words);
  s.raw = At<uint32_t>(scratch, at);
  at += Align64(8 * int64_t{p.k64 + 1});
  s.patterns = At<int32_t>(scratch, at);
  return s;
}

BConvSplit BConvSplitFor(const BConvLayout& p, int threads) {
  BConvSplit sp;
  const int64_t pixels = int64_t{p.spec.batch} * p.out_h * p.out_w;
  sp.task_pixels = p.block_pixels;
  sp.blocks = (pixels + p.block_pixels - 1) / p.block_pixels;
  sp.panels = p.spec.groups * p.panels_per_group;
  // Enough tasks to balance the threads: first smaller pixel blocks (down to one micro-kernel
  // call's rows), then, when there are still few, split the channel panels — each chunk of
  // a block gathers the block's im2col rows again, so panels split last. Bitpacked output
  // splits only at word boundaries (2 panels), and only when panels of a group start on a
  // word.
  const int64_t tasks = int64_t{kTasksPerThread} * threads;  // the aim
  if (threads > 1 && sp.blocks < tasks) {
    const int64_t micro = p.micro_rows;
    const int64_t want = (pixels + tasks - 1) / tasks;
    int64_t task = (want + micro - 1) / micro * micro;
    task = task < micro ? micro : task;
    if (task < sp.task_pixels) {
      sp.task_pixels = static_cast<int>(task);
      sp.blocks = (pixels + task - 1) / task;
    }
  }
  int chunks = 1;
  if (threads > 1 && sp.blocks < tasks) {
    const int64_t want = (tasks + sp.blocks - 1) / sp.blocks;
    chunks = static_cast<int>(want < sp.panels ? want : sp.panels);
  }
  int per_chunk = (sp.panels + chunks - 1) / chunks;
  if (p.spec.output_type == OutputType::kBitpacked) {
    const bool aligned = p.spec.groups == 1 || p.oc_per_group % 32 == 0;
    per_chunk = aligned ? (per_chunk + 1) / 2 * 2 : sp.panels;
  }
  sp.per_chunk = per_chunk;
  sp.chunks = (sp.panels + per_chunk - 1) / per_chunk;
  sp.tasks = sp.blocks * sp.chunks;
  return sp;
}

void BConvRunTasks(const internal::IsaOps& ops, const BConvLayout& layout, const void* arena,
                   const int32_t* input, void* output, void* scratch, const BConvSplit& split,
                   int64_t task_begin, int64_t task_end,
                   const BConvPixelScale* pixel_scale) {
  BConvView view = BConvViewOf(layout, arena);
  if (pixel_scale != nullptr && layout.spec.output_type == OutputType::kFloat) {
    view.pixel_scale = *pixel_scale;
  }
  const BConvScratch s = BConvScratchIn(layout, scratch);
  const int64_t pixels = int64_t{layout.spec.batch} * layout.out_h * layout.out_w;
  for (int64_t task = task_begin; task < task_end; ++task) {
    const int64_t b = task / split.chunks;
    const int c = static_cast<int>(task % split.chunks);
    const int end = (c + 1) * split.per_chunk;
    const int64_t m0 = b * split.task_pixels;
    const int64_t rows = pixels - m0 < split.task_pixels ? pixels - m0 : split.task_pixels;
    ops.bconv_task(view, s, input, output, m0, static_cast<int>(rows), c * split.per_chunk,
                   end < split.panels ? end : split.panels);
  }
}

int64_t BConvOutputBytes(const BConvLayout& p) {
  const int64_t values = int64_t{p.spec.batch} * p.out_h * p.out_w * p.out_depth;
  return p.spec.output_type == OutputType::kInt8 ? values : 4 * values;
}

}  // namespace xk
