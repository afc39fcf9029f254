// Summary statistics of a list of scores, shared by the evaluation (per-example scores) and the
// demo (one score per fine-tuning seed).
#pragma once
#include <vector>

namespace taia {

double mean_of(const std::vector<double>& v);  // 0 for an empty list
// Sample standard deviation, sqrt(sum (x - mean)^2 / (n - 1)); 0 for fewer than two values.
double sample_std(const std::vector<double>& v);
// Standard error of the mean, sqrt(sum (x - mean)^2 / (n - 1) / n), as lm-eval-harness reports.
double standard_error(const std::vector<double>& v);

}  // namespace taia
