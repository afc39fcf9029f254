// Summary statistics of a list of scores, shared by the evaluation (per-example scores) and the
// demo (one score per fine-tuning seed).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace taia {

double mean_of(const std::vector<double>& v);  // 0 for an empty list
// Sample standard deviation, sqrt(sum (x - mean)^2 / (n - 1)); 0 for fewer than two values.
double sample_std(const std::vector<double>& v);
// Standard error of the mean, sqrt(sum (x - mean)^2 / (n - 1) / n), as lm-eval-harness reports.
double standard_error(const std::vector<double>& v);

// The 97.5 % quantile of Student's t with df degrees of freedom (a table to 30, the
// Cornish-Fisher expansion beyond, within 1e-3 of the exact value); df >= 1.
double t_quantile_975(int df);

// A mean with its two-sided 95 % confidence interval, mean ± t(n-1) * standard error (no
// interval for fewer than two values: low = high = mean).
struct Interval {
  double mean = 0, low = 0, high = 0;
  int64_t n = 0;
};
Interval mean_interval_95(const std::vector<double>& v);
// The same with the values in `clusters` equal consecutive groups (the demo's runs, world-major:
// each world's seeds together): one mean per group, then the interval over the groups' means, so
// n = clusters and df = clusters - 1 (runs sharing a pretrained model are not independent).
// clusters <= 1: mean_interval_95(v). Throws when v.size() is not a multiple of clusters.
Interval clustered_mean_interval_95(const std::vector<double>& v, size_t clusters);

// Student's t with df degrees of freedom (df >= 1): the two-sided tail P(|T| >= |t|), from the
// regularized incomplete beta function I_x(df/2, 1/2) at x = df / (df + t^2) (a continued
// fraction, double precision); and the quantile q with P(T <= q) = p, by bisection on it.
double t_two_sided_p(double t, int df);
double t_quantile(double p, int df);

// Holm's step-down adjustment of p-values (family-wise error): sorted ascending, the i-th (from 0)
// times (m - i), made non-decreasing, capped at 1; returned in the input's order.
std::vector<double> holm_adjust(const std::vector<double>& p);

}  // namespace taia
