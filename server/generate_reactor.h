// The Generate / GenerateStream calls on the gRPC callback API.
//
// Flow: the handler authorises, admits, routes, converts and Submits to the
// engine, then returns the reactor. The engine thread pushes outputs into a
// GenerateSink (a mutex-guarded buffer that never blocks); the sink keeps at
// most one StartWrite in flight and issues the next from OnWriteDone,
// coalescing the deltas produced meanwhile into one message with one
// SampleDelta per sample (ids and text appended).
//
// A client that stops reading: HTTP/2 flow control stops the write in
// flight, and the output produced meanwhile waits in the pending message.
// The engine has no way to pause one request, so the server bounds the
// backlog instead: past limits.max_stream_buffer_bytes (pending + in flight)
// the pending output is dropped, the request is aborted in the engine (its
// KV blocks freed) and the stream ends with RESOURCE_EXHAUSTED once the
// in-flight write completes. Per stream the server thus holds at most
// max_stream_buffer_bytes plus one delta; the sum over streams is the gauge
// expertserve:stream_buffered_bytes.
//
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
