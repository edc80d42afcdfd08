// ISA selection, the thread pool, and the ISA-independent parts of the kernels: plan
// building for binary convolutions (geometry, fused output transform, zero-padding
// corrections) and the memory-bound unpacking ops.
#include "kernels.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
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

// How the threads wait. A network's kernels follow each other microseconds to a millisecond
// apart, with TFLite's own ops (XNNPACK, which has its own worker threads) in between, and a
// sleeping worker takes tens of microseconds to start after a futex wake-up (more on a
// virtual machine whose host deschedules an idle vCPU: there, a single 0.1 ms binary layer
// ran slower on 2 threads than on 1 when each run followed 3 ms of idleness). So a waiting
// thread first spins on an atomic with pause instructions (kPauseSpin), then keeps polling
// but calls sched_yield between polls (kYieldSpin), which hands the core to any other
// runnable thread at once (XNNPACK's worker during a float layer), and only then sleeps on
// a condition variable. The caller waiting for its workers never sleeps: its wait is as
// long as the slowest task, and it polls with sched_yield after kPauseSpin.
constexpr std::chrono::microseconds kPauseSpin{20};
constexpr std::chrono::microseconds kYieldSpin{2000};

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

// Polls done() with pauses for `pause`, then with sched_yield until `total` has passed.
// Returns whether done() held.
template <class Done>
bool Poll(const Done& done, std::chrono::microseconds pause, std::chrono::microseconds total) {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point start = Clock::now();
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (done()) return true;
      CpuRelax();
    }
    const Clock::duration waited = Clock::now() - start;
    if (waited >= total) return done();
    if (waited >= pause) std::this_thread::yield();
  }
}

struct ThreadPool::State {
  std::mutex run_mu;  // one Run at a time (callers from several threads queue up)
  std::mutex mu;      // guards the workers' sleeps, not the task fields
  std::condition_variable work_cv;
  std::vector<std::thread> workers;
  std::atomic<uint64_t> generation{0};  // released after the task fields are written
  std::atomic<int> sleepers{0};         // workers inside work_cv.wait (or about to be)
  std::atomic<bool> stop{false};
  std::atomic<int> busy{0};
  void (*call)(const void*, int) = nullptr;
  const void* fn = nullptr;
  int num_tasks = 0;
  std::atomic<int> next{0};

  void Drain() {
    for (int i = next.fetch_add(1); i < num_tasks; i = next.fetch_add(1)) call(fn, i);
  }

  // Until generation != seen (or stop). Returns the new generation.
  uint64_t AwaitWork(uint64_t seen) {
    const auto ready = [&] {
      return stop.load(std::memory_order_seq_cst) ||
             generation.load(std::memory_order_seq_cst) != seen;
    };
    if (!Poll(ready, kPauseSpin, kYieldSpin)) {
      std::unique_lock<std::mutex> lock(mu);
      // seq_cst on both sides (here and in Wake) so that either this thread sees the new
      // generation or the caller sees sleepers > 0 and notifies under mu.
      sleepers.fetch_add(1, std::memory_order_seq_cst);
      work_cv.wait(lock, ready);
      sleepers.fetch_sub(1, std::memory_order_relaxed);
    }
    return generation.load(std::memory_order_acquire);
  }

  // After a new generation (or stop) was published: wakes the workers that sleep.
  void Wake() {
    if (sleepers.load(std::memory_order_seq_cst) > 0) {
      std::lock_guard<std::mutex> lock(mu);
      work_cv.notify_all();
    }
  }
};

ThreadPool::ThreadPool(int num_threads)
    : num_threads_(std::max(1, num_threads)), state_(new State) {
  State* s = state_.get();
  for (int t = 1; t < num_threads_; ++t) {
    s->workers.emplace_back([s] {
      uint64_t seen = 0;
      for (;;) {
        seen = s->AwaitWork(seen);
        if (s->stop.load()) return;
        s->Drain();
        s->busy.fetch_sub(1, std::memory_order_release);
      }
    });
  }
}

ThreadPool::~ThreadPool() {
  state_->stop.store(true, std::memory_order_seq_cst);
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->work_cv.notify_all();
  }
  for (auto& w : state_->workers) w.join();
}

void ThreadPool::RunImpl(int num_tasks, void (*call)(const void*, int), const void* fn) {
  State* s = state_.get();
  if (s->workers.empty() || num_tasks <= 1) {
    for (int i = 0; i < num_tasks; ++i) call(fn, i);
    return;
  }
  std::lock_guard<std::mutex> run_lock(s->run_mu);
  s->call = call;
  s->fn = fn;
  s->num_tasks = num_tasks;
  s->next.store(0, std::memory_order_relaxed);
  s->busy.store(static_cast<int>(s->workers.size()), std::memory_order_relaxed);
  s->generation.fetch_add(1, std::memory_order_seq_cst);
  s->Wake();
  s->Drain();
  const auto done = [s] { return s->busy.load(std::memory_order_acquire) == 0; };
  while (!Poll(done, kPauseSpin, std::chrono::microseconds{1000000})) {
  }
}

std::shared_ptr<ThreadPool> SharedThreadPool(int num_threads) {
  static std::mutex mu;
  static std::map<int, std::weak_ptr<ThreadPool>>* pools =
      new std::map<int, std::weak_ptr<ThreadPool>>;  // never destroyed: used until exit
  const int n = std::max(1, num_threads);
  std::lock_guard<std::mutex> lock(mu);
  std::shared_ptr<ThreadPool> pool = (*pools)[n].lock();
  if (!pool) {
    pool = std::make_shared<ThreadPool>(n);
    (*pools)[n] = pool;
  }
  return pool;
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
  const int tasks =
      static_cast<int>(std::min<int64_t>(rows, kTasksPerThread * pool->num_threads()));
  pool->Run(tasks, [&](int t) {
    ops.bmaxpool_rows(spec, oh, ow, pad_top, pad_left, in, out, rows * t / tasks,
                      rows * (t + 1) / tasks);
  });
}

// --------------------------------------------------------------- binary conv2d ---

// The plan is built and run by bconv_plan.cc (shared with the freestanding JNI library);
// this file adds the memory (a std::vector arena, per-thread scratch) and the threads.

std::string PrepareBConv(Isa isa, const BConvSpec& s, const int32_t* filter,
                         const float* multiplier, const float* bias, const int32_t* thresholds,
                         BConvPlan* plan) {
  auto message = [](const BConvProblem& p) {
    return p.has_value ? std::string(p.what) + ". Received: " + std::to_string(p.value)
                       : std::string(p.what);
  };
  const IsaOps& ops = OpsFor(isa);
  *plan = BConvPlan();
  BConvProblem problem = BConvPlanLayout(ops, isa, s, plan);
  if (problem.what != nullptr) return message(problem);
  plan->arena.assign(static_cast<size_t>(plan->arena_bytes / 8), 0);
  problem = BConvPlanFill(ops, *plan, filter, multiplier, bias, thresholds, plan->arena.data());
  return problem.what != nullptr ? message(problem) : "";
}

void RunBConv(const BConvPlan& plan, const int32_t* input, void* output, ThreadPool* pool,
              const BConvPixelScale* pixel_scale) {
  const IsaOps& ops = OpsFor(plan.isa);
  const int threads = pool == nullptr ? 1 : pool->num_threads();
  const BConvSplit split = BConvSplitFor(plan, threads);
  const size_t scratch = static_cast<size_t>(plan.scratch_bytes);
  if (threads == 1) {
    BConvRunTasks(ops, plan, plan.arena.data(), input, output,
                  internal::ThreadScratch(0, scratch), split, 0, split.tasks, pixel_scale);
    return;
  }
  pool->Run(static_cast<int>(split.tasks), [&](int task) {
    BConvRunTasks(ops, plan, plan.arena.data(), input, output,
                  internal::ThreadScratch(0, scratch), split, task, task + 1, pixel_scale);
  });
}

}  // namespace xk
