#include "csv_format.h"

#include <stdexcept>

namespace loom::csv {

std::string quote(std::string_view field) {
  const bool needs = field.find_first_of(",\"\r\n") != std::string_view::npos ||
                     (!field.empty() && (field.front() == ' ' || field.back() == ' '));
  if (!needs) return std::string(field);
  std::string out = "\"";
  for (char c : field) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + '"';
}

std::string line(const std::vector<std::string>& fields) {
  std::string out;
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i) out += ',';
    out += quote(fields[i]);
  }
  return out + "\r\n";
}

std::vector<std::vector<std::string>> parse(std::string_view text) {
  std::vector<std::vector<std::string>> records;
  std::vector<std::string> record;
  std::string field;
  size_t i = 0;
  const auto end_field = [&] { record.push_back(std::move(field)); field.clear(); };
  while (i < text.size()) {
    if (text[i] == '"') {
      if (!field.empty()) throw std::runtime_error("quote inside an unquoted field at byte " + std::to_string(i));
      for (++i;; ++i) {
        if (i >= text.size()) throw std::runtime_error("unterminated quoted field");
        if (text[i] != '"') { field += text[i]; continue; }
        if (i + 1 < text.size() && text[i + 1] == '"') { field += '"'; ++i; continue; }
        ++i;
        break;
      }
      if (i < text.size() && text[i] != ',' && text[i] != '\r' && text[i] != '\n')
        throw std::runtime_error("text after a closing quote at byte " + std::to_string(i));
      continue;
    }
    if (text[i] == ',') {
      end_field();
    } else if (text[i] == '\r' || text[i] == '\n') {
      if (text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      end_field();
      records.push_back(std::move(record));
      record.clear();
    } else {
      field += text[i];
    }
    ++i;
  }
  if (!field.empty() || !record.empty()) {
    end_field();
    records.push_back(std::move(record));
  }
  return records;
}

}  // namespace loom::csv
