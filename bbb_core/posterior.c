/* Fused CPU kernels of a Bayes by Backprop layer's posterior: see bbb_core/native.py.
 *
 * For every weight, with sigma = softplus(rho) and eps ~ N(0, 1):
 *   forward:  out = mu + sigma * eps ("sample"), sigma * eps ("noise") or sigma^2 ("var"), and
 *             the sums of sigma^2 + mu^2 and of log sigma (the closed-form Gaussian KL's parts);
 *   backward: d/dmu and d/drho of <g, out> + kl_scale * KL, recomputing sigma and eps.
 * One pass over the weights each way. eps is never stored: it is a pure function of (seed, index),
 * drawn by the counter-based Philox4x32-10 generator (Salmon et al., SC 2011) and the Box-Muller
 * transform, so the backward pass regenerates exactly the forward pass's draws.
 *
 * Built by native.py with -O3 -ffast-math -fopenmp: the loops carry `omp simd`, and glibc's
 * vector maths library (libmvec) supplies the vectorised exp, log, log1p, sin and cos.
 */
#include <math.h>
#include <stdint.h>

#define LANE 256          /* Philox blocks per chunk; each block gives 4 normals */
#define CHUNK (4 * LANE)  /* weights per chunk: the unit of the parallel loops */
#define SOFTPLUS_LINEAR 20.0f /* above this, softplus(x) = x in float32 (as torch's threshold) */
#define SIGMA_MIN 1e-30f      /* keeps log sigma and prior_var / sigma finite where exp underflows */

enum { SAMPLE = 0, NOISE = 1, VAR = 2 };

/* softplus(x) = log(1 + e^x), at least SIGMA_MIN */
static inline float softplus(float x) {
    float y = x > SOFTPLUS_LINEAR ? x : log1pf(expf(fminf(x, SOFTPLUS_LINEAR)));
    return fmaxf(y, SIGMA_MIN);
}

/* The standard normals of chunk `chunk` of the stream `seed`: element lane * LANE + j of the
 * chunk comes from output `lane` of Philox block chunk * LANE + j. */
__attribute__((noinline)) static void normals_chunk(uint64_t seed, uint64_t chunk, float *restrict out) {
    uint32_t r0[LANE], r1[LANE], r2[LANE], r3[LANE];
    const uint32_t key0 = (uint32_t)seed, key1 = (uint32_t)(seed >> 32);
    const uint64_t base = chunk * LANE;
#pragma omp simd
    for (int j = 0; j < LANE; j++) {
        uint64_t block = base + (uint64_t)j;
        uint32_t c0 = (uint32_t)block, c1 = (uint32_t)(block >> 32), c2 = 0x5bd1e995u, c3 = 0;
        uint32_t k0 = key0, k1 = key1;
        for (int round = 0; round < 10; round++) {
            uint64_t p0 = (uint64_t)0xD2511F53u * c0;
            uint64_t p1 = (uint64_t)0xCD9E8D57u * c2;
            uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
            uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
            c1 = (uint32_t)p1;
            c3 = (uint32_t)p0;
            c0 = n0;
            c2 = n2;
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        r0[j] = c0;
        r1[j] = c1;
        r2[j] = c2;
        r3[j] = c3;
    }
    const float to_unit = 1.0f / 16777216.0f; /* 24 random bits -> [0, 1) */
    const float two_pi = 6.28318530717958647692f, quarter_turn = 1.57079632679489661923f;
    /* cos x as sin(x + pi/2): two sinf calls vectorise, where gcc would fuse sinf and cosf of
     * one argument into a scalar sincosf */
#pragma omp simd
    for (int j = 0; j < LANE; j++) {
        float u1 = (float)((r0[j] >> 8) + 1u) * to_unit; /* (0, 1]: log(u1) is finite */
        float u2 = (float)(r1[j] >> 8) * to_unit;
        float radius = sqrtf(-2.0f * logf(u1));
        out[j] = radius * sinf(two_pi * u2 + quarter_turn);
        out[LANE + j] = radius * sinf(two_pi * u2);
    }
#pragma omp simd
    for (int j = 0; j < LANE; j++) {
        float u1 = (float)((r2[j] >> 8) + 1u) * to_unit;
        float u2 = (float)(r3[j] >> 8) * to_unit;
        float radius = sqrtf(-2.0f * logf(u1));
        out[2 * LANE + j] = radius * sinf(two_pi * u2 + quarter_turn);
        out[3 * LANE + j] = radius * sinf(two_pi * u2);
    }
}

/* The first n normals of the stream `seed` (what the kernels below use as eps). */
void bbb_normals(float *restrict out, int64_t n, uint64_t seed, int threads) {
    int64_t chunks = (n + CHUNK - 1) / CHUNK;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t c = 0; c < chunks; c++) {
        float eps[CHUNK];
        int64_t start = c * CHUNK, len = n - start < CHUNK ? n - start : CHUNK;
        normals_chunk(seed, (uint64_t)c, eps);
        for (int64_t i = 0; i < len; i++) out[start + i] = eps[i];
    }
}

/* out (kind SAMPLE, NOISE or VAR) of n weights; sums[0] += sum(sigma^2 + mu^2),
 * sums[1] += sum(log sigma). */
void bbb_forward(const float *restrict mu, const float *restrict rho, float *restrict out,
                 int64_t n, uint64_t seed, int kind, int threads, double *sums) {
    int64_t chunks = (n + CHUNK - 1) / CHUNK;
    double quad = 0.0, logs = 0.0;
#pragma omp parallel for num_threads(threads) schedule(static) reduction(+ : quad, logs)
    for (int64_t c = 0; c < chunks; c++) {
        float eps[CHUNK];
        int64_t start = c * CHUNK, len = n - start < CHUNK ? n - start : CHUNK;
        if (kind != VAR) normals_chunk(seed, (uint64_t)c, eps);
        const float *restrict m = mu + start, *restrict r = rho + start;
        float *restrict o = out + start;
        float q = 0.0f, l = 0.0f;
        /* one loop per kind: a kind test inside the loop would stop its vectorisation */
        if (kind == SAMPLE) {
#pragma omp simd reduction(+ : q, l)
            for (int64_t i = 0; i < len; i++) {
                float sigma = softplus(r[i]);
                o[i] = m[i] + sigma * eps[i];
                q += sigma * sigma + m[i] * m[i];
                l += logf(sigma);
            }
        } else if (kind == NOISE) {
#pragma omp simd reduction(+ : q, l)
            for (int64_t i = 0; i < len; i++) {
                float sigma = softplus(r[i]);
                o[i] = sigma * eps[i];
                q += sigma * sigma + m[i] * m[i];
                l += logf(sigma);
            }
        } else {
#pragma omp simd reduction(+ : q, l)
            for (int64_t i = 0; i < len; i++) {
                float sigma = softplus(r[i]);
                o[i] = sigma * sigma;
                q += sigma * sigma + m[i] * m[i];
                l += logf(sigma);
            }
        }
        quad += q;
        logs += l;
    }
    sums[0] += quad;
    sums[1] += logs;
}

/* grad_rho (and grad_mu, unless NULL) of <g, out> + kl_scale * KL, KL against N(0, prior_var);
 * g may be NULL (no gradient reached the output). */
void bbb_backward(const float *restrict mu, const float *restrict rho, const float *restrict g,
                  float *restrict grad_mu, float *restrict grad_rho, int64_t n, uint64_t seed,
                  int kind, float kl_scale, float prior_var, int threads) {
    int64_t chunks = (n + CHUNK - 1) / CHUNK;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t c = 0; c < chunks; c++) {
        float eps[CHUNK];
        int64_t start = c * CHUNK, len = n - start < CHUNK ? n - start : CHUNK;
        int need_eps = kind != VAR && g != 0;
        if (need_eps) normals_chunk(seed, (uint64_t)c, eps);
        const float *restrict m = mu + start, *restrict r = rho + start;
        const float *restrict gc = g ? g + start : 0;
        float *restrict gr = grad_rho + start, *restrict gm = grad_mu ? grad_mu + start : 0;
#pragma omp simd
        for (int64_t i = 0; i < len; i++) {
            float x = r[i];
            float e = expf(fminf(x, SOFTPLUS_LINEAR));
            float sigma = fmaxf(x > SOFTPLUS_LINEAR ? x : log1pf(e), SIGMA_MIN);
            float slope = x > SOFTPLUS_LINEAR ? 1.0f : e / (1.0f + e);
            float go = gc ? gc[i] : 0.0f;
            float grad_sigma = kind == VAR ? 2.0f * go * sigma : (need_eps ? go * eps[i] : 0.0f);
            grad_sigma += (sigma - prior_var / sigma) * kl_scale;
            gr[i] = grad_sigma * slope;
        }
        if (gm) {
#pragma omp simd
            for (int64_t i = 0; i < len; i++) {
                float go = (gc && kind == SAMPLE) ? gc[i] : 0.0f;
                gm[i] = go + m[i] * kl_scale;
            }
        }
    }
}
