/* The LIF kernels of lif_export.fast. Forward: the simulation of docs/semantics.md as one fused loop
 * per time step, for lif_export.fast.simulate. Compiled on first use with -ffp-contract=off, so that
 * beta*v + x stays a multiply then an add (two roundings, never a fused multiply-add),
 * and called through ctypes (lif_export/fast/kernel.py).
 *
 * Every value is computed by the same operations as lif_export.functional.lif_sequence:
 * u = (beta * v) + x, s = u > threshold as 1/0, the zero reset a select (bits copied: NaN
 * payloads and signed zeros pass through), the subtract reset u - s * threshold.
 * Elementwise only: no sum whose order could vary. When beta * v and x are both NaN,
 * PyTorch's add (and onnxruntime's) returns x's payload (quieted); a C compiler may put the
 * operands of + in either order, so that case is spelled out: x + x is x, quieted.
 *
 * Layout: x, spikes, u_trace, v_trace are [steps, n] contiguous; v is [n], updated in
 * place. beta, threshold and v_reset point at one value each (per_neuron = 0) or at n
 * values (per_neuron = 1). u_trace and v_trace may be NULL. */

#include <string.h>

enum { RESET_ZERO = 0, RESET_SUBTRACT = 1, RESET_NONE = 2 };

/* One time step over the n neurons, u stored to ut when TRACE (the u trace's row). One function per
 * (per_neuron, reset, trace) so that each is a single vectorised loop. */
#define LIF_STEP(NAME, T, PER_NEURON, RESET, TRACE)                                                  \
  static void NAME(const T* restrict xt, T* restrict v, T* restrict st, T* restrict ut, long n,      \
                   const T* restrict beta, const T* restrict threshold, const T* restrict v_reset) { \
    const T b0 = beta[0], th0 = threshold[0], vr0 = v_reset[0];                                      \
    (void)ut;                                                                                        \
    for (long i = 0; i < n; ++i) {                                                                   \
      const T b = PER_NEURON ? beta[i] : b0;                                                         \
      const T th = PER_NEURON ? threshold[i] : th0;                                                  \
      const T bv = b * v[i];                                                                         \
      const T xi = xt[i];                                                                            \
      const T u = xi != xi ? xi + xi : bv + xi; /* NaN + NaN: x's payload */                         \
      const int fired = u > th;                                                                      \
      const T s = fired ? (T)1 : (T)0;                                                               \
      st[i] = s;                                                                                     \
      if (TRACE) ut[i] = u;                                                                          \
      v[i] = RESET == RESET_ZERO ? (fired ? (PER_NEURON ? v_reset[i] : vr0) : u)                     \
           : RESET == RESET_SUBTRACT ? u - s * th : u;                                               \
    }                                                                                                \
  }

typedef enum { STEP_PER_NEURON = 1, STEP_TRACE = 2 } step_flags;

#define LIF_STEPS(NAME, T, FLAGS)                                                                    \
  LIF_STEP(NAME##_zero_##FLAGS, T, (FLAGS) & STEP_PER_NEURON, RESET_ZERO, (FLAGS) & STEP_TRACE)      \
  LIF_STEP(NAME##_subtract_##FLAGS, T, (FLAGS) & STEP_PER_NEURON, RESET_SUBTRACT, (FLAGS) & STEP_TRACE) \
  LIF_STEP(NAME##_none_##FLAGS, T, (FLAGS) & STEP_PER_NEURON, RESET_NONE, (FLAGS) & STEP_TRACE)

#define LIF_SIMULATE(NAME, T)                                                                        \
  LIF_STEPS(NAME, T, 0)                                                                              \
  LIF_STEPS(NAME, T, 1)                                                                              \
  LIF_STEPS(NAME, T, 2)                                                                              \
  LIF_STEPS(NAME, T, 3)                                                                              \
  void NAME(const T* x, T* v, T* spikes, T* u_trace, T* v_trace, long steps, long n, const T* beta,  \
            const T* threshold, const T* v_reset, int per_neuron, int reset) {                       \
    typedef void (*step_fn)(const T*, T*, T*, T*, long, const T*, const T*, const T*);               \
    static const step_fn steps_by[4][3] = {                                                          \
        {NAME##_zero_0, NAME##_subtract_0, NAME##_none_0}, {NAME##_zero_1, NAME##_subtract_1, NAME##_none_1}, \
        {NAME##_zero_2, NAME##_subtract_2, NAME##_none_2}, {NAME##_zero_3, NAME##_subtract_3, NAME##_none_3}}; \
    const step_fn step = steps_by[(per_neuron ? STEP_PER_NEURON : 0) | (u_trace ? STEP_TRACE : 0)][reset]; \
    for (long t = 0; t < steps; ++t) {                                                               \
      step(x + t * n, v, spikes + t * n, u_trace ? u_trace + t * n : (T*)0, n, beta, threshold,      \
           v_reset);                                                                                 \
      if (v_trace) memcpy(v_trace + t * n, v, (size_t)n * sizeof(T));                                \
    }                                                                                                \
  }

LIF_SIMULATE(lif_simulate_f32, float)
LIF_SIMULATE(lif_simulate_f64, double)

/* The backward pass through time of lif_export.fast.bptt, step by step from the last: what autograd
 * computes for lif_export.functional.lif_sequence, operation for operation (see bptt.py), so the
 * gradients are the same bits. Surrogates made of IEEE arithmetic only (the sigmoid needs PyTorch's
 * exp, so it stays in PyTorch). Where both operands of an add can be NaN, the payload PyTorch's
 * kernel returns is chosen explicitly, as in the forward; a multiply by a value that cannot be NaN
 * needs nothing.
 *
 * Inputs: u_trace [steps, n]; grad_spikes [steps, n] or NULL (spikes unused); grad_v [n] or NULL;
 * beta, threshold, v_reset [n] each (expanded by the caller); slope, k = pi/2 * slope and
 * half = slope / 2 rounded to T. Outputs: grad_x [steps, n] (the gradient of every
 * step's u); optional (NULL: not wanted): spike_part [steps, n], the surrogate's part of grad u
 * negated (-(grad_spikes * isfinite(z g) * g), the learned threshold's term, as autograd's
 * SubBackward negates it before the sum).
 *
 * The learned parameters' per-step terms come afterwards from grad_x (lif_parts_*), one kind at a
 * time into one reused [steps, n] buffer: kind 0, beta: out[t] = grad u_t * v_(t-1) for t >= 1 (row 0
 * is left to the caller, v_(-1) being the initial state); kind 1, the subtract reset's threshold
 * term: out[t] = (-grad v_t) * s_t with grad v_t = grad u_(t+1) * beta (grad_v at the last step; row
 * steps-1 left alone without grad_v). The same operations as in the loop, so the same bits. */

enum { SG_FAST_SIGMOID = 0, SG_ARCTAN = 1, SG_TRIANGLE = 2, SG_STRAIGHT_THROUGH = 3 };

/* One step of the backward, row t, in one loop over the neurons (one function per surrogate):
 * grad v_t = next * beta (next = grad u_(t+1)), or grad_v at the last step (next NULL), or none (both
 * NULL); the spike part grad_spikes * isfinite(z * g) * g with z = u - threshold and
 * g = nan_to_num(surrogate(z)) (isfinite(zg): zg - zg is exactly 0 for a finite zg), stored negated
 * into sp_out when given; grad u_t = (the zero reset's where(fired, 0, grad v_t)) + the spike part. */
#define LIF_BACKWARD_ROW(NAME, T, FABS, TMAX, G)                                                      \
  /* GV: 0 no grad v_t, 1 gvs * beta, 2 gvs; GS: grad_spikes given; SP: sp_out given (constants, so   \
   * that each combination compiles to its own vectorised loop) */                                    \
  static inline __attribute__((always_inline)) void NAME##_body(                                      \
      const T* restrict u, const T* restrict th, const T* restrict beta, const T* restrict gs,        \
      const T* restrict gvs, int zero, T* restrict gx, T* restrict sp_out, long n, T slope, T k,      \
      T half, const int GV, const int GS, const int SP) {                                             \
    (void)slope; (void)k; (void)half;                                                                 \
    for (long i = 0; i < n; ++i) {                                                                    \
      const T gv = GV == 1 ? gvs[i] * beta[i] : GV == 2 ? gvs[i] : (T)0;                              \
      const T from_state = zero && u[i] > th[i] ? (T)0 : gv;                                          \
      if (GS) {                                                                                       \
        const T z = u[i] - th[i];                                                                     \
        T g = G;                                                                                      \
        g = g != g ? (T)0 : g > TMAX ? TMAX : g < -TMAX ? -TMAX : g; /* nan_to_num(g, nan=0.0) */     \
        const T zg = z * g;                                                                           \
        const T sp = (gs[i] * (zg - zg == 0 ? (T)1 : (T)0)) * g;                                      \
        if (SP) sp_out[i] = -sp;                                                                      \
        /* both NaN: the second's payload */                                                          \
        gx[i] = GV == 0 ? sp : sp != sp ? sp + sp : from_state + sp;                                  \
      } else {                                                                                        \
        gx[i] = GV ? from_state : (T)0;                                                               \
      }                                                                                               \
    }                                                                                                 \
  }                                                                                                   \
  static void NAME(const T* u, const T* th, const T* beta, const T* gs, const T* gvs, int gv_kind,    \
                   int zero, T* gx, T* sp_out, long n, T slope, T k, T half) {                        \
    switch (gv_kind * 4 + (gs ? 2 : 0) + (sp_out ? 1 : 0)) {                                          \
      case 0: case 1: NAME##_body(u, th, beta, gs, gvs, zero, gx, sp_out, n, slope, k, half, 0, 0, 0); break; \
      case 2: NAME##_body(u, th, beta, gs, gvs, zero, gx, sp_out, n, slope, k, half, 0, 1, 0); break; \
      case 3: NAME##_body(u, th, beta, gs, gvs, zero, gx, sp_out, n, slope, k, half, 0, 1, 1); break; \
      case 4: case 5: NAME##_body(u, th, beta, gs, gvs, zero, gx, sp_out, n, slope, k, half, 1, 0, 0); break; \
      case 6: NAME##_body(u, th, beta, gs, gvs, zero, gx, sp_out, n, slope, k, half, 1, 1, 0); break; \
      case 7: NAME##_body(u, th, beta, gs, gvs, zero, gx, sp_out, n, slope, k, half, 1, 1, 1); break; \
      case 8: case 9: NAME##_body(u, th, beta, gs, gvs, zero, gx, sp_out, n, slope, k, half, 2, 0, 0); break; \
      case 10: NAME##_body(u, th, beta, gs, gvs, zero, gx, sp_out, n, slope, k, half, 2, 1, 0); break; \
      default: NAME##_body(u, th, beta, gs, gvs, zero, gx, sp_out, n, slope, k, half, 2, 1, 1); break; \
    }                                                                                                 \
  }

/* 1 / (slope*|z| + 1)**2 (PyTorch: |z| * slope, + 1, c * c, reciprocal, * 1) */
#define G_FAST_SIGMOID(T, FABS) (((T)1 / ((FABS(z) * slope + (T)1) * (FABS(z) * slope + (T)1))) * (T)1)
/* (slope/2) / (1 + (pi/2*slope*z)**2) (PyTorch: z * k, p * p, + 1, reciprocal, * slope/2) */
#define G_ARCTAN(T) (((T)1 / ((z * k) * (z * k) + (T)1)) * half)
/* slope * max(0, 1 - slope*|z|) (clamp_min keeps a NaN) */
#define G_TRIANGLE(T, FABS) (((T)0 > (T)1 - FABS(z) * slope ? (T)0 : (T)1 - FABS(z) * slope) * slope)

#define LIF_BPTT(NAME, T, FABS, TMAX)                                                                 \
  LIF_BACKWARD_ROW(NAME##_fast_sigmoid, T, FABS, TMAX, G_FAST_SIGMOID(T, FABS))                       \
  LIF_BACKWARD_ROW(NAME##_arctan, T, FABS, TMAX, G_ARCTAN(T))                                         \
  LIF_BACKWARD_ROW(NAME##_triangle, T, FABS, TMAX, G_TRIANGLE(T, FABS))                               \
  LIF_BACKWARD_ROW(NAME##_straight_through, T, FABS, TMAX, slope)                                     \
  void NAME(const T* u_trace, const T* grad_spikes, const T* grad_v, long steps, long n,              \
            const T* restrict beta, const T* restrict th, const T* restrict vr, int reset,            \
            int surrogate, T slope, T k, T half, T* grad_x, T* spike_part) {                          \
    void (*row)(const T*, const T*, const T*, const T*, const T*, int, int, T*, T*, long, T, T, T) =    \
        surrogate == SG_FAST_SIGMOID ? NAME##_fast_sigmoid : surrogate == SG_ARCTAN ? NAME##_arctan   \
        : surrogate == SG_TRIANGLE ? NAME##_triangle : NAME##_straight_through;                       \
    (void)vr;                                                                                         \
    for (long t = steps - 1; t >= 0; --t) {                                                           \
      const int last = t == steps - 1;                                                                \
      row(u_trace + t * n, th, beta, grad_spikes ? grad_spikes + t * n : (const T*)0,                 \
          last ? grad_v : grad_x + (t + 1) * n, last ? (grad_v ? 2 : 0) : 1, reset == RESET_ZERO,     \
          grad_x + t * n, spike_part ? spike_part + t * n : (T*)0, n, slope, k, half);                \
    }                                                                                                 \
  }                                                                                                   \
  void NAME##_parts(const T* u_trace, const T* grad_x, const T* grad_v, long steps, long n,           \
                    const T* restrict beta, const T* restrict th, const T* restrict vr, int reset,    \
                    int kind, T* out) {                                                               \
    for (long t = kind == 0 ? 1 : 0; t < steps; ++t) {                                                \
      const T* restrict u = u_trace + t * n;                                                          \
      const T* restrict gx = grad_x + t * n;                                                          \
      T* restrict o = out + t * n;                                                                    \
      if (kind == 0) {                                   /* grad u_t * v_(t-1), v recomputed */       \
        const T* restrict up = u_trace + (t - 1) * n;                                                 \
        for (long i = 0; i < n; ++i) {                                                                \
          const int fp = up[i] > th[i];                                                               \
          const T vp = reset == RESET_ZERO ? (fp ? vr[i] : up[i])                                     \
                     : reset == RESET_SUBTRACT ? up[i] - (fp ? (T)1 : (T)0) * th[i] : up[i];          \
          o[i] = gx[i] != gx[i] ? gx[i] + gx[i] : gx[i] * vp;                                         \
        }                                                                                             \
      } else if (t < steps - 1) {                        /* (-(grad u_(t+1) * beta)) * s_t */         \
        const T* restrict next = grad_x + (t + 1) * n;                                                \
        for (long i = 0; i < n; ++i) o[i] = (-(next[i] * beta[i])) * (u[i] > th[i] ? (T)1 : (T)0);    \
      } else if (grad_v) {                               /* (-grad_v) * s_t */                        \
        for (long i = 0; i < n; ++i) o[i] = (-grad_v[i]) * (u[i] > th[i] ? (T)1 : (T)0);              \
      }                                                                                               \
    }                                                                                                 \
  }

LIF_BPTT(lif_backward_f32, float, __builtin_fabsf, 3.40282346638528859812e+38f)
LIF_BPTT(lif_backward_f64, double, __builtin_fabs, 1.79769313486231570815e+308)

/* The exact linear layer (lif_export.network.ExactLinear; docs/semantics.md, "Exact linear layers") at one
 * time step without autograd, for its eager forward: one call instead of eight PyTorch kernels. Every
 * product a * w and every partial sum is exact in double (the grid's bounds), so the sum is the value
 * any summation order gives; it starts from +0.0, as PyTorch's matrix product does for two or more
 * terms (the caller leaves a single input feature to PyTorch, whose product of one term keeps a -0.0).
 * Zero inputs add +-0.0 to a sum that is never -0.0, so they are skipped. The result is
 * (sum / scale + bias) in double, rounded once to T, where the input is put on the grid here as the
 * integer a = round half to even of clamp(x, -bound, bound) * scale (scale = 2^12, bound = 256: the
 * grid value times scale); a spike input (0 or 1) is taken as it is, with scale 1.
 *
 * plan: the layer's quantized weights, transposed ([n_in, n_out] contiguous, so that the loop over the
 * outputs is innermost and vectorises), its bias (or NULL), the bits of its parameters when they
 * were quantized, and the input grid. x is [batch, n_in] contiguous (a small batch: the sums of one
 * row sit on the stack). Returns EXACT_DONE with out [batch, n_out] written; EXACT_STALE when the
 * parameters' bits (weight, bias: their current memory) differ from the copies (the caller quantizes
 * them again); EXACT_DECLINED for an input this loop does not take (a NaN, whose payload would depend
 * on the order of the sum, or a spike input other than 0/1): the caller runs PyTorch's operations. */

typedef struct {
  const double* weight_t;
  const double* bias;
  const void* weight_copy;
  const void* bias_copy;
  long weight_bytes, bias_bytes, n_in, n_out;
  double scale, bound;
} exact_linear_plan;

enum { EXACT_DONE = 0, EXACT_STALE = 1, EXACT_DECLINED = 2 };

/* Round half to even of |v| < 2^51 (torch.round's rounding) in the default rounding mode: adding
 * 1.5 * 2^52 leaves no fraction bits; the sign of a zero result is not kept (zeros are skipped). */
static inline double round_half_even(double v) {
  const double shift = 6755399441055744.0; /* 1.5 * 2^52 */
  return (v + shift) - shift;
}

#define EXACT_LINEAR(NAME, T)                                                                        \
  int NAME(const exact_linear_plan* p, const void* weight, const void* bias, const T* x, long batch, \
           int spikes, T* out) {                                                                     \
    const long n_in = p->n_in, n_out = p->n_out;                                                     \
    if (memcmp(weight, p->weight_copy, (size_t)p->weight_bytes) != 0                                 \
        || (p->bias_bytes && memcmp(bias, p->bias_copy, (size_t)p->bias_bytes) != 0))                \
      return EXACT_STALE;                                                                            \
    const double scale = spikes ? 1.0 : p->scale, bound = p->bound;                                  \
    double acc[n_out];                                                                               \
    for (long r = 0; r < batch; ++r) {                                                               \
      const T* xr = x + r * n_in;                                                                    \
      for (long o = 0; o < n_out; ++o) acc[o] = 0.0;                                                 \
      for (long i = 0; i < n_in; ++i) {                                                              \
        const double xi = xr[i];                                                                     \
        double a;                                                                                    \
        if (spikes) {                                                                                \
          if (xi == 0.0) continue;                                                                   \
          if (xi != 1.0) return EXACT_DECLINED;                                                      \
          a = 1.0;                                                                                   \
        } else {                                                                                     \
          if (xi != xi) return EXACT_DECLINED;                                                       \
          a = round_half_even((xi < -bound ? -bound : xi > bound ? bound : xi) * scale);              \
          if (a == 0.0) continue;                                                                    \
        }                                                                                            \
        const double* restrict w = p->weight_t + i * n_out;                                          \
        for (long o = 0; o < n_out; ++o) acc[o] += a * w[o];                                         \
      }                                                                                              \
      T* restrict yr = out + r * n_out;                                                              \
      if (p->bias)                                                                                   \
        for (long o = 0; o < n_out; ++o) yr[o] = (T)(acc[o] / scale + p->bias[o]);                   \
      else                                                                                           \
        for (long o = 0; o < n_out; ++o) yr[o] = (T)(acc[o] / scale);                                \
    }                                                                                                \
    return EXACT_DONE;                                                                               \
  }

EXACT_LINEAR(exact_linear_f32, float)
EXACT_LINEAR(exact_linear_f64, double)
