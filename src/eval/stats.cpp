#include "eval/stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"

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

namespace {

// The continued fraction of the regularized incomplete beta I_x(a, b) (modified Lentz), valid for
// x < (a + 1) / (a + b + 2); the caller uses the symmetry I_x(a, b) = 1 - I_{1-x}(b, a) otherwise.
double beta_fraction(double a, double b, double x) {
  const double tiny = 1e-300;
  double c = 1, d = 1 - (a + b) * x / (a + 1);
  d = 1 / (std::abs(d) < tiny ? tiny : d);
  double f = d;
  for (int m = 1; m <= 500; ++m) {
    const double even = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m));
    d = 1 + even * d;
    c = 1 + even / c;
    d = 1 / (std::abs(d) < tiny ? tiny : d);
    c = std::abs(c) < tiny ? tiny : c;
    f *= d * c;
    const double odd = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1));
    d = 1 + odd * d;
    c = 1 + odd / c;
    d = 1 / (std::abs(d) < tiny ? tiny : d);
    c = std::abs(c) < tiny ? tiny : c;
    const double step = d * c;
    f *= step;
    if (std::abs(step - 1) < 1e-15) break;
  }
  return f;
}

double incomplete_beta(double a, double b, double x) {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const double front = std::exp(std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) + b * std::log1p(-x));
  if (x < (a + 1) / (a + b + 2)) return front * beta_fraction(a, b, x) / a;
  return 1 - front * beta_fraction(b, a, 1 - x) / b;
}

}  // namespace

double t_two_sided_p(double t, int df) {
  if (df < 1 || std::isnan(t)) return NAN;
  if (std::isinf(t)) return 0;
  return incomplete_beta(0.5 * df, 0.5, double(df) / (double(df) + t * t));
}

double t_quantile(double p, int df) {
  if (df < 1 || !(p > 0 && p < 1)) return NAN;
  if (p == 0.5) return 0;
  const double tail = p < 0.5 ? p : 1 - p;  // P(T >= q) for q > 0 is half the two-sided p
  double lo = 0, hi = 1;
  while (t_two_sided_p(hi, df) / 2 > tail) hi *= 2;
  for (int i = 0; i < 200 && hi - lo > 1e-12 * hi; ++i) {
    const double mid = 0.5 * (lo + hi);
    (t_two_sided_p(mid, df) / 2 > tail ? lo : hi) = mid;
  }
  const double q = 0.5 * (lo + hi);
  return p < 0.5 ? -q : q;
}

std::vector<double> holm_adjust(const std::vector<double>& p) {
  std::vector<size_t> order(p.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return p[a] < p[b]; });
  std::vector<double> out(p.size());
  double running = 0;
  for (size_t i = 0; i < order.size(); ++i) {
    running = std::max(running, std::min(1.0, double(p.size() - i) * p[order[i]]));
    out[order[i]] = running;
  }
  return out;
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

Interval clustered_mean_interval_95(const std::vector<double>& v, size_t clusters) {
  if (clusters <= 1 || v.empty()) return mean_interval_95(v);
  TAIA_CHECK(v.size() % clusters == 0, "[stats] clustered interval: expected a multiple of ", clusters,
             " values (one group per cluster), got ", v.size());
  const size_t per = v.size() / clusters;
  std::vector<double> means;  // [clusters]
  for (size_t c = 0; c < clusters; ++c)
    means.push_back(mean_of(std::vector<double>(v.begin() + long(c * per), v.begin() + long((c + 1) * per))));
  return mean_interval_95(means);
}

}  // namespace taia
