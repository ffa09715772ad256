// RFC 4180 CSV, both ways: the sink writes metrics.csv with it and reads its own file back on resume.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace loom::csv {

/// A field as it goes into a line: quoted (with inner quotes doubled) only when it holds a comma, a quote,
/// CR or LF, or starts or ends with a space (which some spreadsheets would trim).
std::string quote(std::string_view field);
/// Fields joined by commas, ended by CRLF as RFC 4180 has it.
std::string line(const std::vector<std::string>& fields);
/// Every record of `text` (CRLF or LF line ends; quoted fields may span lines). Throws on a stray quote.
std::vector<std::vector<std::string>> parse(std::string_view text);

}  // namespace loom::csv
