// Fuzzes the semantic router. The first byte picks the mode:
//   0: the rest is a prompt for a fixed four-category router: Route must
//      succeed and the decision must be well formed (probabilities sum to 1,
//      confidence in [0, 1], a non-empty target, fallback iff below the
//      threshold or nothing to classify).
//   1: the rest is a chat (messages separated by 0x1E, alternating user /
//      assistant roles), routed the same way.
//   2: the rest is a router spec, one item per line: "name<TAB>example" adds
//      an example, "=name<TAB>model<TAB>adapter" a route; Create must not
//      crash, and if it succeeds every line is routed as a prompt.
//   3: TruncateHeadTail with max_chars from the next byte: the result has at
//      most max_chars + 1 code points and is the input when that is short.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "router/router.h"
#include "router/text_util.h"

namespace {

namespace rt = expertserve::router;

#define ES_FUZZ_REQUIRE(cond) \
  do {                        \
    if (!(cond)) __builtin_trap(); \
  } while (false)

// Debian's Abseil has its own string_view, so absl::StrSplit does not take
// std::string_view.
std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || s[i] == sep) {
      out.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  return out;
}

void CheckDecision(const rt::Router& router, const rt::RouteInput& input,
                   double threshold) {
  auto d = router.Route(input);
  ES_FUZZ_REQUIRE(d.ok());
  ES_FUZZ_REQUIRE(!d->target.model.empty());
  ES_FUZZ_REQUIRE(d->confidence >= 0 && d->confidence <= 1);
  if (d->scores.empty()) {
    ES_FUZZ_REQUIRE(d->fell_back && d->category.empty());
    return;
  }
  double sum = 0;
  for (const rt::CategoryScore& s : d->scores) {
    ES_FUZZ_REQUIRE(std::isfinite(s.probability) && s.probability >= 0);
    ES_FUZZ_REQUIRE(std::isfinite(s.similarity) && s.similarity >= -1.001 &&
                    s.similarity <= 1.001);
    sum += s.probability;
  }
  ES_FUZZ_REQUIRE(d->scores.size() == 1 ? sum <= 1 + 1e-9 : std::fabs(sum - 1) < 1e-6);
  if (d->confidence < threshold) ES_FUZZ_REQUIRE(d->fell_back);
}

const rt::Router& FixedRouter() {
  static const rt::Router* router = [] {
    rt::RouterSpec spec;
    spec.categories = {
        {"chat", {"hi, how are you today?", "tell me a fun fact about octopuses",
                  "write a short poem about autumn"}},
        {"code", {"write a python function that reverses a string",
                  "why does my C++ code segfault when I index the vector?"}},
        {"math", {"solve for x: 3x + 7 = 22", "integrate 1/(1+x^2) from 0 to 1"}},
        {"law", {"is a verbal contract legally binding?",
                 "can my landlord keep my security deposit?"}}};
    spec.routes = {{"code", {"code", ""}}, {"math", {"moe", "math"}}};
    spec.confidence_threshold = 0.3;
    spec.default_target = rt::Target{"chat", ""};
    spec.max_chars = 512;
    return rt::Router::Create(spec)->release();
  }();
  return *router;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0:
      CheckDecision(FixedRouter(), {.text = rest}, 0.3);
      break;
    case 1: {
      rt::RouteInput input;
      int i = 0;
      for (std::string_view part : Split(rest, '\x1e')) {
        input.messages.push_back({i++ % 2 == 0 ? "user" : "assistant", part});
      }
      CheckDecision(FixedRouter(), input, 0.3);
      break;
    }
    case 2: {
      rt::RouterSpec spec;
      std::vector<std::string_view> lines = Split(rest, '\n');
      for (std::string_view line : lines) {
        std::vector<std::string_view> f = Split(line, '\t');
        if (!line.empty() && line[0] == '=' && f.size() >= 2) {
          spec.routes[std::string(f[0].substr(1))] =
              rt::Target{std::string(f[1]), f.size() > 2 ? std::string(f[2]) : ""};
        } else if (f.size() >= 2) {
          rt::RouterCategory* cat = nullptr;
          for (auto& c : spec.categories) {
            if (c.name == f[0]) cat = &c;
          }
          if (cat == nullptr && spec.categories.size() < 16) {
            spec.categories.push_back({std::string(f[0]), {}});
            cat = &spec.categories.back();
          }
          if (cat != nullptr && cat->examples.size() < 32) cat->examples.emplace_back(f[1]);
        }
      }
      spec.default_target = rt::Target{"default", ""};
      spec.confidence_threshold = 0.25;
      spec.max_chars = 256;
      spec.encoder.dim = 256;  // keeps each fuzz run cheap
      auto router = rt::Router::Create(spec);
      if (!router.ok()) break;
      for (std::string_view line : lines) CheckDecision(**router, {.text = line}, 0.25);
      break;
    }
    case 3: {
      if (rest.empty()) break;
      const size_t max_chars = static_cast<uint8_t>(rest[0]);
      const std::string_view text = rest.substr(1);
      const std::string out = rt::TruncateHeadTail(text, max_chars);
      const size_t in_chars = rt::CountCodePoints(text);
      if (max_chars == 0 || in_chars <= max_chars) {
        ES_FUZZ_REQUIRE(out == text);
      } else {
        ES_FUZZ_REQUIRE(rt::CountCodePoints(out) <= max_chars + 1);
      }
      break;
    }
  }
  return 0;
}
