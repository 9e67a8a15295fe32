/* io/sha256.c — SHA-256 for the case digest (io/case_digest.c), through OpenSSL's libcrypto: its
 * EVP SHA-256 uses the processor's SHA extensions where there are some (about 1.7 GB/s on the
 * build machine against about 0.2 GB/s for the portable C this file held before), and the digest
 * is on the path of every `run` and `check` (docs/performance.md, "Whole-process run").
 * tests/robustness/cli_cases.sh compares the digests written with coreutils' sha256sum.
 * Layer: io (libcrypto below it).
 */
#include "io_internal.h"

#include <openssl/evp.h>
#include <stdio.h>

#include "fm_internal.h"

fm_status fm_sha256_init(fm_sha256 *s)
{
    s->ctx = EVP_MD_CTX_new();
    if (!s->ctx || EVP_DigestInit_ex(s->ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(s->ctx);
        s->ctx = NULL;
        return fm_fail(FM_ERR_NOMEM, "SHA-256: cannot set up libcrypto's digest (out of memory)");
    }
    return FM_OK;
}

void fm_sha256_update(fm_sha256 *s, const void *data, size_t n)
{
    if (s->ctx && n) EVP_DigestUpdate(s->ctx, data, n);
}

void fm_sha256_discard(fm_sha256 *s)
{
    EVP_MD_CTX_free(s->ctx);
    s->ctx = NULL;
}

fm_status fm_sha256_hex(fm_sha256 *s, char hex[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    int ok = s->ctx && EVP_DigestFinal_ex(s->ctx, md, &len) == 1 && len == 32;
    hex[0] = '\0';
    if (ok)
        for (unsigned i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
    fm_sha256_discard(s);
    return ok ? FM_OK : fm_fail(FM_ERR_NOMEM, "SHA-256: libcrypto's digest failed");
}

