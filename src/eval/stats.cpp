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

double t_quantile_975(int df) {
  static const double table[30] = {12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
                                   2.201,  2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
                                   2.080,  2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042};
  if (df < 1) return NAN;
  if (df <= 30) return table[df - 1];
  const double z = 1.959963984540054, n = double(df);
  return z + (z * z * z + z) / (4 * n) + (5 * std::pow(z, 5) + 16 * z * z * z + 3 * z) / (96 * n * n);
}

Interval mean_interval_95(const std::vector<double>& v) {
  Interval r;
  r.n = int64_t(v.size());
  r.mean = r.low = r.high = mean_of(v);
  if (v.size() < 2) return r;
  const double half = t_quantile_975(int(v.size()) - 1) * standard_error(v);
  r.low = r.mean - half;
  r.high = r.mean + half;
  return r;
}

}  // namespace taia
