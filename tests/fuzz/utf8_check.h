/* An independent strict UTF-8 check for the property tests (fuzz_detok,
 * fuzz_spm): decodes code points and refuses overlongs, surrogates and
 * anything past U+10FFFF. Deliberately not tokenizer/utf8.c, whose
 * verdicts it checks. */
#ifndef NIBBLE_FUZZ_UTF8_CHECK_H
#define NIBBLE_FUZZ_UTF8_CHECK_H

#include <stddef.h>
#include <stdint.h>

static inline int fz_valid_utf8(const unsigned char *s, size_t n)
{
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    for (size_t i = 0; i < n;) {
        unsigned b = s[i];
        int len = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
        if (!len || i + (size_t)len > n)
            return 0;
        uint32_t cp = len == 1 ? b : b & (0x7fu >> len);
        for (int k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + k] & 0x3fu);
        }
        if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += (size_t)len;
    }
    return 1;
}

#endif
