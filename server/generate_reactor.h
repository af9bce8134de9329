// The Generate / GenerateStream calls on the gRPC callback API.
//
// Flow: the handler authorises, admits, routes, converts and Submits to the
// engine, then returns the reactor. The engine thread pushes outputs into a
// GenerateSink (a mutex-guarded buffer that never blocks); the sink keeps at
// most one StartWrite in flight and issues the next from OnWriteDone,
// coalescing the deltas produced meanwhile into one message. So a client
// that stops reading holds at most one pending message per stream, whose
// size is bounded by max_tokens: memory cannot grow without limit.
// OnCancel (client cancel, deadline, server shutdown) aborts the request in
// the engine, which frees its KV blocks within one step; OnDone frees the
// reactor.
//
// Reactor operations (StartWrite/Finish) are claimed under the sink's mutex
// and issued outside it, so gRPC may run reactions inline without deadlock.
#ifndef EXPERTSERVE_SERVER_GENERATE_REACTOR_H_
#define EXPERTSERVE_SERVER_GENERATE_REACTOR_H_

#include "expertserve/v1/inference.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "server/service_context.h"

namespace expertserve::server {

// Both return a reactor that gRPC owns (it deletes itself in OnDone).
grpc::ServerWriteReactor<pb::GenerateStreamResponse>* StartGenerateStream(
    ServiceContext* ctx, grpc::CallbackServerContext* call,
    const pb::GenerateRequest* request);
grpc::ServerUnaryReactor* StartGenerateUnary(ServiceContext* ctx,
                                             grpc::CallbackServerContext* call,
                                             const pb::GenerateRequest* request,
                                             pb::GenerateResponse* response);

}  // namespace expertserve::server

#endif  // EXPERTSERVE_SERVER_GENERATE_REACTOR_H_
