/* flashmask.h — the public C API of libflashmask, one include for everything.
 * core.h: status, dtypes, problem, tensors, dispatch. masks.h + rules.h: the mask module.
 * reference.h, cpu.h, cuda.h: the implementations, each with the same calling shape.
 * io.h: .npy files and case directories.
 */
#ifndef FLASHMASK_H
#define FLASHMASK_H

#include "flashmask/core.h"
#include "flashmask/masks.h"
#include "flashmask/reference.h"
#include "flashmask/cpu.h"
#include "flashmask/cuda.h"
#include "flashmask/io.h"
#include "flashmask/sparse.h" /* bbm.h: Binary Block Masking, RCM; QK-/Hash-sparse */
#include "flashmask/layout.h" /* fm_layout_table: struct layouts for bindings */

#endif
