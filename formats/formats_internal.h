/* formats_internal.h : helpers shared by the format readers/writers (not public). */
#ifndef LQ_FORMATS_INTERNAL_H
#define LQ_FORMATS_INTERNAL_H

#include "lq_formats.h"
#include "lq_internal.h"

/* "float32", "bfloat16", ... (the torch name without "torch."); "float32" if none */
const char *lq__torch_dtype_name(lq_dtype t);

#endif
