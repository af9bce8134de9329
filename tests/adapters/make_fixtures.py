#!/usr/bin/env python3
"""Generates the ESFT adapter parity fixtures: for every MoE base variant, a
tiny seeded checkpoint and 2-3 ESFT adapters in the real format
(expertserve-mkmodel --adapter-of, one with --shared-experts where the
architecture has shared experts), and the independent NumPy reference's
prompt logits and 32 greedy tokens for the base and for every adapter merged
into the base (tests/reference/hf_reference.py --adapter). Nothing here comes
from the C++ engine.

usage: make_fixtures.py --mkmodel BIN --out DIR [--only a,b]
Writes DIR/<variant>/model/, DIR/<variant>/adapters/<name>/,
DIR/<variant>/prompts.json, DIR/<variant>/ref/<target>/{reference.json,logits/}
(target: "base" or an adapter name), DIR/<variant>/targets.json, and
DIR/variants.json last.
"""
import argparse
import json
import os
import random
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
REFERENCE = os.path.join(HERE, "..", "reference", "hf_reference.py")

# name -> (mkmodel arguments, adapters: name -> extra adapter arguments).
# Every MoE architecture in f32, plus one bf16 base; shared-expert adapters
# where the architecture has shared experts (qwen2_moe, deepseek_v2/v3).
VARIANTS = {
    "mixtral_f32": (["--arch", "mixtral", "--dtype", "f32"],
                    {"a": [], "b": []}),
    "qwen2_moe_f32": (["--arch", "qwen2_moe", "--dtype", "f32"],
                      {"a": [], "b": [], "s": ["--shared-experts"]}),
    "qwen3_moe_f32": (["--arch", "qwen3_moe", "--dtype", "f32"],
                      {"a": [], "b": []}),
    "deepseek_v2_f32": (["--arch", "deepseek_v2", "--dtype", "f32",
                         "--topk-method", "group_limited_greedy"],
                        {"a": [], "b": [], "s": ["--shared-experts"]}),
    "deepseek_v3_f32": (["--arch", "deepseek_v3", "--dtype", "f32"],
                        {"a": [], "b": [], "s": ["--shared-experts"]}),
    "deepseek_v2_bf16": (["--arch", "deepseek_v2", "--dtype", "bf16"],
                         {"a": [], "s": ["--shared-experts"]}),
}

NUM_NEW_TOKENS = 32


def run(cmd):
    done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        sys.exit(f"make_fixtures: {' '.join(cmd)} failed:\n{done.stdout}{done.stderr}")


def reference(vdir, model, target, adapter_dir):
    out = os.path.join(vdir, "ref", target)
    os.makedirs(out, exist_ok=True)
    cmd = [sys.executable, REFERENCE, "batch", "--model", model,
           "--prompts", os.path.join(vdir, "prompts.json"),
           "--max-new-tokens", str(NUM_NEW_TOKENS),
           "--out", os.path.join(out, "reference.json"),
           "--logits-dir", os.path.join(out, "logits")]
    if adapter_dir:
        cmd += ["--adapter", adapter_dir]
    run(cmd)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mkmodel", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", help="comma-separated variant names")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    names = args.only.split(",") if args.only else list(VARIANTS)
    os.makedirs(args.out, exist_ok=True)
    jobs = []  # (vdir, model, target, adapter_dir)
    for i, name in enumerate(names):
        base_args, adapters = VARIANTS[name]
        vdir = os.path.join(args.out, name)
        model = os.path.join(vdir, "model")
        run([args.mkmodel, *base_args, "--seed", str(31 + i), "--out", model])
        for j, (aname, extra) in enumerate(adapters.items()):
            run([args.mkmodel, "--adapter-of", model, *extra, "--seed",
                 str(500 + 10 * i + j), "--out", os.path.join(vdir, "adapters", aname)])
        with open(os.path.join(model, "config.json")) as f:
            vocab = json.load(f)["vocab_size"]
        rng = random.Random(300 + i)
        # A short prompt and one spanning two KV blocks.
        prompts = [[rng.randrange(vocab) for _ in range(n)] for n in (5, 19)]
        with open(os.path.join(vdir, "prompts.json"), "w") as f:
            json.dump(prompts, f)
        with open(os.path.join(vdir, "targets.json"), "w") as f:
            json.dump(["base", *adapters], f)
        jobs.append((vdir, model, "base", None))
        for aname in adapters:
            jobs.append((vdir, model, aname, os.path.join(vdir, "adapters", aname)))
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for _ in pool.map(lambda j: reference(*j), jobs):
            pass
    print(f"make_fixtures: {len(jobs)} references for {len(names)} bases ready", flush=True)
    with open(os.path.join(args.out, "variants.json"), "w") as f:
        json.dump(names, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
