/* kws runtime: log-mel frontend, GRU step, detector (see kws.h). */
#include "kws.h"

#include <math.h>
#include <string.h>

static uint32_t read_u32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

int kws_parse_model(const uint8_t *blob, size_t n, kws_weights_t *w) {
    static const uint32_t shape[4] = {KWS_FEATURES, KWS_PROJ, KWS_HIDDEN, KWS_N_KEYWORDS};
    size_t i, ints, pos;
    const float *f;
    if (n < 24) return -1;
    if (read_u32(blob) != KWS_BLOB_MAGIC || read_u32(blob + 4) != KWS_BLOB_VERSION) return -2;
    for (i = 0; i < 4; i++)
        if (read_u32(blob + 8 + 4 * i) != shape[i]) return -3;
    ints = (size_t)KWS_PROJ * KWS_FEATURES + 3u * KWS_HIDDEN * KWS_PROJ
         + 3u * KWS_HIDDEN * KWS_HIDDEN + (KWS_N_KEYWORDS + 1u) * KWS_HIDDEN;
    pos = 24 + ((ints + 3u) & ~(size_t)3u);
    if (n != pos + 4u * (2u * KWS_PROJ + 12u * KWS_HIDDEN + 2u * (KWS_N_KEYWORDS + 1u)
                         + KWS_N_KEYWORDS)) return -1;
    w->proj_w = (const int8_t *)(blob + 24);
    w->ih_w = w->proj_w + KWS_PROJ * KWS_FEATURES;
    w->hh_w = w->ih_w + 3 * KWS_HIDDEN * KWS_PROJ;
    w->out_w = w->hh_w + 3 * KWS_HIDDEN * KWS_HIDDEN;
    f = (const float *)(const void *)(blob + pos);   /* blob is 4-byte aligned */
    w->proj_s = f; f += KWS_PROJ;
    w->proj_b = f; f += KWS_PROJ;
    w->ih_s = f; f += 3 * KWS_HIDDEN;
    w->ih_b = f; f += 3 * KWS_HIDDEN;
    w->hh_s = f; f += 3 * KWS_HIDDEN;
    w->hh_b = f; f += 3 * KWS_HIDDEN;
    w->out_s = f; f += KWS_N_KEYWORDS + 1;
    w->out_b = f; f += KWS_N_KEYWORDS + 1;
    w->thresholds = f;
    for (i = 0; i < KWS_N_KEYWORDS; i++)
        if (!(f[i] > 0.0f && f[i] <= 1.0f)) return -4;   /* NaN fails too */
    return 0;
}

void kws_reset(kws_state_t *s) {
    int k;
    s->filled = 0;
    s->n_frames = 0;
    s->mean_started = 0;
    s->step = 0;
    memset(s->h, 0, sizeof s->h);
    memset(s->recent, 0, sizeof s->recent);
    s->recent_pos = 0;
    s->pending = 0;
    for (k = 0; k < KWS_N_KEYWORDS; k++) {
        s->last_heard[k] = -1000000;
        s->above[k] = 0;
        s->armed[k] = 1;
    }
}

int kws_load_model(kws_state_t *s, const uint8_t *blob, size_t n) {
    kws_weights_t w;
    int k, err = kws_parse_model(blob, n, &w);
    if (err) return err;
    s->w = w;
    for (k = 0; k < KWS_N_KEYWORDS; k++) s->thresholds[k] = w.thresholds[k];
    kws_reset(s);
    return 0;
}

int kws_init(kws_state_t *s) {
    const double two_pi = 6.283185307179586;
    int i;
    memset(s, 0, sizeof *s);
    /* tables in RAM rather than flash (3.6 KB): computed in double, stored as float */
    for (i = 0; i < KWS_WINDOW; i++) s->window[i] = (float)(0.5 - 0.5 * cos(two_pi * i / KWS_WINDOW));
    for (i = 0; i < KWS_N_FFT / 2; i++) {
        s->cos_t[i] = (float)cos(two_pi * i / KWS_N_FFT);
        s->sin_t[i] = (float)sin(two_pi * i / KWS_N_FFT);
    }
    s->refractory_steps = KWS_REFRACTORY_STEPS;
    return kws_load_model(s, kws_model_blob, KWS_MODEL_BLOB_SIZE);
}

int kws_set_threshold(kws_state_t *s, int keyword, float threshold) {
    if (keyword < 0 || keyword >= KWS_N_KEYWORDS || !(threshold > 0.0f && threshold <= 1.0f))
        return -1;
    s->thresholds[keyword] = threshold;
    return 0;
}

/* In-place radix-2 complex FFT of size KWS_N_FFT with the state's twiddles. */
static void fft(const kws_state_t *s, float *re, float *im) {
    int i, j = 0, len, k;
    for (i = 1; i < KWS_N_FFT; i++) {
        int bit = KWS_N_FFT >> 1;
        for (; j & bit; bit >>= 1) j ^= bit;
        j ^= bit;
        if (i < j) {
            float t = re[i]; re[i] = re[j]; re[j] = t;
            t = im[i]; im[i] = im[j]; im[j] = t;
        }
    }
    for (len = 2; len <= KWS_N_FFT; len <<= 1) {
        int half = len >> 1, stride = KWS_N_FFT / len;
        for (i = 0; i < KWS_N_FFT; i += len) {
            for (k = 0; k < half; k++) {
                float wr = s->cos_t[k * stride], wi = -s->sin_t[k * stride];
                float xr = re[i + k + half] * wr - im[i + k + half] * wi;
                float xi = re[i + k + half] * wi + im[i + k + half] * wr;
                re[i + k + half] = re[i + k] - xr;
                im[i + k + half] = im[i + k] - xi;
                re[i + k] += xr;
                im[i + k] += xi;
            }
        }
    }
}

/* One frame of KWS_WINDOW samples -> KWS_N_MELS log-mel energies at out, minus their running
 * mean when KWS_MEAN_ALPHA > 0 (kws/frontend.py: m += a * (x - m); x - m). */
static void log_mel(kws_state_t *s, float *out) {
    int i, m;
    for (i = 0; i < KWS_WINDOW; i++) { s->re[i] = s->samples[i] * s->window[i]; s->im[i] = 0.0f; }
    for (; i < KWS_N_FFT; i++) { s->re[i] = 0.0f; s->im[i] = 0.0f; }
    fft(s, s->re, s->im);
    for (i = 0; i <= KWS_N_FFT / 2; i++) s->re[i] = s->re[i] * s->re[i] + s->im[i] * s->im[i];
    for (m = 0; m < KWS_N_MELS; m++) {
        float e = 0.0f;
        const float *wt = kws_mel_weights + kws_mel_offset[m];
        for (i = 0; i < kws_mel_count[m]; i++) e += s->re[kws_mel_first[m] + i] * wt[i];
        out[m] = logf(e + KWS_LOG_FLOOR);
    }
    if (KWS_MEAN_ALPHA > 0.0f) {
        if (!s->mean_started) { memcpy(s->mean, out, sizeof s->mean); s->mean_started = 1; }
        for (m = 0; m < KWS_N_MELS; m++) {
            s->mean[m] += KWS_MEAN_ALPHA * (out[m] - s->mean[m]);
            out[m] -= s->mean[m];
        }
    }
}

/* y[o] = scale[o] * sum_i q[o][i] x[i] + bias[o] */
static void dense(const int8_t *q, const float *scale, const float *bias, const float *x,
                  int n_in, int n_out, float *y) {
    int o, i;
    for (o = 0; o < n_out; o++) {
        const int8_t *row = q + (size_t)o * n_in;
        float acc = 0.0f;
        for (i = 0; i < n_in; i++) acc += (float)row[i] * x[i];
        y[o] = acc * scale[o] + bias[o];
    }
}

static float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

uint32_t kws_decide(kws_state_t *s, const float *scores) {
    int j, k;
    s->pending = 0;
    for (k = 0; k < KWS_N_KEYWORDS; k++) s->recent[s->recent_pos][k] = scores[k];
    s->recent_pos = (s->recent_pos + 1) % KWS_SMOOTHING_STEPS;
    for (k = 0; k < KWS_N_KEYWORDS; k++) {
        double total = 0.0;   /* oldest first, in double, as kws/core/decision.py sums */
        for (j = 0; j < KWS_SMOOTHING_STEPS; j++)
            total += (double)s->recent[(s->recent_pos + j) % KWS_SMOOTHING_STEPS][k];
        s->smoothed[k] = total / KWS_SMOOTHING_STEPS;
        if (s->smoothed[k] >= (double)s->thresholds[k]) {   /* NaN never is */
            if (s->above[k] < KWS_MIN_STEPS) s->above[k]++;
        } else {
            s->above[k] = 0;
        }
        if (s->above[k] < KWS_MIN_STEPS) {
            s->armed[k] = 1;
        } else if (!s->armed[k]) {
            s->last_heard[k] = (int32_t)s->step;   /* the run that fired goes on */
        } else if ((int32_t)s->step - s->last_heard[k] >= (int32_t)s->refractory_steps) {
            s->last_heard[k] = (int32_t)s->step;
            s->armed[k] = 0;
            s->pending |= 1u << k;
        }
    }
    s->event_step = s->step++;
    return s->pending;
}

/* Report the lowest pending keyword of the last decided step. */
static void pop_event(kws_state_t *s, kws_event_t *ev) {
    int k = 0;
    while (!(s->pending & (1u << k))) k++;
    s->pending &= ~(1u << k);
    ev->keyword = k;
    ev->score = (float)s->smoothed[k];
    ev->step = s->event_step;
}

/* One model step on s->frames: scores, then the decision rule. */
static void model_step(kws_state_t *s) {
    const int H = KWS_HIDDEN;
    int i, k;
    float logits[KWS_N_KEYWORDS + 1], top, total = 0.0f;
    dense(s->w.proj_w, s->w.proj_s, s->w.proj_b, s->frames, KWS_FEATURES, KWS_PROJ, s->proj);
    for (i = 0; i < KWS_PROJ; i++) if (s->proj[i] < 0.0f) s->proj[i] = 0.0f;
    dense(s->w.ih_w, s->w.ih_s, s->w.ih_b, s->proj, KWS_PROJ, 3 * H, s->gi);
    dense(s->w.hh_w, s->w.hh_s, s->w.hh_b, s->h, H, 3 * H, s->gh);
    for (i = 0; i < H; i++) {
        float r = sigmoid(s->gi[i] + s->gh[i]);
        float z = sigmoid(s->gi[H + i] + s->gh[H + i]);
        float n = tanhf(s->gi[2 * H + i] + r * s->gh[2 * H + i]);
        s->h_new[i] = n + z * (s->h[i] - n);
    }
    memcpy(s->h, s->h_new, sizeof s->h);
    dense(s->w.out_w, s->w.out_s, s->w.out_b, s->h, H, KWS_N_KEYWORDS + 1, logits);
    top = logits[0];
    for (k = 1; k <= KWS_N_KEYWORDS; k++) if (logits[k] > top) top = logits[k];
    for (k = 0; k <= KWS_N_KEYWORDS; k++) { logits[k] = expf(logits[k] - top); total += logits[k]; }
    for (k = 0; k < KWS_N_KEYWORDS; k++) s->scores[k] = logits[k + 1] / total;
    if (s->on_step) s->on_step(s->hook_ctx, s->step, s->scores);
    kws_decide(s, s->scores);
}

int kws_process(kws_state_t *s, const int16_t *pcm, size_t n, kws_event_t *ev) {
    size_t i;
    if (s->pending) {   /* another keyword of the last reported step */
        if (ev) { pop_event(s, ev); ev->consumed = 0; }
        else s->pending = 0;
        return ev != NULL;
    }
    for (i = 0; i < n; i++) {
        s->samples[s->filled++] = (float)pcm[i] * (1.0f / 32768.0f);
        if (s->filled < KWS_WINDOW) continue;
        log_mel(s, s->frames + s->n_frames * KWS_N_MELS);
        memmove(s->samples, s->samples + KWS_HOP, (KWS_WINDOW - KWS_HOP) * sizeof(float));
        s->filled = KWS_WINDOW - KWS_HOP;
        if (++s->n_frames < KWS_STEP_FRAMES) continue;
        s->n_frames = 0;
        model_step(s);
        if (s->pending && ev) {
            pop_event(s, ev);
            ev->consumed = i + 1;
            return 1;
        }
        s->pending = 0;
    }
    if (ev) ev->consumed = n;
    return 0;
}
