#!/usr/bin/python3
"""Greedy-decoding health report for generated checkpoints.

For each checkpoint directory: greedy-decodes a few prompts with the reference
and prints one JSON line per checkpoint with
  distinct      distinct generated tokens per prompt (of max_new_tokens)
  longest_run   longest run of one repeated token per prompt
  copies_last   prompts whose generation is the last prompt token repeated
  degenerate    prompts with distinct <= 2 (the test would be trivially green)
  logit_scale   max |logit| over prompt + generation
  near_ties     fraction of greedy steps whose top1-top2 margin is below
                2e-2 x logit_scale (the BF16 tolerance): steps where an engine
                within tolerance may legitimately pick another token
Usage: greedy_report.py DIR [DIR ...] [--adapter DIR] [--max-new-tokens 32]
"""

import argparse
import itertools
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_reference as ref  # noqa: E402

DEFAULT_PROMPTS = [[1, 2, 3, 4, 5], [100, 37, 250, 12], [7], [300, 301, 302, 303, 304, 305, 306, 307]]


def report(model, prompts, max_new_tokens):
    vocab = model.cfg.vocab_size
    prompts = [[t % vocab for t in p] for p in prompts]
    distinct, runs, copies, scale, margins = [], [], 0, 0.0, []
    for p in prompts:
        gen, _, mar = model.greedy(p, max_new_tokens)
        logits = model.forward(p + gen)
        scale = max(scale, float(np.abs(logits).max()))
        distinct.append(len(set(gen)))
        runs.append(max(len(list(g)) for _, g in itertools.groupby(gen)) if gen else 0)
        copies += int(bool(gen) and all(t == p[-1] for t in gen))
        margins += mar
    margins = np.array(margins)
    return {"distinct": distinct, "longest_run": runs, "copies_last": copies,
            "degenerate": int(sum(d <= 2 for d in distinct)), "logit_scale": round(scale, 3),
            "near_ties": round(float(np.mean(margins < 2e-2 * scale)), 3) if margins.size else 0.0}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+")
    ap.add_argument("--adapter")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--prompts", help="JSON list of id lists (default: 4 built-in prompts)")
    args = ap.parse_args(argv)
    prompts = DEFAULT_PROMPTS
    if args.prompts:
        with open(args.prompts) as f:
            prompts = json.load(f)
    for d in args.models:
        model = ref.Model(d, args.adapter)
        print(json.dumps(dict(model=d, arch=model.cfg.arch,
                              **report(model, prompts, args.max_new_tokens))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
