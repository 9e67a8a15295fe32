/* io/case_digest.c — the digest that makes a case self-consistent or refused (docs/robustness.md,
 * "Case digest"). case.json carries
 *     "digest": {"algorithm": "sha256", "parameters": HEX, "files": {"q.npy": HEX, ...}}
 * where "parameters" hashes the document without its digest as cJSON prints it unformatted
 * (every problem parameter, the mask's kind and parameters, the seed) and "files" hashes the
 * bytes of every case file present when the case was written (mask, inputs, expected outputs,
 * dense masks and their keep flags / buckets). A reader recomputes both and refuses a case whose
 * parameters or files changed, or which gained or lost a file, naming which.
 * Layer: io (used by io/case.c and the dense-case loader in sparse/).
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "flashmask/io.h"
#include "fm_internal.h"
#include "io_internal.h"

/* Every file name a case directory may hold besides case.json. */
static const char *const case_files[] = {
    "mask.npy", "mask_dense.npy", "q.npy",      "k.npy",      "v.npy",
    "do.npy",   "out.npy",        "lse.npy",    "dq.npy",     "dk.npy",
    "dv.npy",   "q_keep.npy",     "k_keep.npy", "q_buckets.npy", "k_buckets.npy",
};
enum { N_CASE_FILES = sizeof case_files / sizeof case_files[0] };

static int present(const char *dir, const char *name)
{
    char path[PATH_MAX];
    struct stat sb;
    return fm_io_join(path, sizeof path, dir, name) == FM_OK && lstat(path, &sb) == 0;
}

/* SHA-256 of a regular file's bytes (FIFOs and devices refused by fm_io_open_regular). */
static fm_status hash_file(const char *dir, const char *name, char hex[65])
{
    char path[PATH_MAX];
    fm_status st = fm_io_join(path, sizeof path, dir, name);
    if (st != FM_OK) return st;
    size_t size;
    FILE *f = fm_io_open_regular(path, &size);
    if (!f) return FM_ERR_IO;
    enum { CHUNK = 1 << 16 };
    unsigned char *buf = fm_alloc(CHUNK, 1, "digest buffer");
    if (!buf) {
        fclose(f);
        return FM_ERR_NOMEM;
    }
    fm_sha256 s;
    if ((st = fm_sha256_init(&s)) != FM_OK) {
        fclose(f);
        free(buf);
        return st;
    }
    size_t got, total = 0;
    while ((got = fread(buf, 1, CHUNK, f)) > 0) fm_sha256_update(&s, buf, got), total += got;
    int bad = ferror(f) || total != size;
    fclose(f);
    free(buf);
    if (bad) {
        fm_sha256_discard(&s);
        return fm_fail(FM_ERR_IO, "%s: read failed or the file changed while being read", path);
    }
    return fm_sha256_hex(&s, hex);
}

/* The parameters' hash: root without its "digest" member, printed unformatted. */
static fm_status hash_parameters(const cJSON *root, char hex[65])
{
    cJSON *copy = cJSON_Duplicate(root, 1);
    if (!copy) return fm_fail(FM_ERR_NOMEM, "case digest: out of memory");
    cJSON_DeleteItemFromObjectCaseSensitive(copy, "digest");
    char *text = cJSON_PrintUnformatted(copy);
    cJSON_Delete(copy);
    if (!text) return fm_fail(FM_ERR_NOMEM, "case digest: out of memory");
    fm_sha256 s;
    fm_status st = fm_sha256_init(&s);
    if (st == FM_OK) {
        fm_sha256_update(&s, text, strlen(text));
        st = fm_sha256_hex(&s, hex);
    }
    free(text);
    return st;
}

fm_status fm_io_digest_seal(const char *dir, const char *json, char **sealed)
{
    *sealed = NULL;
    cJSON *root = cJSON_Parse(json);
    if (!root) return fm_fail(FM_ERR_NOMEM, "case digest: cannot re-read case.json");
    char hex[65];
    fm_status st = hash_parameters(root, hex);
    cJSON *digest = cJSON_CreateObject(), *files = cJSON_CreateObject();
    int ok = st == FM_OK && digest && files;
    ok = ok && cJSON_AddStringToObject(digest, "algorithm", "sha256");
    ok = ok && cJSON_AddStringToObject(digest, "parameters", hex);
    for (int i = 0; ok && st == FM_OK && i < N_CASE_FILES; i++) {
        if (!present(dir, case_files[i])) continue;
        if ((st = hash_file(dir, case_files[i], hex)) == FM_OK)
            ok = cJSON_AddStringToObject(files, case_files[i], hex) != NULL;
    }
    if (ok && st == FM_OK) {
        ok = cJSON_AddItemToObject(digest, "files", files);
        files = NULL;
        ok = ok && cJSON_AddItemToObject(root, "digest", digest);
        digest = NULL;
    }
    cJSON_Delete(files);
    cJSON_Delete(digest);
    /* numbers exactly as the unsealed text had them (the scale to the last bit) */
    if (ok && st == FM_OK) st = fm_io_json_exact(root->child);
    if (ok && st == FM_OK) *sealed = cJSON_Print(root);
    cJSON_Delete(root);
    if (st != FM_OK) return st;
    return *sealed ? FM_OK : fm_fail(FM_ERR_NOMEM, "case digest: out of memory");
}

fm_status fm_io_digest_check_member(const cJSON *d, const char *where)
{
    const cJSON *alg = cJSON_GetObjectItemCaseSensitive(d, "algorithm");
    const cJSON *par = cJSON_GetObjectItemCaseSensitive(d, "parameters");
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(d, "files");
    if (!cJSON_IsObject(d) || !cJSON_IsString(alg) || strcmp(alg->valuestring, "sha256") != 0 ||
        !cJSON_IsString(par) || !cJSON_IsObject(files) || cJSON_GetArraySize(d) != 3)
        return fm_fail(FM_ERR_FORMAT, "%s: 'digest' must be {\"algorithm\": \"sha256\", "
                       "\"parameters\": HEX, \"files\": {NAME: HEX, ...}}", where);
    for (const cJSON *f = files->child; f; f = f->next) {
        int known = 0;
        for (int i = 0; i < N_CASE_FILES; i++) known |= strcmp(f->string, case_files[i]) == 0;
        if (!known || !cJSON_IsString(f))
            return fm_fail(FM_ERR_FORMAT, "%s: digest.files: '%.64s' is not a case file with a "
                           "hash", where, f->string);
    }
    return FM_OK;
}

/* The expected outputs: files a reader that only runs an implementation does not read. */
static int is_expected_output(const char *name)
{
    static const char *const outputs[] = {"out.npy", "lse.npy", "dq.npy", "dk.npy", "dv.npy"};
    for (int i = 0; i < 5; i++)
        if (strcmp(name, outputs[i]) == 0) return 1;
    return 0;
}

fm_status fm_io_digest_verify(const char *dir, const char *json, size_t size, int *has_digest)
{
    return fm_io_digest_verify_read(dir, json, size, NULL, 0, 0, has_digest);
}

fm_status fm_io_digest_verify_read(const char *dir, const char *json, size_t size,
                                   const fm_io_file_hash *known, int n_known, int skip_outputs,
                                   int *has_digest)
{
    *has_digest = 0;
    char where[PATH_MAX];
    if (fm_io_join(where, sizeof where, dir, "case.json") != FM_OK) snprintf(where, 16, "case.json");
    cJSON *root = cJSON_ParseWithLength(json, size);
    if (!root) return fm_fail(FM_ERR_FORMAT, "%s: invalid JSON", where);
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(root, "digest");
    fm_status st = FM_OK;
    if (!d) goto done; /* a case written before digests: the caller decides */
    if ((st = fm_io_digest_check_member(d, where)) != FM_OK) goto done;
    *has_digest = 1;
    char hex[65];
    if ((st = hash_parameters(root, hex)) != FM_OK) goto done;
    const cJSON *par = cJSON_GetObjectItemCaseSensitive(d, "parameters");
    if (strcmp(par->valuestring, hex) != 0) {
        st = fm_fail(FM_ERR_FORMAT, "%s: the case's parameters changed after it was written (their "
                     "digest differs); regenerate the case", where);
        goto done;
    }
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(d, "files");
    for (int i = 0; i < N_CASE_FILES; i++) {
        const cJSON *want = cJSON_GetObjectItemCaseSensitive(files, case_files[i]);
        int here = present(dir, case_files[i]);
        if (!want && !here) continue;
        if (!want) {
            st = fm_fail(FM_ERR_FORMAT, "%s/%s was added after the case was written (its digest "
                         "does not list it); remove it or regenerate the case", dir, case_files[i]);
            goto done;
        }
        if (!here) {
            st = fm_fail(FM_ERR_FORMAT, "%s/%s was removed after the case was written (its digest "
                         "lists it)", dir, case_files[i]);
            goto done;
        }
        if (skip_outputs && is_expected_output(case_files[i])) continue; /* not read */
        const char *got = NULL;
        for (int k = 0; k < n_known && !got; k++)
            if (strcmp(known[k].file, case_files[i]) == 0) got = known[k].hex;
        if (!got) {
            if ((st = hash_file(dir, case_files[i], hex)) != FM_OK) goto done;
            got = hex;
        }
        if (strcmp(want->valuestring, got) != 0) {
            st = fm_fail(FM_ERR_FORMAT, "%s/%s changed after the case was written (its SHA-256 "
                         "differs from the digest in case.json); regenerate the case", dir,
                         case_files[i]);
            goto done;
        }
    }
done:
    cJSON_Delete(root);
    return st;
}

fm_status fm_case_verify_digest(const char *dir, int *has_digest)
{
    int sealed = 0;
    if (has_digest) *has_digest = 0;
    if (!dir) return fm_fail(FM_ERR_INVALID, "case digest: NULL directory");
    char path[PATH_MAX], *text = NULL;
    size_t size = 0;
    fm_status st = fm_io_join(path, sizeof path, dir, "case.json");
    if (st == FM_OK) st = fm_io_read_text(path, &text, &size);
    if (st == FM_OK) st = fm_io_digest_verify(dir, text, size, &sealed);
    free(text);
    if (has_digest) *has_digest = sealed;
    return st;
}

fm_status fm_io_case_begin(fm_io_outdir *o, const char *dir, char *json)
{
    fm_status st = fm_io_outdir_begin(o, dir);
    if (st != FM_OK) free(json);
    return st;
}

fm_status fm_io_case_finish(fm_io_outdir *o, fm_status st, char *json)
{
    char *sealed = NULL;
    if (st == FM_OK) st = fm_io_digest_seal(o->tmp, json, &sealed);
    free(json);
    if (st == FM_OK) st = fm_io_outdir_text(o, "case.json", sealed);
    free(sealed);
    if (st != FM_OK) {
        fm_io_outdir_abort(o);
        return st;
    }
    return fm_io_outdir_commit(o);
}
