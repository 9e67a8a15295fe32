/* io/io_internal.h — helpers shared by the io/ sources only: cJSON conversions of mask
 * parameters and the atomic output directory. Layer: io <- masks <- core. Not installed. */
#ifndef FM_IO_INTERNAL_H
#define FM_IO_INTERNAL_H

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>

#include "flashmask/io.h"

/* mask_params <-> cJSON object (io/params_json.c); messages name `where`. Values outside
 * [0, 2^53] are refused (JSON numbers are doubles). */
fm_status fm_io_params_to_cjson(const fm_mask_params *p, cJSON **out);
fm_status fm_io_params_from_cjson(fm_mask_params *p, fm_family f, const cJSON *obj,
                                  const char *where);
/* Makes every number under `node` (and its siblings) print exactly: integers as integers,
 * others with 17 significant digits (cJSON's own printing may drop the last bit). Call it
 * right before printing: the numbers become raw text. */
fm_status fm_io_json_exact(cJSON *node);

/* A JSON number that is an integer in [0, 2^53]; the message names where and key. */
fm_status fm_io_json_count(const cJSON *v, const char *where, const char *key, int64_t *out);

/* out = "dir/name"; FM_ERR_INVALID naming dir when it does not fit in cap. */
fm_status fm_io_join(char *out, size_t cap, const char *dir, const char *name);

/* Opens `path` for reading only if it is a regular file; NULL with FM_ERR_IO recorded otherwise.
 * The open is non-blocking, so a FIFO or a device planted where a case file belongs is refused
 * instead of blocking the reader forever; `size` receives the file's size. */
FILE *fm_io_open_regular(const char *path, size_t *size);

/* Reads a whole regular file of at most 64 MiB (case.json) into a NUL-terminated malloc'd
 * buffer (free()); refuses FIFOs, devices and larger files with FM_ERR_IO naming the path. */
fm_status fm_io_read_text(const char *path, char **text, size_t *size);

/* An output directory that appears only when complete (io/outdir.c): files are written into
 * a temporary directory beside the target, which commit renames into place. */
enum { FM_IO_MAX_FILES = 16 };
typedef struct fm_io_outdir {
    char target[PATH_MAX];
    char tmp[PATH_MAX];
    char files[FM_IO_MAX_FILES][32]; /* names written so far, removed again by abort */
    int n_files;
} fm_io_outdir;

/* Refuses a target that exists and is not an empty directory; creates the temporary one. */
fm_status fm_io_outdir_begin(fm_io_outdir *o, const char *target);
/* The path of file `name` inside the temporary directory (recorded for abort). */
fm_status fm_io_outdir_file(fm_io_outdir *o, const char *name, char *path, size_t cap);
/* Writes `text` and a newline as file `name` (case.json) of the temporary directory. */
fm_status fm_io_outdir_text(fm_io_outdir *o, const char *name, const char *text);
/* Renames the temporary directory onto the target. On failure it aborts. */
fm_status fm_io_outdir_commit(fm_io_outdir *o);
/* Removes the files written and the temporary directory; the target is left untouched. */
void fm_io_outdir_abort(fm_io_outdir *o);

/* Case tensors (io/case.c): inputs finite and already rounded to dtype; expected outputs finite
 * (lse may be -inf: fully masked rows). The message names `path` and the element. */
fm_status fm_io_check_input(const char *path, const double *x, size_t n, fm_dtype dtype);
fm_status fm_io_check_output(const char *path, const double *x, size_t n, int is_lse);

/* case.json's text before parsing (io/json_prescan.c): refuses a \u0000 escape, an integer
 * literal beyond 2^53 and more than max_values JSON values, naming `name` and the byte. */
fm_status fm_io_json_prescan(const char *text, size_t size, const char *name, size_t max_values);

/* SHA-256 (io/sha256.c, libcrypto), for the case digest. init may fail (out of memory, the
 * message recorded); hex finishes s (64 hex digits + NUL) and discard abandons it: after init
 * exactly one of them releases s. */
typedef struct fm_sha256 {
    struct evp_md_ctx_st *ctx; /* OpenSSL's EVP_MD_CTX */
} fm_sha256;
fm_status fm_sha256_init(fm_sha256 *s);
void fm_sha256_update(fm_sha256 *s, const void *data, size_t n);
fm_status fm_sha256_hex(fm_sha256 *s, char hex[65]);
void fm_sha256_discard(fm_sha256 *s);

/* fm_npy_read that also feeds every byte of the file, as read, to `hash` (initialised by the
 * caller; NULL: no hash): the file is read once, straight into the array (io/npy.c). */
fm_status fm_io_npy_read_hashed(const char *path, fm_npy *out, fm_sha256 *hash);

/* A float tensor file (<f8, <f4 or <f2) of exactly `shape`, read once (io/npy.c): as read
 * (fm_io_read_float_file), or as a new float64 buffer (fm_io_load_f64_hashed; free()). With `hash` (initialised by the caller) every byte of the file
 * is hashed as read and the digest finished into hex (discarded on failure). */
fm_status fm_io_read_float_file(const char *path, int ndim, const int64_t *shape,
                                const char *dims, fm_npy *a, fm_sha256 *hash, char hex[65]);
fm_status fm_io_load_f64_hashed(const char *path, int ndim, const int64_t *shape,
                                const char *dims, double **out, fm_sha256 *hash, char hex[65]);
double *fm_io_npy_to_f64(const fm_npy *a, const char *path); /* a's elements widened; NULL: OOM */
/* An input tensor [4 dims] read the same way (io/case_tensors.c), checked finite and rounded
 * to dtype, into *f64 or, when f32 is non-NULL, into *f32 as float32 (a float32 file as read;
 * float64 values rounded to float32 after their check). */
fm_status fm_io_load_input(const char *path, const int64_t shape[4], const char *dims,
                           fm_dtype dtype, fm_sha256 *hash, char hex[65], double **f64,
                           float **f32);

/* The case digest (io/case_digest.c): case.json's "digest" member holds the SHA-256 of the
 * parameters (the document without "digest", as cJSON prints it unformatted) and of each case
 * file present. fm_io_digest_seal returns `json` (a case.json text without digest) with the
 * digest of the files now in `dir` added (malloc'd, free()). fm_io_digest_verify checks a case
 * directory against its case.json text: FM_OK when the digest matches (*has_digest = 1) or
 * there is none (*has_digest = 0); FM_ERR_FORMAT naming the file or the parameters that
 * changed, were added or were removed otherwise. */
fm_status fm_io_digest_seal(const char *dir, const char *json, char **sealed);
fm_status fm_io_digest_verify(const char *dir, const char *json, size_t size, int *has_digest);
/* The same for a reader that hashed some files from the very bytes it read (`known`, n_known
 * of them: not read again) and, with skip_outputs, does not read the expected outputs
 * (out/lse/dq/dk/dv.npy): their presence is still checked against the digest's list, their
 * bytes are not hashed (`check`, which reads them, verifies them). */
typedef struct fm_io_file_hash {
    const char *file; /* "q.npy" */
    char hex[65];
} fm_io_file_hash;
fm_status fm_io_digest_verify_read(const char *dir, const char *json, size_t size,
                                   const fm_io_file_hash *known, int n_known, int skip_outputs,
                                   int *has_digest);
/* Writing a case directory (io/case.c, io/dense_case.c) around its case.json text `json`
 * (malloc'd; these two own it): fm_io_case_begin starts the directory `dir` (on failure it frees
 * `json`); the case files are written; fm_io_case_finish, when `st` (the status of the files
 * written) is FM_OK, seals `json` and writes it as case.json, then commits; it frees `json`, and
 * any failure, earlier or there, aborts the directory. */
fm_status fm_io_case_begin(fm_io_outdir *o, const char *dir, char *json);
fm_status fm_io_case_finish(fm_io_outdir *o, fm_status st, char *json);
/* Validates the shape of a "digest" member (fm_case_parse_json): an object of strings. */
fm_status fm_io_digest_check_member(const cJSON *digest, const char *where);

/* The largest case.json read (fm_io_read_text): qk_sparse span lists can be long, not this long. */
enum { CASE_JSON_MAX_BYTES = 64 << 20 };

#endif
