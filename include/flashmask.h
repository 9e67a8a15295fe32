/* flashmask.h — the public C API of libflashmask, one include for everything.
 * core.h: status, dtypes, problem, tensors. masks.h + rules.h + bbm.h: the mask module.
 * reference.h, cpu.h, cuda.h: the implementations, each with the same calling shape.
 * sparse.h: transforms beyond column masks. io.h: .npy files and case directories.
 * oracle.h: the pass rule. api.h: fm_forward / fm_backward and every other dispatch.
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
#include "flashmask/oracle.h"
#include "flashmask/api.h"
#include "flashmask/layout.h" /* fm_layout_table: struct layouts for bindings */

#endif
