// Loads the router test sets (tests/router/data/*.tsv: category<TAB>text,
// '#' comments) and builds the demo-shaped RouterSpec used by the tests.
#ifndef EXPERTSERVE_TESTS_ROUTER_ROUTER_DATA_H_
#define EXPERTSERVE_TESTS_ROUTER_ROUTER_DATA_H_

#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "router/router.h"

namespace expertserve::router::testing {

struct Labelled {
  std::string category;
  std::string text;
};

// ES_SOURCE_DIR is set by ctest; the compiled-in default serves direct runs.
inline std::string SourceDir() {
  const char* dir = std::getenv("ES_SOURCE_DIR");
  return dir != nullptr ? dir : ES_ROUTER_TEST_SOURCE_DIR;
}

// Empty if the file is missing (tests assert on the size).
inline std::vector<Labelled> LoadTsv(const std::string& name) {
  std::vector<Labelled> out;
  std::ifstream in(SourceDir() + "/tests/router/data/" + name);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t tab = line.find('\t');
    if (tab == std::string::npos) continue;
    out.push_back({line.substr(0, tab), line.substr(tab + 1)});
  }
  return out;
}

// configs/demo.yaml's router, with up to `per_category` examples from
// `train` per category.
inline RouterSpec DemoSpec(const std::vector<Labelled>& train,
                           size_t per_category = 1000) {
  RouterSpec spec;
  std::map<std::string, size_t> index;
  for (const Labelled& l : train) {
    auto [it, inserted] = index.emplace(l.category, spec.categories.size());
    if (inserted) spec.categories.push_back({l.category, {}});
    auto& examples = spec.categories[it->second].examples;
    if (examples.size() < per_category) examples.push_back(l.text);
  }
  spec.routes = {{"chat", {"chat", ""}},
                 {"code", {"code", ""}},
                 {"math", {"moe", "math"}},
                 {"law", {"moe", "law"}}};
  spec.confidence_threshold = 0.3;
  spec.default_target = Target{"chat", ""};
  return spec;
}

}  // namespace expertserve::router::testing

#endif  // EXPERTSERVE_TESTS_ROUTER_ROUTER_DATA_H_
