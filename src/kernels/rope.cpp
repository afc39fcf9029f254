#include "kernels/rope.h"

#include <cmath>

#include "core/error.h"

namespace taia {

std::vector<float> rope_inv_freq(int64_t rotary_dims, float theta, const RopeScaling& scaling,
                                 const std::vector<float>* freq_factors, bool long_factors) {
  const int64_t head_dim = rotary_dims;  // HF's `dim`
  const int64_t half = head_dim / 2;
  std::vector<float> inv(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) {
    // HF: 1.0 / (base ** (arange(0, dim, 2).float() / dim)), in F32.
    float exponent = float(2 * i) / float(head_dim);
    inv[size_t(i)] = 1.0f / std::pow(theta, exponent);
  }
  if (scaling.type == RopeScaling::Type::Linear) {
    for (float& f : inv) f /= scaling.factor;
  } else if (scaling.type == RopeScaling::Type::Llama3) {
    // HF _compute_llama3_parameters: long wavelengths are slowed by `factor`, short ones kept,
    // the band between is interpolated smoothly.
    const float old_len = float(scaling.original_max_position_embeddings);
    const float low_freq_wavelen = old_len / scaling.low_freq_factor;
    const float high_freq_wavelen = old_len / scaling.high_freq_factor;
    const float pi = 3.14159265358979323846f;
    for (float& f : inv) {
      const float wavelen = 2.0f * pi / f;
      float scaled = wavelen > low_freq_wavelen ? f / scaling.factor : f;
      const float smooth = (old_len / wavelen - scaling.low_freq_factor) /
                           (scaling.high_freq_factor - scaling.low_freq_factor);
      const bool medium = !(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen);
      if (medium) scaled = (1.0f - smooth) * scaled / scaling.factor + smooth * scaled;
      f = scaled;
    }
  } else if (scaling.type == RopeScaling::Type::LongRope) {
    // HF _compute_longrope_parameters: 1 / (ext_factors * base ** (arange(0, dim, 2) / dim)), F32.
    const std::vector<float>& ext = long_factors ? scaling.long_factor : scaling.short_factor;
    for (size_t i = 0; i < inv.size() && i < ext.size(); ++i) {
      const float exponent = float(2 * int64_t(i)) / float(head_dim);
      inv[i] = 1.0f / (ext[i] * std::pow(theta, exponent));
    }
  }
  if (freq_factors && freq_factors->size() == inv.size())
    for (size_t i = 0; i < inv.size(); ++i) inv[i] /= (*freq_factors)[i];
  return inv;
}

RopeTable rope_table(const std::vector<float>& inv_freq, int64_t positions, float mscale) {
  RopeTable t;
  t.half = int64_t(inv_freq.size());
  t.cos.resize(size_t(positions * t.half));
  t.sin.resize(size_t(positions * t.half));
  for (int64_t p = 0; p < positions; ++p)
    for (int64_t i = 0; i < t.half; ++i) {
      const float angle = float(p) * inv_freq[size_t(i)];  // F32, as HF computes it
      t.cos[size_t(p * t.half + i)] = std::cos(angle) * mscale;
      t.sin[size_t(p * t.half + i)] = std::sin(angle) * mscale;
    }
  return t;
}

void rope_forward(float* x, const int64_t* positions, int64_t rows, int64_t n_heads, int64_t head_dim,
                  const float* inv_freq, float mscale, int64_t rotary_dims) {
  const int64_t half = (rotary_dims > 0 ? rotary_dims : head_dim) / 2;
#pragma omp parallel for schedule(static) if (rows > 1)
  for (int64_t r = 0; r < rows; ++r) {
    const float pos = float(positions[r]);
    // cos/sin of (position * inv_freq) in F32, as HF's rotary embedding computes them.
    std::vector<float> c(static_cast<size_t>(half)), s(static_cast<size_t>(half));
    for (int64_t i = 0; i < half; ++i) {
      const float angle = pos * inv_freq[i];
      c[size_t(i)] = std::cos(angle) * mscale;
      s[size_t(i)] = std::sin(angle) * mscale;
    }
    for (int64_t h = 0; h < n_heads; ++h) {
      float* v = x + (r * n_heads + h) * head_dim;
      for (int64_t i = 0; i < half; ++i) {
        const float x1 = v[i], x2 = v[i + half];
        v[i] = x1 * c[size_t(i)] - x2 * s[size_t(i)];
        v[i + half] = x2 * c[size_t(i)] + x1 * s[size_t(i)];
      }
    }
  }
}

namespace {

// Rotates by +angle (sign 1) or -angle (sign -1) with the table's cos/sin.
template <typename T>
void rope_rotate(T* x, const int64_t* positions, int64_t rows, int64_t n_heads, int64_t head_dim,
                 const RopeTable& table, T sign) {
  const int64_t half = table.half;
  TAIA_CHECK(2 * half <= head_dim, "[rope] expected at most head_dim / 2 = ", head_dim / 2, " rotated pairs, got ", half);
#pragma omp parallel for schedule(static) if (rows > 16)
  for (int64_t r = 0; r < rows; ++r) {
    const float* c = table.cos.data() + positions[r] * half;
    const float* s = table.sin.data() + positions[r] * half;
    for (int64_t h = 0; h < n_heads; ++h) {
      T* v = x + (r * n_heads + h) * head_dim;
      for (int64_t i = 0; i < half; ++i) {
        const T x1 = v[i], x2 = v[i + half], ci = T(c[i]), si = sign * T(s[i]);
        v[i] = x1 * ci - x2 * si;
        v[i + half] = x2 * ci + x1 * si;
      }
    }
  }
}

}  // namespace

template <typename T>
void rope_train_forward(T* x, const int64_t* positions, int64_t rows, int64_t n_heads, int64_t head_dim,
                        const RopeTable& table) {
  rope_rotate(x, positions, rows, n_heads, head_dim, table, T(1));
}

template <typename T>
void rope_backward(T* dx, const int64_t* positions, int64_t rows, int64_t n_heads, int64_t head_dim,
                   const RopeTable& table) {
  rope_rotate(dx, positions, rows, n_heads, head_dim, table, T(-1));
}

#define TAIA_INSTANTIATE(T)                                                                                    \
  template void rope_train_forward<T>(T*, const int64_t*, int64_t, int64_t, int64_t, const RopeTable&);       \
  template void rope_backward<T>(T*, const int64_t*, int64_t, int64_t, int64_t, const RopeTable&);
TAIA_INSTANTIATE(float)
TAIA_INSTANTIATE(double)
#undef TAIA_INSTANTIATE

}  // namespace taia
