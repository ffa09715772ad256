#include "selection.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace loom::pseudo_label {
namespace {

struct Candidate {
  int64_t index;
  int64_t position;
  int64_t label;
  float confidence;
};

// The one ordering every step uses: most confident first, ties by dataset index (deterministic, and
// independent of the order the pool happens to come in).
bool more_confident(const Candidate& a, const Candidate& b) {
  if (a.confidence != b.confidence) return a.confidence > b.confidence;
  return a.index < b.index;
}

void check_inputs(const at::Tensor& indices, const at::Tensor& probabilities, const SelectionOptions& o) {
  if (!indices.defined() || indices.dim() != 1 || indices.scalar_type() != at::kLong)
    throw std::invalid_argument("pseudo-label selection: indices must be a 1-D int64 tensor");
  if (!probabilities.defined() || probabilities.dim() != 2 || !at::isFloatingType(probabilities.scalar_type()))
    throw std::invalid_argument("pseudo-label selection: probabilities must be a 2-D floating tensor [n, classes]");
  if (probabilities.size(0) != indices.size(0))
    throw std::invalid_argument("pseudo-label selection: " + std::to_string(probabilities.size(0)) +
                                " rows of probabilities for " + std::to_string(indices.size(0)) + " indices");
  if (probabilities.size(1) < 1)
    throw std::invalid_argument("pseudo-label selection: probabilities have no classes");
  if (o.rule == Rule::Threshold && !(o.threshold >= 0.0 && o.threshold <= 1.0))
    throw std::invalid_argument("pseudo-label selection: threshold must be in [0, 1], got " + std::to_string(o.threshold));
  if (o.rule == Rule::Curriculum && !(o.percentile > 0.0 && o.percentile <= 100.0))
    throw std::invalid_argument("pseudo-label selection: a curriculum percentile must be in (0, 100], got " +
                                std::to_string(o.percentile));
  if (o.rule == Rule::TopKPerClass && o.k < 1)
    throw std::invalid_argument("pseudo-label selection: k must be >= 1, got " + std::to_string(o.k));
  if (!(o.max_fraction > 0.0 && o.max_fraction <= 1.0))
    throw std::invalid_argument("pseudo-label selection: max_fraction must be in (0, 1], got " +
                                std::to_string(o.max_fraction));
}

// Per predicted class, the pool's candidates, most confident first.
std::vector<std::vector<Candidate>> candidates_by_class(const at::Tensor& indices, const at::Tensor& probabilities) {
  const at::Tensor p = probabilities.to(at::kCPU, at::kFloat).contiguous();
  const at::Tensor idx = indices.to(at::kCPU).contiguous();
  const int64_t n = p.size(0), classes = p.size(1);
  const float* row = p.data_ptr<float>();
  const int64_t* index = idx.data_ptr<int64_t>();
  std::vector<std::vector<Candidate>> by_class(static_cast<size_t>(classes));
  for (int64_t i = 0; i < n; ++i, row += classes) {
    int64_t best = 0;
    for (int64_t c = 0; c < classes; ++c) {
      if (!std::isfinite(row[c]))
        throw std::invalid_argument("pseudo-label selection: the teacher's prediction for sample " +
                                    std::to_string(index[i]) + " is not finite (did the teacher diverge?)");
      if (row[c] > row[best]) best = c;  // strict: the lowest class wins a tie
    }
    by_class[static_cast<size_t>(best)].push_back({index[i], i, best, row[best]});
  }
  for (auto& list : by_class) std::sort(list.begin(), list.end(), more_confident);
  return by_class;
}

// ceil(percentile / 100 * n): the epsilon keeps e.g. 20 % of 55 at 11 although 0.2 * 55 is 11.000000000000002.
int64_t percentile_count(double percentile, int64_t n) {
  return std::min(n, static_cast<int64_t>(std::ceil(percentile / 100.0 * static_cast<double>(n) - 1e-9)));
}

// Curriculum over the whole pool: the most confident percentile % of all candidates, counted per class.
std::vector<int64_t> pool_percentile(const std::vector<std::vector<Candidate>>& by_class, double percentile) {
  std::vector<Candidate> all;
  for (const auto& list : by_class) all.insert(all.end(), list.begin(), list.end());
  const int64_t limit = percentile_count(percentile, static_cast<int64_t>(all.size()));
  std::partial_sort(all.begin(), all.begin() + limit, all.end(), more_confident);
  std::vector<int64_t> kept(by_class.size(), 0);
  for (int64_t i = 0; i < limit; ++i) ++kept[static_cast<size_t>(all[static_cast<size_t>(i)].label)];
  return kept;
}

// How many of each class's (sorted) candidates the rule keeps: always a prefix of the sorted list.
std::vector<int64_t> apply_rule(const std::vector<std::vector<Candidate>>& by_class, const SelectionOptions& o,
                                std::vector<int64_t>* short_classes) {
  if (o.rule == Rule::Curriculum && !o.per_class) return pool_percentile(by_class, o.percentile);
  std::vector<int64_t> kept(by_class.size(), 0);
  for (size_t c = 0; c < by_class.size(); ++c) {
    const auto& list = by_class[c];
    const int64_t n = static_cast<int64_t>(list.size());
    if (o.rule == Rule::Curriculum) {
      kept[c] = percentile_count(o.percentile, n);
    } else if (o.rule == Rule::Threshold) {
      kept[c] = std::partition_point(list.begin(), list.end(), [&](const Candidate& x) {
                  return static_cast<double>(x.confidence) >= o.threshold;
                }) - list.begin();
    } else {
      kept[c] = std::min(n, o.k);
      if (n < o.k) short_classes->push_back(static_cast<int64_t>(c));
    }
  }
  return kept;
}

// max_fraction keeps the most confident `limit` of the kept samples overall. Each class's kept samples
// are a prefix of its sorted list, and the global order preserves each class's order, so the result is
// again a prefix per class.
void apply_max_fraction(const std::vector<std::vector<Candidate>>& by_class, int64_t pool, double max_fraction,
                        std::vector<int64_t>& kept) {
  // The epsilon keeps e.g. 0.29 * 100 (28.999999999999996 in binary) at 29.
  const auto limit = static_cast<int64_t>(std::floor(max_fraction * static_cast<double>(pool) + 1e-9));
  int64_t total = 0;
  for (int64_t k : kept) total += k;
  if (total <= limit) return;
  std::vector<Candidate> all;
  all.reserve(static_cast<size_t>(total));
  for (size_t c = 0; c < by_class.size(); ++c)
    all.insert(all.end(), by_class[c].begin(), by_class[c].begin() + kept[c]);
  std::partial_sort(all.begin(), all.begin() + limit, all.end(), more_confident);
  std::fill(kept.begin(), kept.end(), 0);
  for (int64_t i = 0; i < limit; ++i) ++kept[static_cast<size_t>(all[static_cast<size_t>(i)].label)];
}

}  // namespace

int64_t Selection::entries() const { return copies.defined() && copies.numel() ? copies.sum().item<int64_t>() : 0; }

Selection select(const at::Tensor& indices, const at::Tensor& probabilities, const SelectionOptions& options) {
  check_inputs(indices, probabilities, options);
  const auto by_class = candidates_by_class(indices, probabilities);
  Selection s;
  for (const auto& list : by_class) s.candidates_per_class.push_back(static_cast<int64_t>(list.size()));
  std::vector<int64_t> kept = apply_rule(by_class, options, &s.short_classes);
  if (options.max_fraction < 1.0) apply_max_fraction(by_class, indices.size(0), options.max_fraction, kept);

  int64_t smallest = 0, largest = 0;
  for (int64_t k : kept) {
    if (k > 0) smallest = smallest == 0 ? k : std::min(smallest, k);
    largest = std::max(largest, k);
  }
  if (options.balance == Balance::Cap)
    for (int64_t& k : kept) k = std::min(k, smallest);

  struct Chosen {
    Candidate candidate;
    int64_t copies;
  };
  std::vector<Chosen> chosen;
  for (size_t c = 0; c < by_class.size(); ++c) {
    const int64_t n = kept[c];
    for (int64_t j = 0; j < n; ++j) {
      // Duplicate: n samples fill `largest` entries; the most confident get the remainder's extra copy.
      const int64_t copies = options.balance == Balance::Duplicate ? largest / n + (j < largest % n ? 1 : 0) : 1;
      chosen.push_back({by_class[c][static_cast<size_t>(j)], copies});
    }
    s.selected_per_class.push_back(n);
  }
  std::sort(chosen.begin(), chosen.end(),
            [](const Chosen& a, const Chosen& b) { return a.candidate.index < b.candidate.index; });

  const auto m = static_cast<int64_t>(chosen.size());
  s.indices = at::empty({m}, at::kLong);
  s.positions = at::empty({m}, at::kLong);
  s.labels = at::empty({m}, at::kLong);
  s.confidence = at::empty({m}, at::kFloat);
  s.copies = at::empty({m}, at::kLong);
  for (int64_t i = 0; i < m; ++i) {
    const Chosen& x = chosen[static_cast<size_t>(i)];
    s.indices.data_ptr<int64_t>()[i] = x.candidate.index;
    s.positions.data_ptr<int64_t>()[i] = x.candidate.position;
    s.labels.data_ptr<int64_t>()[i] = x.candidate.label;
    s.confidence.data_ptr<float>()[i] = x.candidate.confidence;
    s.copies.data_ptr<int64_t>()[i] = x.copies;
  }
  return s;
}

at::Tensor sharpen(const at::Tensor& probabilities, double temperature) {
  if (!(temperature > 0.0))
    throw std::invalid_argument("pseudo-label: temperature must be > 0, got " + std::to_string(temperature));
  // log(0) = -inf stays -inf after the division and becomes probability 0 again: no clamping needed.
  return at::softmax(probabilities.to(at::kFloat).log() / temperature, 1);
}

void require_disjoint(const std::vector<std::pair<std::string, at::Tensor>>& splits) {
  for (size_t a = 0; a < splits.size(); ++a)
    for (size_t b = a + 1; b < splits.size(); ++b) {
      const at::Tensor& x = splits[a].second;
      const at::Tensor& y = splits[b].second;
      if (!x.defined() || !y.defined() || x.numel() == 0 || y.numel() == 0) continue;
      const at::Tensor shared = x.masked_select(at::isin(x, y));
      if (shared.numel() > 0)
        throw std::invalid_argument("the dataset's " + splits[a].first + " and " + splits[b].first + " splits share " +
                                    std::to_string(shared.numel()) + " sample(s) (e.g. index " +
                                    std::to_string(shared[0].item<int64_t>()) +
                                    "); pseudo labels would leak between them. Fix the dataset plugin's split "
                                    "parameters so that the four splits are disjoint");
    }
}

const char* to_string(Rule rule) {
  switch (rule) {
    case Rule::Threshold: return "threshold";
    case Rule::TopKPerClass: return "top-k-per-class";
    case Rule::Curriculum: return "curriculum";
  }
  return "?";
}

const char* to_string(Balance balance) {
  switch (balance) {
    case Balance::None: return "none";
    case Balance::Cap: return "cap";
    case Balance::Duplicate: return "duplicate";
  }
  return "?";
}

}  // namespace loom::pseudo_label
