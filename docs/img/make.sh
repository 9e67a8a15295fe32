#!/bin/sh
# docs/img/make.sh — regenerates the mask pictures of docs/gallery.md with `flashmask show`:
# every family with its default parameters at S = 128, tiles 16 x 16 (8 x 8 tiles), plus two
# pictures that show alignment (Sq != Sk) and the CPU layer's 128 x 128 tiles at S = 2048.
#   sh docs/img/make.sh build/tools/flashmask [OUTDIR]   (default OUTDIR: docs/img itself)
# tests/show regenerates them into a temporary OUTDIR and fails if they differ from these.
# Layer: documentation (uses the CLI only). Prints each picture's tile counts and densities.
set -eu
FM=${1:-build/tools/flashmask}
OUT=${2:-$(dirname "$0")}
for family in full causal sliding_window causal_document document shared_question \
              global_sliding_window causal_blockwise prefix_lm_causal prefix_lm_document \
              qk_sparse random_eviction; do
    "$FM" show --mask "$family" --seqlen 128 --block 16 --out "$OUT/$family.svg"
done
"$FM" show --mask causal --seqlen-q 64 --seqlen-k 128 --causal bottom_right --block 16 \
    --title "causal, Sq=64 Sk=128, bottom_right (FlashAttention >= 2.1, Paddle)" \
    --out "$OUT/causal-bottom-right-64x128.svg"
"$FM" show --mask causal --seqlen-q 64 --seqlen-k 128 --causal top_left --block 16 \
    --title "causal, Sq=64 Sk=128, top_left (FlexAttention)" \
    --out "$OUT/causal-top-left-64x128.svg"
"$FM" show --mask causal_document --seqlen 2048 --block 128 \
    --out "$OUT/causal_document-2048-cpu-tiles.svg"
