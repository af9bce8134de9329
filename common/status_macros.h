// Status propagation macros with the semantics of Abseil's later
// ABSL_RETURN_IF_ERROR / ABSL_ASSIGN_OR_RETURN. Debian 12's Abseil (20220623)
// lacks them; a later upgrade can swap these out one-for-one.
#ifndef EXPERTSERVE_COMMON_STATUS_MACROS_H_
#define EXPERTSERVE_COMMON_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define ES_STATUS_CONCAT_INNER_(a, b) a##b
#define ES_STATUS_CONCAT_(a, b) ES_STATUS_CONCAT_INNER_(a, b)

// Evaluates `expr` (an absl::Status); returns it from the enclosing function
// if it is not OK.
#define ES_RETURN_IF_ERROR(expr)                         \
  do {                                                   \
    ::absl::Status es_status_ = (expr);                  \
    if (!es_status_.ok()) return es_status_;             \
  } while (false)

// `ES_ASSIGN_OR_RETURN(auto x, F());` evaluates F() (an absl::StatusOr<T>),
// returns its status on error, otherwise moves the value into `lhs`.
#define ES_ASSIGN_OR_RETURN(lhs, rexpr) \
  ES_ASSIGN_OR_RETURN_IMPL_(ES_STATUS_CONCAT_(es_statusor_, __LINE__), lhs, rexpr)

#define ES_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                              \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()

#endif  // EXPERTSERVE_COMMON_STATUS_MACROS_H_
