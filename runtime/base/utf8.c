#include "utf8.h"

#include <string.h>

int nb_utf8_char(const unsigned char *p, size_t n)
{
    unsigned char b = p[0], lo = 0x80, hi = 0xBF;
    int need;
    if (b < 0x80)
        return 1;
    if (b >= 0xC2 && b <= 0xDF)
        need = 2;
    else if (b >= 0xE0 && b <= 0xEF)
        need = 3;
    else if (b >= 0xF0 && b <= 0xF4)
        need = 4;
    else
        return 0;
    if (b == 0xE0)
        lo = 0xA0; /* overlong */
    else if (b == 0xED)
        hi = 0x9F; /* surrogates */
    else if (b == 0xF0)
        lo = 0x90; /* overlong */
    else if (b == 0xF4)
        hi = 0x8F; /* past U+10FFFF */
    for (int i = 1; i < need; i++) {
        if ((size_t)i >= n)
            return -1;
        if (p[i] < lo || p[i] > hi)
            return 0;
        lo = 0x80;
        hi = 0xBF;
    }
    return need;
}

/* 1 when the character at s (k bytes, k from nb_utf8_char) prints as
 * itself: valid, and not a C0 or C1 control or DEL. */
static int printable(const unsigned char *s, int k)
{
    if (k == 1)
        return s[0] >= 0x20 && s[0] != 0x7f;
    return k > 1 && !(s[0] == 0xc2 && s[1] < 0xa0);
}

char *nb_utf8_escape(char *dst, size_t cap, const char *src)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)src;
    size_t len = strlen(src), n = 0;
    for (size_t i = 0; i < len;) {
        int k = nb_utf8_char(s + i, len - i), keep = printable(s + i, k);
        size_t take = k > 0 ? (size_t)k : 1;
        if (n + (keep ? take : 4 * take) >= cap)
            break;
        for (size_t j = i; j < i + take; j++) {
            if (keep) {
                dst[n++] = (char)s[j];
                continue;
            }
            dst[n++] = '\\';
            dst[n++] = 'x';
            dst[n++] = hex[s[j] >> 4];
            dst[n++] = hex[s[j] & 15];
        }
        i += take;
    }
    dst[n] = 0;
    return dst;
}

size_t nb_utf8_bad_offset(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        int k = nb_utf8_char(s + i, len - i);
        if (k <= 0)
            return i;
        i += (size_t)k;
    }
    return len;
}
