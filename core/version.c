/* core/version.c — fm_version(): the version this library was built as (FM_VERSION_STRING of
 * the generated flashmask/version.h, from meson.build). Layer: core. */
#include "flashmask/core.h"

const char *fm_version(void)
{
    return FM_VERSION_STRING;
}
