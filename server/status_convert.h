// absl::Status <-> grpc::Status: the ONLY place in the project that converts
// between them. The codes are numerically equal (both follow
// google.rpc.Code); the message is forwarded unchanged, never a stack trace.
//
// Thread-safe (pure functions).
#ifndef EXPERTSERVE_SERVER_STATUS_CONVERT_H_
#define EXPERTSERVE_SERVER_STATUS_CONVERT_H_

#include <string>

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace expertserve::server {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace expertserve::server

#endif  // EXPERTSERVE_SERVER_STATUS_CONVERT_H_
