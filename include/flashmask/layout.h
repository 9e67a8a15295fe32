/* flashmask/layout.h — the library describes its own public structs: for each, its size and
 * the offset and size of every field, as this build of the library laid them out. Bindings
 * that mirror the structs by hand (python/flashmask/_lib.py, ctypes) compare their mirrors with
 * this table when they load the library and refuse to run on a mismatch, instead of reading and
 * writing the wrong bytes. Layer: abi, beside io and oracle (it reads every public header and
 * calls nothing). */
#ifndef FLASHMASK_LAYOUT_H
#define FLASHMASK_LAYOUT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One row: field == "" describes the struct itself (size = sizeof, offset = 0, align in
 * `align`); otherwise a field (offset = offsetof, size = sizeof the member, align 0). */
typedef struct fm_layout_entry {
    const char *type;  /* "fm_problem", ... */
    const char *field; /* "seqlen_q", ... or "" */
    size_t offset;
    size_t size;
    size_t align;
} fm_layout_entry;

/* The table (static storage) and its number of rows in *count. */
const fm_layout_entry *fm_layout_table(size_t *count);

#ifdef __cplusplus
}
#endif
#endif
