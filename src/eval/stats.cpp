#include "eval/stats.h"

#include <cmath>
#include <numeric>

namespace taia {
namespace {

double squared_deviations(const std::vector<double>& v) {
  const double m = mean_of(v);
  double ss = 0;
  for (double x : v) ss += (x - m) * (x - m);
  return ss;
}

}  // namespace

double mean_of(const std::vector<double>& v) {
  return v.empty() ? 0.0 : std::accumulate(v.begin(), v.end(), 0.0) / double(v.size());
}

double sample_std(const std::vector<double>& v) {
  if (v.size() < 2) return 0.0;
  return std::sqrt(squared_deviations(v) / double(v.size() - 1));
}

double standard_error(const std::vector<double>& v) {
  if (v.size() < 2) return 0.0;
  return std::sqrt(squared_deviations(v) / double(v.size() - 1) / double(v.size()));
}

}  // namespace taia
