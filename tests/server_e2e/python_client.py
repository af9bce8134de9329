#!/usr/bin/python3
"""A Python client of expertserve for the e2e test (Debian python3-grpcio).

Stubs are generated at run time from the repository's proto with protoc's
--python_out (Debian's python3-grpc-tools 1.14 is too old for protobuf 4),
and the RPCs are called through grpc's generic channel methods.

Prints one JSON object: the streamed and unary token ids and text, and the
status code of a bad request.
"""
import argparse
import json
import os
import subprocess
import sys

import grpc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--address", required=True)
    ap.add_argument("--proto-root", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompt-ids", required=True)
    ap.add_argument("--max-tokens", type=int, default=8)
    ap.add_argument("--token", default="")
    args = ap.parse_args()

    os.makedirs(args.work, exist_ok=True)
    subprocess.run(["protoc", "-I", args.proto_root, "--python_out=" + args.work,
                    "expertserve/v1/inference.proto"], check=True)
    sys.path.insert(0, args.work)
    from expertserve.v1 import inference_pb2 as pb  # noqa: E402

    channel = grpc.insecure_channel(args.address)
    grpc.channel_ready_future(channel).result(timeout=10)
    stream = channel.unary_stream(
        "/expertserve.v1.Inference/GenerateStream",
        request_serializer=pb.GenerateRequest.SerializeToString,
        response_deserializer=pb.GenerateStreamResponse.FromString)
    unary = channel.unary_unary(
        "/expertserve.v1.Inference/Generate",
        request_serializer=pb.GenerateRequest.SerializeToString,
        response_deserializer=pb.GenerateResponse.FromString)
    metadata = [("authorization", "Bearer " + args.token)] if args.token else None

    req = pb.GenerateRequest(model=args.model)
    req.token_ids.ids.extend(int(x) for x in args.prompt_ids.split(","))
    req.sampling.max_tokens = args.max_tokens
    req.sampling.temperature = 0.0
    req.sampling.ignore_eos = True

    out = {"stream_ids": [], "stream_text": "", "finish": None}
    for msg in stream(req, timeout=30, metadata=metadata):
        for d in msg.deltas:
            out["stream_ids"].extend(d.token_ids)
            out["stream_text"] += d.text
        if msg.HasField("final"):
            out["finish"] = pb.FinishReason.Name(msg.final.samples[0].finish_reason)
            out["completion_tokens"] = msg.final.usage.completion_tokens
    resp = unary(req, timeout=30, metadata=metadata)
    out["unary_ids"] = list(resp.completions[0].token_ids)
    out["unary_text"] = resp.completions[0].text

    bad = pb.GenerateRequest(model=args.model)
    bad.token_ids.ids.append(1)
    bad.sampling.max_tokens = 0
    try:
        unary(bad, timeout=30, metadata=metadata)
        out["bad_code"] = "OK"
    except grpc.RpcError as e:
        out["bad_code"] = e.code().name
        out["bad_message"] = e.details()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
