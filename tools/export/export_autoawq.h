/* nibble export --to autoawq: a quantized .nib written back as an AutoAWQ
 * "gemm" Hugging Face folder (tools/export_autoawq.c, docs/export.md). */
#ifndef NIBBLE_EXPORT_AUTOAWQ_H
#define NIBBLE_EXPORT_AUTOAWQ_H

#include "../../runtime/base/err.h"

typedef struct nb_export_opts {
    const char *tokenizer_dir; /* the original folder's tokenizer files; NULL: from the .nib */
    int keep_dtypes;           /* plain tensors as the .nib holds them, not fp16 */
    int quiet;                 /* no progress, no notes */
} nb_export_opts;

/* Writes outdir (which must not exist) through outdir.tmp<pid>, renamed
 * into place only when complete and removed on failure, SIGINT, SIGTERM
 * or SIGHUP. One line in e when the model cannot be expressed. */
int nb_export_autoawq(const char *model, const char *outdir, const nb_export_opts *o, nb_err *e);

#endif
