#include "io/csv.h"

#include "core/error.h"

namespace taia {

std::vector<CsvRow> parse_csv(const std::string& text, const std::string& origin) {
  std::vector<CsvRow> rows;
  size_t i = 0;
  int64_t line = 1;
  const size_t n = text.size();
  if (n >= 3 && text.compare(0, 3, "\xEF\xBB\xBF") == 0) i = 3;  // UTF-8 byte order mark
  while (i < n) {
    CsvRow row;
    row.line = line;
    std::string field;
    bool row_done = false;
    bool any = false;  // the row has a quoted field or a comma (so it is not blank)
    while (!row_done) {
      if (i < n && text[i] == '"') {  // quoted field
        any = true;
        const int64_t open_line = line;
        ++i;
        for (;;) {
          TAIA_CHECK(i < n, origin, ":", open_line, ": a quoted field is never closed");
          if (text[i] == '"') {
            if (i + 1 < n && text[i + 1] == '"') {
              field += '"';
              i += 2;
              continue;
            }
            ++i;
            break;
          }
          if (text[i] == '\n') ++line;
          field += text[i++];
        }
        TAIA_CHECK(i >= n || text[i] == ',' || text[i] == '\n' || text[i] == '\r', origin, ":", line,
                   ": expected a comma or the end of the line after a closing quote, got '", text[i], "'");
      } else {
        while (i < n && text[i] != ',' && text[i] != '\n' && text[i] != '\r') field += text[i++];
      }
      row.fields.push_back(std::move(field));
      field.clear();
      if (i < n && text[i] == ',') {
        any = true;
        ++i;
        continue;
      }
      if (i < n && text[i] == '\r') ++i;
      if (i < n && text[i] == '\n') ++i;
      ++line;
      row_done = true;
    }
    if (any || !(row.fields.size() == 1 && row.fields[0].empty())) rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace taia
