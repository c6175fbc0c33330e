/* Serial framing for kws (see kws_protocol.h). */
#include "kws_protocol.h"

#include <string.h>

uint16_t kws_crc16(const uint8_t *data, size_t n, uint16_t crc) {
    size_t i;
    int b;
    for (i = 0; i < n; i++) {
        crc ^= (uint16_t)data[i] << 8;
        for (b = 0; b < 8; b++) crc = (crc & 0x8000u) ? (uint16_t)((crc << 1) ^ 0x1021u) : (uint16_t)(crc << 1);
    }
    return crc;
}

uint32_t kws_crc32(const uint8_t *data, size_t n, uint32_t crc) {
    size_t i;
    int b;
    crc = ~crc;
    for (i = 0; i < n; i++) {
        crc ^= data[i];
        for (b = 0; b < 8; b++) crc = (crc & 1u) ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
    }
    return ~crc;
}

void kws_parser_init(kws_parser_t *p) { memset(p, 0, sizeof *p); }

static void drop(kws_parser_t *p, size_t k) {
    memmove(p->buf, p->buf + k, p->n - k);
    p->n -= k;
}

/* Handle every whole frame at the start of the buffer; stop at an incomplete one. */
static void scan(kws_parser_t *p, kws_frame_handler_t handler, void *ctx) {
    for (;;) {
        size_t len, total;
        if (p->n >= 1 && p->buf[0] != 0xA5) { drop(p, 1); p->skipped_bytes++; continue; }
        if (p->n >= 2 && p->buf[1] != 0x5A) { drop(p, 1); p->skipped_bytes++; continue; }
        if (p->n < 5) break;
        len = (size_t)p->buf[3] | ((size_t)p->buf[4] << 8);
        if (len > KWS_PROTO_MAX_PAYLOAD) { p->bad_frames++; drop(p, 1); continue; }
        total = 5 + len + 2;
        if (p->n < total) break;
        if (kws_crc16(p->buf + 2, 3 + len, 0xFFFFu)
                != (uint16_t)(p->buf[5 + len] | (p->buf[6 + len] << 8))) {
            p->bad_frames++;
            drop(p, 1);
            continue;
        }
        p->frames_ok++;
        handler(ctx, p->buf[2], p->buf + 5, len);
        drop(p, total);
    }
}

void kws_parser_feed(kws_parser_t *p, const uint8_t *data, size_t n, kws_frame_handler_t handler,
                     void *ctx) {
    size_t i;
    for (i = 0; i < n; i++) {
        p->buf[p->n++] = data[i];
        scan(p, handler, ctx);
    }
}

void kws_parser_idle(kws_parser_t *p, kws_frame_handler_t handler, void *ctx) {
    while (p->n > 0) {   /* the line went quiet inside a frame: it was not one */
        p->bad_frames++;
        drop(p, 1);
        scan(p, handler, ctx);
    }
}

size_t kws_frame_encode(uint8_t type, const uint8_t *payload, size_t len, uint8_t *out) {
    uint16_t crc;
    out[0] = 0xA5;
    out[1] = 0x5A;
    out[2] = type;
    out[3] = (uint8_t)(len & 0xFF);
    out[4] = (uint8_t)(len >> 8);
    if (len) memcpy(out + 5, payload, len);
    crc = kws_crc16(out + 2, 3 + len, 0xFFFFu);
    out[5 + len] = (uint8_t)(crc & 0xFF);
    out[6 + len] = (uint8_t)(crc >> 8);
    return 7 + len;
}
