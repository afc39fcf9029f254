#include "eval/aggregate_results.h"

#include <algorithm>

#include "core/error.h"
#include "eval/stats.h"

namespace taia {
namespace {

const Json& field(const Json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  TAIA_CHECK(it != j.end(), where, ": missing required field '", key, "'");
  return *it;
}

// An object of objects: key -> T::from_json.
template <typename T>
std::map<std::string, T> object_of(const Json& v, const std::string& where) {
  TAIA_CHECK(v.is_object(), where, ": expected an object, got ", v.type_name());
  std::map<std::string, T> out;
  for (const auto& [k, x] : v.items()) out.emplace(k, T::from_json(x, where + "." + k));
  return out;
}

template <typename T>
Json json_of(const std::map<std::string, T>& m) {
  Json out = Json::object();
  for (const auto& [k, v] : m) out[k] = v.to_json();
  return out;
}

}  // namespace

Json PairedDifference::to_json() const {
  return Json{{"mean", mean}, {"low", low}, {"high", high}, {"n", n}, {"unit", unit}};
}

PairedDifference PairedDifference::from_json(const Json& j, const std::string& where) {
  PairedDifference d{json_number(j, "mean", where), json_number(j, "low", where), json_number(j, "high", where),
                     json_int(j, "n", where), json_string_or(j, "unit", "run", where)};
  TAIA_CHECK(d.unit == "run" || d.unit == "world" || d.unit == "example", where,
             ": field 'unit' expected \"run\", \"world\" or \"example\", got \"",
             d.unit, "\"");
  return d;
}

Json ModeSpread::to_json() const { return Json{{"mean", mean}, {"std", std}, {"values", values}}; }

ModeSpread ModeSpread::from_json(const Json& j, const std::string& where) {
  return {json_number(j, "mean", where), json_number(j, "std", where), json_numbers(j, "values", where)};
}

Json AggregateRow::to_json() const {
  Json j{{"experiment", experiment}, {"task", task}, {"modes", json_of(modes)}, {"paired", json_of(paired)}};
  if (!modes.empty()) {  // metric and n come from the runs' scores
    j["metric"] = metric;
    j["n"] = n;
  }
  return j;
}

AggregateRow AggregateRow::from_json(const Json& j, const std::string& where) {
  AggregateRow r;
  r.experiment = json_string(j, "experiment", where);
  r.task = json_string(j, "task", where);
  r.modes = object_of<ModeSpread>(field(j, "modes", where), where + ".modes");
  r.paired = object_of<PairedDifference>(field(j, "paired", where), where + ".paired");
  if (!r.modes.empty()) {
    r.metric = json_string(j, "metric", where);
    r.n = json_int(j, "n", where);
  }
  return r;
}

Json Claim::to_json() const {
  Json j{{"experiment", experiment}, {"claim", claim},         {"task", task},
         {"pair", pair},             {"mean", difference.mean}, {"low", difference.low},
         {"high", difference.high},  {"n", difference.n},       {"verdict", verdict},
         {"unit", difference.unit}};
  if (!verdict_corrected.empty()) {
    auto number = [](double v) { return std::isfinite(v) ? Json(v) : Json(nullptr); };
    j["p"] = number(p);
    j["p_holm"] = number(p_holm);
    j["low_corrected"] = number(low_corrected);
    j["high_corrected"] = number(high_corrected);
    j["verdict_corrected"] = verdict_corrected;
  }
  return j;
}

Claim Claim::from_json(const Json& j, const std::string& where) {
  Claim c{json_string(j, "experiment", where), json_string(j, "claim", where), json_string(j, "task", where),
          json_string(j, "pair", where),       json_string(j, "verdict", where), PairedDifference::from_json(j, where)};
  if (j.contains("verdict_corrected")) {
    c.verdict_corrected = json_string(j, "verdict_corrected", where);
    auto number = [&](const char* key) {
      TAIA_CHECK(j.contains(key) && (j[key].is_number() || j[key].is_null()), where, ": field '", key,
                 "' expected a number or null");
      return j[key].is_null() ? NAN : j[key].get<double>();
    };
    c.p = number("p");
    c.p_holm = number("p_holm");
    c.low_corrected = number("low_corrected");
    c.high_corrected = number("high_corrected");
  }
  return c;
}

void correct_for_multiplicity(std::vector<Claim>& claims) {
  std::vector<double> p;
  for (Claim& c : claims) {
    const PairedDifference& d = c.difference;
    c.p = NAN;
    if (d.n >= 2) {
      const double se = (d.high - d.low) / (2 * t_quantile_975(int(d.n) - 1));
      c.p = se > 0 ? t_two_sided_p(d.mean / se, int(d.n) - 1) : 1.0;  // no spread: no evidence
    }
    p.push_back(std::isnan(c.p) ? 1.0 : c.p);
  }
  const std::vector<double> holm = holm_adjust(p);
  const double level = 1 - 0.05 / double(std::max<size_t>(claims.size(), 1));
  for (size_t i = 0; i < claims.size(); ++i) {
    Claim& c = claims[i];
    const PairedDifference& d = c.difference;
    c.p_holm = std::isnan(c.p) ? NAN : holm[i];
    c.low_corrected = c.high_corrected = d.mean;
    if (d.n >= 2) {
      const double se = (d.high - d.low) / (2 * t_quantile_975(int(d.n) - 1));
      const double half = t_quantile(1 - (1 - level) / 2, int(d.n) - 1) * se;
      c.low_corrected = d.mean - half;
      c.high_corrected = d.mean + half;
    }
    c.verdict_corrected = std::isnan(c.p)     ? "not shown (one run)"
                          : d.no_spread()     ? "not shown (no spread)"
                          : c.p_holm < 0.05   ? (d.mean > 0 ? "reproduced" : "contradicted")
                                              : "not shown";
  }
}

Json MeanDrift::to_json() const {
  return Json{{"attention", attention}, {"ffn", ffn}, {"attention_cosine", attention_cosine}, {"ffn_cosine", ffn_cosine}};
}

MeanDrift MeanDrift::from_json(const Json& j, const std::string& where) {
  return {json_numbers(j, "attention", where), json_numbers(j, "ffn", where), json_numbers(j, "attention_cosine", where),
          json_numbers(j, "ffn_cosine", where)};
}

Json RankSweep::to_json() const {
  Json by_task = Json::object();
  for (const auto& [task, by_mode] : tasks)
    for (const auto& [mode, matrix] : by_mode) {
      Json m = Json::array();
      for (const auto& row : matrix) {
        Json r = Json::array();
        for (const auto& cell : row) r.push_back(cell ? Json(*cell) : Json(nullptr));
        m.push_back(r);
      }
      by_task[task][mode] = m;
    }
  return Json{{"experiment", experiment}, {"ranks", ranks}, {"tasks", by_task}};
}

RankSweep RankSweep::from_json(const Json& j, const std::string& where) {
  RankSweep s;
  s.experiment = json_string(j, "experiment", where);
  const Json& ranks = field(j, "ranks", where);
  TAIA_CHECK(ranks.is_array(), where, ".ranks: expected an array of ranks");
  for (const Json& r : ranks) {
    TAIA_CHECK(r.is_number_integer(), where, ".ranks: expected integers, got ", r.dump());
    s.ranks.push_back(r.get<int64_t>());
  }
  const Json& tasks = field(j, "tasks", where);
  TAIA_CHECK(tasks.is_object(), where, ".tasks: expected an object");
  for (const auto& [task, by_mode] : tasks.items()) {
    TAIA_CHECK(by_mode.is_object(), where, ".tasks.", task, ": expected an object of modes");
    for (const auto& [mode, m] : by_mode.items()) {
      const std::string at = where + ".tasks." + task + "." + mode;
      TAIA_CHECK(m.is_array() && m.size() == s.ranks.size(), at, ": expected ", s.ranks.size(), " rows");
      Matrix& matrix = s.tasks[task][mode];
      for (const Json& row : m) {
        TAIA_CHECK(row.is_array() && row.size() == s.ranks.size(), at, ": expected rows of ", s.ranks.size(), " cells");
        matrix.emplace_back();
        for (const Json& cell : row) {
          TAIA_CHECK(cell.is_null() || cell.is_number(), at, ": expected numbers or null, got ", cell.dump());
          matrix.back().push_back(cell.is_null() ? std::nullopt : std::optional<double>(cell.get<double>()));
        }
      }
    }
  }
  return s;
}

void AggregateResults::add_to(Json& results) const {
  Json p = Json::object();
  for (const auto& [key, by_pair] : paired) p[key] = json_of(by_pair);
  results["paired"] = p;
  results["claims"] = Json::array();
  for (const Claim& c : claims) results["claims"].push_back(c.to_json());
  Json d = Json::object();
  for (const auto& [experiment, by_mode] : drift) d[experiment] = json_of(by_mode);
  results["drift"] = d;
  if (sweep) results["sweep"] = sweep->to_json();
}

AggregateResults AggregateResults::from_json(const Json& results, const std::string& where) {
  AggregateResults a;
  if (!results.is_object()) return a;
  if (auto it = results.find("paired"); it != results.end()) {
    TAIA_CHECK(it->is_object(), where, ": paired: expected an object");
    for (const auto& [key, by_pair] : it->items())
      a.paired[key] = object_of<PairedDifference>(by_pair, where + ": paired." + key);
  }
  if (auto it = results.find("claims"); it != results.end()) {
    TAIA_CHECK(it->is_array(), where, ": claims: expected an array");
    for (size_t i = 0; i < it->size(); ++i)
      a.claims.push_back(Claim::from_json((*it)[i], where + ": claims[" + std::to_string(i) + "]"));
  }
  if (auto it = results.find("drift"); it != results.end()) {
    TAIA_CHECK(it->is_object(), where, ": drift: expected an object");
    for (const auto& [experiment, by_mode] : it->items())
      a.drift[experiment] = object_of<MeanDrift>(by_mode, where + ": drift." + experiment);
  }
  if (auto it = results.find("sweep"); it != results.end()) a.sweep = RankSweep::from_json(*it, where + ": sweep");
  return a;
}

}  // namespace taia
