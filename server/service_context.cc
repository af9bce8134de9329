#include "server/service_context.h"

#include <chrono>
#include <cstdio>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"

namespace expertserve::server {

absl::Status ServiceContext::Authorize(const grpc::ServerContextBase& ctx,
                                       Permission needed) const {
  if (auth == nullptr || !auth->enabled()) return absl::OkStatus();
  const auto& md = ctx.client_metadata();
  std::optional<absl::string_view> value;
  auto it = md.find("authorization");
  if (it != md.end()) value = absl::string_view(it->second.data(), it->second.size());
  absl::StatusOr<std::string> who = auth->Check(value, needed);
  if (!who.ok()) {
    RecordRejection(who.status());
    return who.status();
  }
  return absl::OkStatus();
}

std::string ServiceContext::NewEngineId(absl::string_view client_id) {
  return absl::StrCat(next_request.fetch_add(1), "/", client_id);
}

void ServiceContext::LogRequest(absl::string_view request_id, absl::string_view method,
                                const RoutingDecision& target,
                                const engine::FinalOutput& out) const {
  if (log_format == RequestLogFormat::kNone) return;
  const double queue_ms = absl::ToDoubleMilliseconds(out.timings.queue_time);
  const double ttft_ms = absl::ToDoubleMilliseconds(out.timings.time_to_first_token);
  const double total_ms = absl::ToDoubleMilliseconds(out.timings.total);
  std::string reasons;
  for (const engine::SampleResult& s : out.samples) {
    if (!reasons.empty()) reasons += ",";
    reasons += engine::FinishReasonName(s.finish_reason);
  }
  std::string line;
  if (log_format == RequestLogFormat::kJson) {
    nlohmann::json j = {{"event", "request"},
                        {"request_id", request_id},
                        {"method", method},
                        {"model", target.model},
                        {"adapter", target.adapter},
                        {"explicit_target", target.explicit_target},
                        {"prompt_tokens", out.usage.prompt_tokens},
                        {"completion_tokens", out.usage.completion_tokens},
                        {"cached_tokens", out.usage.cached_tokens},
                        {"queue_ms", queue_ms},
                        {"ttft_ms", ttft_ms},
                        {"total_ms", total_ms},
                        {"finish", reasons},
                        {"status", absl::StatusCodeToString(out.status.code())}};
    line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  } else {
    line = absl::StrFormat(
        "request id=%s method=%s model=%s adapter=%s prompt_tokens=%d "
        "completion_tokens=%d cached_tokens=%d queue_ms=%.2f ttft_ms=%.2f "
        "total_ms=%.2f finish=%s status=%s\n",
        absl::CEscape(request_id), method, target.model, target.adapter.empty() ? "-" : target.adapter,
        out.usage.prompt_tokens, out.usage.completion_tokens, out.usage.cached_tokens,
        queue_ms, ttft_ms, total_ms, reasons.empty() ? "-" : reasons,
        absl::StatusCodeToString(out.status.code()));
  }
  std::fwrite(line.data(), 1, line.size(), stderr);
}

void ServiceContext::RecordRejection(const absl::Status& status) const {
  if (metrics != nullptr) metrics->OnRejected(absl::StatusCodeToString(status.code()));
}

absl::Time CallDeadline(const grpc::ServerContextBase& ctx) {
  const auto d = ctx.deadline();
  if (d == std::chrono::system_clock::time_point::max()) return absl::InfiniteFuture();
  return absl::FromChrono(d);
}

}  // namespace expertserve::server
