/* The native reference for `lif-export bench`: the step of docs/semantics.md as one fused loop
 * (u and the spike in registers), compiled with -O3 -march=native -ffp-contract=off so that
 * beta*v + x stays a multiply and an add. Called through ctypes. */
#include <stddef.h>

void lif_zero_f32(const float* x, float* spikes, float* v, long steps, long n, float beta, float threshold,
                  float v_reset) {
  for (long t = 0; t < steps; ++t) {
    const float* xt = x + (size_t)t * (size_t)n;
    float* st = spikes + (size_t)t * (size_t)n;
    for (long i = 0; i < n; ++i) {
      float u = xt[i] + beta * v[i];
      int fired = u > threshold;
      st[i] = (float)fired;
      v[i] = fired ? v_reset : u;
    }
  }
}
