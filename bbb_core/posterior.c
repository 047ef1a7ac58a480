/* Fused CPU kernels of a Bayes by Backprop layer's posterior: see bbb_core/native.py.
 *
 * For every weight, with sigma = softplus(rho) and eps ~ N(0, 1):
 *   forward:  out = mu + sigma * eps ("sample"), sigma * eps ("noise") or sigma^2 ("var"), and
 *             the summed KL[q || p]: closed form for a Gaussian prior N(0, var); for the scale
 *             mixture pi N(0, s1^2) + (1 - pi) N(0, s2^2) the one-sample Monte Carlo estimate
 *             log q(w) - log p(w) at w = mu + sigma * eps, the very sample of the output
 *             (Blundell et al. 2015, eq. 2);
 *   backward: d/dmu and d/drho of <g, out> + kl_grad * KL, recomputing sigma and eps.
 * One pass over the weights each way. eps is never stored: it is a pure function of (seed, index),
 * drawn by the counter-based Philox4x32-10 generator (Salmon et al., SC 2011) and the Box-Muller
 * transform, so the backward pass regenerates exactly the forward pass's draws.
 *
 * Built by native.py with -O3 -fno-math-errno -fopenmp, not -ffast-math: its -ffinite-math-only
 * lets the compiler assume that no NaN or inf occurs, and it then turns the NaN-keeping selects
 * below into min/max instructions that drop a NaN rho. The loops carry `omp simd`, and glibc's
 * vector maths library (libmvec) supplies the vectorised exp, log, log1p and sin, which keep NaN
 * and inf.
 */
#include <math.h>
#include <stdint.h>

/* glibc's <math.h> declares its libmvec variants to the vectoriser only under -ffast-math: without
 * these declarations every exp, log, log1p and sin would be a scalar call (training steps of the
 * 784-1200-1200-10 MLP 2 to 3 times slower; see docs/native.md) */
#if defined(__x86_64__) && defined(__GLIBC__) && !defined(__FAST_MATH__)
#define BBB_VECTOR_MATH __attribute__((__simd__("notinbranch")))
#if __GLIBC_PREREQ(2, 22)
BBB_VECTOR_MATH float expf(float);
BBB_VECTOR_MATH float logf(float);
BBB_VECTOR_MATH float sinf(float);
#endif
#if __GLIBC_PREREQ(2, 35)
BBB_VECTOR_MATH float log1pf(float);
#endif
#endif

#define LANE 256          /* Philox blocks per chunk; each block gives 4 normals */
#define CHUNK (4 * LANE)  /* weights per chunk: the unit of the parallel loops */
#define SOFTPLUS_LINEAR 20.0f /* above this, softplus(x) = x in float32 (as torch's threshold) */
#define SIGMA_MIN 1e-30f      /* keeps log sigma and prior_var / sigma finite where exp underflows */

enum { SAMPLE = 0, NOISE = 1, VAR = 2 };                 /* what the output is */
enum { PRIOR_NONE = 0, PRIOR_GAUSSIAN = 1, PRIOR_MIXTURE = 2 }; /* which KL comes with it */

/* x, but at most SOFTPLUS_LINEAR; NaN stays NaN (fminf would return the limit) */
static inline float softplus_arg(float x) {
    return x > SOFTPLUS_LINEAR ? SOFTPLUS_LINEAR : x;
}

/* y, but at least SIGMA_MIN; NaN stays NaN (fmaxf would return the limit) */
static inline float sigma_floor(float y) {
    return y < SIGMA_MIN ? SIGMA_MIN : y;
}

/* softplus(x) = log(1 + e^x), at least SIGMA_MIN; softplus(NaN) = NaN, as in PyTorch, so that a
 * diverged rho reaches the output and the KL */
static inline float softplus(float x) {
    float y = log1pf(expf(softplus_arg(x)));
    return sigma_floor(x > SOFTPLUS_LINEAR ? x : y);
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

/* The prior's constants, derived once per call. */
typedef struct {
    int kind;
    float var, inv_var, kl_const;      /* Gaussian: variance, 1 / variance, 0.5 log var - 0.5 */
    float log_w1, log_w2, h1, h2;      /* mixture: log(pi / s1), log((1 - pi) / s2), 0.5 / s^2 */
    float log_w12, h12;                /* mixture: log_w1 - log_w2, h1 - h2 */
} prior_t;

static prior_t make_prior(int kind, float p0, float p1, float p2) {
    prior_t p = {kind, 1.0f, 1.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    if (kind == PRIOR_GAUSSIAN) {
        p.var = p0;
        p.inv_var = 1.0f / p0;
        p.kl_const = 0.5f * logf(p0) - 0.5f;
    } else if (kind == PRIOR_MIXTURE) {
        p.log_w1 = logf(p0) - logf(p1);
        p.log_w2 = log1pf(-p0) - logf(p2);
        p.h1 = 0.5f / (p1 * p1);
        p.h2 = 0.5f / (p2 * p2);
        p.log_w12 = p.log_w1 - p.log_w2;
        p.h12 = p.h1 - p.h2;
    }
    return p;
}

static inline int needs_noise(int kind, int prior, int has_grad) {
    return (kind != VAR && has_grad) || prior == PRIOR_MIXTURE;
}

/* One chunk of the forward pass; inlined with constant kind and prior, so that each of the nine
 * combinations compiles to its own branch-free vectorised loop. Returns the chunk's KL. */
static inline __attribute__((always_inline)) float forward_chunk(
    const float *restrict m, const float *restrict r, const float *restrict eps,
    float *restrict o, int64_t len, int kind, prior_t p) {
    float kl = 0.0f;
#pragma omp simd reduction(+ : kl)
    for (int64_t i = 0; i < len; i++) {
        float sigma = softplus(r[i]);
        float e = kind == VAR && p.kind != PRIOR_MIXTURE ? 0.0f : eps[i];
        /* sigma * e alone for NOISE: 0 + sigma * e would cost an add (IEEE: 0 + -0 = +0) */
        o[i] = kind == VAR ? sigma * sigma : (kind == SAMPLE ? m[i] + sigma * e : sigma * e);
        if (p.kind == PRIOR_GAUSSIAN) {
            kl += (sigma * sigma + m[i] * m[i]) * (0.5f * p.inv_var) - logf(sigma) + p.kl_const;
        } else if (p.kind == PRIOR_MIXTURE) {
            float w = m[i] + sigma * e, w2 = w * w;
            float a = p.log_w1 - w2 * p.h1, b = p.log_w2 - w2 * p.h2;
            /* log(e^a + e^b); a - b from its own formula stays +-inf where w^2 overflows (where
             * a - b would be inf - inf = NaN), so that log p(w) = -inf and the KL = +inf there */
            float log_prior = fmaxf(a, b) + log1pf(expf(-fabsf(p.log_w12 - w2 * p.h12)));
            kl += -logf(sigma) - 0.5f * e * e - log_prior;
        }
    }
    return kl;
}

/* One chunk of the backward pass (see forward_chunk). g is never NULL here: a zero chunk stands
 * in for a missing output gradient. */
static inline __attribute__((always_inline)) void backward_chunk(
    const float *restrict m, const float *restrict r, const float *restrict g,
    const float *restrict eps, float *restrict gm, float *restrict gr, int64_t len, int kind,
    prior_t p, float kl_grad) {
#pragma omp simd
    for (int64_t i = 0; i < len; i++) {
        float x = r[i];
        float ex = expf(softplus_arg(x));
        float sigma = sigma_floor(x > SOFTPLUS_LINEAR ? x : log1pf(ex));
        float slope = x > SOFTPLUS_LINEAR ? 1.0f : ex / (1.0f + ex);
        float e = (kind == VAR && p.kind != PRIOR_MIXTURE) ? 0.0f : eps[i];
        float grad_mu = kind == SAMPLE ? g[i] : 0.0f;
        float grad_sigma = kind == VAR ? 2.0f * g[i] * sigma : g[i] * e;
        if (p.kind == PRIOR_GAUSSIAN) {
            float scale = kl_grad * p.inv_var;
            grad_mu += m[i] * scale;
            grad_sigma += (sigma - p.var / sigma) * scale;
        } else if (p.kind == PRIOR_MIXTURE) {
            float w = m[i] + sigma * e, w2 = w * w;
            /* the components' responsibilities, each from its own exp: 1 - r1 would lose the
             * relative precision of a small r2, which the narrow component's large h2 magnifies;
             * a - b clamped so that both exps stay finite */
            float ab = fminf(fmaxf(p.log_w12 - w2 * p.h12, -80.0f), 80.0f);
            float r1 = 1.0f / (1.0f + expf(-ab)), r2 = 1.0f / (1.0f + expf(ab));
            float d = w * 2.0f * (r1 * p.h1 + r2 * p.h2); /* -d log p(w) / dw */
            grad_mu += kl_grad * d;
            grad_sigma += kl_grad * (d * e - 1.0f / sigma);
        }
        gm[i] = grad_mu;
        gr[i] = grad_sigma * slope;
    }
}

/* out (kind SAMPLE, NOISE or VAR) of n weights, and *kl += their summed KL against the prior
 * (prior PRIOR_NONE, PRIOR_GAUSSIAN with p0 its variance, or PRIOR_MIXTURE with p0 = pi,
 * p1 = s1, p2 = s2). */
void bbb_forward(const float *restrict mu, const float *restrict rho, float *restrict out,
                 int64_t n, uint64_t seed, int kind, int prior, float p0, float p1, float p2,
                 int threads, double *kl) {
    const prior_t p = make_prior(prior, p0, p1, p2);
    const int noise = needs_noise(kind, prior, 1);
    int64_t chunks = (n + CHUNK - 1) / CHUNK;
    double total = 0.0;
#pragma omp parallel for num_threads(threads) schedule(static) reduction(+ : total)
    for (int64_t c = 0; c < chunks; c++) {
        float eps[CHUNK];
        int64_t start = c * CHUNK, len = n - start < CHUNK ? n - start : CHUNK;
        if (noise) normals_chunk(seed, (uint64_t)c, eps);
        const float *m = mu + start, *r = rho + start;
        float *o = out + start;
        prior_t q = p;
        float part = 0.0f;
#define FWD(K, P) q.kind = P; part = forward_chunk(m, r, eps, o, len, K, q)
        switch (kind * 3 + prior) {
        case 0: FWD(SAMPLE, PRIOR_NONE); break;
        case 1: FWD(SAMPLE, PRIOR_GAUSSIAN); break;
        case 2: FWD(SAMPLE, PRIOR_MIXTURE); break;
        case 3: FWD(NOISE, PRIOR_NONE); break;
        case 4: FWD(NOISE, PRIOR_GAUSSIAN); break;
        case 5: FWD(NOISE, PRIOR_MIXTURE); break;
        case 6: FWD(VAR, PRIOR_NONE); break;
        case 7: FWD(VAR, PRIOR_GAUSSIAN); break;
        default: FWD(VAR, PRIOR_MIXTURE); break;
        }
#undef FWD
        total += part;
    }
    *kl += total;
}

/* grad_mu and grad_rho of <g, out> + kl_grad * KL (see bbb_forward); g may be NULL (no gradient
 * reached the output). */
void bbb_backward(const float *restrict mu, const float *restrict rho, const float *restrict g,
                  float *restrict grad_mu, float *restrict grad_rho, int64_t n, uint64_t seed,
                  int kind, int prior, float p0, float p1, float p2, float kl_grad, int threads) {
    static const float zeros[CHUNK];
    const prior_t p = make_prior(prior, p0, p1, p2);
    const int noise = needs_noise(kind, prior, g != 0);
    int64_t chunks = (n + CHUNK - 1) / CHUNK;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t c = 0; c < chunks; c++) {
        float eps[CHUNK];
        int64_t start = c * CHUNK, len = n - start < CHUNK ? n - start : CHUNK;
        if (noise) normals_chunk(seed, (uint64_t)c, eps);
        else for (int64_t i = 0; i < len; i++) eps[i] = 0.0f;
        const float *m = mu + start, *r = rho + start, *gc = g ? g + start : zeros;
        float *gm = grad_mu + start, *gr = grad_rho + start;
        prior_t q = p;
#define BWD(K, P) q.kind = P; backward_chunk(m, r, gc, eps, gm, gr, len, K, q, kl_grad)
        switch (kind * 3 + prior) {
        case 0: BWD(SAMPLE, PRIOR_NONE); break;
        case 1: BWD(SAMPLE, PRIOR_GAUSSIAN); break;
        case 2: BWD(SAMPLE, PRIOR_MIXTURE); break;
        case 3: BWD(NOISE, PRIOR_NONE); break;
        case 4: BWD(NOISE, PRIOR_GAUSSIAN); break;
        case 5: BWD(NOISE, PRIOR_MIXTURE); break;
        case 6: BWD(VAR, PRIOR_NONE); break;
        case 7: BWD(VAR, PRIOR_GAUSSIAN); break;
        default: BWD(VAR, PRIOR_MIXTURE); break;
        }
#undef BWD
    }
}
