#include "loop/model_book.h"

#include <stdexcept>

namespace loom::host {

std::shared_ptr<Model> ModelBook::keep(std::shared_ptr<Model> model, Entry entry) {
  Model* raw = model.get();
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->entries[raw] = std::move(entry);
  }
  // Owns the model; forgets it in the book first (the book may already be gone).
  struct Holder {
    Holder(std::shared_ptr<Model> m, std::weak_ptr<State> b) : model(std::move(m)), book(std::move(b)) {}
    Holder(const Holder&) = delete;
    Holder& operator=(const Holder&) = delete;
    std::shared_ptr<Model> model;
    std::weak_ptr<State> book;
    ~Holder() {
      if (auto state = book.lock()) {
        std::lock_guard<std::mutex> lock(state->mutex);
        state->entries.erase(model.get());
      }
    }
  };
  auto holder = std::make_shared<Holder>(std::move(model), state_);  // built in place: one Holder, one erase
  return std::shared_ptr<Model>(holder, raw);
}

ModelBook::Entry ModelBook::of(const Model& model) const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  auto it = state_->entries.find(&model);
  if (it == state_->entries.end())
    throw std::logic_error("a model the host did not create reached the loop (ModelBook::keep was not called)");
  return it->second;
}

}  // namespace loom::host
