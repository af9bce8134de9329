// Unit tests of the server's pieces that need no network: status mapping,
// bearer-token checks, admission, launch flags, request conversion.
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/admission.h"
#include "server/auth.h"
#include "server/launch_flags.h"
#include "server/model_catalog.h"
#include "server/proto_convert.h"
#include "server/status_convert.h"
#include "tests/fixtures/status_matchers.h"

namespace expertserve::server {
namespace {

using ::testing::HasSubstr;

TEST(StatusConvertTest, EveryCodeRoundTripsWithItsMessage) {
  for (int c = 1; c <= 16; ++c) {
    absl::Status s(static_cast<absl::StatusCode>(c), "the message");
    grpc::Status g = ToGrpcStatus(s);
    EXPECT_EQ(static_cast<int>(g.error_code()), c);
    EXPECT_EQ(g.error_message(), "the message");
    EXPECT_EQ(FromGrpcStatus(g), s);
  }
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
}

TEST(AuthTest, PermissionsAndMalformedHeaders) {
  Authenticator auth({{"app", "app-secret-000000", true, false},
                      {"ops", "ops-secret-000000", true, true}});
  ASSERT_TRUE(auth.enabled());
  EXPECT_EQ(*auth.Check("Bearer app-secret-000000", Permission::kInference), "app");
  EXPECT_EQ(*auth.Check("bearer ops-secret-000000", Permission::kAdmin), "ops");
  EXPECT_EQ(auth.Check("Bearer app-secret-000000", Permission::kAdmin).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(auth.Check(std::nullopt, Permission::kInference).status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(auth.Check("app-secret-000000", Permission::kInference).status().code(),
            absl::StatusCode::kUnauthenticated);
  // A prefix or extension of a secret is not the secret.
  EXPECT_EQ(auth.Check("Bearer app-secret-00000", Permission::kInference).status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(auth.Check("Bearer app-secret-0000000", Permission::kInference).status().code(),
            absl::StatusCode::kUnauthenticated);
  // Messages never contain a secret.
  EXPECT_THAT(std::string(auth.Check("Bearer app-secret-000000", Permission::kAdmin)
                              .status()
                              .message()),
              ::testing::Not(HasSubstr("secret")));
  Authenticator off({});
  EXPECT_TRUE(off.Check(std::nullopt, Permission::kAdmin).ok());
}

TEST(AdmissionTest, BoundDrainAndWaitIdle) {
  AdmissionController a(2, absl::Milliseconds(100));
  AdmissionController::Ticket t1, t2, t3;
  ASSERT_TRUE(a.Admit(&t1).ok());
  ASSERT_TRUE(a.Admit(&t2).ok());
  absl::Status full = a.Admit(&t3);
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(full.message()), HasSubstr("retry after 100 ms"));
  EXPECT_FALSE(t3.held());
  t1.Release();
  EXPECT_TRUE(a.Admit(&t3).ok());
  a.StartDraining();
  AdmissionController::Ticket t4;
  EXPECT_EQ(a.Admit(&t4).code(), absl::StatusCode::kUnavailable);
  EXPECT_FALSE(a.WaitIdle(absl::Now() + absl::Milliseconds(20)));
  std::thread releaser([&] {
    absl::SleepFor(absl::Milliseconds(20));
    t2.Release();
    t3.Release();
  });
  EXPECT_TRUE(a.WaitIdle(absl::Now() + absl::Seconds(10)));
  releaser.join();
  EXPECT_EQ(a.in_flight(), 0);
}

TEST(LaunchFlagsTest, QuickStartFlagsAndErrors) {
  EXPECT_FALSE(UsesQuickStartFlags({"--config", "x.yaml", "--check"}));
  EXPECT_TRUE(UsesQuickStartFlags({"--model=a"}));
  auto f = ParseLaunchFlags({"--model", "chat=/m/chat", "--model", "/m/code/", "--port=0",
                             "--metrics-port", "9100", "--max-tokens", "64"});
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_EQ(f->models.size(), 2u);
  EXPECT_EQ(f->models[0].first, "chat");
  EXPECT_EQ(f->models[1].first, "code");
  EXPECT_EQ(*f->port, 0);
  EXPECT_EQ(*f->metrics_port, 9100);
  EXPECT_EQ(*f->max_tokens, 64);
  EXPECT_THAT(std::string(ParseLaunchFlags({"--model", "a", "--port", "70000"})
                              .status()
                              .message()),
              HasSubstr("--port"));
  EXPECT_THAT(std::string(ParseLaunchFlags({"--bogus"}).status().message()),
              HasSubstr("unknown argument"));
  EXPECT_FALSE(ParseLaunchFlags({"--port", "1"}).ok());  // no model, no config
}

TEST(ProtoConvertTest, DefaultsAndLimits) {
  RequestLimits limits;
  limits.max_tokens = 100;
  engine::SamplingParams p;
  ASSERT_TRUE(ConvertSampling(pb::SamplingParams(), limits, &p).ok());
  EXPECT_EQ(p.max_tokens, 16);
  EXPECT_EQ(p.temperature, 1.0f);
  EXPECT_TRUE(p.skip_special_tokens);
  EXPECT_FALSE(p.logprobs.has_value());
  pb::SamplingParams in;
  in.set_temperature(0);
  in.set_max_tokens(100);
  in.set_seed(9);
  (*in.mutable_logit_bias())[5] = 2.0f;
  ASSERT_TRUE(ConvertSampling(in, limits, &p).ok());
  EXPECT_EQ(p.temperature, 0.0f);
  EXPECT_EQ(p.max_tokens, 100);
  EXPECT_EQ(*p.seed, 9u);
  ASSERT_EQ(p.logit_bias.size(), 1u);
  in.set_max_tokens(101);
  EXPECT_THAT(std::string(ConvertSampling(in, limits, &p).message()),
              HasSubstr("sampling.max_tokens"));
}

TEST(ModelCatalogTest, ExplicitAndDefaultRouting) {
  ModelCatalog c;
  ServedModel a;
  a.name = "a";
  ServedModel b;
  b.name = "b";
  c.AddModel(a);
  c.AddModel(b);
  c.AddAdapter("b", "x");
  auto d = c.Route("", "");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->model, "a");
  EXPECT_FALSE(d->explicit_target);
  c.SetDefaultTarget("b", "x");
  d = c.Route("auto", "");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->model, "b");
  EXPECT_EQ(d->adapter, "x");
  EXPECT_EQ(c.Route("b", "x")->adapter, "x");
  EXPECT_EQ(c.Route("a", "x").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(c.Route("zz", "").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(c.Route("", "x").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(c.RemoveAdapter("x"));
  EXPECT_EQ(c.Route("b", "x").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace expertserve::server
