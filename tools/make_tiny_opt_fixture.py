#!/usr/bin/env python3
"""Builds the golden fixture for flexrt's OPT test: a tiny random OPT and HF transformers' outputs for it.

Writes into --out:
  weights/<name>      one .npy (fp16) per tensor, FlexLLMGen's numpy-directory names (no extension)
  config.txt          key = value lines: the tiny model's shape (read by the C++ test)
  prompts.npy         int64 (n_prompts, prompt_len), left-padded with pad id 1
  prompt_lens.npy     int64 (n_prompts,)
  tokens.npy          int64 (n_prompts, gen_len): HF's greedy tokens
  logits.npy          float64 (n_prompts, gen_len, vocab): HF's next-token logits at each step

--variant post_ln builds the opt-350m architecture instead: post-LayerNorm layers, no final layer norm, and
token embeddings of a smaller width projected in and out (word_embed_proj_dim != hidden_size).

The reference is independent of flexrt: HF's OPTForCausalLM in float64 with the same fp16-rounded weights,
re-run on the whole sequence at every step (no KV cache), so it checks flexrt's cache as well.
Needs numpy, torch and transformers (the GPU machine has them).
"""
import argparse
import os

import numpy as np
import torch
from transformers import OPTConfig, OPTForCausalLM

LAYERS, HIDDEN, HEADS, FFN, VOCAB, MAX_SEQ = 3, 64, 4, 256, 512, 64
PROJ = 32  # word_embed_proj_dim of the post_ln variant
PAD = 1
PROMPT_LENS = [5, 9, 12, 16]
GEN_LEN = 8
MIN_MARGIN = 1e-2  # top-2 logit gap HF must show at every step, so that greedy tokens are a fair check


def random_weights(rng, embed_std, out_std, post_ln):
    """FlexLLMGen-named fp16 tensors. Scales are larger than HF's init so that logits are well separated."""
    w = {}
    def mat(name, shape, std):
        w[name] = (rng.standard_normal(shape) * std).astype(np.float16)
    embed_dim = PROJ if post_ln else HIDDEN
    mat("decoder.embed_tokens.weight", (VOCAB, embed_dim), embed_std)
    if post_ln:
        mat("decoder.project_in.weight", (HIDDEN, PROJ), 0.3)
        mat("decoder.project_out.weight", (PROJ, HIDDEN), 0.3)
    mat("decoder.embed_positions.weight", (MAX_SEQ + 2, HIDDEN), embed_std)
    for l in range(LAYERS):
        p = f"decoder.layers.{l}."
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            mat(p + f"self_attn.{proj}.weight", (HIDDEN, HIDDEN),
                out_std if proj == "out_proj" else 0.3 * (64 / HIDDEN) ** 0.5)
            mat(p + f"self_attn.{proj}.bias", (HIDDEN,), 0.05)
        for ln in ("self_attn_layer_norm", "final_layer_norm"):
            w[p + ln + ".weight"] = (1 + rng.standard_normal(HIDDEN) * 0.1).astype(np.float16)
            mat(p + ln + ".bias", (HIDDEN,), 0.05)
        mat(p + "fc1.weight", (FFN, HIDDEN), 0.15 * (64 / HIDDEN) ** 0.5)
        mat(p + "fc1.bias", (FFN,), 0.05)
        mat(p + "fc2.weight", (HIDDEN, FFN), out_std)
        mat(p + "fc2.bias", (HIDDEN,), 0.05)
    if not post_ln:
        w["decoder.layer_norm.weight"] = (1 + rng.standard_normal(HIDDEN) * 0.1).astype(np.float16)
        mat("decoder.layer_norm.bias", (HIDDEN,), 0.05)
    return w


def hf_model(weights, post_ln):
    cfg = OPTConfig(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS, ffn_dim=FFN,
                    num_attention_heads=HEADS, max_position_embeddings=MAX_SEQ,
                    word_embed_proj_dim=PROJ if post_ln else HIDDEN, do_layer_norm_before=not post_ln, pad_token_id=PAD, dropout=0.0, attention_dropout=0.0,
                    activation_function="relu", enable_bias=True, layer_norm_elementwise_affine=True)
    model = OPTForCausalLM(cfg).double().eval()
    state = {}
    for name, arr in weights.items():
        hf = "model." + name.replace("decoder.layer_norm.", "decoder.final_layer_norm.")
        state[hf] = torch.from_numpy(arr.astype(np.float64))
    state["lm_head.weight"] = state["model.decoder.embed_tokens.weight"]
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected, unexpected
    assert all(m == "lm_head.weight" for m in missing), missing
    model.tie_weights()
    return model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--embed-std", type=float, default=0.1)
    ap.add_argument("--out-std", type=float, default=0.3)
    ap.add_argument("--variant", choices=["pre_ln", "post_ln"], default="pre_ln")
    ap.add_argument("--shape", default="tiny", help="tiny, or an OPT size (opt-125m, opt-1.3b) at its real shape")
    ap.add_argument("--min-margin", type=float, default=1e-2)
    args = ap.parse_args()
    global LAYERS, HIDDEN, HEADS, FFN, VOCAB, MAX_SEQ, MIN_MARGIN
    MIN_MARGIN = args.min_margin
    real = {"opt-125m": (12, 768, 12), "opt-1.3b": (24, 2048, 32), "opt-6.7b": (32, 4096, 32)}
    if args.shape != "tiny":
        LAYERS, HIDDEN, HEADS = real[args.shape]
        FFN, VOCAB, MAX_SEQ = 4 * HIDDEN, 50272, 2048
        args.out_std = 0.3 * (64 / HIDDEN) ** 0.5
    post_ln = args.variant == "post_ln"
    rng = np.random.default_rng(args.seed)
    weights = random_weights(rng, args.embed_std, args.out_std, post_ln)
    model = hf_model(weights, post_ln)

    n, plen = len(PROMPT_LENS), max(PROMPT_LENS)
    prompts = np.full((n, plen), PAD, dtype=np.int64)
    for b, length in enumerate(PROMPT_LENS):
        prompts[b, plen - length:] = rng.integers(3, VOCAB, size=length)   # avoid pad (1) and bos/eos ids

    ids = torch.from_numpy(prompts)
    mask = (ids != PAD).long()
    tokens = np.zeros((n, GEN_LEN), dtype=np.int64)
    logits = np.zeros((n, GEN_LEN, VOCAB), dtype=np.float64)
    with torch.no_grad():
        for step in range(GEN_LEN):
            pos = (torch.cumsum(mask, dim=1) * mask - 1).clamp(min=-1)
            out = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits[:, -1, :]
            nxt = out.argmax(dim=-1)
            top2 = torch.topk(out, 2, dim=-1).values
            margin = float((top2[:, 0] - top2[:, 1]).min())
            assert margin > MIN_MARGIN, f"near-tie at step {step} (margin {margin}): pick another seed"
            logits[:, step] = out.numpy()
            tokens[:, step] = nxt.numpy()
            ids = torch.cat([ids, nxt[:, None]], dim=1)
            mask = torch.cat([mask, torch.ones(n, 1, dtype=mask.dtype)], dim=1)

    os.makedirs(os.path.join(args.out, "weights"), exist_ok=True)
    for name, arr in weights.items():
        with open(os.path.join(args.out, "weights", name), "wb") as f:
            np.save(f, arr)
    np.save(os.path.join(args.out, "prompts.npy"), prompts)
    np.save(os.path.join(args.out, "prompt_lens.npy"), np.array(PROMPT_LENS, dtype=np.int64))
    np.save(os.path.join(args.out, "tokens.npy"), tokens)
    np.save(os.path.join(args.out, "logits.npy"), logits)
    with open(os.path.join(args.out, "config.txt"), "w") as f:
        f.write(f"num_layers = {LAYERS}\nhidden_size = {HIDDEN}\nnum_heads = {HEADS}\nffn_size = {FFN}\n"
                f"vocab_size = {VOCAB}\nmax_seq_len = {MAX_SEQ}\ngen_len = {GEN_LEN}\nseed = {args.seed}\n"
                f"embed_std = {args.embed_std}\nout_std = {args.out_std}\n"
                f"word_embed_proj_dim = {PROJ if post_ln else HIDDEN}\npre_layer_norm = {0 if post_ln else 1}\n")
    print("tokens:\n", tokens)


if __name__ == "__main__":
    main()
