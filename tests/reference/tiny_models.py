"""Builds tiny random checkpoints (config.json + safetensors) with NumPy.

Used by the reference self-tests; independent of the C++ checkpoint generator.
Weights are drawn so that activations stay O(1) and routing is not degenerate.
"""

import json
import os

import numpy as np

import hf_reference as ref
import safetensors_np

BASE = {
    "vocab_size": 97, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-6,
    "rope_theta": 10000.0, "max_position_embeddings": 256, "hidden_act": "silu",
    "tie_word_embeddings": False, "eos_token_id": 2, "bos_token_id": 1,
}

ARCH_CONFIGS = {
    "llama": {},
    "qwen2": {},
    "qwen3": {"head_dim": 16},
    "mixtral": {"num_local_experts": 4, "num_experts_per_tok": 2},
    "qwen2_moe": {"num_experts": 6, "num_experts_per_tok": 2, "moe_intermediate_size": 16,
                  "shared_expert_intermediate_size": 24, "norm_topk_prob": False,
                  "decoder_sparse_step": 1, "mlp_only_layers": []},
    "qwen3_moe": {"head_dim": 16, "num_experts": 6, "num_experts_per_tok": 2,
                  "moe_intermediate_size": 16, "norm_topk_prob": True,
                  "decoder_sparse_step": 1, "mlp_only_layers": []},
    "deepseek_v2": {"num_hidden_layers": 3, "num_key_value_heads": 4, "n_routed_experts": 8,
                    "num_experts_per_tok": 3, "moe_intermediate_size": 16, "n_shared_experts": 2,
                    "first_k_dense_replace": 1, "moe_layer_freq": 1, "topk_method": "greedy",
                    "n_group": 1, "topk_group": 1, "norm_topk_prob": False,
                    "routed_scaling_factor": 1.0, "scoring_func": "softmax", "q_lora_rank": None,
                    "kv_lora_rank": 16, "qk_rope_head_dim": 8, "qk_nope_head_dim": 8,
                    "v_head_dim": 12,
                    "rope_scaling": {"type": "yarn", "factor": 40, "beta_fast": 32, "beta_slow": 1,
                                     "mscale": 0.707, "mscale_all_dim": 0.707,
                                     "original_max_position_embeddings": 64}},
    "deepseek_v3": {"num_hidden_layers": 3, "num_key_value_heads": 4, "n_routed_experts": 8,
                    "num_experts_per_tok": 3, "moe_intermediate_size": 16, "n_shared_experts": 1,
                    "first_k_dense_replace": 1, "moe_layer_freq": 1, "topk_method": "noaux_tc",
                    "n_group": 4, "topk_group": 2, "norm_topk_prob": True,
                    "routed_scaling_factor": 2.5, "scoring_func": "sigmoid", "q_lora_rank": 24,
                    "kv_lora_rank": 16, "qk_rope_head_dim": 8, "qk_nope_head_dim": 8,
                    "v_head_dim": 12,
                    "rope_scaling": {"type": "yarn", "factor": 40, "beta_fast": 32, "beta_slow": 1,
                                     "mscale": 1.0, "mscale_all_dim": 1.0,
                                     "original_max_position_embeddings": 64}},
}


def make_config(arch, **overrides):
    cfg = dict(BASE)
    cfg.update(ARCH_CONFIGS[arch])
    cfg["model_type"] = arch
    cfg.update(overrides)
    return {k: v for k, v in cfg.items() if v is not ...}


def random_weights(cfg_dict, seed=0):
    """name -> float32 array for every tensor the config needs."""
    cfg = ref.Config(cfg_dict)
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in ref.expected_shapes(cfg).items():
        if name.endswith("norm.weight") or "layernorm" in name:
            arr = 1.0 + 0.1 * rng.standard_normal(shape)
        elif name.endswith(".bias") and "e_score_correction_bias" not in name:
            arr = 0.1 * rng.standard_normal(shape)
        elif name.endswith("e_score_correction_bias"):
            arr = 0.05 * rng.standard_normal(shape)
        elif name.endswith("embed_tokens.weight"):
            arr = rng.standard_normal(shape)
        else:
            arr = rng.standard_normal(shape) / np.sqrt(shape[-1])
            if name.endswith("gate.weight") or name.endswith("shared_expert_gate.weight"):
                arr = arr * 3.0  # sharper routing
        out[name] = arr.astype(np.float32)
    return out


def write_checkpoint(path, cfg_dict, weights, dtype="F32", shards=1):
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(cfg_dict, f, indent=1)
    names = sorted(weights)
    if shards == 1:
        safetensors_np.save_file(os.path.join(path, "model.safetensors"), weights, dtype)
        return
    weight_map = {}
    for s in range(shards):
        part = names[s::shards]
        fname = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        safetensors_np.save_file(os.path.join(path, fname), {n: weights[n] for n in part}, dtype)
        weight_map.update({n: fname for n in part})
    with open(os.path.join(path, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": weight_map}, f)


def make_checkpoint(path, arch, seed=0, dtype="F32", shards=1, **overrides):
    cfg = make_config(arch, **overrides)
    w = random_weights(cfg, seed)
    write_checkpoint(path, cfg, w, dtype, shards)
    return cfg, w
