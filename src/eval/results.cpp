#include "eval/results.h"

#include <algorithm>
#include <cctype>

#include "core/atomic_file.h"
#include "core/mmap_file.h"

namespace taia {
namespace {

std::string safe_file_part(const std::string& s) {
  std::string out;
  for (char ch : s) out += (std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_' || ch == '.' || ch == '@') ? ch : '_';
  return out;
}

}  // namespace

// Per group of tasks (a folder: MMLU's subjects) and mode: the macro average (every task alike)
// and the micro average (every example alike) of the tasks' values.
Json group_averages(const Json& task_results, const std::map<std::string, std::vector<std::string>>& members) {
  Json groups = Json::object();
  for (const auto& [group, keys] : members) {
    std::map<std::string, std::vector<std::pair<double, int64_t>>> by_mode;  // mode -> (value, n) per task
    std::string metric;
    for (const auto& key : keys)
      for (const auto& [mode, e] : task_results.at(key).items()) {
        by_mode[mode].push_back({e["value"].get<double>(), e["n"].get<int64_t>()});
        metric = e.value("metric", "");
      }
    for (const auto& [mode, values] : by_mode) {
      double macro = 0, weighted = 0;
      int64_t n = 0;
      for (const auto& [v, count] : values) {
        macro += v;
        weighted += v * double(count);
        n += count;
      }
      groups[group][mode] = Json{{"metric", metric}, {"macro", macro / double(values.size())},
                                 {"micro", n > 0 ? weighted / double(n) : 0.0}, {"n", n}, {"tasks", values.size()}};
    }
  }
  return groups;
}

void write_results(const std::string& out_dir, const Json& results) {
  write_file_atomic(out_dir + "/results.json", results.dump(2, ' ', false, Json::error_handler_t::replace) + "\n");
}

void write_samples(const std::string& out_dir, const std::string& key, const std::string& mode,
                   const std::vector<Json>& samples) {
  std::string lines;
  for (const Json& sample : samples) lines += sample.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
  make_directories(out_dir + "/samples");
  write_file_atomic(out_dir + "/samples/" + safe_file_part(key) + "." + safe_file_part(mode) + ".jsonl", lines);
}

std::vector<std::string> modes_in(const Json& results) {
  std::vector<std::string> modes;
  auto add = [&](const std::string& m) {
    if (std::find(modes.begin(), modes.end(), m) == modes.end()) modes.push_back(m);
  };
  if (results.contains("settings") && results["settings"].is_object() && results["settings"].contains("modes") &&
      results["settings"]["modes"].is_array())
    for (const Json& m : results["settings"]["modes"])
      if (m.is_string()) add(m.get<std::string>());
  std::vector<std::string> present;
  for (const auto& [task, by_mode] : results.at("tasks").items())
    if (by_mode.is_object())
      for (const auto& [mode, e] : by_mode.items()) present.push_back(mode);
  modes.erase(std::remove_if(modes.begin(), modes.end(),
                             [&](const std::string& m) {
                               return std::find(present.begin(), present.end(), m) == present.end();
                             }),
              modes.end());
  for (const auto& m : present) add(m);
  return modes;
}

namespace {

std::string metric_of(const Json& by_mode) {
  std::string metric;
  for (const auto& [mode, e] : by_mode.items()) metric = e.value("metric", "");
  return metric;
}

std::string task_rows(const Json& results, const std::vector<std::string>& modes) {
  std::string out;
  for (const auto& [task, by_mode] : results.at("tasks").items()) {
    out += "| " + task + " | " + metric_of(by_mode) + " |";
    for (const auto& m : modes) {
      if (!by_mode.contains(m)) {
        out += " — |";
        continue;
      }
      char buf[64];
      std::snprintf(buf, sizeof(buf), " %.4f ± %.4f |", by_mode[m]["value"].get<double>(),
                    by_mode[m]["stderr"].get<double>());
      out += buf;
    }
    out += "\n";
  }
  return out;
}

std::string group_rows(const Json& results, const std::vector<std::string>& modes) {
  std::string out;
  for (const auto& [group, by_mode] : results["groups"].items())
    for (const char* avg : {"macro", "micro"}) {
      out += "| " + group + " (" + avg + ", " + std::to_string(by_mode.begin()->value("tasks", int64_t(0))) +
             " tasks) | " + metric_of(by_mode) + " |";
      for (const auto& m : modes) {
        char buf[64];
        std::snprintf(buf, sizeof(buf), " %.4f |", by_mode.contains(m) ? by_mode[m][avg].get<double>() : 0.0);
        out += by_mode.contains(m) ? std::string(buf) : std::string(" — |");
      }
      out += "\n";
    }
  return out;
}

}  // namespace

std::string results_markdown(const Json& results) {
  const std::vector<std::string> modes = modes_in(results);
  std::string out = "| task | metric |";
  for (const auto& m : modes) out += " " + m + " |";
  out += "\n|---|---|";
  for (size_t i = 0; i < modes.size(); ++i) out += "---|";
  out += "\n" + task_rows(results, modes);
  if (results.contains("groups")) out += group_rows(results, modes);
  return out;
}

}  // namespace taia
