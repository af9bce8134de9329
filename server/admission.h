// Admission control: a bounded number of requests in the server at once
// (running + waiting), and draining at shutdown. Beyond the bound a request
// is refused at once with kResourceExhausted and a retry hint, so overload
// never queues without limit; while draining, kUnavailable.
#ifndef EXPERTSERVE_SERVER_ADMISSION_H_
#define EXPERTSERVE_SERVER_ADMISSION_H_

#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace expertserve::server {

// Thread-safe.
class AdmissionController {
 public:
  // `capacity`: requests admitted at once (>= 1).
  // `retry_after`: the hint given with kResourceExhausted.
  AdmissionController(int64_t capacity, absl::Duration retry_after);

  // Holds one admission slot; releases it on destruction. Movable.
  class Ticket {
   public:
    Ticket() = default;
    explicit Ticket(AdmissionController* owner) : owner_(owner) {}
    Ticket(Ticket&& other) noexcept : owner_(other.owner_) { other.owner_ = nullptr; }
    Ticket& operator=(Ticket&& other) noexcept;
    ~Ticket() { Release(); }
    void Release();
    bool held() const { return owner_ != nullptr; }

   private:
    AdmissionController* owner_ = nullptr;
  };

  // kResourceExhausted ("... retry after N ms") when full, kUnavailable when
  // draining. On OK `ticket` holds a slot.
  absl::Status Admit(Ticket* ticket);

  // Refuses every later Admit with kUnavailable.
  void StartDraining();
  bool draining() const;
  // Waits until no ticket is held or `deadline`; true if idle.
  bool WaitIdle(absl::Time deadline);

  int64_t in_flight() const;
  int64_t capacity() const { return capacity_; }
  absl::Duration retry_after() const { return retry_after_; }
  int64_t rejected() const;

 private:
  void Release();

  const int64_t capacity_;
  const absl::Duration retry_after_;
  mutable absl::Mutex mu_;
  int64_t in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t rejected_ ABSL_GUARDED_BY(mu_) = 0;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace expertserve::server

#endif  // EXPERTSERVE_SERVER_ADMISSION_H_
