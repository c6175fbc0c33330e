/* Host verification program: int16 PCM on stdin, fed to kws_process in chunks of CHUNK samples.
 * Prints one line per model step "S <step> <score>..." and per event "E <step> <keyword> <score>".
 * Usage: kws_host CHUNK [KEYWORD=THRESHOLD ...] < audio.pcm */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kws.h"

static void print_step(void *ctx, uint32_t step, const float *scores) {
    int k;
    (void)ctx;
    printf("S %lu", (unsigned long)step);
    for (k = 0; k < KWS_N_KEYWORDS; k++) printf(" %.7f", scores[k]);
    printf("\n");
}

int main(int argc, char **argv) {
    static kws_state_t kws;
    static int16_t pcm[1 << 16];
    size_t chunk, have;
    int i;
    kws_event_t ev;
    if (argc < 2 || (chunk = (size_t)strtoul(argv[1], NULL, 10)) == 0 || chunk > (1u << 16)) {
        fprintf(stderr, "usage: %s CHUNK(1..65536) [KEYWORD_INDEX=THRESHOLD ...] < pcm\n", argv[0]);
        return 2;
    }
    if (kws_init(&kws) != 0) { fprintf(stderr, "bad model blob\n"); return 1; }
    for (i = 2; i < argc; i++) {
        int k = atoi(argv[i]);
        const char *eq = strchr(argv[i], '=');
        if (!eq || kws_set_threshold(&kws, k, (float)atof(eq + 1)) != 0) {
            fprintf(stderr, "bad threshold %s\n", argv[i]);
            return 2;
        }
    }
    kws.on_step = print_step;
    while ((have = fread(pcm, sizeof(int16_t), chunk, stdin)) > 0) {
        const int16_t *p = pcm;
        while (kws_process(&kws, p, have, &ev)) {
            printf("E %lu %d %.7f\n", (unsigned long)ev.step, ev.keyword, ev.score);
            p += ev.consumed;
            have -= ev.consumed;
        }
    }
    return 0;
}
