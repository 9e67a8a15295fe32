/* tests/common/test_fs.c — the helpers of test_fs.h. Layer: tests (POSIX only). */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include "test_fs.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char fm_test_tmpdir[256];

int fm_test_tmpdir_setup(void **state)
{
    (void)state;
    snprintf(fm_test_tmpdir, sizeof fm_test_tmpdir, "/tmp/fm-test-XXXXXX");
    return mkdtemp(fm_test_tmpdir) ? 0 : -1;
}

int fm_test_tmpdir_teardown(void **state)
{
    (void)state;
    return rmdir(fm_test_tmpdir);
}

void fm_test_path(char *out, size_t cap, const char *dir, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

static int is_dot(const char *name) { return !strcmp(name, ".") || !strcmp(name, ".."); }

void fm_test_remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        remove(dir); /* a file, or nothing */
        return;
    }
    struct dirent *e;
    char p[1024];
    while ((e = readdir(d))) {
        if (is_dot(e->d_name)) continue;
        fm_test_path(p, sizeof p, dir, e->d_name);
        struct stat sb;
        if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode)) fm_test_remove_tree(p);
        else remove(p);
    }
    closedir(d);
    rmdir(dir);
}

int fm_test_count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (!is_dot(e->d_name)) n++;
    closedir(d);
    return n;
}

int fm_test_unseal(const char *dir)
{
    char path[1024];
    fm_test_path(path, sizeof path, dir, "case.json");
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    static char text[1 << 20];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    /* the digest is the document's last member (io/case_digest.c writes it so) */
    char *d = strstr(text, "\"digest\"");
    if (!d) return 0;
    char *comma = d;
    while (comma > text && *comma != ',') comma--;
    if (*comma != ',') return -1;
    strcpy(comma, "\n}\n");
    f = fopen(path, "wb");
    if (!f) return -1;
    int ok = fputs(text, f) >= 0;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}
