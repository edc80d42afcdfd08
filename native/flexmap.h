// A minimal reader for the FlexBuffers maps that LCE's converter writes as custom options
// (a root map of string keys to scalars, e.g. {"stride_height": 1, "padding": 0, ...}).
//
// FlexBuffers layout used here: the buffer ends with [root value][root packed type][root
// byte width]. A packed type byte is (type << 2) | log2(child byte width). A map value is a
// backwards offset to its value vector; the three words before that vector hold the
// backwards offset to the key vector, the key vector's byte width and the element count;
// after the values come one packed-type byte per value.
#ifndef XNOR_KERAS_NATIVE_FLEXMAP_H_
#define XNOR_KERAS_NATIVE_FLEXMAP_H_

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace xk {

class FlexMap {
 public:
  // Parses `buffer`; `ok()` tells whether it held a well-formed map.
  FlexMap(const void* buffer, size_t size) {
    const uint8_t* b = static_cast<const uint8_t*>(buffer);
    if (b == nullptr || size < 3) return;
    begin_ = b;
    end_ = b + size;
    const unsigned root_width = b[size - 1];
    const unsigned packed = b[size - 2];
    if (!ValidWidth(root_width) || size < 2 + root_width) return;
    if ((packed >> 2) != kMap) return;
    const uint8_t* root = b + size - 2 - root_width;
    width_ = 1u << (packed & 3);
    values_ = Indirect(root, root_width);
    if (values_ == nullptr || values_ - 3 * width_ < begin_) return;
    count_ = ReadUnsigned(values_ - width_, width_);
    key_width_ = static_cast<unsigned>(ReadUnsigned(values_ - 2 * width_, width_));
    keys_ = Indirect(values_ - 3 * width_, width_);
    if (keys_ == nullptr || !ValidWidth(key_width_)) return;
    if (values_ + count_ * width_ + count_ > end_ || keys_ + count_ * key_width_ > end_) return;
    ok_ = true;
  }

  bool ok() const { return ok_; }

  // Looks up an integer (or bool) value; false when the key is absent or not a scalar.
  bool GetInt(const char* key, int64_t* out) const {
    if (!ok_) return false;
    for (uint64_t i = 0; i < count_; ++i) {
      const uint8_t* k = Indirect(keys_ + i * key_width_, key_width_);
      if (k == nullptr || !KeyEquals(k, key)) continue;
      const uint8_t* v = values_ + i * width_;
      const unsigned packed = values_[count_ * width_ + i];
      const unsigned type = packed >> 2;
      const unsigned child_width = 1u << (packed & 3);
      switch (type) {
        case kInt:
          *out = ReadSigned(v, width_);
          return true;
        case kUInt:
        case kBool:
          *out = static_cast<int64_t>(ReadUnsigned(v, width_));
          return true;
        case kIndirectInt:
        case kIndirectUInt: {
          const uint8_t* target = Indirect(v, width_);
          if (target == nullptr || target + child_width > end_) return false;
          *out = type == kIndirectInt ? ReadSigned(target, child_width)
                                      : static_cast<int64_t>(ReadUnsigned(target, child_width));
          return true;
        }
        default:
          return false;
      }
    }
    return false;
  }

 private:
  enum { kInt = 1, kUInt = 2, kIndirectInt = 6, kIndirectUInt = 7, kMap = 9, kBool = 26 };

  static bool ValidWidth(unsigned w) { return w == 1 || w == 2 || w == 4 || w == 8; }

  static uint64_t ReadUnsigned(const uint8_t* p, unsigned width) {
    uint64_t v = 0;
    for (unsigned i = 0; i < width; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
    return v;
  }

  static int64_t ReadSigned(const uint8_t* p, unsigned width) {
    const uint64_t u = ReadUnsigned(p, width);
    const unsigned shift = 64 - 8 * width;
    return static_cast<int64_t>(u << shift) >> shift;
  }

  const uint8_t* Indirect(const uint8_t* p, unsigned width) const {
    if (p < begin_ || p + width > end_) return nullptr;
    const uint64_t offset = ReadUnsigned(p, width);
    if (offset > static_cast<uint64_t>(p - begin_)) return nullptr;
    return p - offset;
  }

  bool KeyEquals(const uint8_t* k, const char* key) const {
    const size_t n = std::strlen(key);
    if (k + n + 1 > end_) return false;
    return std::memcmp(k, key, n) == 0 && k[n] == 0;
  }

  const uint8_t* begin_ = nullptr;
  const uint8_t* end_ = nullptr;
  const uint8_t* values_ = nullptr;
  const uint8_t* keys_ = nullptr;
  uint64_t count_ = 0;
  unsigned width_ = 1;
  unsigned key_width_ = 1;
  bool ok_ = false;
};

}  // namespace xk

#endif  // XNOR_KERAS_NATIVE_FLEXMAP_H_
