#include "eval/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/mmap_file.h"
#include "eval/aggregate_results.h"
#include "eval/results.h"

namespace taia {
namespace {

// The ± of a results.json leaf: the standard error of an evaluation ("stderr") or the standard
// deviation over seeds of an aggregate such as the demo's ("std"); settings.spread names it.
double spread_of(const Json& e) { return e.contains("stderr") ? e.value("stderr", 0.0) : e.value("std", 0.0); }

std::string esc(const std::string& s) {
  std::string o;
  for (char ch : s) {
    switch (ch) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      case '\'': o += "&#39;"; break;
      default: o += ch;
    }
  }
  return o;
}

std::string num(double v, int digits = 4) {
  if (!std::isfinite(v)) return "nan";
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

const char* kColors[] = {"#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f"};
const char* color(size_t i) { return kColors[i % (sizeof(kColors) / sizeof(kColors[0]))]; }

// "Nice" upper bound of an axis.
double axis_max(double v) {
  if (!(v > 0)) return 1.0;
  const double p = std::pow(10.0, std::floor(std::log10(v)));
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0})
    if (v <= m * p) return m * p;
  return 10 * p;
}

std::string legend(const std::vector<std::string>& names, double x, double y) {
  std::string s;
  for (size_t i = 0; i < names.size(); ++i) {
    const double ly = y + 16.0 * double(i);
    s += "<rect x='" + num(x, 1) + "' y='" + num(ly - 9, 1) + "' width='10' height='10' fill='" + color(i) + "'/>";
    s += "<text x='" + num(x + 14, 1) + "' y='" + num(ly, 1) + "' font-size='11'>" + esc(names[i]) + "</text>";
  }
  return s;
}

// Bars (one per mode) with standard-error whiskers.
std::string bar_chart(const std::string& title, const std::vector<std::string>& modes, const std::vector<double>& values,
                      const std::vector<double>& errors, const std::string& metric) {
  const double W = 420, H = 240, left = 50, bottom = 40, top = 30, right = 10;
  double hi = 0;
  for (size_t i = 0; i < values.size(); ++i) hi = std::max(hi, values[i] + errors[i]);
  const double ymax = axis_max(hi);
  const double plot_h = H - top - bottom, plot_w = W - left - right;
  const double slot = plot_w / double(std::max<size_t>(1, modes.size()));
  std::string s = "<svg xmlns='http://www.w3.org/2000/svg' width='" + num(W, 0) + "' height='" + num(H, 0) +
                  "' role='img' aria-label='" + esc(title) + "'>";
  s += "<text x='" + num(W / 2, 1) + "' y='18' text-anchor='middle' font-size='13' font-weight='bold'>" + esc(title) +
       "</text>";
  for (int t = 0; t <= 4; ++t) {
    const double v = ymax * t / 4, y = top + plot_h - plot_h * t / 4;
    s += "<line x1='" + num(left, 1) + "' x2='" + num(W - right, 1) + "' y1='" + num(y, 1) + "' y2='" + num(y, 1) +
         "' stroke='#ddd'/><text x='" + num(left - 4, 1) + "' y='" + num(y + 4, 1) +
         "' text-anchor='end' font-size='10'>" + num(v, 3) + "</text>";
  }
  for (size_t i = 0; i < modes.size(); ++i) {
    const double h = ymax > 0 ? plot_h * std::max(0.0, values[i]) / ymax : 0;
    const double x = left + slot * double(i) + slot * 0.15, w = slot * 0.7, y = top + plot_h - h;
    s += "<rect x='" + num(x, 1) + "' y='" + num(y, 1) + "' width='" + num(w, 1) + "' height='" + num(h, 1) +
         "' fill='" + color(i) + "'><title>" + esc(modes[i]) + ": " + num(values[i]) + " ± " + num(errors[i]) +
         "</title></rect>";
    const double e_hi = top + plot_h - plot_h * std::min(ymax, values[i] + errors[i]) / ymax;
    const double e_lo = top + plot_h - plot_h * std::max(0.0, values[i] - errors[i]) / ymax;
    const double cx = x + w / 2;
    s += "<line x1='" + num(cx, 1) + "' x2='" + num(cx, 1) + "' y1='" + num(e_hi, 1) + "' y2='" + num(e_lo, 1) +
         "' stroke='#222'/>";
    s += "<text x='" + num(cx, 1) + "' y='" + num(H - bottom + 14, 1) + "' text-anchor='middle' font-size='11'>" +
         esc(modes[i]) + "</text>";
    s += "<text x='" + num(cx, 1) + "' y='" + num(y - 3, 1) + "' text-anchor='middle' font-size='10'>" +
         num(values[i], 3) + "</text>";
  }
  s += "<text x='12' y='" + num(top + plot_h / 2, 1) + "' font-size='11' transform='rotate(-90 12 " +
       num(top + plot_h / 2, 1) + ")' text-anchor='middle'>" + esc(metric) + "</text></svg>";
  return s;
}

struct Series {
  std::string name;
  std::vector<std::pair<double, double>> points;  // (x, y)
};

std::string line_chart(const std::string& title, const std::string& xlabel, const std::string& ylabel,
                       const std::vector<Series>& series) {
  const double W = 520, H = 280, left = 55, bottom = 40, top = 30, right = 110;
  double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
  for (const auto& s : series)
    for (const auto& [x, y] : s.points) {
      if (!std::isfinite(y)) continue;
      xmin = std::min(xmin, x), xmax = std::max(xmax, x), ymin = std::min(ymin, y), ymax = std::max(ymax, y);
    }
  if (!std::isfinite(xmin)) xmin = 0, xmax = 1, ymin = 0, ymax = 1;
  if (xmax == xmin) xmax = xmin + 1;
  ymin = std::min(0.0, ymin);
  ymax = axis_max(ymax);
  const double pw = W - left - right, ph = H - top - bottom;
  auto X = [&](double x) { return left + pw * (x - xmin) / (xmax - xmin); };
  auto Y = [&](double y) { return top + ph - ph * (y - ymin) / (ymax - ymin); };
  std::string s = "<svg xmlns='http://www.w3.org/2000/svg' width='" + num(W, 0) + "' height='" + num(H, 0) +
                  "' role='img' aria-label='" + esc(title) + "'>";
  s += "<text x='" + num(left + pw / 2, 1) + "' y='18' text-anchor='middle' font-size='13' font-weight='bold'>" +
       esc(title) + "</text>";
  for (int t = 0; t <= 4; ++t) {
    const double v = ymin + (ymax - ymin) * t / 4;
    s += "<line x1='" + num(left, 1) + "' x2='" + num(left + pw, 1) + "' y1='" + num(Y(v), 1) + "' y2='" +
         num(Y(v), 1) + "' stroke='#ddd'/><text x='" + num(left - 4, 1) + "' y='" + num(Y(v) + 4, 1) +
         "' text-anchor='end' font-size='10'>" + num(v, 3) + "</text>";
    const double xv = xmin + (xmax - xmin) * t / 4;
    s += "<text x='" + num(X(xv), 1) + "' y='" + num(top + ph + 14, 1) + "' text-anchor='middle' font-size='10'>" +
         num(xv, xmax - xmin >= 8 ? 0 : 1) + "</text>";
  }
  s += "<text x='" + num(left + pw / 2, 1) + "' y='" + num(H - 6, 1) + "' text-anchor='middle' font-size='11'>" +
       esc(xlabel) + "</text>";
  s += "<text x='12' y='" + num(top + ph / 2, 1) + "' font-size='11' transform='rotate(-90 12 " + num(top + ph / 2, 1) +
       ")' text-anchor='middle'>" + esc(ylabel) + "</text>";
  std::vector<std::string> names;
  for (size_t i = 0; i < series.size(); ++i) {
    names.push_back(series[i].name);
    std::string pts;
    for (const auto& [x, y] : series[i].points)
      if (std::isfinite(y)) pts += num(X(x), 1) + "," + num(Y(y), 1) + " ";
    s += "<polyline fill='none' stroke-width='2' stroke='" + std::string(color(i)) + "' points='" + pts + "'/>";
    if (series[i].points.size() <= 12)
      for (const auto& [x, y] : series[i].points)
        if (std::isfinite(y))
          s += "<circle r='3' cx='" + num(X(x), 1) + "' cy='" + num(Y(y), 1) + "' fill='" + color(i) + "'/>";
  }
  s += legend(names, left + pw + 12, top + 10) + "</svg>";
  return s;
}

// A matrix of scores as a heat map: rows = attention ranks, columns = FFN ranks; darker = higher.
std::string heat_map(const std::string& title, const std::vector<std::string>& ranks, const RankSweep::Matrix& matrix) {
  const double cell = 46, left = 70, top = 46;
  double lo = INFINITY, hi = -INFINITY;
  for (const auto& row : matrix)
    for (const auto& v : row)
      if (v) lo = std::min(lo, *v), hi = std::max(hi, *v);
  const double n = double(ranks.size()), W = left + cell * n + 12, H = top + cell * n + 30;
  std::string s = "<svg xmlns='http://www.w3.org/2000/svg' width='" + num(W, 0) + "' height='" + num(H, 0) +
                  "' role='img' aria-label='" + esc(title) + "'><text x='" + num(W / 2, 1) +
                  "' y='16' text-anchor='middle' font-size='12' font-weight='bold'>" + esc(title) + "</text>";
  s += "<text x='" + num(left + cell * n / 2, 1) + "' y='34' text-anchor='middle' font-size='10'>FFN rank</text>";
  s += "<text x='12' y='" + num(top + cell * n / 2, 1) + "' font-size='10' transform='rotate(-90 12 " +
       num(top + cell * n / 2, 1) + ")' text-anchor='middle'>attention rank</text>";
  for (size_t i = 0; i < ranks.size(); ++i) {
    s += "<text x='" + num(left + cell * (double(i) + 0.5), 1) + "' y='" + num(top - 2, 1) +
         "' text-anchor='middle' font-size='10'>" + esc(ranks[i]) + "</text>";
    s += "<text x='" + num(left - 6, 1) + "' y='" + num(top + cell * (double(i) + 0.5) + 4, 1) +
         "' text-anchor='end' font-size='10'>" + esc(ranks[i]) + "</text>";
  }
  for (size_t i = 0; i < matrix.size() && i < ranks.size(); ++i)
    for (size_t j = 0; j < matrix[i].size() && j < ranks.size(); ++j) {
      const std::optional<double>& v = matrix[i][j];
      const double t = v && hi > lo ? (*v - lo) / (hi - lo) : 0.5;
      const int shade = int(235 - 170 * t);  // light (low) to dark blue (high)
      const std::string fill = v ? "rgb(" + std::to_string(shade) + "," + std::to_string(shade + 10 > 255 ? 255 : shade + 10) + ",255)" : "#eee";
      const double x = left + cell * double(j), y = top + cell * double(i);
      s += "<rect x='" + num(x, 1) + "' y='" + num(y, 1) + "' width='" + num(cell - 2, 1) + "' height='" +
           num(cell - 2, 1) + "' fill='" + fill + "'/><text x='" + num(x + cell / 2 - 1, 1) + "' y='" +
           num(y + cell / 2 + 3, 1) + "' text-anchor='middle' font-size='10' fill='" + (t > 0.6 ? "#fff" : "#000") +
           "'>" + (v ? num(*v, 3) : "—") + "</text>";
    }
  return s + "</svg>";
}

// results.json's optional "sweep" (taia demo --sweep ranks): a heat map per task and mode.
std::string sweep_section(const AggregateResults& agg) {
  if (!agg.sweep) return "";
  const RankSweep& sw = *agg.sweep;
  std::vector<std::string> ranks;
  for (int64_t r : sw.ranks) ranks.push_back(std::to_string(r));
  std::string h = "<h2>Rank ratio: attention rank x FFN rank</h2>\n<p>" + esc(sw.experiment) +
                  " trained again with separate LoRA ranks for the "
                  "attention and the FFN projections (alpha = 2 x rank); mean over runs per cell, darker = higher "
                  "(retention: bits per token, lower is better).</p>\n";
  for (const auto& [task, by_mode] : sw.tasks) {
    h += "<h3>" + esc(task) + "</h3>\n<div class='charts'>\n";
    for (const auto& [mode, matrix] : by_mode) h += heat_map(task + " · " + mode, ranks, matrix) + "\n";
    h += "</div>\n";
  }
  return h;
}

std::string interval_text(const PairedDifference& d) {
  return num(d.mean) + " [" + num(d.low) + ", " + num(d.high) + "]";
}

// The first claim's row in every mode: the headline chart.
std::string headline_chart(const Json& tasks, const std::string& key, const std::vector<std::string>& modes) {
  const Json& by_mode = tasks[key];
  std::vector<std::string> ms;
  std::vector<double> v, e;
  for (const auto& m : modes)
    if (by_mode.contains(m)) {
      ms.push_back(m);
      v.push_back(by_mode[m]["value"].get<double>());
      e.push_back(spread_of(by_mode[m]));
    }
  return bar_chart(key + " (headline)", ms, v, e, by_mode.begin()->value("metric", std::string()));
}

// results.json's optional "claims" (taia demo): the verdict per claim, then one headline chart, the
// first experiment's knowledge test in every mode.
std::string verdict_section(const Json& results, const AggregateResults& agg, const std::vector<std::string>& modes) {
  if (agg.claims.empty()) return "";
  std::string h = "<h2>Verdicts</h2>\n<p>Each claim is judged on its paired difference over runs: reproduced = "
                  "the 95 % interval lies above 0, contradicted = below 0, not shown = it contains 0.</p>\n"
                  "<table><tr><th>experiment</th><th>claim</th><th>task</th><th>difference [95 % interval]</th>"
                  "<th>verdict</th></tr>\n";
  std::string headline;
  for (const Claim& c : agg.claims) {
    h += "<tr><td>" + esc(c.experiment) + "</td><td class='text'>" + esc(c.claim) + "</td><td>" + esc(c.task) +
         "</td><td>" + interval_text(c.difference) + "</td><td" + (c.verdict == "reproduced" ? " class='best'" : "") +
         ">" + esc(c.verdict) + "</td></tr>\n";
    if (headline.empty() && results["tasks"].contains(c.key())) headline = headline_chart(results["tasks"], c.key(), modes);
  }
  return h + "</table>\n" + (headline.empty() ? "" : "<div class='charts'>\n" + headline + "\n</div>\n");
}

// results.json's optional "paired" (taia demo): the run-by-run differences behind the paper's
// claims, with 95 % intervals.
std::string paired_section(const AggregateResults& agg) {
  if (agg.paired.empty()) return "";
  std::vector<std::string> pairs;
  for (const auto& [key, by_pair] : agg.paired)
    for (const auto& [pair, d] : by_pair)
      if (std::find(pairs.begin(), pairs.end(), pair) == pairs.end()) pairs.push_back(pair);
  std::string h = "<h2>Paired differences (mean [95 % interval] over runs)</h2>\n<p>Each difference is taken "
                  "within one run (same world, same fine-tuning seed), then averaged; an interval that excludes 0 "
                  "supports the claim's direction. Retention is in bits per token: lower is better there.</p>\n"
                  "<table><tr><th>experiment · task</th>";
  for (const auto& p : pairs) h += "<th>" + esc(p) + "</th>";
  h += "</tr>\n";
  for (const auto& [key, by_pair] : agg.paired) {
    h += "<tr><td>" + esc(key) + "</td>";
    for (const auto& p : pairs) {
      auto it = by_pair.find(p);
      if (it == by_pair.end()) {
        h += "<td>—</td>";
        continue;
      }
      h += "<td" + std::string(it->second.excludes_zero() ? " class='best'" : "") + ">" + interval_text(it->second) +
           "</td>";
    }
    h += "</tr>\n";
  }
  return h + "</table>\n";
}

// results.json's optional "drift" (taia demo): per experiment, the relative change of the
// attention and of the FFN outputs by layer, one line per mode.
std::string drift_section(const AggregateResults& agg) {
  std::string charts;
  for (const auto& [experiment, by_mode] : agg.drift)
    for (const bool ffn : {false, true}) {
      std::vector<Series> series;
      for (const auto& [mode, m] : by_mode) {
        const std::vector<double>& change = ffn ? m.ffn : m.attention;
        Series s{mode, {}};
        for (size_t l = 0; l < change.size(); ++l) s.points.push_back({double(l), change[l]});
        series.push_back(std::move(s));
      }
      if (!series.empty())
        charts += line_chart(experiment + ": " + (ffn ? "FFN" : "attention") + " output change", "layer",
                             "||change|| / ||base||", series) + "\n";
    }
  if (charts.empty()) return "";
  return "<h2>Where the update goes</h2>\n<p>On held-out text, per layer: how far each mode moves the attention "
         "block's and the FFN's outputs from the base model's (relative norm of the change, mean over seeds; "
         "<code>taia analyze</code> measures the same for one adapter or model).</p>\n<div class='charts'>\n" +
         charts + "</div>\n";
}

std::vector<Json> read_metrics(const std::string& dir) {
  const std::string path = dir + "/metrics.jsonl";
  TAIA_CHECK(file_exists(path), path, ": no such file (a training output folder holds metrics.jsonl)");
  std::vector<Json> out;
  for (const JsonRecord& r : read_json_records(path)) {
    TAIA_CHECK(r.error.empty(), r.error);
    TAIA_CHECK(r.value.is_object() && r.value.contains("step") && r.value["step"].is_number(), r.where,
               ": expected a metrics record with a numeric 'step'");
    out.push_back(r.value);
  }
  return out;
}

// A row of a score table: a results.tasks key and optional trailing cells (a claim's difference
// and verdict).
struct ScoreRow {
  std::string key, extra_cells;
};

std::string score_table(const Json& tasks, const std::vector<ScoreRow>& rows, const std::vector<std::string>& modes,
                        const std::string& extra_headers) {
  std::string h = "<table><tr><th>task</th><th>metric</th><th>n</th>";
  for (const auto& m : modes) h += "<th>" + esc(m) + "</th>";
  h += extra_headers + "</tr>\n";
  for (const ScoreRow& row : rows) {
    const Json& by_mode = tasks[row.key];
    std::string metric;
    int64_t n = 0;
    for (const auto& [mode, e] : by_mode.items()) {
      metric = e.value("metric", "");
      n = e.value("n", int64_t(0));
    }
    h += "<tr><td>" + esc(row.key) + "</td><td>" + esc(metric) + "</td><td>" + std::to_string(n) + "</td>";
    for (const auto& m : modes)
      h += by_mode.contains(m) ? "<td>" + num(by_mode[m]["value"].get<double>()) + " ± " + num(spread_of(by_mode[m])) + "</td>"
                               : std::string("<td>—</td>");
    h += row.extra_cells + "</tr>\n";
  }
  return h + "</table>\n";
}

// One bar chart per results.tasks key, the modes side by side.
std::string score_charts(const Json& tasks, const std::vector<std::string>& keys, const std::vector<std::string>& modes) {
  std::string h = "<div class='charts'>\n";
  for (const auto& key : keys) {
    const Json& by_mode = tasks[key];
    std::vector<std::string> ms;
    std::vector<double> v, e;
    std::string metric;
    for (const auto& m : modes)
      if (by_mode.contains(m)) {
        ms.push_back(m);
        v.push_back(by_mode[m]["value"].get<double>());
        e.push_back(spread_of(by_mode[m]));
        metric = by_mode[m].value("metric", "");
      }
    h += bar_chart(key, ms, v, e, metric) + "\n";
  }
  return h + "</div>\n";
}

// The scores, grouped by the claim they bear on (results.json "claims", taia demo): per claim its
// rows with the paired difference and verdict, then their charts; the rows no claim names follow
// under "Other scores". Without claims (a plain eval run): every row, in the file's order.
std::string scores_section(const Json& results, const AggregateResults& agg, const std::vector<std::string>& modes,
                           const std::string& spread) {
  const Json& tasks = results["tasks"];
  std::string h = "<h2>Scores (value ± " + esc(spread) + ")</h2>\n";
  std::vector<std::string> claims;  // in order of first appearance
  std::map<std::string, std::vector<ScoreRow>> rows_of;
  std::set<std::string> claimed;
  for (const Claim& c : agg.claims) {
    if (!tasks.contains(c.key())) continue;
    if (!rows_of.count(c.claim)) claims.push_back(c.claim);
    rows_of[c.claim].push_back({c.key(), "<td>" + esc(c.pair) + " " + interval_text(c.difference) + "</td><td" +
                                             (c.verdict == "reproduced" ? " class='best'" : "") + ">" + esc(c.verdict) +
                                             "</td>"});
    claimed.insert(c.key());
  }
  for (const auto& claim : claims) {
    std::vector<std::string> keys;
    for (const ScoreRow& r : rows_of[claim])
      if (std::find(keys.begin(), keys.end(), r.key) == keys.end()) keys.push_back(r.key);
    h += "<h3>" + esc(claim) + "</h3>\n" +
         score_table(tasks, rows_of[claim], modes, "<th>difference [95 % interval]</th><th>verdict</th>") +
         score_charts(tasks, keys, modes);
  }
  std::vector<ScoreRow> others;
  std::vector<std::string> other_keys;
  for (const auto& [key, by_mode] : tasks.items())
    if (!claimed.count(key)) {
      others.push_back({key, ""});
      other_keys.push_back(key);
    }
  if (others.empty()) return h;
  if (!claims.empty()) h += "<h3>Other scores</h3>\n";
  return h + score_table(tasks, others, modes, "") + "<h2>Per task</h2>\n" + score_charts(tasks, other_keys, modes);
}

// results.json's optional "groups" (a folder of tasks, e.g. MMLU's subjects): per group and mode
// the macro average (every task alike) and the micro average (every example alike).
std::string groups_section(const Json& results, const std::vector<std::string>& modes) {
  if (!results.contains("groups") || !results["groups"].is_object() || results["groups"].empty()) return "";
  std::string h = "<h2>Averages over task groups</h2>\n<table><tr><th>group</th><th>average</th><th>tasks</th><th>n</th>";
  for (const auto& m : modes) h += "<th>" + esc(m) + "</th>";
  h += "</tr>\n";
  for (const auto& [group, by_mode] : results["groups"].items()) {
    if (!by_mode.is_object() || by_mode.empty()) continue;
    const Json& any = by_mode.begin().value();
    for (const char* avg : {"macro", "micro"}) {
      h += "<tr><td>" + esc(group) + "</td><td>" + avg + "</td><td>" + std::to_string(any.value("tasks", int64_t(0))) +
           "</td><td>" + std::to_string(any.value("n", int64_t(0))) + "</td>";
      for (const auto& m : modes)
        h += by_mode.contains(m) && by_mode[m].contains(avg) && by_mode[m][avg].is_number()
                 ? "<td>" + num(by_mode[m][avg].get<double>()) + "</td>"
                 : std::string("<td>—</td>");
      h += "</tr>\n";
    }
  }
  return h + "</table>\n";
}

// Few-shot curves: the entries of one task at several shot counts, one line per mode.
std::string fewshot_section(const Json& tasks, const std::vector<std::string>& modes) {
  std::map<std::string, std::map<std::string, std::vector<std::pair<double, double>>>> curves;
  for (const auto& [key, by_mode] : tasks.items())
    for (const auto& [mode, e] : by_mode.items())
      if (e.contains("task") && e.contains("shots") && e["shots"].is_number())
        curves[e["task"].get<std::string>()][mode].push_back({e["shots"].get<double>(), e["value"].get<double>()});
  std::string charts;
  for (auto& [task, by_mode] : curves) {
    std::vector<Series> series;
    size_t most = 0;
    for (const auto& m : modes)
      if (by_mode.count(m)) {
        auto pts = by_mode[m];
        std::sort(pts.begin(), pts.end());
        most = std::max(most, pts.size());
        series.push_back({m, pts});
      }
    if (most >= 2) charts += line_chart(task + ": few-shot", "shots", "score", series) + "\n";
  }
  return charts.empty() ? "" : "<h2>Few-shot curves</h2>\n<div class='charts'>\n" + charts + "</div>\n";
}

// Training curves: loss (and validation loss) per training run.
std::string training_section(const std::vector<std::pair<std::string, std::vector<Json>>>& runs) {
  if (runs.empty()) return "";
  std::string h = "<h2>Training</h2>\n<div class='charts'>\n";
  for (const auto& [name, records] : runs) {
    Series loss{"train loss", {}}, val{"val loss", {}};
    for (const Json& r : records) {
      const double step = r["step"].get<double>();
      if (r.contains("loss") && r["loss"].is_number()) loss.points.push_back({step, r["loss"].get<double>()});
      if (r.contains("val_loss") && r["val_loss"].is_number()) val.points.push_back({step, r["val_loss"].get<double>()});
    }
    std::vector<Series> series{loss};
    if (!val.points.empty()) series.push_back(val);
    h += line_chart(name, "step", "loss", series) + "\n";
  }
  return h + "</div>\n";
}

std::string settings_section(const Json& results) {
  std::string h = "<h2>Settings</h2>\n<table>";
  if (results.contains("settings") && results["settings"].is_object())
    for (const auto& [k, v] : results["settings"].items())
      h += "<tr><td>" + esc(k) + "</td><td><code>" + esc(v.dump(-1, ' ', false, Json::error_handler_t::replace)) +
           "</code></td></tr>";
  return h + "</table>\n";
}

void check_results(const Json& results) {
  TAIA_CHECK(results.is_object() && results.contains("tasks") && results["tasks"].is_object(),
             "[report] results expected an object with 'tasks'");
  for (const auto& [key, by_mode] : results["tasks"].items()) {
    TAIA_CHECK(by_mode.is_object(), "[report] results.tasks.", key, " expected an object of modes");
    for (const auto& [mode, e] : by_mode.items())
      TAIA_CHECK(e.is_object() && e.contains("value") && e["value"].is_number(), "[report] results.tasks.", key, ".",
                 mode, " expected an object with a numeric 'value'");
  }
}

}  // namespace

// The report's order: verdicts and the headline chart, the scores grouped by claim, then the
// paired differences, the few-shot curves, the drift plots, the rank heat maps and training.
std::string render_report_html(const Json& results, const std::vector<std::pair<std::string, std::vector<Json>>>& runs) {
  check_results(results);
  const AggregateResults agg = AggregateResults::from_json(results, "[report] results");
  const std::vector<std::string> modes = modes_in(results);
  // A results.json may name its report and what its "±" means (taia demo: std over seeds).
  const Json settings = results.contains("settings") && results["settings"].is_object() ? results["settings"] : Json::object();
  const std::string title = settings.contains("report_title") && settings["report_title"].is_string()
                                ? settings["report_title"].get<std::string>() : "taia evaluation report";
  const std::string spread = settings.contains("spread") && settings["spread"].is_string()
                                 ? settings["spread"].get<std::string>() : "standard error";
  return "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>" + esc(title) + "</title>"
         "<style>body{font-family:sans-serif;margin:24px;color:#222;background:#fff}table{border-collapse:collapse;"
         "margin:8px 0 20px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f3f3f3}"
         "td:first-child,th:first-child{text-align:left}.charts{display:flex;flex-wrap:wrap;gap:16px}"
         ".best{font-weight:bold}code{background:#f5f5f5}td.text{text-align:left}</style></head><body>\n"
         "<h1>" + esc(title) + "</h1>\n" +
         verdict_section(results, agg, modes) + groups_section(results, modes) +
         scores_section(results, agg, modes, spread) + paired_section(agg) + fewshot_section(results["tasks"], modes) +
         drift_section(agg) + sweep_section(agg) + training_section(runs) + settings_section(results) +
         "<p>Written by <code>taia report</code>.</p>\n</body></html>\n";
}

ReportSummary write_report(const std::string& run_dir, const std::vector<std::string>& train_dirs,
                           const std::string& out) {
  const std::string results_path = run_dir + "/results.json";
  TAIA_CHECK(file_exists(results_path), results_path, ": no such file (expected an eval run folder)");
  const Json results = parse_json_file(results_path);
  std::vector<std::pair<std::string, std::vector<Json>>> runs;
  for (const auto& d : train_dirs) runs.push_back({d, read_metrics(d)});
  std::string html;
  try {
    html = render_report_html(results, runs);
  } catch (const Error& e) {
    fail(results_path, ": ", e.what());
  }
  write_file_atomic(out, html);
  ReportSummary s;
  s.tasks = int64_t(results["tasks"].size());
  s.modes = int64_t(modes_in(results).size());
  s.training_runs = int64_t(runs.size());
  s.bytes = int64_t(html.size());
  return s;
}

}  // namespace taia
