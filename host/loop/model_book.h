// The run's models, and for each what the loop must know about it: which plugin made it (a failing forward
// names that plugin — [model]'s or [student_model]'s) and the input layout its precision plugin's
// prepare() chose. Models enter through keep() when the trainer creates, clones or reloads them, and leave
// the book when the last reference to them goes.
#pragma once

#include "config/resolve.h"
#include "plugins/plugin_guard.h"

#include <loom/model.h>

#include <map>
#include <memory>
#include <mutex>

namespace loom::host {

class ModelBook {
 public:
  struct Entry {
    const PluginChoice* choice = nullptr;  ///< the table it was made from: [model] or [student_model]
    PluginRef who;
    at::MemoryFormat input_format = at::MemoryFormat::Contiguous;
  };

  /// Records `model` and returns the handle to give out: when its last copy goes, the entry goes too.
  std::shared_ptr<Model> keep(std::shared_ptr<Model> model, Entry entry);
  /// The entry of a model kept here; std::logic_error for any other (a host bug: every model is kept).
  Entry of(const Model& model) const;

 private:
  struct State {
    mutable std::mutex mutex;
    std::map<const Model*, Entry> entries;
  };
  std::shared_ptr<State> state_ = std::make_shared<State>();
};

}  // namespace loom::host
