// Slot<I>: how the host holds a plugin object of interface I, and the only way it calls one. There is no
// operator-> and no proxy class: every call is `slot.call<&I::method>(args…)`, which runs inside guarded()
// (plugins/plugin_guard.h) with the method's own name, so a failure reads
//   precision plugin 'amp-fp16' (libloom_precision_amp_fp16.so) failed in step: <what>
// and a method added to an SDK interface is guarded the moment the host calls it — nothing to forward by
// hand, nothing to forget. Slots<I> is the same for the kinds a config may hold many of, in file order.
#pragma once

#include "plugins/plugin_guard.h"

#include <functional>
#include <memory>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace loom::host {

namespace detail {

/// "step" for &loom::Precision::step: the name of a member function pointer given as a template argument,
/// read from the compiler's signature of this function (GCC and Clang print "[with auto M = &X::name…]"
/// / "[M = &X::name]"), so the name in an error message cannot drift from the method called.
template <auto M>
constexpr std::string_view method_name() {
  constexpr std::string_view sig = __PRETTY_FUNCTION__;
  constexpr std::string_view key = "M = &";
  constexpr size_t at = sig.find(key);
  if constexpr (at == std::string_view::npos) {
    return "a method";
  } else {
    constexpr std::string_view rest = sig.substr(at + key.size());
    constexpr std::string_view path = rest.substr(0, rest.find_first_of(";]"));
    constexpr size_t colons = path.rfind("::");
    return colons == std::string_view::npos ? path : path.substr(colons + 2);
  }
}

}  // namespace detail

template <class I>
class Slot {
 public:
  using Interface = I;

  Slot() = default;
  Slot(std::shared_ptr<I> object, PluginRef who) : object_(std::move(object)), who_(std::move(who)) {}

  /// Calls `Method` (a member function of I) on the plugin object, guarded.
  template <auto Method, class... A>
  decltype(auto) call(A&&... args) const {
    static_assert(std::is_member_function_pointer_v<decltype(Method)>, "call<&Interface::method>(args...)");
    return guarded(who_, detail::method_name<Method>(),
                   [&]() -> decltype(auto) { return std::invoke(Method, *object_, std::forward<A>(args)...); });
  }

  const PluginRef& who() const { return who_; }
  explicit operator bool() const { return object_ != nullptr; }

  /// The object itself, for the one thing a slot cannot do: handing it to another plugin (a cache wraps
  /// the dataset; a factory reads it). Calls the host makes go through call().
  const std::shared_ptr<I>& handed_over() const { return object_; }

 private:
  std::shared_ptr<I> object_;
  PluginRef who_;
};

/// The plugins of a kind a config may hold many of ([[callback]], [[metric_sink]]), in file order.
template <class I>
class Slots {
 public:
  void add(Slot<I> slot) { slots_.push_back(std::move(slot)); }
  bool empty() const { return slots_.empty(); }
  size_t size() const { return slots_.size(); }
  auto begin() const { return slots_.begin(); }
  auto end() const { return slots_.end(); }
  const Slot<I>& operator[](size_t i) const { return slots_[i]; }

  /// Calls `Method` on every plugin in order, each call guarded.
  template <auto Method, class... A>
  void call_each(A&&... args) const {
    for (const Slot<I>& s : slots_) s.template call<Method>(args...);
  }

 private:
  std::vector<Slot<I>> slots_;
};

}  // namespace loom::host
