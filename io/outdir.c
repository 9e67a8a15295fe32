/* io/outdir.c — atomic result directories: every file of a case or of an implementation's
 * results is written into a fresh temporary directory beside the target (same file system),
 * and one rename(2) makes them all appear at once. A failure removes the temporary directory,
 * so a reader never sees a partial result presented as complete. Layer: io <- core. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fm_internal.h"
#include "io_internal.h"

/* 1 if `path` is a directory with no entries besides . and .. */
static int is_empty_dir(const char *path)
{
    DIR *d = opendir(path);
    if (!d) return 0;
    struct dirent *e;
    int empty = 1;
    while (empty && (e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) empty = 0;
    closedir(d);
    return empty;
}

fm_status fm_io_outdir_begin(fm_io_outdir *o, const char *target)
{
    memset(o, 0, sizeof *o);
    size_t n = target ? strlen(target) : 0;
    while (n > 1 && target[n - 1] == '/') n--; /* "out/" is "out" */
    if (n == 0) return fm_fail(FM_ERR_INVALID, "output directory: empty path");
    if (n + 32 >= sizeof o->target)
        return fm_fail(FM_ERR_INVALID, "output directory '%s': path too long", target);
    memcpy(o->target, target, n);
    o->target[n] = '\0';

    /* split into parent and base name: the temporary directory is <parent>/.<base>.tmp-XXXXXX */
    const char *slash = strrchr(o->target, '/');
    const char *base = slash ? slash + 1 : o->target;
    if (strcmp(base, ".") == 0 || strcmp(base, "..") == 0 || strcmp(o->target, "/") == 0)
        return fm_fail(FM_ERR_INVALID, "output directory '%s': name a new directory", target);
    int parent_len = slash ? (int)(slash - o->target) : 0;
    int len = snprintf(o->tmp, sizeof o->tmp, "%.*s%s.%s.tmp-XXXXXX", parent_len, o->target,
                       slash ? "/" : "", base);
    if (len < 0 || (size_t)len >= sizeof o->tmp) {
        o->tmp[0] = '\0';
        return fm_fail(FM_ERR_INVALID, "output directory '%s': path too long", target);
    }

    struct stat sb;
    if (lstat(o->target, &sb) == 0 && !(S_ISDIR(sb.st_mode) && is_empty_dir(o->target))) {
        o->tmp[0] = '\0';
        return fm_fail(FM_ERR_IO, "output directory '%s' already exists and is not an empty "
                       "directory; remove it or choose another", o->target);
    }
    if (!mkdtemp(o->tmp)) {
        o->tmp[0] = '\0'; /* nothing to remove on abort */
        return fm_fail(FM_ERR_IO, "output directory '%s': cannot create a temporary directory "
                       "beside it: %s", o->target, strerror(errno));
    }
    /* mkdtemp makes the directory private (0700); give it the permissions mkdir would */
    mode_t mask = umask(0);
    umask(mask);
    chmod(o->tmp, 0777 & ~mask);
    return FM_OK;
}

fm_status fm_io_outdir_file(fm_io_outdir *o, const char *name, char *path, size_t cap)
{
    if (o->n_files >= FM_IO_MAX_FILES || strlen(name) >= sizeof o->files[0])
        return fm_fail(FM_ERR_INTERNAL, "output directory: too many files or name too long");
    if ((size_t)snprintf(path, cap, "%s/%s", o->tmp, name) >= cap)
        return fm_fail(FM_ERR_INVALID, "output directory '%s': path too long", o->target);
    snprintf(o->files[o->n_files++], sizeof o->files[0], "%s", name);
    return FM_OK;
}

fm_status fm_io_outdir_text(fm_io_outdir *o, const char *name, const char *text)
{
    char path[PATH_MAX];
    fm_status st = fm_io_outdir_file(o, name, path, sizeof path);
    if (st != FM_OK) return st;
    FILE *f = fopen(path, "wb");
    if (!f) return fm_fail(FM_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    size_t n = strlen(text);
    int ok = fwrite(text, 1, n, f) == n && fputc('\n', f) != EOF;
    if (fclose(f) != 0) ok = 0;
    return ok ? FM_OK : fm_fail(FM_ERR_IO, "%s: write failed", path);
}

void fm_io_outdir_abort(fm_io_outdir *o)
{
    char path[PATH_MAX + 40];
    for (int i = 0; i < o->n_files; i++) {
        snprintf(path, sizeof path, "%s/%s", o->tmp, o->files[i]);
        remove(path);
    }
    if (o->tmp[0]) rmdir(o->tmp);
    o->n_files = 0;
    o->tmp[0] = '\0';
}

fm_status fm_io_outdir_commit(fm_io_outdir *o)
{
    struct stat sb;
    /* an empty target directory (e.g. made by the caller) is replaced */
    if (lstat(o->target, &sb) == 0 && S_ISDIR(sb.st_mode) && is_empty_dir(o->target))
        rmdir(o->target);
    if (rename(o->tmp, o->target) != 0) {
        int err = errno;
        fm_io_outdir_abort(o);
        return fm_fail(FM_ERR_IO, "output directory '%s': cannot rename the completed "
                       "temporary directory into place: %s", o->target, strerror(err));
    }
    o->tmp[0] = '\0';
    return FM_OK;
}

FILE *fm_io_open_regular(const char *path, size_t *size)
{
    /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        fm_fail(FM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        fm_fail(FM_ERR_IO, "%s: not a regular file", path);
        return NULL;
    }
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        fm_fail(FM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    *size = (size_t)sb.st_size;
    return f;
}

fm_status fm_io_join(char *out, size_t cap, const char *dir, const char *name)
{
    if ((size_t)snprintf(out, cap, "%s/%s", dir, name) >= cap)
        return fm_fail(FM_ERR_INVALID, "%s: path too long", dir);
    return FM_OK;
}

/* Reads a whole case.json-sized text file (io_internal.h). */
fm_status fm_io_read_text(const char *path, char **text, size_t *size)
{
    *text = NULL;
    size_t file_size;
    FILE *f = fm_io_open_regular(path, &file_size); /* refuses FIFOs, devices, directories */
    if (!f) return FM_ERR_IO;
    if (file_size > CASE_JSON_MAX_BYTES) {
        fclose(f);
        return fm_fail(FM_ERR_IO, "%s: not a regular file of at most %d bytes", path,
                       CASE_JSON_MAX_BYTES);
    }
    char *buf = fm_alloc(file_size + 1, 1, path);
    if (!buf) {
        fclose(f);
        return FM_ERR_NOMEM;
    }
    size_t got = fread(buf, 1, file_size, f);
    int bad = ferror(f) || got != file_size;
    fclose(f);
    if (bad) {
        free(buf);
        return fm_fail(FM_ERR_IO, "%s: read failed", path);
    }
    buf[got] = '\0';
    *text = buf;
    *size = got;
    return FM_OK;
}
