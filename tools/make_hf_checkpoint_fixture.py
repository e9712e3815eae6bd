#!/usr/bin/env python3
"""Makes tests/data/tiny_opt_hf/: the golden fixture's weights (tests/data/tiny_opt/weights, FlexLLMGen's numpy
names) as Hugging Face checkpoints, written with the PyPI `safetensors` package (numpy only):
  single/   model.safetensors in F32, HF's names (model.decoder..., decoder.final_layer_norm), lm_head.weight tied
  sharded/  model.safetensors.index.json and two F16 shards, as `save_pretrained(max_shard_size=...)` lays them out
Both hold exactly the fixture's fp16 values, so a run from either must give HF's tokens and logits
(tests/models/hf_checkpoint_test.cpp). Run from the repository root.
"""
import glob
import json
import os

import numpy as np
from safetensors.numpy import save_file

SRC = "tests/data/tiny_opt/weights"
OUT = "tests/data/tiny_opt_hf"


def hf_name(name):
    return "model." + name.replace("decoder.layer_norm.", "decoder.final_layer_norm.")


def main():
    weights = {}
    for path in sorted(glob.glob(f"{SRC}/*")):
        name = os.path.basename(path)
        weights[hf_name(name[:-4] if name.endswith(".npy") else name)] = np.load(path)
    os.makedirs(f"{OUT}/single", exist_ok=True)
    single = {k: v.astype(np.float32) for k, v in weights.items()}
    single["lm_head.weight"] = single["model.decoder.embed_tokens.weight"]
    save_file(single, f"{OUT}/single/model.safetensors", metadata={"format": "pt"})

    os.makedirs(f"{OUT}/sharded", exist_ok=True)
    names = sorted(weights)
    shards = [names[: len(names) // 2], names[len(names) // 2:]]
    weight_map = {}
    for i, part in enumerate(shards):
        file = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file({k: weights[k].astype(np.float16) for k in part}, f"{OUT}/sharded/{file}", metadata={"format": "pt"})
        weight_map.update({k: file for k in part})
    total = sum(v.size * 2 for v in weights.values())
    with open(f"{OUT}/sharded/model.safetensors.index.json", "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    print(f"{len(weights)} tensors")


if __name__ == "__main__":
    main()
