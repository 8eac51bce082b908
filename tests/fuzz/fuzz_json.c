/* The JSON parser (tools/json.c) on arbitrary bytes, then a walk of the
 * whole tree through every accessor, checking that they agree with each
 * other: counts match the iteration, each key finds its own value. */
#include <stdlib.h>
#include <string.h>

#include "../../tools/json.h"
#include "fuzz_util.h"

static void walk(const nb_json_val *v, int depth)
{
    int type = nb_json_type(v);
    if (type < NB_JSON_NULL || type > NB_JSON_OBJECT || !nb_json_type_name(type) ||
        depth > NB_JSON_MAX_DEPTH + 1)
        abort();
    double d;
    int64_t i;
    int b;
    size_t len;
    const char *s = nb_json_string(v, &len);
    if ((nb_json_number(v, &d) == 0) != (type == NB_JSON_NUMBER) ||
        (nb_json_bool(v, &b) == 0) != (type == NB_JSON_BOOL) ||
        (s != NULL) != (type == NB_JSON_STRING) ||
        (nb_json_int(v, &i) == 0 && type != NB_JSON_NUMBER) ||
        (s && (s[len] || strlen(s) > len)))
        abort();
    if (type == NB_JSON_NUMBER && nb_json_int(v, &i) == 0 && (double)i != d)
        abort(); /* an integral number reads the same both ways */
    size_t n = 0;
    for (const nb_json_val *c = nb_json_first(v); c; c = nb_json_next(c), n++) {
        if (type == NB_JSON_OBJECT) {
            size_t klen;
            const char *key = nb_json_string(c, &klen);
            const nb_json_val *val = nb_json_value(c);
            if (!key || !val)
                abort();
            /* keys are unique: lookup finds this very value (unless the
             * key holds \u0000, which never matches) */
            if (strlen(key) == klen && nb_json_get(v, key) != val)
                abort();
            walk(val, depth + 1);
        } else if (type == NB_JSON_ARRAY) {
            walk(c, depth + 1);
        } else {
            abort(); /* scalars have no children */
        }
    }
    if (n != nb_json_count(v))
        abort();
    if (type != NB_JSON_OBJECT && nb_json_get(v, "a"))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    nb_err e;
    nb_json *doc = nb_json_parse((const char *)data, size, &e);
    if (!doc) {
        if (!memchr(e.msg, 0, sizeof e.msg) || !e.msg[0])
            abort(); /* every failure says why */
        return 0;
    }
    const nb_json_val *root = nb_json_root(doc);
    if (!root)
        abort();
    walk(root, 0);
    /* NULL in, NULL out */
    if (nb_json_type(NULL) != -1 || nb_json_get(NULL, "a") || nb_json_count(NULL) ||
        nb_json_first(NULL) || nb_json_next(NULL) || nb_json_value(NULL) ||
        nb_json_string(NULL, NULL))
        abort();
    nb_json_free(doc);
    return 0;
}
