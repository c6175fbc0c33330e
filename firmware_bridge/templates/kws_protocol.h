/* Serial protocol between a host and a kws device (see firmware_bridge/protocol.py).
 *
 * Frame: 0xA5 0x5A | type u8 | length u16 LE | payload | CRC-16/CCITT-FALSE u16 LE over type,
 * length and payload. A frame with a bad CRC or length, or one the line goes quiet inside, is
 * counted and skipped; the parser then looks for the next 0xA5 0x5A after the first byte of the
 * bad frame, so it never loses sync.
 */
#ifndef KWS_PROTOCOL_H
#define KWS_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#define KWS_PROTO_VERSION 1
#define KWS_PROTO_MAX_PAYLOAD 4096
#define KWS_PROTO_IDLE_MS 50  /* a pause inside a frame longer than this ends it */

enum {
    KWS_MSG_HELLO = 0x01,         /* host: () -> VERSION */
    KWS_MSG_SET_THRESHOLD = 0x02, /* host: u8 keyword, f32 threshold -> ACK/NAK */
    KWS_MSG_AUDIO = 0x03,         /* host: int16 LE samples -> EVENT/SCORES as they happen */
    KWS_MSG_SCORES = 0x04,        /* host: u8 on -> ACK; then SCORES after every step */
    KWS_MSG_MODEL_BEGIN = 0x05,   /* host: u32 size, u32 crc32 -> ACK/NAK */
    KWS_MSG_MODEL_BLOCK = 0x06,   /* host: u32 offset, bytes -> ACK/NAK */
    KWS_MSG_MODEL_COMMIT = 0x07,  /* host: () -> ACK (new model running) / NAK (old kept) */
    KWS_MSG_STATS = 0x08,         /* host: () -> STATS */
    KWS_MSG_ACK = 0x80,           /* device: u8 acknowledged type */
    KWS_MSG_VERSION = 0x81,       /* device: u8 version, u8 keywords, u16 step ms, names \0-separated */
    KWS_MSG_EVENT = 0x83,         /* device: u8 keyword, f32 score, u32 step */
    KWS_MSG_SCORE_FRAME = 0x84,   /* device: u32 step, f32 score per keyword */
    KWS_MSG_STATS_REPLY = 0x88,   /* device: u32 frames ok, u32 bad frames, u32 skipped bytes */
    KWS_MSG_NAK = 0x8F            /* device: u8 type, i8 error */
};

enum { KWS_ERR_SIZE = -1, KWS_ERR_RANGE = -2, KWS_ERR_CRC = -3, KWS_ERR_MODEL = -4,
       KWS_ERR_STATE = -5, KWS_ERR_TYPE = -6 };

typedef struct {
    uint8_t buf[2 + 1 + 2 + KWS_PROTO_MAX_PAYLOAD + 2];
    size_t n;
    uint32_t frames_ok, bad_frames, skipped_bytes;
} kws_parser_t;

typedef void (*kws_frame_handler_t)(void *ctx, uint8_t type, const uint8_t *payload,
                                    size_t len);

uint16_t kws_crc16(const uint8_t *data, size_t n, uint16_t crc);
uint32_t kws_crc32(const uint8_t *data, size_t n, uint32_t crc);
void kws_parser_init(kws_parser_t *p);
/* Feed received bytes; calls handler for every valid frame. */
void kws_parser_feed(kws_parser_t *p, const uint8_t *data, size_t n, kws_frame_handler_t handler,
                     void *ctx);
/* Call when no byte arrived for KWS_PROTO_IDLE_MS: an incomplete frame then was a bad header
 * (a length nothing follows), so it is dropped and the bytes after its start are read again.
 * A header that declares a long length cannot make the device deaf to the frames after it. */
void kws_parser_idle(kws_parser_t *p, kws_frame_handler_t handler, void *ctx);
/* Encode a frame into out (size >= len + 7); returns its length. */
size_t kws_frame_encode(uint8_t type, const uint8_t *payload, size_t len, uint8_t *out);

#endif
