#include "engine/tokenizer/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "absl/strings/str_cat.h"
#include "engine/tokenizer/unicode.h"

namespace expertserve::engine {
namespace {

// Per-thread match state: match data (one ovector pair suffices) and a JIT
// stack large enough for long whitespace runs.
struct ThreadState {
  pcre2_match_data* md = pcre2_match_data_create(1, nullptr);
  pcre2_jit_stack* stack = pcre2_jit_stack_create(32 * 1024, 4 * 1024 * 1024, nullptr);
  pcre2_match_context* ctx = pcre2_match_context_create(nullptr);
  ThreadState() { pcre2_jit_stack_assign(ctx, nullptr, stack); }
  ~ThreadState() {
    pcre2_match_context_free(ctx);
    pcre2_jit_stack_free(stack);
    pcre2_match_data_free(md);
  }
};

ThreadState& State() {
  thread_local ThreadState state;
  return state;
}

// Oniguruma (what the Rust library uses) defines \s as Unicode White_Space;
// PCRE2 additionally matches U+180E. Spell \s out so both agree.
constexpr std::string_view kWhiteSpace =
    R"(\t\n\x0B\f\r\x20\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})";

// Code points that PCRE2 10.42 (Unicode 14) leaves unassigned but newer
// Unicode versions (the Rust reference's) assign: {first, last, category}.
struct Addition {
  char32_t first, last;
  const char* category;
};
constexpr Addition kAdditions[] = {
#include "engine/tokenizer/unicode_additions.inc"
};

// Class members to add to \p{name} for a one- or two-letter category name.
std::string AdditionsFor(std::string_view name) {
  std::string out;
  if (name.empty() || name.size() > 2) return out;
  for (const Addition& a : kAdditions) {
    const std::string_view cat(a.category);
    if (name.size() == 1 ? cat[0] == name[0] : cat == name) {
      absl::StrAppend(&out, "\\x{", absl::Hex(a.first), "}-\\x{", absl::Hex(a.last), "}");
    }
  }
  return out;
}

std::string TranslateOniguruma(std::string_view p) {
  std::string out;
  out.reserve(p.size() + 64);
  bool in_class = false;
  for (size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      const char n = p[++i];
      if (n == 's') {
        if (in_class) {
          out.append(kWhiteSpace);
        } else {
          out.append("[").append(kWhiteSpace).append("]");
        }
      } else if (n == 'S' && !in_class) {
        out.append("[^").append(kWhiteSpace).append("]");
      } else if ((n == 'p' || n == 'P') && i + 1 < p.size() && p[i + 1] == '{' &&
                 p.find('}', i + 1) != std::string_view::npos) {
        const size_t close = p.find('}', i + 1);
        const std::string_view name = p.substr(i + 2, close - i - 2);
        const std::string_view prop = p.substr(i - 1, close - i + 2);  // \p{name}
        const std::string extra = AdditionsFor(name);
        i = close;
        if (extra.empty() || (n == 'P' && in_class)) {
          out.append(prop);
        } else if (in_class) {
          out.append(prop).append(extra);
        } else {
          out.append(n == 'p' ? "[\\p{" : "[^\\p{").append(name).append("}").append(extra).append("]");
        }
      } else {
        out.push_back(c);
        out.push_back(n);
      }
      continue;
    }
    if (c == '[' && !in_class) {
      in_class = true;
      out.push_back(c);
      // A ']' right after '[' or '[^' is a literal member.
      if (i + 1 < p.size() && p[i + 1] == '^') out.push_back(p[++i]);
      if (i + 1 < p.size() && p[i + 1] == ']') out.push_back(p[++i]);
      continue;
    }
    if (c == ']' && in_class) in_class = false;
    out.push_back(c);
  }
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Regex>> Regex::Compile(std::string_view pattern,
                                                      bool literal) {
  // PCRE2 rejects UCP together with LITERAL (it is meaningless there).
  const uint32_t options = literal ? PCRE2_UTF | PCRE2_LITERAL : PCRE2_UTF | PCRE2_UCP;
  const std::string translated = literal ? std::string(pattern) : TranslateOniguruma(pattern);
  int err = 0;
  PCRE2_SIZE err_offset = 0;
  pcre2_code* code =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                    options, &err, &err_offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof(msg));
    return absl::InvalidArgumentError(
        absl::StrCat("cannot compile regex '", unicode::AV(pattern), "' at offset ", err_offset,
                     ": ", reinterpret_cast<const char*>(msg)));
  }
  const bool jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  return std::unique_ptr<Regex>(new Regex(code, jit));
}

Regex::~Regex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

absl::Status Regex::FindAll(std::string_view subject,
                            std::vector<std::pair<size_t, size_t>>* out) const {
  ThreadState& st = State();
  auto* code = static_cast<pcre2_code*>(code_);
  const auto* s = reinterpret_cast<PCRE2_SPTR>(subject.data());
  size_t pos = 0;
  while (pos <= subject.size()) {
    const int rc = jit_ ? pcre2_jit_match(code, s, subject.size(), pos, 0, st.md, st.ctx)
                        : pcre2_match(code, s, subject.size(), pos, PCRE2_NO_UTF_CHECK,
                                      st.md, st.ctx);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof(msg));
      return absl::ResourceExhaustedError(
          absl::StrCat("regex match failed: ", reinterpret_cast<const char*>(msg)));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(st.md);
    const size_t b = ov[0], e = ov[1];
    if (e > b) {
      out->emplace_back(b, e);
      pos = e;
    } else {
      // Empty match: step over one whole character, as Oniguruma does.
      pos = b + 1;
      while (pos < subject.size() && (static_cast<uint8_t>(subject[pos]) & 0xC0) == 0x80) ++pos;
    }
  }
  return absl::OkStatus();
}

}  // namespace expertserve::engine
