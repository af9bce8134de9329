#include "server/server.h"

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "server/inference_service.h"

namespace expertserve::server {
namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path, absl::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("tls: cannot read ", what, " ", path));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> Credentials(
    const std::optional<config::TlsConfig>& tls) {
  if (!tls.has_value()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions opts;
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  absl::StatusOr<std::string> key = ReadFile(tls->key_file, "key_file");
  if (!key.ok()) return key.status();
  absl::StatusOr<std::string> cert = ReadFile(tls->cert_file, "cert_file");
  if (!cert.ok()) return cert.status();
  pair.private_key = *std::move(key);
  pair.cert_chain = *std::move(cert);
  opts.pem_key_cert_pairs.push_back(std::move(pair));
  if (!tls->client_ca_file.empty()) {
    absl::StatusOr<std::string> ca = ReadFile(tls->client_ca_file, "client_ca_file");
    if (!ca.ok()) return ca.status();
    opts.pem_root_certs = *std::move(ca);
  }
  opts.client_certificate_request =
      tls->require_client_cert
          ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
          : (tls->client_ca_file.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                         : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  return grpc::SslServerCredentials(opts);
}

int ClampInt(uint64_t v) {
  return v > static_cast<uint64_t>(INT32_MAX) ? INT32_MAX : static_cast<int>(v);
}
int ClampMs(absl::Duration d) {
  if (d == absl::InfiniteDuration()) return INT32_MAX;
  const int64_t ms = absl::ToInt64Milliseconds(d);
  return ms > INT32_MAX ? INT32_MAX : static_cast<int>(ms);
}

// Every limit explicitly: Debian 12's gRPC 1.51 predates later HTTP/2
// denial-of-service fixes, so nothing is left to library defaults.
void ApplyLimits(const config::GrpcLimits& g, grpc::ServerBuilder& b) {
  b.SetMaxReceiveMessageSize(ClampInt(g.max_receive_message_bytes));
  b.SetMaxSendMessageSize(ClampInt(g.max_send_message_bytes));
  b.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                       static_cast<int>(std::min<int64_t>(g.max_concurrent_streams, INT32_MAX)));
  b.AddChannelArgument(GRPC_ARG_MAX_METADATA_SIZE, ClampInt(g.max_metadata_bytes));
  b.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                       ClampMs(g.keepalive_min_time));
  b.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS,
                       g.keepalive_permit_without_calls ? 1 : 0);
  // Two pings faster than allowed and the connection is closed.
  b.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 2);
  // The server probes idle connections every 2 minutes, 20 s to answer.
  b.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 120000);
  b.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20000);
  b.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS, ClampMs(g.max_connection_age));
  b.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
                       ClampMs(g.max_connection_age_grace));
  // Idle connections are closed after 10 minutes.
  b.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS, 600000);
  // Bound the HTTP/2 frame and header-table sizes (upstream defaults,
  // stated explicitly).
  b.AddChannelArgument(GRPC_ARG_HTTP2_MAX_FRAME_SIZE, 16384);
  b.AddChannelArgument(GRPC_ARG_HTTP2_HPACK_TABLE_SIZE_DECODER, 4096);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Server>> Server::Start(
    ServerOptions options, ModelCatalog* catalog, Authenticator auth,
    std::vector<ServiceFactory> extra_services) {
  std::unique_ptr<Server> s(new Server());
  s->options_ = std::move(options);
  s->admission_ = std::make_unique<AdmissionController>(s->options_.admission_capacity,
                                                        s->options_.retry_after);
  s->auth_ = std::make_unique<Authenticator>(std::move(auth));
  s->ctx_.catalog = catalog;
  s->ctx_.admission = s->admission_.get();
  s->ctx_.auth = s->auth_.get();
  s->ctx_.limits = s->options_.limits;
  s->ctx_.log_format = s->options_.log_format;
  if (!s->options_.metrics_listen.empty()) {
    s->metrics_ = std::make_unique<ServerMetrics>(catalog, &s->ctx_.stream_buffered_bytes);
    absl::Status st = s->metrics_->StartExposer(s->options_.metrics_listen);
    if (!st.ok()) return st;
    s->ctx_.metrics = s->metrics_.get();
  }

  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> creds =
      Credentials(s->options_.tls);
  if (!creds.ok()) return creds.status();

  grpc::EnableDefaultHealthCheckService(true);
  if (s->options_.reflection) grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  ApplyLimits(s->options_.grpc, builder);
  std::vector<int> ports(s->options_.listen.size(), 0);
  for (size_t i = 0; i < s->options_.listen.size(); ++i) {
    builder.AddListeningPort(s->options_.listen[i], *creds, &ports[i]);
  }
  s->services_.push_back(std::make_unique<InferenceService>(&s->ctx_));
  for (const ServiceFactory& f : extra_services) s->services_.push_back(f(&s->ctx_));
  for (auto& svc : s->services_) builder.RegisterService(svc.get());
  s->server_ = builder.BuildAndStart();
  if (s->server_ == nullptr) {
    return absl::UnavailableError(absl::StrCat(
        "cannot start the gRPC server on ", s->options_.listen.front(),
        " (port in use, bad address or bad TLS files?)"));
  }
  for (size_t i = 0; i < s->options_.listen.size(); ++i) {
    const std::string& l = s->options_.listen[i];
    if (absl::StartsWith(l, "unix:")) {
      s->addresses_.push_back(l);
      continue;
    }
    const size_t colon = l.rfind(':');
    s->addresses_.push_back(absl::StrCat(l.substr(0, colon), ":", ports[i]));
    if (ports[i] == 0) {
      return absl::UnavailableError(absl::StrCat("cannot listen on ", l));
    }
  }
  grpc::HealthCheckServiceInterface* health = s->server_->GetHealthCheckService();
  if (health != nullptr) {
    health->SetServingStatus(true);
    s->health_names_ = {"expertserve.v1.Inference"};
    for (const ServedModel* m : catalog->models()) s->health_names_.push_back(m->name);
    for (const std::string& n : s->health_names_) health->SetServingStatus(n, true);
  }
  return s;
}

Server::~Server() { Shutdown(absl::ZeroDuration()); }

int Server::metrics_port() const { return metrics_ == nullptr ? 0 : metrics_->port(); }

int64_t Server::Shutdown(absl::Duration grace) {
  if (shut_down_) return 0;
  shut_down_ = true;
  admission_->StartDraining();
  if (grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService()) {
    health->SetServingStatus(false);
    for (const std::string& n : health_names_) health->SetServingStatus(n, false);
  }
  admission_->WaitIdle(absl::Now() + grace);
  const int64_t cancelled = admission_->in_flight();
  // Cancels what is still running: OnCancel aborts each in the engine.
  server_->Shutdown(std::chrono::system_clock::now());
  server_->Wait();
  // Aborted engine requests finish within a step; wait so their sinks are
  // done with this server's context before it goes away.
  admission_->WaitIdle(absl::Now() + absl::Seconds(10));
  // No scrape may reach the engines once the caller destroys them.
  if (metrics_ != nullptr) metrics_->StopExposer();
  return cancelled;
}

}  // namespace expertserve::server
