#!/usr/bin/env python3
"""Test fixture for the group4 compressor: inputs and a numpy float64 reference of the same algorithm.

Writes tests/data/group4/<case>_x.npy (fp16 input), <case>_ref.npy (float64 dequantized values) and
cases.txt (one line per case: name shape group_dim group_size symmetric). The reference quantizes in
float64 (scale = 15 / (max - min), or 7 / max|x| symmetric, capped at 65504 and rounded to fp16 as the
stored scale is; codes rounded half to even) and dequantizes in float64: an independent statement of the
algorithm in ops/group4.hpp. Run: python3 tools/make_group4_fixture.py
"""
import pathlib

import numpy as np

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "data" / "group4"
MAX_SCALE = 65504.0


def reference(x16, group_dim, group_size, symmetric):
    x = x16.astype(np.float64)
    x = np.moveaxis(x, group_dim, -1)
    d = x.shape[-1]
    ng = -(-d // group_size)
    pad = np.zeros(x.shape[:-1] + (ng * group_size - d,))
    g = np.concatenate([x, pad], axis=-1).reshape(x.shape[:-1] + (ng, group_size))
    if symmetric:
        amax = np.abs(g).max(axis=-1, keepdims=True)
        with np.errstate(divide="ignore"):
            scale = np.where(amax > 0, np.minimum(7.0 / amax, MAX_SCALE), MAX_SCALE)
        scale = scale.astype(np.float16).astype(np.float64)
        codes = np.clip(np.round(g * scale), -7, 7)
        deq = codes / scale
    else:
        lo, hi = g.min(axis=-1, keepdims=True), g.max(axis=-1, keepdims=True)
        with np.errstate(divide="ignore"):
            scale = np.where(hi > lo, np.minimum(15.0 / (hi - lo), MAX_SCALE), MAX_SCALE)
        scale = scale.astype(np.float16).astype(np.float64)
        codes = np.clip(np.round((g - lo) * scale), 0, 15)
        deq = codes / scale + lo
    deq = deq.reshape(x.shape[:-1] + (ng * group_size,))[..., :d]
    return np.moveaxis(deq, -1, group_dim)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(4)
    cases = []

    def add(name, x, group_dim, group_size=64, symmetric=False):
        x = x.astype(np.float16)
        np.save(OUT / f"{name}_x.npy", x)
        np.save(OUT / f"{name}_ref.npy", np.ascontiguousarray(reference(x, group_dim, group_size, symmetric)))
        cases.append(f"{name} {'x'.join(map(str, x.shape))} {group_dim} {group_size} {int(symmetric)}")

    add("random_weight", rng.normal(0, 0.02, (300, 96)), 0)                  # (out, in), dim 300: padded
    add("random_cache", rng.normal(0, 1.0, (7, 3, 4, 80)), 3)                  # head_dim 80: padded to 128
    const = np.full((128, 8), 0.375)
    const[64:, :4] = -2.5
    add("constant_groups", const, 0)
    tiny = 1.0 + rng.uniform(0, 1e-4, (128, 16))                               # ranges below 15 / 65504
    add("tiny_range", tiny, 0)
    add("large_magnitude", rng.uniform(-60000, 60000, (64, 32)), 0)
    add("symmetric", rng.normal(0, 1.0, (130, 24)), 0, 64, True)
    add("group_32", rng.normal(0, 1.0, (10, 96)), 1, 32)
    (OUT / "cases.txt").write_text("\n".join(cases) + "\n")
    print("\n".join(cases))


if __name__ == "__main__":
    main()
