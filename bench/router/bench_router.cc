// expertserve-bench-router: the semantic router's held-out accuracy and its
// Route() latency (p50/p99) for short and 8 KiB prompts. Prints one JSON
// object per result.
//
//   expertserve-bench-router [--source_dir=DIR] [--iters=N] [--show_misses]
//       [--dim=N --min_char=N --max_char=N --max_word=N --char_weight=W
//        --word_weight=W]   (encoder knobs, for tuning)
//
// Data: tests/router/data/train.tsv (fits the router) and heldout.tsv
// (scored only), four categories as in configs/demo.yaml.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "router/router.h"

namespace {

namespace rt = expertserve::router;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

struct Labelled {
  std::string category;
  std::string text;
};

std::vector<Labelled> LoadTsv(const std::filesystem::path& path) {
  std::vector<Labelled> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t tab = line.find('\t');
    if (tab == std::string::npos) continue;
    out.push_back({line.substr(0, tab), line.substr(tab + 1)});
  }
  return out;
}

rt::RouterSpec DemoSpec(const std::vector<Labelled>& train, size_t per_category) {
  rt::RouterSpec spec;
  std::map<std::string, size_t> index;
  for (const Labelled& l : train) {
    auto [it, inserted] = index.emplace(l.category, spec.categories.size());
    if (inserted) spec.categories.push_back({l.category, {}});
    auto& ex = spec.categories[it->second].examples;
    if (ex.size() < per_category) ex.push_back(l.text);
  }
  spec.routes = {{"chat", {"chat", ""}},
                 {"code", {"code", ""}},
                 {"math", {"moe", "math"}},
                 {"law", {"moe", "law"}}};
  spec.confidence_threshold = 0.3;  // configs/demo.yaml
  spec.default_target = rt::Target{"chat", ""};
  return spec;
}

json Percentiles(std::vector<double> us) {
  std::sort(us.begin(), us.end());
  auto at = [&](double q) { return us[static_cast<size_t>(q * (us.size() - 1))]; };
  // min_us is the noise-free floor on a shared machine; p99 includes
  // preemption by other processes.
  return json{{"min_us", us.front()}, {"p50_us", at(0.5)}, {"p99_us", at(0.99)},
              {"samples", us.size()}};
}

}  // namespace

int main(int argc, char** argv) {
  std::filesystem::path src = ES_DEFAULT_SOURCE_DIR;
  int iters = 2000;
  bool show_misses = false;
  rt::HashedNgramOptions enc;  // tuning knobs: --dim= --char= --word_weight= ...
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--source_dir=", 0) == 0) {
      src = a.substr(13);
    } else if (a == "--show_misses") {
      show_misses = true;
    } else if (a.rfind("--dim=", 0) == 0) {
      enc.dim = std::atoi(a.c_str() + 6);
    } else if (a.rfind("--min_char=", 0) == 0) {
      enc.min_char_ngram = std::atoi(a.c_str() + 11);
    } else if (a.rfind("--max_char=", 0) == 0) {
      enc.max_char_ngram = std::atoi(a.c_str() + 11);
    } else if (a.rfind("--max_word=", 0) == 0) {
      enc.max_word_ngram = std::atoi(a.c_str() + 11);
    } else if (a.rfind("--char_weight=", 0) == 0) {
      enc.char_weight = std::atof(a.c_str() + 14);
    } else if (a.rfind("--word_weight=", 0) == 0) {
      enc.word_weight = std::atof(a.c_str() + 14);
    } else if (a.rfind("--iters=", 0) == 0) {
      iters = std::max(10, std::atoi(a.c_str() + 8));
    } else {
      std::fprintf(stderr, "unknown flag %s\n", a.c_str());
      return 2;
    }
  }
  const auto train = LoadTsv(src / "tests/router/data/train.tsv");
  const auto heldout = LoadTsv(src / "tests/router/data/heldout.tsv");
  if (train.empty() || heldout.empty()) {
    std::fprintf(stderr, "no data under %s/tests/router/data\n", src.c_str());
    return 1;
  }

  // Accuracy: every classifier variant, with the full training set and with
  // the demo config's five examples per category.
  struct Variant {
    std::string name;
    rt::ClassifierOptions options;
  };
  std::vector<Variant> variants = {
      {"centroid", {rt::ClassifierKind::kCentroid, 3, 0.5, std::nullopt}},
      {"knn1", {rt::ClassifierKind::kKnn, 1, 0.5, std::nullopt}},
      {"knn3", {rt::ClassifierKind::kKnn, 3, 0.5, std::nullopt}},
      {"knn5", {rt::ClassifierKind::kKnn, 5, 0.5, std::nullopt}},
      {"hybrid_k1", {rt::ClassifierKind::kHybrid, 1, 0.5, std::nullopt}},
      {"hybrid_k3", {rt::ClassifierKind::kHybrid, 3, 0.5, std::nullopt}},
  };
  for (size_t per_category : {size_t{5}, size_t{1000}}) {
    for (const Variant& v : variants) {
      rt::RouterSpec spec = DemoSpec(train, per_category);
      spec.classifier = v.options;
      spec.encoder = enc;
      auto router = rt::Router::Create(spec);
      if (!router.ok()) {
        std::fprintf(stderr, "%s\n", router.status().ToString().c_str());
        return 1;
      }
      size_t right = 0, fell_back = 0;
      double conf = 0;
      for (const Labelled& l : heldout) {
        auto d = (*router)->Route({.text = l.text});
        if (!d.ok()) return 1;
        right += d->category == l.category;
        if (show_misses && d->category != l.category) {
          std::fprintf(stderr, "miss %s/%zu: %s -> %s (%.2f): %s\n", v.name.c_str(),
                       std::min<size_t>(per_category, 20), l.category.c_str(),
                       d->category.c_str(), d->confidence, l.text.c_str());
        }
        fell_back += d->fell_back;
        conf += d->confidence;
      }
      const auto* c = (*router)->classifier();
      json j{{"bench", "router_accuracy"},
             {"classifier", v.name},
             {"train_per_category", std::min<size_t>(per_category, 20)},
             {"heldout", heldout.size()},
             {"heldout_accuracy", static_cast<double>(right) / heldout.size()},
             {"heldout_mean_confidence", conf / heldout.size()},
             {"fallback_rate_at_0.3", static_cast<double>(fell_back) / heldout.size()},
             {"loo_accuracy", c->leave_one_out().accuracy},
             {"loo_nll", c->leave_one_out().mean_nll},
             {"temperature", c->temperature()},
             {"encoder", (*router)->encoder()->name()}};
      std::printf("%s\n", j.dump().c_str());
    }
  }

  // Latency of the default router (the full training set).
  rt::RouterSpec latency_spec = DemoSpec(train, 1000);
  latency_spec.encoder = enc;
  auto router = rt::Router::Create(latency_spec);
  if (!router.ok()) return 1;
  std::string long_prompt;
  const std::string para =
      "The tenant signed a twelve month residential lease agreement with the "
      "landlord, and the contract says the security deposit is refundable. ";
  while (long_prompt.size() < 8192) long_prompt += para;
  long_prompt.resize(8192);
  long_prompt += "\nCan my landlord keep the deposit?";
  auto time_route = [&](auto text_of) {
    std::vector<double> us;
    us.reserve(iters);
    for (int i = 0; i < iters; ++i) {
      const std::string& text = text_of(i);
      const auto t0 = Clock::now();
      auto d = (*router)->Route({.text = text});
      const auto t1 = Clock::now();
      if (!d.ok()) std::abort();
      us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    }
    return us;
  };
  for (int i = 0; i < 100; ++i) (void)(*router)->Route({.text = heldout[i % heldout.size()].text});
  json short_j = Percentiles(time_route(
      [&](int i) -> const std::string& { return heldout[i % heldout.size()].text; }));
  size_t short_bytes = 0;
  for (const Labelled& l : heldout) short_bytes += l.text.size();
  short_j["bench"] = "router_latency";
  short_j["prompt"] = "short";
  short_j["mean_prompt_bytes"] = short_bytes / heldout.size();
  std::printf("%s\n", short_j.dump().c_str());
  json long_j = Percentiles(
      time_route([&](int) -> const std::string& { return long_prompt; }));
  long_j["bench"] = "router_latency";
  long_j["prompt"] = "8KiB";
  long_j["prompt_bytes"] = long_prompt.size();
  long_j["max_chars"] = 2048;
  std::printf("%s\n", long_j.dump().c_str());
  return 0;
}
