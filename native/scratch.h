// Internal: per-thread scratch buffers, defined once in kernels.cc so that no ISA-specific
// translation unit instantiates standard-library containers.
#ifndef XNOR_KERAS_NATIVE_SCRATCH_H_
#define XNOR_KERAS_NATIVE_SCRATCH_H_

#include <cstddef>

namespace xk {
namespace internal {

// A 64-byte aligned buffer of at least `bytes`, owned by the calling thread; `slot`
// (0..3) selects one of several independent buffers. Contents are not preserved.
void* ThreadScratch(int slot, size_t bytes);

}  // namespace internal
}  // namespace xk

#endif  // XNOR_KERAS_NATIVE_SCRATCH_H_
