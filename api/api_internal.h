/* api/api_internal.h — what the API layer's files share. Layer: api (private header). */
#ifndef FM_API_INTERNAL_H
#define FM_API_INTERNAL_H

#include "flashmask.h"

/* Forward (backward = 0) or backward of the cpu layer on validated float64 host tensors, under
 * `columns` (the column form) or, when it is NULL, `bbm` (api/cpu_bridge.c). */
fm_status fm_api_cpu(int backward, const fm_problem *p, const fm_mask *columns, const fm_bbm *bbm,
                     fm_tensors *t);

#endif
