#!/usr/bin/env python3
"""Generates the forward-pass parity fixtures: for every architecture variant,
a tiny seeded checkpoint (expertserve-mkmodel) and the independent NumPy
reference's prompt logits and 32 greedy tokens for a few prompts
(tests/reference/hf_reference.py). Nothing here comes from the C++ engine.

usage: make_fixtures.py --mkmodel BIN --out DIR
Writes DIR/<variant>/model/ (checkpoint), DIR/<variant>/reference.json and
DIR/<variant>/logits/prompt_<i>.npy, and DIR/variants.json last.
"""
import argparse
import json
import os
import random
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REFERENCE = os.path.join(HERE, "..", "reference", "hf_reference.py")

# name -> mkmodel arguments. Together they cover every architecture, the three
# weight dtypes, every RoPE variant, both DeepSeek q paths, all top-k methods,
# tied embeddings and a sharded checkpoint.
VARIANTS = {
    "llama_f32": ["--arch", "llama", "--dtype", "f32"],
    "llama_bf16_llama3rope": ["--arch", "llama", "--dtype", "bf16", "--rope-scaling", "llama3"],
    "llama_f16_linear_tied": ["--arch", "llama", "--dtype", "f16", "--rope-scaling", "linear",
                              "--tie-embeddings"],
    "qwen2_f32": ["--arch", "qwen2", "--dtype", "f32"],
    "qwen2_bf16_sharded": ["--arch", "qwen2", "--dtype", "bf16", "--max-shard-bytes", "200000"],
    "qwen3_f32": ["--arch", "qwen3", "--dtype", "f32"],
    "qwen3_bf16_yarn": ["--arch", "qwen3", "--dtype", "bf16", "--rope-scaling", "yarn"],
    "mixtral_f32": ["--arch", "mixtral", "--dtype", "f32"],
    "mixtral_bf16": ["--arch", "mixtral", "--dtype", "bf16"],
    "qwen2_moe_f32": ["--arch", "qwen2_moe", "--dtype", "f32"],
    "qwen2_moe_bf16": ["--arch", "qwen2_moe", "--dtype", "bf16"],
    "qwen3_moe_f32": ["--arch", "qwen3_moe", "--dtype", "f32"],
    "qwen3_moe_bf16": ["--arch", "qwen3_moe", "--dtype", "bf16"],
    "deepseek_v2_f32_greedy": ["--arch", "deepseek_v2", "--dtype", "f32",
                               "--topk-method", "greedy", "--q-lora-rank", "0"],
    "deepseek_v2_f32_group_qlora_yarn": ["--arch", "deepseek_v2", "--dtype", "f32",
                                         "--topk-method", "group_limited_greedy",
                                         "--q-lora-rank", "32", "--rope-scaling", "yarn"],
    "deepseek_v2_bf16": ["--arch", "deepseek_v2", "--dtype", "bf16"],
    "deepseek_v3_f32": ["--arch", "deepseek_v3", "--dtype", "f32"],
    "deepseek_v3_bf16": ["--arch", "deepseek_v3", "--dtype", "bf16"],
}

NUM_NEW_TOKENS = 32


def prompts_for(vocab_size, seed):
    rng = random.Random(seed)
    # A one-token prompt, a short one, and one spanning several KV blocks.
    return [[rng.randrange(vocab_size) for _ in range(n)] for n in (1, 9, 41)]


def run(cmd):
    done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        sys.exit(f"make_fixtures: {' '.join(cmd)} failed:\n{done.stdout}{done.stderr}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mkmodel", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", help="comma-separated variant names")
    args = ap.parse_args()
    names = args.only.split(",") if args.only else list(VARIANTS)
    os.makedirs(args.out, exist_ok=True)
    for i, name in enumerate(names):
        vdir = os.path.join(args.out, name)
        model = os.path.join(vdir, "model")
        run([args.mkmodel, *VARIANTS[name], "--seed", str(11 + i), "--out", model])
        with open(os.path.join(model, "config.json")) as f:
            vocab = json.load(f)["vocab_size"]
        prompts = prompts_for(vocab, seed=100 + i)
        with open(os.path.join(vdir, "prompts.json"), "w") as f:
            json.dump(prompts, f)
        run([sys.executable, REFERENCE, "batch", "--model", model,
             "--prompts", os.path.join(vdir, "prompts.json"),
             "--max-new-tokens", str(NUM_NEW_TOKENS),
             "--out", os.path.join(vdir, "reference.json"),
             "--logits-dir", os.path.join(vdir, "logits")])
        print(f"make_fixtures: {name} ready", flush=True)
    with open(os.path.join(args.out, "variants.json"), "w") as f:
        json.dump(names, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
