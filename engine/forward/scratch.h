// Grow-only f32 scratch for the forward pass's per-step temporaries.
#ifndef EXPERTSERVE_ENGINE_FORWARD_SCRATCH_H_
#define EXPERTSERVE_ENGINE_FORWARD_SCRATCH_H_

#include <cstddef>
#include <vector>

namespace expertserve::engine {

// A prefill step allocated ~100 MB of temporaries per layer with fresh
// std::vectors and paid a page fault per 4 KiB each time (reusing them took a
// 4 x 512-token MoE prefill from 490 to 633 tok/s);
// call sites instead keep one `thread_local Scratch` each, so the memory is
// reused from step to step. Get() does not clear: callers write before they
// read. Thread-compatible (thread_local instances are per engine thread).
class Scratch {
 public:
  float* Get(size_t n) {
    if (buf_.size() < n) buf_.resize(n);
    return buf_.data();
  }
  // Frees the memory if it grew past `max_floats` (a rare long-context
  // step should not pin its peak for the life of the thread).
  void ReleaseIfLarger(size_t max_floats) {
    if (buf_.capacity() > max_floats) std::vector<float>().swap(buf_);
  }

 private:
  std::vector<float> buf_;
};

}  // namespace expertserve::engine

#endif  // EXPERTSERVE_ENGINE_FORWARD_SCRATCH_H_
