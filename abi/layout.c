/* abi/layout.c — the table of fm_layout_table() (flashmask/layout.h): sizeof, alignment and
 * every field's offset and size of the public structs a binding may mirror. Adding a field to
 * one of these structs needs one F(...) line here; the Python binding then checks its mirror
 * against it at import. Layer: abi, beside io and oracle; includes every public header and
 * calls nothing. */
#include <stdalign.h>

#include "flashmask.h"
#include "flashmask/layout.h"

#define S(T) {#T, "", 0, sizeof(T), alignof(T)}
#define F(T, f) {#T, #f, offsetof(T, f), sizeof(((T *)0)->f), 0}

static const fm_layout_entry fm_layout_rows[] = {
    S(fm_problem), F(fm_problem, batch), F(fm_problem, q_heads), F(fm_problem, kv_heads),
    F(fm_problem, seqlen_q), F(fm_problem, seqlen_k), F(fm_problem, head_dim),
    F(fm_problem, scale), F(fm_problem, dtype), F(fm_problem, flags),

    S(fm_tensors), F(fm_tensors, q), F(fm_tensors, k), F(fm_tensors, v), F(fm_tensors, dout),
    F(fm_tensors, out), F(fm_tensors, lse), F(fm_tensors, dq), F(fm_tensors, dk),
    F(fm_tensors, dv),

    S(fm_mask), F(fm_mask, batch), F(fm_mask, heads), F(fm_mask, seqlen_q),
    F(fm_mask, seqlen_k), F(fm_mask, causal), F(fm_mask, bounds),

    S(fm_mask_params), F(fm_mask_params, family), F(fm_mask_params, window),
    F(fm_mask_params, global_tokens), F(fm_mask_params, left_window),
    F(fm_mask_params, right_window), F(fm_mask_params, prefix), F(fm_mask_params, n_docs),
    F(fm_mask_params, doc_lens), F(fm_mask_params, doc_prefix), F(fm_mask_params, n_samples),
    F(fm_mask_params, sample_segments), F(fm_mask_params, n_spans),
    F(fm_mask_params, span_offset), F(fm_mask_params, span_len),
    F(fm_mask_params, evict_start), F(fm_mask_params, seed),

    S(fm_tile_stats), F(fm_tile_stats, total), F(fm_tile_stats, masked),
    F(fm_tile_stats, partial), F(fm_tile_stats, unmasked),

    S(fm_block_summary), F(fm_block_summary, batch), F(fm_block_summary, heads),
    F(fm_block_summary, seqlen_q), F(fm_block_summary, seqlen_k), F(fm_block_summary, block_k),
    F(fm_block_summary, n_blocks), F(fm_block_summary, causal), F(fm_block_summary, minmax),

    S(fm_flex_block_mask), F(fm_flex_block_mask, batch), F(fm_flex_block_mask, heads),
    F(fm_flex_block_mask, n_q_blocks), F(fm_flex_block_mask, n_kv_blocks),
    F(fm_flex_block_mask, q_block), F(fm_flex_block_mask, kv_block),
    F(fm_flex_block_mask, kv_num_blocks), F(fm_flex_block_mask, kv_indices),
    F(fm_flex_block_mask, full_kv_num_blocks), F(fm_flex_block_mask, full_kv_indices),

    S(fm_tensor_check), F(fm_tensor_check, name), F(fm_tensor_check, dtype),
    F(fm_tensor_check, elements), F(fm_tensor_check, compared),
    F(fm_tensor_check, masked_checked), F(fm_tensor_check, max_abs),
    F(fm_tensor_check, mean_abs), F(fm_tensor_check, rel_fro), F(fm_tensor_check, naive_max_abs),
    F(fm_tensor_check, atol), F(fm_tensor_check, bound), F(fm_tensor_check, ratio),
    F(fm_tensor_check, ratio_at), F(fm_tensor_check, worst),
    F(fm_tensor_check, nan_count), F(fm_tensor_check, masked_bad), F(fm_tensor_check, pass),
    F(fm_tensor_check, where), F(fm_tensor_check, why), F(fm_tensor_check, naive_computed),

    S(fm_check_options), F(fm_check_options, dtype), F(fm_check_options, allow_fa2_inf_lse),
    F(fm_check_options, forward_only), F(fm_check_options, recompute), F(fm_check_options, rule),
    F(fm_check_options, naive),

    S(fm_check_report), F(fm_check_report, options), F(fm_check_report, n_tensors),
    F(fm_check_report, tensor), F(fm_check_report, masked_rows), F(fm_check_report, pass),

    S(fm_case), F(fm_case, problem), F(fm_case, mask), F(fm_case, mask_kind),
    F(fm_case, has_params), F(fm_case, mask_params), F(fm_case, seed), F(fm_case, q),
    F(fm_case, k), F(fm_case, v), F(fm_case, dout), F(fm_case, out), F(fm_case, lse),
    F(fm_case, dq), F(fm_case, dk), F(fm_case, dv),

    S(fm_results), F(fm_results, out), F(fm_results, lse), F(fm_results, dq),
    F(fm_results, dk), F(fm_results, dv),

    S(fm_bbm), F(fm_bbm, batch), F(fm_bbm, heads), F(fm_bbm, seqlen_q), F(fm_bbm, seqlen_k),
    F(fm_bbm, block_q), F(fm_bbm, block_k), F(fm_bbm, n_q_blocks), F(fm_bbm, n_k_blocks),
    F(fm_bbm, codes), F(fm_bbm, bits_offset), F(fm_bbm, bits), F(fm_bbm, words_per_tile),
    F(fm_bbm, n_partial), F(fm_bbm, run_start), F(fm_bbm, run_end),

    S(fm_any_mask), F(fm_any_mask, form), F(fm_any_mask, columns), F(fm_any_mask, bbm),

    S(fm_rcm_report), F(fm_rcm_report, before), F(fm_rcm_report, after),

    S(fm_cuda_mask), F(fm_cuda_mask, batch), F(fm_cuda_mask, heads), F(fm_cuda_mask, seqlen_q),
    F(fm_cuda_mask, seqlen_k), F(fm_cuda_mask, causal), F(fm_cuda_mask, block_k),
    F(fm_cuda_mask, n_blocks), F(fm_cuda_mask, bounds), F(fm_cuda_mask, summary),
    F(fm_cuda_mask, live_per_kblock),
};

const fm_layout_entry *fm_layout_table(size_t *count)
{
    if (count)
        *count = sizeof fm_layout_rows / sizeof fm_layout_rows[0];
    return fm_layout_rows;
}
