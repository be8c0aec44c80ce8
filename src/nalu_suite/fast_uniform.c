/* torch's CPU uniform_ on float32, bit for bit, in one tight loop.
 *
 * torch's CPU generator is MT19937 (Matsumoto & Nishimura, 1998): a 624-word state, "twisted" every 624
 * outputs, each output tempered. A float32 draw keeps the output's low 24 bits,
 * u = (y & (2^24 - 1)) * 2^-24, and returns v = u * (high - low) + low, fused into one fma where torch's
 * kernel was compiled for FMA hardware (`fused`); a v that rounded up to `high` becomes `low`.
 * fast_uniform.py checks the result against torch before it uses this. Compiled with -O3 -march=native
 * the conversion loop vectorises: about 6x faster than torch's element-by-element kernel.
 */
#include <stdint.h>

#define N 624
#define M 397

static inline uint32_t twist_word(uint32_t upper, uint32_t lower, uint32_t far) {
    uint32_t y = (upper & 0x80000000u) | (lower & 0x7fffffffu);
    return far ^ (y >> 1) ^ ((0u - (y & 1u)) & 0x9908b0dfu);
}

/* The next 624 words of the state, in place (three loops: no index wraps inside a loop). */
static void twist(uint32_t *restrict s) {
    int i = 0;
    for (; i < N - M; i++) s[i] = twist_word(s[i], s[i + 1], s[i + M]);
    for (; i < N - 1; i++) s[i] = twist_word(s[i], s[i + 1], s[i + M - N]);
    s[N - 1] = twist_word(s[N - 1], s[0], s[M - 1]);
}

static inline float uniform(uint32_t y, float range, float low, float high, int fused) {
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    float u = (float)(y & 0xffffffu) * (1.0f / 16777216.0f);
    float v = fused ? __builtin_fmaf(u, range, low) : u * range + low;
    return v == high ? low : v; /* torch keeps draws in [low, high) so */
}

static void fill(uint32_t *restrict state, int32_t *position, float *restrict out, int64_t n,
                 float low, float high, int fused) {
    int64_t done = 0;
    int32_t p = *position;
    const float range = high - low;
    while (done < n) {
        if (p >= N) {
            twist(state);
            p = 0;
        }
        int64_t take = N - p < n - done ? N - p : n - done;
        const uint32_t *words = state + p;
        float *dst = out + done;
        for (int64_t k = 0; k < take; k++) dst[k] = uniform(words[k], range, low, high, fused);
        p += (int32_t)take;
        done += take;
    }
    *position = p;
}

/* Fill out[0:n] with U[low, high) draws from `state`, whose next word is state[*position]
 * (*position == 624: twist first); advances state and *position. */
void fill_uniform(uint32_t *state, int32_t *position, float *out, int64_t n, float low, float high,
                  int fused) {
    if (fused)  /* two copies of the loop, each with a constant `fused` */
        fill(state, position, out, n, low, high, 1);
    else
        fill(state, position, out, n, low, high, 0);
}
