/* The JSON reading the importers share (tools/convert.c: jansson with
 * duplicate keys and NUL refused, a byte-order mark skipped) on arbitrary
 * bytes. A refusal says why in one line naming the line and column; what
 * parses survives a round trip (written out and read again, the same
 * tree), and every number reads as an integer through nb_json_i64 exactly
 * when it is integral, to the same value. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../tools/import/convert.h"
#include "fuzz_util.h"

static void walk(json_t *v, int depth)
{
    if (!v || depth > 2100 || !nb_json_kind(v))
        abort();
    int64_t i = 0;
    int integral = !nb_json_i64(v, &i);
    if (json_is_integer(v) && (!integral || i != json_integer_value(v)))
        abort();
    if (json_is_real(v)) {
        double d = json_real_value(v);
        int in_range = d >= -9223372036854775808.0 && d < 9223372036854775808.0;
        if (!isfinite(d) || integral != (d == floor(d) && in_range) ||
            (integral && (double)i != d))
            abort();
    }
    if (!json_is_number(v) && integral)
        abort();
    const char *s = json_string_value(v);
    if (json_is_string(v) && (!s || strlen(s) != json_string_length(v)))
        abort(); /* no NUL inside: names are never cut short */
    size_t k;
    json_t *x;
    const char *key;
    json_array_foreach(v, k, x) walk(x, depth + 1);
    json_object_foreach(v, key, x)
    {
        if (json_object_get(v, key) != x)
            abort(); /* keys are unique: lookup finds this very value */
        walk(x, depth + 1);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    nb_err e;
    json_t *root = nb_json_mem((const char *)data, size, &e);
    if (!root) {
        if (!memchr(e.msg, 0, sizeof e.msg) || strncmp(e.msg, "line ", 5) || strchr(e.msg, '\n'))
            abort(); /* every failure says where and why, in one line */
        return 0;
    }
    walk(root, 0);
    char *text = json_dumps(root, JSON_COMPACT);
    json_t *again = text ? nb_json_mem(text, strlen(text), &e) : NULL;
    if (!text || !again || !json_equal(root, again))
        abort();
    json_decref(again);
    free(text);
    json_decref(root);
    return 0;
}
