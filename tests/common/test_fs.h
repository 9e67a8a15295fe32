/* tests/common/test_fs.h — file-system helpers for the suites that write case directories
 * and files (tests/cli/, tests/robustness/test_files.c): a scratch directory per suite, joining
 * paths, rm -r, and counting what a directory holds (to see that a save left nothing temporary
 * behind).
 * Meson: part of fm_prop_dep (tests/common/meson.build). Layer: tests.
 */
#ifndef FM_TEST_FS_H
#define FM_TEST_FS_H

#include <stddef.h>

/* The suite's scratch directory: fm_test_tmpdir_setup, as the cmocka group setup, makes
 * /tmp/fm-test-XXXXXX; fm_test_tmpdir_teardown removes it and fails unless the tests left it
 * empty. */
extern char fm_test_tmpdir[256];
int fm_test_tmpdir_setup(void **state);
int fm_test_tmpdir_teardown(void **state);

/* out = "dir/name" (truncated to cap). */
void fm_test_path(char *out, size_t cap, const char *dir, const char *name);

/* rm -r of a directory these tests made (or remove of a file); missing paths are ignored. */
void fm_test_remove_tree(const char *dir);

/* Number of entries of dir besides . and ..; -1 when dir cannot be opened. */
int fm_test_count_entries(const char *dir);

/* Removes the "digest" member from dir/case.json, as a case written before digests existed:
 * for tests that change a case's files on purpose. Returns 0 on success. */
int fm_test_unseal(const char *dir);

#endif
