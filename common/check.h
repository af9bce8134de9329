// Invariant checks. ES_CHECK is for broken internal invariants and aborts in
// every build; ES_DCHECK is for kernel preconditions and compiles away in
// release builds. Neither is ever used for user input: that returns a Status.
#ifndef EXPERTSERVE_COMMON_CHECK_H_
#define EXPERTSERVE_COMMON_CHECK_H_

#include <cstdio>
#include <cstdlib>

namespace expertserve::internal {
[[noreturn]] inline void CheckFailed(const char* file, int line,
                                     const char* expr, const char* msg) {
  std::fprintf(stderr, "%s:%d: ES_CHECK failed: %s %s\n", file, line, expr,
               msg ? msg : "");
  std::fflush(stderr);
  std::abort();
}
}  // namespace expertserve::internal

#define ES_CHECK(cond)                                                      \
  do {                                                                      \
    if (!(cond)) [[unlikely]]                                               \
      ::expertserve::internal::CheckFailed(__FILE__, __LINE__, #cond, nullptr); \
  } while (false)

#define ES_CHECK_MSG(cond, msg)                                             \
  do {                                                                      \
    if (!(cond)) [[unlikely]]                                               \
      ::expertserve::internal::CheckFailed(__FILE__, __LINE__, #cond, (msg)); \
  } while (false)

#ifdef NDEBUG
#define ES_DCHECK(cond) \
  do {                  \
    (void)sizeof(cond); \
  } while (false)
#else
#define ES_DCHECK(cond) ES_CHECK(cond)
#endif

#endif  // EXPERTSERVE_COMMON_CHECK_H_
