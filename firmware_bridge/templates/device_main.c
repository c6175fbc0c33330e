/* The device side of the serial protocol, built for the host: reads frames from a serial port
 * (a tty path, or "fd:N" for an inherited descriptor such as a pseudo-terminal master), runs kws
 * on AUDIO frames and answers as a microcontroller would. POSIX I/O lives here only; kws.c and
 * kws_protocol.c are what goes on the MCU. Usage: kws_device PORT */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kws.h"
#include "kws_protocol.h"

#define MAX_MODEL (256u * 1024u)

typedef struct {
    int fd;
    kws_state_t kws;
    int scores_on;
    /* two upload areas: the running model stays intact while a new one arrives */
    uint8_t store[2][MAX_MODEL] __attribute__((aligned(4)));
    int active;            /* which store the running uploaded model uses, -1: compiled-in */
    uint32_t up_size, up_crc, up_received;
    int uploading;
    kws_parser_t parser;
} device_t;

static device_t dev;

static void send_frame(uint8_t type, const uint8_t *payload, size_t len) {
    static uint8_t out[KWS_PROTO_MAX_PAYLOAD + 7];
    size_t n = kws_frame_encode(type, payload, len, out), done = 0;
    while (done < n) {
        ssize_t w = write(dev.fd, out + done, n - done);
        if (w <= 0) return;
        done += (size_t)w;
    }
}

static void ack(uint8_t type) { send_frame(KWS_MSG_ACK, &type, 1); }

static void nak(uint8_t type, int err) {
    uint8_t p[2] = {type, (uint8_t)(int8_t)err};
    send_frame(KWS_MSG_NAK, p, 2);
}

static void put_u32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static void on_step(void *ctx, uint32_t step, const float *scores) {
    uint8_t p[4 + 4 * KWS_N_KEYWORDS];
    (void)ctx;
    if (!dev.scores_on) return;
    put_u32(p, step);
    memcpy(p + 4, scores, 4 * KWS_N_KEYWORDS);
    send_frame(KWS_MSG_SCORE_FRAME, p, sizeof p);
}

static void audio(const uint8_t *payload, size_t len) {
    int16_t pcm[KWS_PROTO_MAX_PAYLOAD / 2];
    size_t n = len / 2, i;
    const int16_t *p = pcm;
    kws_event_t ev;
    for (i = 0; i < n; i++) pcm[i] = (int16_t)(payload[2 * i] | (payload[2 * i + 1] << 8));
    while (kws_process(&dev.kws, p, n, &ev)) {
        uint8_t e[9];
        e[0] = (uint8_t)ev.keyword;
        memcpy(e + 1, &ev.score, 4);
        put_u32(e + 5, ev.step);
        send_frame(KWS_MSG_EVENT, e, sizeof e);
        p += ev.consumed;
        n -= ev.consumed;
    }
}

static void handle(void *ctx, uint8_t type, const uint8_t *payload, size_t len) {
    int staging = dev.active == 0 ? 1 : 0;
    (void)ctx;
    switch (type) {
    case KWS_MSG_HELLO: {
        uint8_t p[256];
        size_t n = 4;
        int k;
        p[0] = KWS_PROTO_VERSION;
        p[1] = KWS_N_KEYWORDS;
        p[2] = (uint8_t)((KWS_STEP_FRAMES * KWS_HOP * 1000 / 16000) & 0xFF);
        p[3] = 0;
        for (k = 0; k < KWS_N_KEYWORDS; k++) {
            size_t l = strlen(kws_keywords[k]) + 1;
            if (n + l > sizeof p) break;
            memcpy(p + n, kws_keywords[k], l);
            n += l;
        }
        send_frame(KWS_MSG_VERSION, p, n);
        break;
    }
    case KWS_MSG_SET_THRESHOLD: {
        float t;
        if (len != 5) { nak(type, KWS_ERR_SIZE); break; }
        memcpy(&t, payload + 1, 4);
        if (kws_set_threshold(&dev.kws, payload[0], t)) nak(type, KWS_ERR_RANGE); else ack(type);
        break;
    }
    case KWS_MSG_AUDIO:
        if (len % 2) nak(type, KWS_ERR_SIZE); else audio(payload, len);
        break;
    case KWS_MSG_SCORES:
        if (len != 1) { nak(type, KWS_ERR_SIZE); break; }
        dev.scores_on = payload[0] != 0;
        ack(type);
        break;
    case KWS_MSG_MODEL_BEGIN:
        if (len != 8) { nak(type, KWS_ERR_SIZE); break; }
        dev.up_size = get_u32(payload);
        dev.up_crc = get_u32(payload + 4);
        if (dev.up_size == 0 || dev.up_size > MAX_MODEL) { nak(type, KWS_ERR_RANGE); break; }
        dev.up_received = 0;
        dev.uploading = 1;
        ack(type);
        break;
    case KWS_MSG_MODEL_BLOCK: {
        uint32_t off;
        if (!dev.uploading) { nak(type, KWS_ERR_STATE); break; }
        if (len < 4) { nak(type, KWS_ERR_SIZE); break; }
        off = get_u32(payload);
        if (off != dev.up_received || off + (len - 4) > dev.up_size) { nak(type, KWS_ERR_RANGE); break; }
        memcpy(dev.store[staging] + off, payload + 4, len - 4);
        dev.up_received += (uint32_t)(len - 4);
        ack(type);
        break;
    }
    case KWS_MSG_MODEL_COMMIT:
        if (!dev.uploading || dev.up_received != dev.up_size) { nak(type, KWS_ERR_STATE); break; }
        dev.uploading = 0;
        if (kws_crc32(dev.store[staging], dev.up_size, 0) != dev.up_crc) { nak(type, KWS_ERR_CRC); break; }
        if (kws_load_model(&dev.kws, dev.store[staging], dev.up_size)) { nak(type, KWS_ERR_MODEL); break; }
        dev.active = staging;
        ack(type);
        break;
    case KWS_MSG_STATS: {
        uint8_t p[12];
        put_u32(p, dev.parser.frames_ok);
        put_u32(p + 4, dev.parser.bad_frames);
        put_u32(p + 8, dev.parser.skipped_bytes);
        send_frame(KWS_MSG_STATS_REPLY, p, sizeof p);
        break;
    }
    default:
        nak(type, KWS_ERR_TYPE);
    }
}

int main(int argc, char **argv) {
    uint8_t buf[1024];
    ssize_t n;
    struct pollfd pfd;
    if (argc != 2) { fprintf(stderr, "usage: %s PORT|fd:N\n", argv[0]); return 2; }
    dev.fd = strncmp(argv[1], "fd:", 3) == 0 ? atoi(argv[1] + 3) : open(argv[1], O_RDWR | O_NOCTTY);
    if (dev.fd < 0) { perror(argv[1]); return 1; }
    if (kws_init(&dev.kws)) { fprintf(stderr, "bad compiled-in model\n"); return 1; }
    dev.kws.on_step = on_step;
    dev.active = -1;
    kws_parser_init(&dev.parser);
    pfd.fd = dev.fd;
    pfd.events = POLLIN;
    for (;;) {
        int ready = poll(&pfd, 1, KWS_PROTO_IDLE_MS);
        if (ready < 0 && errno == EINTR) continue;
        if (ready < 0) break;
        if (ready == 0) {   /* the line is quiet: an unfinished frame was not one */
            kws_parser_idle(&dev.parser, handle, NULL);
            continue;
        }
        if ((n = read(dev.fd, buf, sizeof buf)) <= 0) break;
        kws_parser_feed(&dev.parser, buf, (size_t)n, handle, NULL);
    }
    return 0;
}
