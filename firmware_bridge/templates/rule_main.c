/* Host program for the decision rule alone (kws_decide), to check it against the Python one on
 * the same score tracks: one line of KWS_N_KEYWORDS scores per model step on stdin, the rule and
 * thresholds as compiled in; prints "E <step> <keyword> <smoothed score>" per event.
 * Usage: kws_rule < scores.txt */
#include <stdio.h>

#include "kws.h"

int main(void) {
    static kws_state_t kws;
    float scores[KWS_N_KEYWORDS];
    int k;
    if (kws_init(&kws) != 0) { fprintf(stderr, "bad model blob\n"); return 1; }
    for (;;) {
        uint32_t fired;
        for (k = 0; k < KWS_N_KEYWORDS; k++)
            if (scanf("%f", &scores[k]) != 1) return k == 0 ? 0 : 2;
        fired = kws_decide(&kws, scores);
        for (k = 0; k < KWS_N_KEYWORDS; k++)
            if (fired & (1u << k))
                printf("E %lu %d %.7f\n", (unsigned long)kws.event_step, k, kws.smoothed[k]);
    }
}
