// visit_kind(kind, f): calls f.template operator()<Interface>() with the SDK interface of `kind`, for the
// host code that handles every kind alike (creating plugins into slots). Generated from LOOM_KINDS: a new
// kind needs no line here.
#pragma once

#include <loom/plugin.h>  // every SDK interface

#include <stdexcept>
#include <utility>

namespace loom::host {

template <class F>
decltype(auto) visit_kind(Kind kind, F&& f) {
  switch (kind) {
#define LOOM_VISIT_KIND(Interface, table) \
  case Kind::Interface: return std::forward<F>(f).template operator()<loom::Interface>();
    LOOM_KINDS(LOOM_VISIT_KIND)
#undef LOOM_VISIT_KIND
  }
  throw std::logic_error("visit_kind: a kind outside LOOM_KINDS");
}

}  // namespace loom::host
