/* cuda/tma.cu — host side of tma.cuh: describing a tensor to Hopper's copy engine. The encoder
 * lives in the driver (libcuda); it is looked up once through the runtime, so that libflashmask
 * keeps linking only the static runtime. Layer: cuda (private).
 */
#include "tma.cuh"

typedef CUresult (*fm_encode_tiled_fn)(CUtensorMap *, CUtensorMapDataType, cuuint32_t, void *,
                                       const cuuint64_t *, const cuuint64_t *, const cuuint32_t *,
                                       const cuuint32_t *, CUtensorMapInterleave,
                                       CUtensorMapSwizzle, CUtensorMapL2promotion,
                                       CUtensorMapFloatOOBfill);

static fm_encode_tiled_fn encoder()
{
    static fm_encode_tiled_fn fn = nullptr;
    static bool looked = false;
    if (!looked) {
        void *f = nullptr;
        cudaDriverEntryPointQueryResult found;
        if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000,
                                             cudaEnableDefault, &found) == cudaSuccess &&
            found == cudaDriverEntryPointSuccess)
            fn = reinterpret_cast<fm_encode_tiled_fn>(f);
        looked = true;
    }
    return fn;
}

cudaError_t fm_tma_map_3d(CUtensorMap *map, const void *base, fm_tma_elem elem, uint64_t n0,
                          uint64_t n1, uint64_t n2, uint32_t box0, uint32_t box1,
                          bool swizzle128)
{
    const fm_encode_tiled_fn encode = encoder();
    if (!encode || !base) return cudaErrorNotSupported;
    const CUtensorMapDataType type = elem == FM_TMA_F16    ? CU_TENSOR_MAP_DATA_TYPE_FLOAT16
                                     : elem == FM_TMA_BF16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16
                                                           : CU_TENSOR_MAP_DATA_TYPE_INT32;
    const uint64_t elem_bytes = elem == FM_TMA_I32 ? 4 : 2;
    const cuuint64_t dims[3] = {n0, n1, n2};
    const cuuint64_t strides[2] = {n0 * elem_bytes, n0 * n1 * elem_bytes}; /* of dims 1 and 2 */
    const cuuint32_t box[3] = {box0, box1, 1}, unit[3] = {1, 1, 1};
    const CUresult r = encode(map, type, 3, const_cast<void *>(base), dims, strides, box, unit,
                              CU_TENSOR_MAP_INTERLEAVE_NONE,
                              swizzle128 ? CU_TENSOR_MAP_SWIZZLE_128B : CU_TENSOR_MAP_SWIZZLE_NONE,
                              CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                              CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    return r == CUDA_SUCCESS ? cudaSuccess : cudaErrorNotSupported;
}

cudaError_t fm_tma_map_1d(CUtensorMap *map, const void *base, fm_tma_elem elem, uint64_t n,
                          uint32_t box)
{
    const fm_encode_tiled_fn encode = encoder();
    if (!encode || !base) return cudaErrorNotSupported;
    const CUtensorMapDataType type = elem == FM_TMA_F16    ? CU_TENSOR_MAP_DATA_TYPE_FLOAT16
                                     : elem == FM_TMA_BF16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16
                                                           : CU_TENSOR_MAP_DATA_TYPE_INT32;
    const cuuint64_t dims[1] = {n}, strides[1] = {0}; /* rank 1: no stride is read */
    const cuuint32_t boxes[1] = {box}, unit[1] = {1};
    const CUresult r = encode(map, type, 1, const_cast<void *>(base), dims, strides, boxes, unit,
                              CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_NONE,
                              CU_TENSOR_MAP_L2_PROMOTION_NONE, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    return r == CUDA_SUCCESS ? cudaSuccess : cudaErrorNotSupported;
}
