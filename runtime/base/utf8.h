/* Strict UTF-8 (RFC 3629: no overlongs, no surrogates, nothing past
 * U+10FFFF), the rules SentencePiece decodes by. One validator for the
 * tokenizer, the detokenizer and the JSON reader. */
#ifndef NIBBLE_UTF8_H
#define NIBBLE_UTF8_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The character at p (n bytes available): its length if complete and
 * valid, 0 if p cannot start a valid character, -1 if it may still
 * become one with more bytes. */
int nb_utf8_char(const unsigned char *p, size_t n);

/* Offset of the first invalid or cut-short sequence, len if all valid. */
size_t nb_utf8_bad_offset(const unsigned char *s, size_t len);

/* src made safe for a terminal, in dst (cap >= 1, always terminated, cut
 * at a whole character): every byte of a control character (C0, DEL,
 * C1 as U+0080..U+009F) or of invalid UTF-8 is written as \xNN, so
 * names and messages read from files cannot drive the terminal. Returns
 * dst. */
char *nb_utf8_escape(char *dst, size_t cap, const char *src);

#ifdef __cplusplus
}
#endif

#endif
