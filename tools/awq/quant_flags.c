/* The quantization flags quantize and convert --quantize share: one
 * parser, one help text, the same defaults. */
#define _POSIX_C_SOURCE 200809L
#include "quant_flags.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../cli.h"

void nb_quant_init(nb_quant *q)
{
    memset(q, 0, sizeof *q);
    q->bits = 4;
    q->group = 128;
    q->calib_tokens = NB_QUANT_TOKENS;
    q->check_windows = NB_QUANT_CHECK_WINDOWS;
    q->search_tokens = NB_QUANT_SEARCH_TOKENS;
    q->output_group = NB_QUANT_OUTPUT_GROUP;
}

static int parse_group(const char *s, long *group)
{
    if (!strcmp(s, "row") || !strcmp(s, "0"))
        return *group = 0, 0;
    if (!strcmp(s, "32") || !strcmp(s, "64") || !strcmp(s, "128"))
        return *group = atol(s), 0;
    return nb_error("--group must be 32, 64, 128 or row, got '%s'", s), -1;
}

static int parse_choice(const char *flag, const char *s, const char *a, const char *b, int *is_b)
{
    if (strcmp(s, a) && strcmp(s, b))
        return nb_error("%s must be %s or %s, got '%s'", flag, a, b, s), -1;
    *is_b = !strcmp(s, b);
    return 0;
}

int nb_quant_method(nb_quant *q, const char *flag, const char *value)
{
    return parse_choice(flag, value, "awq", "rtn", &q->rtn);
}

int nb_quant_switch(nb_quant *q, const char *flag)
{
    int *flags[] = {&q->symmetric, &q->no_scale, &q->no_clip, &q->fake, &q->output_f16};
    const char *names[] = {"--symmetric", "--no-scale", "--no-clip", "--fake-quant",
                           "--output-f16"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (!strcmp(flag, names[i])) {
            if (!q->first)
                q->first = names[i];
            return *flags[i] = 1;
        }
    return 0;
}

static int value_flag(nb_quant *q, const char *a, const char *v)
{
    if (!strcmp(a, "--calib"))
        q->calib = v;
    else if (!strcmp(a, "--bits")) {
        if (strcmp(v, "3") && strcmp(v, "4"))
            return nb_error("--bits must be 4 or 3, got '%s'", v), -1;
        q->bits = atol(v);
    } else if (!strcmp(a, "--group"))
        return parse_group(v, &q->group);
    else if (!strcmp(a, "--output-group"))
        return parse_group(v, &q->output_group);
    else if (!strcmp(a, "--output-method")) {
        int rtn;
        if (parse_choice(a, v, "awq", "rtn", &rtn))
            return -1;
        q->output_method = rtn ? NB_QUANT_RTN : NB_QUANT_AWQ;
    }
    else if (!strcmp(a, "--scale"))
        return parse_choice(a, v, "duo", "x", &q->x_only);
    else if (!strcmp(a, "--calib-tokens"))
        return nb_parse_int(a, v, 1, 1L << 26, &q->calib_tokens);
    else if (!strcmp(a, "--check"))
        q->check = v;
    else if (!strcmp(a, "--check-windows"))
        return nb_parse_int(a, v, 1, 1L << 20, &q->check_windows);
    else if (!strcmp(a, "--search-tokens"))
        return nb_parse_int(a, v, 0, 1L << 26, &q->search_tokens);
    else if (!strcmp(a, "-t") || !strcmp(a, "--threads"))
        return nb_parse_int(a, v, 1, 256, &q->threads);
    else
        return 1;
    return 0;
}

int nb_quant_flag(nb_quant *q, const char *cmd, const char *flag, const char *value)
{
    int rc = value_flag(q, flag, value);
    if (rc > 0)
        return nb_error("%s: unknown option '%s' (see --help)", cmd, flag), -1;
    if (!rc && !q->first)
        q->first = flag;
    return rc;
}

int nb_quant_output_awq(const nb_quant *q)
{
    if (q->output_f16)
        return 0;
    return q->output_method ? q->output_method == NB_QUANT_AWQ : !q->rtn;
}

int nb_quant_needs_calib(const nb_quant *q)
{
    return (!q->rtn || nb_quant_output_awq(q)) && !(q->no_scale && q->no_clip);
}

/* A text file the run will read: a non-empty regular file (what names it). */
static int text_file(const char *path, const char *what)
{
    struct stat st;
    if (stat(path, &st))
        return nb_error("cannot open '%s': %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return nb_error("%s '%s' is not a regular file", what, path);
    if (!st.st_size)
        return nb_error("%s '%s' is empty", what, path);
    return 0;
}

int nb_quant_check(const nb_quant *q, const char *method_flag)
{
    if (q->check && text_file(q->check, "--check text"))
        return 1;
    if (!q->rtn && !q->calib)
        return nb_error("AWQ needs calibration text: --calib TEXT (or %s rtn)", method_flag);
    if (nb_quant_output_awq(q) && !q->calib)
        return nb_error("AWQ of the output layer needs calibration text: --calib TEXT (or "
                        "--output-method rtn)");
    return nb_quant_needs_calib(q) ? text_file(q->calib, "calibration text") : 0;
}

void nb_quant_help(FILE *out)
{
    fprintf(out,
            "  --calib TEXT        calibration text, UTF-8, like what the model will see;\n"
            "                      tokenized once with BOS and cut into blocks of %d tokens\n"
            "                      (the model's context if shorter)\n"
            "  --bits N            4 or 3 (default: 4)\n"
            "  --group G           input channels sharing a scale and zero point: 32, 64,\n"
            "                      128, or row (also 0) for one group per row (default:\n"
            "                      128). A group wider than a linear's input spans the whole\n"
            "                      row; the last group of a row is shorter when G does not\n"
            "                      divide it\n"
            "  --calib-tokens N    calibration tokens (default: %d, %d blocks of %d)\n"
            "  --search-tokens N   calibration tokens on which the scale search evaluates its\n"
            "                      losses (whole blocks spread over the set; the activation\n"
            "                      statistics use every token); 0 = all (default: %d)\n"
            "  -t, --threads N     worker threads (default: one per big core); the output is the\n"
            "                      same for any number\n"
            "  --symmetric         symmetric groups (zero point fixed at the middle)\n"
            "  --scale S           duo (default): activation and weight statistics; x:\n"
            "                      activations only, as in the paper\n"
            "  --no-scale, --no-clip  ablations: skip the scale or the clip search\n"
            "  --fake-quant        store the quantized weights dequantized, as f32 (for\n"
            "                      measurements; the packed file computes the same)\n"
            "  --output-f16        keep the output layer as it is (f16, bf16 or f32, as\n"
            "                      converted; tied to the embedding if it was). By default it\n"
            "                      is quantized to INT%d (whatever --bits) and written as a\n"
            "                      tensor of its own: a tied embedding stays as it is, for\n"
            "                      the lookups\n"
            "  --output-group G    the output layer's group: 32, 64, 128 or row (default: %d)\n"
            "  --output-method M   awq: the output layer's scales (output_norm -> output) and\n"
            "                      clipping searched, on the final norm's output; rtn: round\n"
            "                      to nearest (default: as --method)\n"
            "  --check TEXT        then say what the quantization cost: perplexity on TEXT\n"
            "                      before and after (windows of %d tokens, the context if\n"
            "                      shorter; TEXT should not be the calibration text)\n"
            "  --check-windows N   how many windows --check scores (default: %d)\n",
            NB_QUANT_BLOCK, NB_QUANT_TOKENS, NB_QUANT_TOKENS / NB_QUANT_BLOCK, NB_QUANT_BLOCK,
            NB_QUANT_SEARCH_TOKENS, NB_QUANT_OUTPUT_BITS, NB_QUANT_OUTPUT_GROUP, NB_QUANT_BLOCK,
            NB_QUANT_CHECK_WINDOWS);
}
