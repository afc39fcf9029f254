// exp for float in straight-line arithmetic, so loops calling it vectorise (libm's expf is
// an opaque call per element). Cephes' expf polynomial: within 2 ulp of expf on
// [-87.3, 88.7]; below that the result is 0, above it +inf.
#pragma once
#include <bit>
#include <cmath>
#include <cstdint>

namespace taia {

inline float fast_expf(float x) {
  x = x < -87.33654f ? -87.33654f : (x > 88.72283f ? 88.72283f : x);
  // rint rounds half to even in the default rounding mode, the same as roundeven; GCC 12
  // does not vectorise loops that call __builtin_roundevenf (no vector form), but does rint.
  const float n = __builtin_rintf(x * 1.44269504088896341f);
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  // NaN in, NaN out: p is NaN already; the exponent must not convert NaN to int (undefined).
  const int32_t e = ((n == n ? int32_t(n) : 0) + 127) << 23;
  return p * std::bit_cast<float>(e);
}

// exp for the kernels templated on the scalar: the vectorisable float version in training,
// the exact one in the double-precision gradient checks.
inline float exp_t(float x) { return fast_expf(x); }
inline double exp_t(double x) { return std::exp(x); }

}  // namespace taia
