#include "server/admission.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace expertserve::server {

AdmissionController::AdmissionController(int64_t capacity, absl::Duration retry_after)
    : capacity_(std::max<int64_t>(1, capacity)), retry_after_(retry_after) {}

AdmissionController::Ticket& AdmissionController::Ticket::operator=(
    Ticket&& other) noexcept {
  if (this != &other) {
    Release();
    owner_ = other.owner_;
    other.owner_ = nullptr;
  }
  return *this;
}

void AdmissionController::Ticket::Release() {
  if (owner_ != nullptr) {
    owner_->Release();
    owner_ = nullptr;
  }
}

absl::Status AdmissionController::Admit(Ticket* ticket) {
  absl::MutexLock lock(&mu_);
  if (draining_) {
    return absl::UnavailableError(
        "the server is shutting down and admits no new requests; retry on "
        "another replica");
  }
  if (in_flight_ >= capacity_) {
    ++rejected_;
    return absl::ResourceExhaustedError(absl::StrCat(
        "server overloaded: ", in_flight_, " requests in flight (capacity ",
        capacity_, " = scheduler.max_num_seqs + scheduler.max_waiting_requests); retry after ",
        absl::ToInt64Milliseconds(retry_after_), " ms"));
  }
  ++in_flight_;
  *ticket = Ticket(this);
  return absl::OkStatus();
}

void AdmissionController::Release() {
  absl::MutexLock lock(&mu_);
  --in_flight_;
}

void AdmissionController::StartDraining() {
  absl::MutexLock lock(&mu_);
  draining_ = true;
}

bool AdmissionController::draining() const {
  absl::MutexLock lock(&mu_);
  return draining_;
}

bool AdmissionController::WaitIdle(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return in_flight_ == 0; };
  mu_.AwaitWithDeadline(absl::Condition(&idle), deadline);
  return in_flight_ == 0;
}

int64_t AdmissionController::in_flight() const {
  absl::MutexLock lock(&mu_);
  return in_flight_;
}

int64_t AdmissionController::rejected() const {
  absl::MutexLock lock(&mu_);
  return rejected_;
}

}  // namespace expertserve::server
