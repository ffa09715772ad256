// ResolvedConfig → TOML: config.resolved.toml, every default filled in and every path absolute, so a
// resumed run reads back exactly what the original run used.
#include "config/resolve.h"

namespace loom::host {

static toml::array to_array(const Value& v) {
  toml::array a;
  if (auto* i = std::get_if<std::vector<int64_t>>(&v)) for (auto x : *i) a.push_back(x);
  if (auto* d = std::get_if<std::vector<double>>(&v)) for (auto x : *d) a.push_back(x);
  if (auto* s = std::get_if<std::vector<std::string>>(&v)) for (auto& x : *s) a.push_back(x);
  return a;
}

static toml::table params_table(const Params& params) {
  toml::table t;
  for (const auto& [k, v] : params.values()) {
    std::visit(
        [&](const auto& x) {
          using T = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<T, bool> || std::is_same_v<T, int64_t> || std::is_same_v<T, double> ||
                        std::is_same_v<T, std::string>) {
            t.insert_or_assign(k, x);
          } else if constexpr (std::is_same_v<T, IntMap>) {
            toml::table m;
            m.is_inline(true);
            for (const auto& [key, value] : x) m.insert_or_assign(std::to_string(key), value);
            t.insert_or_assign(k, std::move(m));
          } else
            t.insert_or_assign(k, to_array(v));
        },
        v);
  }
  return t;
}

toml::table ResolvedConfig::to_toml() const {
  toml::table root;
  root.insert_or_assign("run", params_table(run));
  root.insert_or_assign("loader", params_table(loader));
  root.insert_or_assign("optimizer", params_table(optimizer));
  root.insert_or_assign("lr_schedule", params_table(lr_schedule));
  root.insert_or_assign("loss", params_table(loss));
  for (const auto& [kind, list] : plugins) {
    const KindInfo& info = kind_info(kind);
    toml::array many;
    for (const PluginChoice& choice : list) {
      toml::table t = params_table(choice.params);
      t.insert("plugin", choice.feature->info.name);
      if (kind == Kind::Augmentation) t.insert("pipeline", choice.pipeline);
      if (!choice.id.empty()) t.insert("id", choice.id);
      if (info.cardinality == Cardinality::One)
        root.insert_or_assign(info.table, std::move(t));
      else
        many.push_back(std::move(t));
    }
    if (info.cardinality == Cardinality::Many && !many.empty()) root.insert_or_assign(info.table, std::move(many));
  }
  if (student_model) {
    toml::table t = params_table(student_model->params);
    t.insert("plugin", student_model->feature->info.name);
    root.insert_or_assign("student_model", std::move(t));
  }
  return root;
}

}  // namespace loom::host
