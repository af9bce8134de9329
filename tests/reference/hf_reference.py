#!/usr/bin/python3
"""Independent NumPy reference forward pass for Hugging Face checkpoints.

Written from the Hugging Face `transformers` modeling code and, for
deepseek_v2 / deepseek_v3, from DeepSeek's own `modeling_deepseek.py` where the
two differ (see README.md in this folder for every such choice). It does not use
or mirror any C++ code in this repository: the C++ engine is tested against it.

Numerics: weights are read as float32 (BF16/F16 values are exactly
representable, so a BF16 checkpoint is evaluated on its bf16-rounded weights)
and upcast to float64; every operation (matmuls, RMSNorm, RoPE, softmax, MoE
routing) runs in float64 unless --precision f32 is given. Logits are returned as
float32.

Supported model_type: llama, qwen2, qwen3, mixtral, qwen2_moe, qwen3_moe,
deepseek_v2, deepseek_v3.

CLI (ids in, ids/logits out; no tokenizer):
  hf_reference.py logits --model DIR [--adapter DIR] --ids 1,2,3 --out F.npy
  hf_reference.py greedy --model DIR [--adapter DIR] --ids 1,2,3 \
      --max-new-tokens 32 --out F.json [--stop-at-eos]
  hf_reference.py batch --model DIR [--adapter DIR] --prompts P.json \
      --out F.json [--logits-dir DIR] [--max-new-tokens 32] [--stop-at-eos]
  hf_reference.py compare --ref R.npy --got G.npy [--tol 1e-4]
"""

import argparse
import json
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_np  # noqa: E402

ARCHS = ("llama", "qwen2", "qwen3", "mixtral", "qwen2_moe", "qwen3_moe",
         "deepseek_v2", "deepseek_v3")
DEEPSEEK = ("deepseek_v2", "deepseek_v3")


class ReferenceError(Exception):
    """A checkpoint, config or adapter that the reference cannot evaluate."""


# Config keys that carry no numerics (tokenizer ids, training-only knobs,
# bookkeeping). Everything else is either used below or reported on stderr.
_NON_NUMERIC_KEYS = {
    "architectures", "model_type", "torch_dtype", "dtype", "transformers_version",
    "bos_token_id", "eos_token_id", "pad_token_id", "initializer_range", "use_cache",
    "attention_dropout", "max_position_embeddings", "auto_map", "_name_or_path",
    "output_router_logits", "router_aux_loss_coef", "aux_loss_alpha", "seq_aux",
    "router_jitter_noise", "pretraining_tp", "max_window_layers", "sliding_window",
    "use_sliding_window", "layer_types", "num_nextn_predict_layers", "ep_size",
    "quantization_config", "generation_config", "tokenizer_class", "vocab_size",
    "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "head_dim", "hidden_act", "rms_norm_eps", "rope_theta",
    "rope_scaling", "rope_parameters", "tie_word_embeddings", "attention_bias",
    "mlp_bias", "qkv_bias", "num_experts", "num_local_experts", "num_experts_per_tok",
    "moe_intermediate_size", "shared_expert_intermediate_size", "norm_topk_prob",
    "decoder_sparse_step", "mlp_only_layers", "n_routed_experts", "n_shared_experts",
    "routed_scaling_factor", "topk_method", "n_group", "topk_group", "scoring_func",
    "first_k_dense_replace", "moe_layer_freq", "q_lora_rank", "kv_lora_rank",
    "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim", "qk_head_dim",
    "partial_rotary_factor", "use_qk_norm", "original_max_position_embeddings",
    "rope_interleave",
}


# --------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------

class Config:
    """Parsed config.json with the defaults of the corresponding HF/DeepSeek
    configuration classes for keys a checkpoint may omit."""

    def __init__(self, raw):
        try:
            self._parse(raw)
        except KeyError as e:
            raise ReferenceError(f"config.json lacks required key {e.args[0]!r} "
                                 f"for model_type {raw.get('model_type')!r}") from None

    def _parse(self, raw):
        self.raw = raw
        arch = raw.get("model_type")
        if arch not in ARCHS:
            raise ReferenceError(f"model_type {arch!r} unsupported; expected one of {ARCHS}")
        self.arch = arch
        g = raw.get
        self.vocab_size = int(raw["vocab_size"])
        self.hidden_size = int(raw["hidden_size"])
        self.num_layers = int(raw["num_hidden_layers"])
        self.num_heads = int(raw["num_attention_heads"])
        self.num_kv_heads = int(g("num_key_value_heads") or self.num_heads)
        default_head_dim = 128 if arch in ("qwen3", "qwen3_moe") else self.hidden_size // self.num_heads
        self.head_dim = int(g("head_dim") or default_head_dim)
        self.intermediate_size = g("intermediate_size")
        self.rms_norm_eps = float(g("rms_norm_eps", 1e-6))
        self.tie_word_embeddings = bool(g("tie_word_embeddings", False))
        self.eos_token_id = g("eos_token_id")
        act = g("hidden_act", "silu")
        if act != "silu":
            raise ReferenceError(f"hidden_act {act!r} unsupported (only silu)")
        if g("quantization_config"):
            raise ReferenceError("quantized checkpoints (quantization_config) are unsupported")
        prf = g("partial_rotary_factor", 1.0)
        if prf not in (None, 1, 1.0):
            raise ReferenceError(f"partial_rotary_factor {prf} unsupported")
        if g("use_sliding_window", False):
            raise ReferenceError("use_sliding_window=true unsupported by the reference")
        lt = g("layer_types")
        if lt and any(t != "full_attention" for t in lt):
            raise ReferenceError(f"layer_types {sorted(set(lt))} unsupported (full_attention only)")
        # MixtralAttention passes config.sliding_window to the mask (a key is
        # visible iff q_pos - k_pos < sliding_window); llama/qwen2/qwen3 only
        # use it with use_sliding_window (rejected above).
        self.sliding_window = g("sliding_window") if arch == "mixtral" else None
        if g("mlp_bias", False):
            raise ReferenceError("mlp_bias=true unsupported")
        for k in raw:
            if k not in _NON_NUMERIC_KEYS:
                print(f"hf_reference: warning: config key {k!r} not interpreted", file=sys.stderr)

        # Attention projections' biases (HF: Qwen2Attention has q/k/v bias
        # always; Qwen2MoeAttention reads qkv_bias (default true); llama/qwen3
        # read attention_bias for q/k/v/o; mixtral has none).
        if arch == "qwen2":
            self.qkv_bias, self.o_bias = True, False
        elif arch == "qwen2_moe":
            self.qkv_bias, self.o_bias = bool(g("qkv_bias", True)), False
        elif arch in ("llama", "qwen3", "qwen3_moe"):
            ab = bool(g("attention_bias", False))
            self.qkv_bias, self.o_bias = ab, ab
        elif arch == "mixtral":
            self.qkv_bias, self.o_bias = False, False
        else:  # deepseek: attention_bias applies to q_a_proj, kv_a_proj_with_mqa, o_proj
            self.qkv_bias = self.o_bias = bool(g("attention_bias", False))
        self.qk_norm = arch in ("qwen3", "qwen3_moe")

        # MoE fields.
        self.moe = arch in ("mixtral", "qwen2_moe", "qwen3_moe") + DEEPSEEK
        if arch == "mixtral":
            self.n_experts = int(raw["num_local_experts"])
            self.top_k = int(g("num_experts_per_tok", 2))
            self.moe_intermediate = int(self.intermediate_size)
        elif arch in ("qwen2_moe", "qwen3_moe"):
            self.n_experts = int(raw["num_experts"])
            self.top_k = int(raw["num_experts_per_tok"])
            self.moe_intermediate = int(raw["moe_intermediate_size"])
            self.norm_topk_prob = bool(g("norm_topk_prob", False))
            self.decoder_sparse_step = int(g("decoder_sparse_step", 1))
            self.mlp_only_layers = list(g("mlp_only_layers", []) or [])
            if arch == "qwen2_moe":
                self.shared_expert_intermediate = int(raw["shared_expert_intermediate_size"])
        elif arch in DEEPSEEK:
            v3 = arch == "deepseek_v3"
            self.n_experts = g("n_routed_experts")
            self.n_experts = None if self.n_experts is None else int(self.n_experts)
            self.top_k = int(g("num_experts_per_tok") or 0)
            self.moe_intermediate = int(g("moe_intermediate_size", 0) or 0)
            self.n_shared_experts = g("n_shared_experts", 1 if v3 else None)
            self.routed_scaling_factor = float(g("routed_scaling_factor", 2.5 if v3 else 1.0))
            # DeepSeek's configuration_deepseek.py defaults; "gready" is the
            # spelling used by DeepSeek-V2's original code and config.
            self.topk_method = g("topk_method", "noaux_tc" if v3 else "gready")
            if self.topk_method == "gready":
                self.topk_method = "greedy"
            self.n_group = g("n_group", 8 if v3 else None)
            self.topk_group = g("topk_group", 4 if v3 else None)
            self.scoring_func = g("scoring_func", "sigmoid" if v3 else "softmax")
            self.norm_topk_prob = bool(g("norm_topk_prob", True if v3 else False))
            self.first_k_dense_replace = int(g("first_k_dense_replace", 0))
            self.moe_layer_freq = int(g("moe_layer_freq", 1))
            self.q_lora_rank = g("q_lora_rank")
            self.kv_lora_rank = int(raw["kv_lora_rank"])
            self.qk_rope_head_dim = int(raw["qk_rope_head_dim"])
            # transformers' DeepseekV3 has rope_interleave (default true); DeepSeek's
            # own code always interleaves.
            self.rope_interleave = bool(g("rope_interleave", True))
            if g("head_dim") not in (None, self.qk_rope_head_dim):
                raise ReferenceError(f"head_dim {g('head_dim')} != qk_rope_head_dim "
                                     f"{self.qk_rope_head_dim} for {arch}")
            self.qk_nope_head_dim = int(raw["qk_nope_head_dim"])
            self.v_head_dim = int(raw["v_head_dim"])
            if self.scoring_func not in ("softmax", "sigmoid"):
                raise ReferenceError(f"scoring_func {self.scoring_func!r} unsupported")
            if self.topk_method not in ("greedy", "group_limited_greedy", "noaux_tc"):
                raise ReferenceError(f"topk_method {self.topk_method!r} unsupported")
            if self.topk_method in ("group_limited_greedy", "noaux_tc") and self.n_experts:
                if not self.n_group or not self.topk_group or self.n_experts % int(self.n_group):
                    raise ReferenceError(
                        f"topk_method {self.topk_method} needs n_group dividing n_routed_experts "
                        f"and topk_group (got n_group={self.n_group}, topk_group={self.topk_group})")
                self.n_group, self.topk_group = int(self.n_group), int(self.topk_group)
        if self.moe and self.n_experts and self.top_k > self.n_experts:
            raise ReferenceError(f"num_experts_per_tok {self.top_k} > experts {self.n_experts}")

    def is_moe_layer(self, i):
        a = self.arch
        if a == "mixtral":
            return True
        if a in ("qwen2_moe", "qwen3_moe"):
            # Qwen2MoeDecoderLayer / Qwen3MoeDecoderLayer.__init__
            return (i not in self.mlp_only_layers and self.n_experts > 0
                    and (i + 1) % self.decoder_sparse_step == 0)
        if a in DEEPSEEK:
            # DeepSeek's DeepseekV2DecoderLayer.__init__ (transformers' V2
            # ignores moe_layer_freq; DeepSeek's code honours it).
            return (self.n_experts is not None and i >= self.first_k_dense_replace
                    and i % self.moe_layer_freq == 0)
        return False


# --------------------------------------------------------------------------
# RoPE
# --------------------------------------------------------------------------

def _rope_scaling_dict(cfg):
    """The rope scaling dict and rope_theta, accepting both the classic
    `rope_scaling` + `rope_theta` keys and the newer `rope_parameters` dict."""
    raw = cfg.raw
    theta = raw.get("rope_theta")
    rs = raw.get("rope_scaling")
    rp = raw.get("rope_parameters")
    if rp:
        theta = rp.get("rope_theta", theta)
        if rs is None and rp.get("rope_type", rp.get("type", "default")) != "default":
            rs = rp
    if theta is None:
        theta = 10000.0
    if rs is not None:
        rs = dict(rs)
        rs["rope_type"] = rs.get("rope_type", rs.get("type", "default"))
        if rs["rope_type"] == "default":
            rs = None
    return rs, float(theta)


def yarn_get_mscale(scale=1.0, mscale=1.0):
    """DeepSeek's yarn_get_mscale / transformers' get_mscale."""
    if scale <= 1:
        return 1.0
    return 0.1 * mscale * math.log(scale) + 1.0


def _yarn_inv_freq(dim, base, factor, orig_max_pos, beta_fast, beta_slow, truncate=True):
    """transformers _compute_yarn_parameters / DeepSeek DeepseekV2YarnRotaryEmbedding
    frequency blend (identical formulas; DeepSeek always truncates)."""
    def find_dim(num_rot):
        return (dim * math.log(orig_max_pos / (num_rot * 2 * math.pi))) / (2 * math.log(base))
    low, high = find_dim(beta_fast), find_dim(beta_slow)
    if truncate:
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001
    ramp = np.clip((np.arange(dim // 2, dtype=np.float64) - low) / (high - low), 0, 1)
    extra_factor = 1.0 - ramp  # DeepSeek's inv_freq_mask
    pos_freqs = base ** (np.arange(0, dim, 2, dtype=np.float64) / dim)
    inv_extra = 1.0 / pos_freqs
    inv_inter = 1.0 / (factor * pos_freqs)
    return inv_inter * (1 - extra_factor) + inv_extra * extra_factor


class Rope:
    """inv_freq [dim/2], cos/sin multiplier, layout and softmax-scale multiplier."""

    def __init__(self, cfg, dim):
        self.dim = dim
        self.interleave = cfg.arch in DEEPSEEK and cfg.rope_interleave
        self.attention_factor = 1.0
        self.softmax_mult = 1.0
        rs, base = _rope_scaling_dict(cfg)
        default = 1.0 / (base ** (np.arange(0, dim, 2, dtype=np.float64) / dim))
        if rs is None:
            self.inv_freq = default
            return
        rtype = rs["rope_type"]
        factor = rs.get("factor")
        if cfg.arch in DEEPSEEK:
            self._init_deepseek(cfg, rs, rtype, factor, base, dim, default)
            return
        # transformers modeling_rope_utils.ROPE_INIT_FUNCTIONS
        if rtype == "linear":
            self.inv_freq = default / float(factor)
        elif rtype == "llama3":
            # _compute_llama3_parameters
            factor = float(factor)
            low_ff = float(rs["low_freq_factor"])
            high_ff = float(rs["high_freq_factor"])
            old_ctx = float(rs["original_max_position_embeddings"])
            low_wl, high_wl = old_ctx / low_ff, old_ctx / high_ff
            wavelen = 2 * math.pi / default
            inv = np.where(wavelen > low_wl, default / factor, default)
            smooth = (old_ctx / wavelen - low_ff) / (high_ff - low_ff)
            smoothed = (1 - smooth) * inv / factor + smooth * inv
            medium = ~(wavelen < high_wl) & ~(wavelen > low_wl)
            self.inv_freq = np.where(medium, smoothed, inv)
        elif rtype == "yarn":
            # _compute_yarn_parameters
            orig = rs.get("original_max_position_embeddings") or cfg.raw.get(
                "max_position_embeddings")
            if factor is None:
                factor = cfg.raw["max_position_embeddings"] / orig
            factor = float(factor)
            af = rs.get("attention_factor")
            ms, msa = rs.get("mscale"), rs.get("mscale_all_dim")
            if af is None:
                if ms and msa:
                    af = yarn_get_mscale(factor, ms) / yarn_get_mscale(factor, msa)
                else:
                    af = yarn_get_mscale(factor)
            self.attention_factor = float(af)
            self.inv_freq = _yarn_inv_freq(dim, base, factor, float(orig),
                                           rs.get("beta_fast") or 32, rs.get("beta_slow") or 1,
                                           rs.get("truncate", True))
        else:
            raise ReferenceError(f"rope type {rtype!r} unsupported (default, linear, llama3, yarn)")

    def _init_deepseek(self, cfg, rs, rtype, factor, base, dim, default):
        # DeepSeek modeling_deepseek.py DeepseekV2Attention._init_rope and
        # the softmax_scale adjustment in DeepseekV2Attention.__init__.
        factor = float(factor)
        if rtype == "linear":
            self.inv_freq = default / factor  # t / scaling_factor == inv_freq / factor
        elif rtype == "yarn":
            orig = float(rs.get("original_max_position_embeddings", 4096))
            mscale = rs.get("mscale", 1)
            mscale_all_dim = rs.get("mscale_all_dim", 0)
            self.inv_freq = _yarn_inv_freq(dim, base, factor, orig,
                                           rs.get("beta_fast", 32), rs.get("beta_slow", 1), True)
            self.attention_factor = (yarn_get_mscale(factor, mscale)
                                     / yarn_get_mscale(factor, mscale_all_dim))
        else:
            raise ReferenceError(f"deepseek rope type {rtype!r} unsupported (linear, yarn)")
        mscale_all_dim = rs.get("mscale_all_dim", 0)
        if mscale_all_dim:
            m = yarn_get_mscale(factor, mscale_all_dim)
            self.softmax_mult = m * m

    def cos_sin(self, positions, dt):
        freqs = np.asarray(positions, dtype=np.float64)[:, None] * self.inv_freq[None, :]
        emb = np.concatenate([freqs, freqs], axis=-1)  # [T, dim]
        return ((np.cos(emb) * self.attention_factor).astype(dt),
                (np.sin(emb) * self.attention_factor).astype(dt))

    def apply(self, x, cos, sin):
        """x: [T, heads, dim]; cos/sin: [T, dim]."""
        if self.interleave:
            # DeepSeek apply_rotary_pos_emb: view(d/2, 2).transpose -> evens then odds.
            x = np.concatenate([x[..., 0::2], x[..., 1::2]], axis=-1)
        half = x.shape[-1] // 2
        rot = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)  # rotate_half
        return x * cos[:, None, :] + rot * sin[:, None, :]


# --------------------------------------------------------------------------
# Small ops
# --------------------------------------------------------------------------

def rms_norm(x, w, eps):
    var = np.mean(x * x, axis=-1, keepdims=True)
    return (x / np.sqrt(var + eps)) * w


def silu(x):
    return x / (1.0 + np.exp(-x))


def softmax(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True)
    e = np.exp(x - m)
    return e / np.sum(e, axis=axis, keepdims=True)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def topk_indices(scores, k):
    """Indices of the k largest per row; ties go to the lower index."""
    return np.argsort(-scores, axis=-1, kind="stable")[..., :k]


# --------------------------------------------------------------------------
# Tensor naming
# --------------------------------------------------------------------------

def expert_tensor_names(arch, layer, e):
    p = f"model.layers.{layer}."
    if arch == "mixtral":
        return [f"{p}block_sparse_moe.experts.{e}.{w}.weight" for w in ("w1", "w3", "w2")]
    return [f"{p}mlp.experts.{e}.{w}.weight" for w in ("gate_proj", "up_proj", "down_proj")]


def shared_expert_tensor_names(arch, layer):
    p = f"model.layers.{layer}.mlp."
    if arch == "qwen2_moe":
        return [f"{p}shared_expert.{w}.weight" for w in ("gate_proj", "up_proj", "down_proj")]
    if arch in DEEPSEEK:
        return [f"{p}shared_experts.{w}.weight" for w in ("gate_proj", "up_proj", "down_proj")]
    return []


def expected_shapes(cfg):
    """name -> shape for every tensor the architecture reads."""
    H, V = cfg.hidden_size, cfg.vocab_size
    s = {"model.embed_tokens.weight": (V, H), "model.norm.weight": (H,)}
    if not cfg.tie_word_embeddings:
        s["lm_head.weight"] = (V, H)

    def mlp(prefix, inter):
        s[prefix + "gate_proj.weight"] = (inter, H)
        s[prefix + "up_proj.weight"] = (inter, H)
        s[prefix + "down_proj.weight"] = (H, inter)

    for i in range(cfg.num_layers):
        p = f"model.layers.{i}."
        s[p + "input_layernorm.weight"] = (H,)
        s[p + "post_attention_layernorm.weight"] = (H,)
        a = p + "self_attn."
        if cfg.arch in DEEPSEEK:
            qd = cfg.qk_nope_head_dim + cfg.qk_rope_head_dim
            nh = cfg.num_heads
            if cfg.q_lora_rank is None:
                s[a + "q_proj.weight"] = (nh * qd, H)
            else:
                r = int(cfg.q_lora_rank)
                s[a + "q_a_proj.weight"] = (r, H)
                if cfg.qkv_bias:
                    s[a + "q_a_proj.bias"] = (r,)
                s[a + "q_a_layernorm.weight"] = (r,)
                s[a + "q_b_proj.weight"] = (nh * qd, r)
            kvd = cfg.kv_lora_rank + cfg.qk_rope_head_dim
            s[a + "kv_a_proj_with_mqa.weight"] = (kvd, H)
            if cfg.qkv_bias:
                s[a + "kv_a_proj_with_mqa.bias"] = (kvd,)
            s[a + "kv_a_layernorm.weight"] = (cfg.kv_lora_rank,)
            s[a + "kv_b_proj.weight"] = (nh * (cfg.qk_nope_head_dim + cfg.v_head_dim),
                                         cfg.kv_lora_rank)
            s[a + "o_proj.weight"] = (H, nh * cfg.v_head_dim)
            if cfg.o_bias:
                s[a + "o_proj.bias"] = (H,)
        else:
            D = cfg.head_dim
            s[a + "q_proj.weight"] = (cfg.num_heads * D, H)
            s[a + "k_proj.weight"] = (cfg.num_kv_heads * D, H)
            s[a + "v_proj.weight"] = (cfg.num_kv_heads * D, H)
            s[a + "o_proj.weight"] = (H, cfg.num_heads * D)
            if cfg.qkv_bias:
                s[a + "q_proj.bias"] = (cfg.num_heads * D,)
                s[a + "k_proj.bias"] = (cfg.num_kv_heads * D,)
                s[a + "v_proj.bias"] = (cfg.num_kv_heads * D,)
            if cfg.o_bias:
                s[a + "o_proj.bias"] = (H,)
            if cfg.qk_norm:
                s[a + "q_norm.weight"] = (D,)
                s[a + "k_norm.weight"] = (D,)
        if not cfg.is_moe_layer(i):
            mlp(p + "mlp.", int(cfg.intermediate_size))
            continue
        E, I = cfg.n_experts, cfg.moe_intermediate
        if cfg.arch == "mixtral":
            s[p + "block_sparse_moe.gate.weight"] = (E, H)
            for e in range(E):
                g, u, d = expert_tensor_names(cfg.arch, i, e)
                s[g], s[u], s[d] = (I, H), (I, H), (H, I)
            continue
        s[p + "mlp.gate.weight"] = (E, H)
        for e in range(E):
            g, u, d = expert_tensor_names(cfg.arch, i, e)
            s[g], s[u], s[d] = (I, H), (I, H), (H, I)
        if cfg.arch == "qwen2_moe":
            mlp(p + "mlp.shared_expert.", cfg.shared_expert_intermediate)
            s[p + "mlp.shared_expert_gate.weight"] = (1, H)
        if cfg.arch in DEEPSEEK:
            if cfg.n_shared_experts:
                mlp(p + "mlp.shared_experts.", I * int(cfg.n_shared_experts))
            if cfg.topk_method == "noaux_tc":
                s[p + "mlp.gate.e_score_correction_bias"] = (E,)
    return s


# --------------------------------------------------------------------------
# ESFT adapter merge
# --------------------------------------------------------------------------

def _adapter_lookup(adapter_tensors, base_name):
    """Finds base_name in the adapter, with or without the leading 'model.'."""
    short = base_name[len("model."):] if base_name.startswith("model.") else base_name
    have = [n for n in (base_name, short) if n in adapter_tensors]
    if len(have) == 2:
        raise ReferenceError(f"adapter holds both {base_name!r} and {short!r}")
    return have[0] if have else None


def merge_esft_adapter(cfg, tensors, adapter_dir):
    """Writes an ESFT adapter's replacement experts into a copy of `tensors`.

    tensors: name -> (float32 array, dtype). Returns (merged dict, report dict).
    The adapter format: expert_cfg.json {"experts": {"<layer>": [ids]},
    "shared_experts": bool, "non_expert_modules": bool} plus safetensors files
    holding replacement tensors under the base's names (optionally without the
    leading "model."). Tensors the config does not list are reported, not used.
    """
    if not cfg.moe:
        raise ReferenceError(f"ESFT adapters need an MoE base; {cfg.arch} is dense")
    with open(os.path.join(adapter_dir, "expert_cfg.json")) as f:
        ecfg = json.load(f)
    experts = ecfg.get("experts", {})
    shared = bool(ecfg.get("shared_experts", False))
    non_expert = bool(ecfg.get("non_expert_modules", False))
    has_files = any(p.endswith(".safetensors") for p in os.listdir(adapter_dir))
    adapter = safetensors_np.load_dir(adapter_dir) if has_files else {}
    merged = dict(tensors)
    used = set()

    def replace(base_name):
        an = _adapter_lookup(adapter, base_name)
        if an is None:
            raise ReferenceError(f"adapter {adapter_dir}: missing tensor {base_name!r}")
        arr, dt = adapter[an]
        barr, bdt = tensors[base_name]
        if arr.shape != barr.shape:
            raise ReferenceError(f"adapter tensor {an!r} has shape {list(arr.shape)}, "
                                 f"base has {list(barr.shape)}")
        if dt != bdt:
            raise ReferenceError(f"adapter tensor {an!r} has dtype {dt}, base has {bdt}")
        merged[base_name] = (arr, dt)
        used.add(an)

    moe_layers = [i for i in range(cfg.num_layers) if cfg.is_moe_layer(i)]
    for key, ids in experts.items():
        layer = int(key)
        if layer not in moe_layers:
            raise ReferenceError(f"adapter lists layer {layer}, which is not an MoE layer")
        for e in ids:
            if not 0 <= int(e) < cfg.n_experts:
                raise ReferenceError(f"adapter expert id {e} out of range [0,{cfg.n_experts})")
            for n in expert_tensor_names(cfg.arch, layer, int(e)):
                replace(n)
    if shared:
        if not shared_expert_tensor_names(cfg.arch, moe_layers[0] if moe_layers else 0):
            raise ReferenceError(f"shared_experts=true but {cfg.arch} has no shared experts")
        for layer in moe_layers:
            for n in shared_expert_tensor_names(cfg.arch, layer):
                replace(n)
    if non_expert:
        # Merged model semantics: every other adapter tensor replaces the base's.
        for an in adapter:
            if an in used:
                continue
            base = an if an in tensors else "model." + an
            if base not in tensors:
                raise ReferenceError(f"adapter tensor {an!r} matches no base tensor")
            replace(base)
    extra = sorted(set(adapter) - used)
    if extra:
        print(f"hf_reference: adapter {adapter_dir}: {len(extra)} tensor(s) not listed in "
              f"expert_cfg.json, ignored: {extra[:8]}", file=sys.stderr)
    return merged, {"unused_tensors": extra}


# --------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------

class Model:
    def __init__(self, model_dir, adapter_dir=None, precision="f64", allow_unused=False):
        with open(os.path.join(model_dir, "config.json")) as f:
            self.cfg = Config(json.load(f))
        self.dt = {"f64": np.float64, "f32": np.float32}[precision]
        tensors = safetensors_np.load_dir(model_dir)
        if adapter_dir:
            tensors, self.adapter_report = merge_esft_adapter(self.cfg, tensors, adapter_dir)
        self._load(tensors, allow_unused)
        cfg = self.cfg
        if cfg.arch in DEEPSEEK:
            self.rope = Rope(cfg, cfg.qk_rope_head_dim)
            q_head_dim = cfg.qk_nope_head_dim + cfg.qk_rope_head_dim
            self.scale = q_head_dim ** -0.5 * self.rope.softmax_mult
        else:
            self.rope = Rope(cfg, cfg.head_dim)
            self.scale = cfg.head_dim ** -0.5

    def _load(self, tensors, allow_unused):
        shapes = expected_shapes(self.cfg)
        self.w = {}
        self.dtypes = {}
        for name, shape in shapes.items():
            if name not in tensors:
                raise ReferenceError(f"checkpoint is missing tensor {name!r} (shape {list(shape)})")
            arr, dt = tensors[name]
            if tuple(arr.shape) != tuple(shape):
                raise ReferenceError(f"tensor {name!r} has shape {list(arr.shape)}, "
                                     f"config implies {list(shape)}")
            self.w[name] = arr.astype(self.dt)
            self.dtypes[name] = dt
        unused = sorted(n for n in tensors if n not in shapes and not n.endswith("inv_freq"))
        if self.cfg.tie_word_embeddings and "lm_head.weight" in unused:
            unused.remove("lm_head.weight")  # HF ties it to embed_tokens anyway
        if unused and not allow_unused:
            raise ReferenceError(f"checkpoint has {len(unused)} tensor(s) the config does not "
                                 f"use, e.g. {unused[:5]}")
        self.lm_head = self.w["model.embed_tokens.weight" if self.cfg.tie_word_embeddings
                              else "lm_head.weight"]

    # ---- cache -------------------------------------------------------------

    def new_cache(self):
        """Per layer: dict of arrays growing along the sequence axis.

        Standard attention caches post-RoPE K and V [T, kv_heads, head_dim];
        MLA caches the normalised latent [T, kv_lora_rank] and the post-RoPE
        shared k_pe [T, rope_dim], as DeepSeek's MLA inference does."""
        return {"len": 0, "layers": [dict() for _ in range(self.cfg.num_layers)]}

    # ---- building blocks -----------------------------------------------------

    def _lin(self, x, name, bias=False):
        y = x @ self.w[name + ".weight"].T
        if bias:
            y = y + self.w[name + ".bias"]
        return y

    def _mlp(self, x, prefix):
        return self._lin(silu(self._lin(x, prefix + "gate_proj")) * self._lin(x, prefix + "up_proj"),
                         prefix + "down_proj")

    def _attention_std(self, x, i, lc, cos, sin, pos):
        cfg = self.cfg
        a = f"model.layers.{i}.self_attn."
        T, D = x.shape[0], cfg.head_dim
        q = self._lin(x, a + "q_proj", cfg.qkv_bias).reshape(T, cfg.num_heads, D)
        k = self._lin(x, a + "k_proj", cfg.qkv_bias).reshape(T, cfg.num_kv_heads, D)
        v = self._lin(x, a + "v_proj", cfg.qkv_bias).reshape(T, cfg.num_kv_heads, D)
        if cfg.qk_norm:  # Qwen3Attention: per-head RMSNorm before RoPE
            q = rms_norm(q, self.w[a + "q_norm.weight"], cfg.rms_norm_eps)
            k = rms_norm(k, self.w[a + "k_norm.weight"], cfg.rms_norm_eps)
        q = self.rope.apply(q, cos, sin)
        k = self.rope.apply(k, cos, sin)
        lc["k"] = k if "k" not in lc else np.concatenate([lc["k"], k])
        lc["v"] = v if "v" not in lc else np.concatenate([lc["v"], v])
        K, Vv = lc["k"], lc["v"]
        group = cfg.num_heads // cfg.num_kv_heads
        K = np.repeat(K, group, axis=1)  # repeat_kv
        Vv = np.repeat(Vv, group, axis=1)
        scores = np.einsum("qhd,khd->hqk", q, K) * self.scale
        out = self._attend(scores, Vv, pos, cfg.sliding_window)  # [T, H, D]
        return self._lin(out.reshape(T, -1), a + "o_proj", cfg.o_bias)

    def _attend(self, scores, V, pos, window=None):
        """scores [H, Tq, Tk], V [Tk, H, Dv]; causal by absolute position,
        optionally limited to keys with q_pos - k_pos < window."""
        tk = np.arange(V.shape[0])
        pos = np.asarray(pos)
        mask = tk[None, :] > pos[:, None]
        if window:
            mask |= (pos[:, None] - tk[None, :]) >= int(window)
        scores = np.where(mask[None], -np.inf, scores)
        p = softmax(scores, axis=-1)
        return np.einsum("hqk,khd->qhd", p, V)

    def mla_project(self, x, i, cos, sin):
        """DeepseekV2Attention.forward up to the cache: returns
        q_nope [T,H,nope], q_pe [T,H,rope] (roped), latent [T,r] (normed),
        k_pe [T,rope] (roped)."""
        cfg = self.cfg
        a = f"model.layers.{i}.self_attn."
        T, nh = x.shape[0], cfg.num_heads
        if cfg.q_lora_rank is None:
            q = self._lin(x, a + "q_proj")
        else:
            qa = self._lin(x, a + "q_a_proj", cfg.qkv_bias)
            q = self._lin(rms_norm(qa, self.w[a + "q_a_layernorm.weight"], 1e-6), a + "q_b_proj")
        q = q.reshape(T, nh, cfg.qk_nope_head_dim + cfg.qk_rope_head_dim)
        q_nope, q_pe = q[..., :cfg.qk_nope_head_dim], q[..., cfg.qk_nope_head_dim:]
        ckv = self._lin(x, a + "kv_a_proj_with_mqa", cfg.qkv_bias)
        latent, k_pe = ckv[:, :cfg.kv_lora_rank], ckv[:, cfg.kv_lora_rank:]
        # DeepseekV2RMSNorm(kv_lora_rank) is built with its default eps 1e-6.
        latent = rms_norm(latent, self.w[a + "kv_a_layernorm.weight"], 1e-6)
        q_pe = self.rope.apply(q_pe, cos, sin)
        k_pe = self.rope.apply(k_pe[:, None, :], cos, sin)[:, 0, :]
        return q_nope, q_pe, latent, k_pe

    def _attention_mla(self, x, i, lc, cos, sin, pos):
        cfg = self.cfg
        a = f"model.layers.{i}.self_attn."
        T, nh = x.shape[0], cfg.num_heads
        q_nope, q_pe, latent, k_pe = self.mla_project(x, i, cos, sin)
        lc["latent"] = latent if "latent" not in lc else np.concatenate([lc["latent"], latent])
        lc["k_pe"] = k_pe if "k_pe" not in lc else np.concatenate([lc["k_pe"], k_pe])
        # Materialise K/V from the cached latent (kv_b_proj), as modeling_deepseek does.
        kv = self._lin(lc["latent"], a + "kv_b_proj").reshape(
            -1, nh, cfg.qk_nope_head_dim + cfg.v_head_dim)
        k_nope, v = kv[..., :cfg.qk_nope_head_dim], kv[..., cfg.qk_nope_head_dim:]
        scores = (np.einsum("qhd,khd->hqk", q_nope, k_nope)
                  + np.einsum("qhd,kd->hqk", q_pe, lc["k_pe"])) * self.scale
        out = self._attend(scores, v, pos)
        return self._lin(out.reshape(T, -1), a + "o_proj", cfg.o_bias)

    def route(self, x, i):
        """Gate for MoE layer i: returns (topk idx [T,k], weights [T,k])."""
        cfg = self.cfg
        arch = cfg.arch
        if arch == "mixtral":
            # MixtralSparseMoeBlock: softmax (float) -> top-k -> renormalise.
            probs = softmax(self._lin(x, f"model.layers.{i}.block_sparse_moe.gate"))
            idx = topk_indices(probs, cfg.top_k)
            w = np.take_along_axis(probs, idx, -1)
            return idx, w / w.sum(-1, keepdims=True)
        logits = self._lin(x, f"model.layers.{i}.mlp.gate")
        if arch in ("qwen2_moe", "qwen3_moe"):
            # Qwen2MoeSparseMoeBlock / Qwen3MoeSparseMoeBlock.
            probs = softmax(logits)
            idx = topk_indices(probs, cfg.top_k)
            w = np.take_along_axis(probs, idx, -1)
            if cfg.norm_topk_prob:
                w = w / w.sum(-1, keepdims=True)
            return idx, w
        # DeepSeek MoEGate.forward
        scores = softmax(logits) if cfg.scoring_func == "softmax" else sigmoid(logits)
        T, E = scores.shape
        if cfg.topk_method == "greedy":
            idx = topk_indices(scores, cfg.top_k)
            w = np.take_along_axis(scores, idx, -1)
        elif cfg.topk_method == "group_limited_greedy":
            group_scores = scores.reshape(T, cfg.n_group, -1).max(-1)
            gidx = topk_indices(group_scores, cfg.topk_group)
            gmask = np.zeros_like(group_scores)
            np.put_along_axis(gmask, gidx, 1.0, -1)
            smask = np.repeat(gmask, E // cfg.n_group, axis=-1)
            tmp = np.where(smask > 0, scores, 0.0)
            idx = topk_indices(tmp, cfg.top_k)
            w = np.take_along_axis(tmp, idx, -1)
        else:  # noaux_tc (DeepSeek-V3)
            bias = self.w[f"model.layers.{i}.mlp.gate.e_score_correction_bias"]
            choice = scores + bias[None, :]
            grouped = choice.reshape(T, cfg.n_group, -1)
            group_scores = -np.sort(-grouped, axis=-1)[..., :2].sum(-1)
            gidx = topk_indices(group_scores, cfg.topk_group)
            gmask = np.zeros_like(group_scores)
            np.put_along_axis(gmask, gidx, 1.0, -1)
            smask = np.repeat(gmask, E // cfg.n_group, axis=-1)
            tmp = np.where(smask > 0, choice, 0.0)  # masked_fill(..., 0.0) as in DeepSeek/HF
            idx = topk_indices(tmp, cfg.top_k)
            w = np.take_along_axis(scores, idx, -1)  # bias selects, never weights
        if arch == "deepseek_v2":
            # DeepSeek-V2 MoEGate: normalise OR scale.
            if cfg.top_k > 1 and cfg.norm_topk_prob:
                w = w / (w.sum(-1, keepdims=True) + 1e-20)
            else:
                w = w * cfg.routed_scaling_factor
        else:
            # DeepSeek-V3 MoEGate: normalise, then always scale.
            if cfg.top_k > 1 and cfg.norm_topk_prob:
                w = w / (w.sum(-1, keepdims=True) + 1e-20)
            w = w * cfg.routed_scaling_factor
        return idx, w

    def _expert(self, x, i, e):
        g, u, d = expert_tensor_names(self.cfg.arch, i, e)
        W = self.w
        return (silu(x @ W[g].T) * (x @ W[u].T)) @ W[d].T

    def moe(self, x, i):
        cfg = self.cfg
        idx, w = self.route(x, i)
        out = np.zeros_like(x)
        for e in np.unique(idx):
            rows, slots = np.nonzero(idx == e)
            out[rows] += self._expert(x[rows], i, int(e)) * w[rows, slots][:, None]
        p = f"model.layers.{i}.mlp."
        if cfg.arch == "qwen2_moe":
            gate = sigmoid(self._lin(x, p + "shared_expert_gate"))
            out = out + gate * self._mlp(x, p + "shared_expert.")
        elif cfg.arch in DEEPSEEK and cfg.n_shared_experts:
            out = out + self._mlp(x, p + "shared_experts.")
        return out

    # ---- forward ---------------------------------------------------------------

    def forward(self, ids, cache=None):
        """Runs ids (list of ints) after the cache's tokens; returns logits
        [T, vocab] float32 and extends the cache in place."""
        cfg = self.cfg
        if cache is None:
            cache = self.new_cache()
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size == 0:
            return np.zeros((0, cfg.vocab_size), np.float32)
        if ids.min() < 0 or ids.max() >= cfg.vocab_size:
            raise ReferenceError(f"token id out of range [0,{cfg.vocab_size})")
        start = cache["len"]
        pos = np.arange(start, start + len(ids))
        cos, sin = self.rope.cos_sin(pos, self.dt)
        h = self.w["model.embed_tokens.weight"][ids]
        eps = cfg.rms_norm_eps
        for i in range(cfg.num_layers):
            p = f"model.layers.{i}."
            lc = cache["layers"][i]
            x = rms_norm(h, self.w[p + "input_layernorm.weight"], eps)
            if cfg.arch in DEEPSEEK:
                h = h + self._attention_mla(x, i, lc, cos, sin, pos)
            else:
                h = h + self._attention_std(x, i, lc, cos, sin, pos)
            x = rms_norm(h, self.w[p + "post_attention_layernorm.weight"], eps)
            h = h + (self.moe(x, i) if cfg.is_moe_layer(i) else self._mlp(x, p + "mlp."))
        cache["len"] = start + len(ids)
        h = rms_norm(h, self.w["model.norm.weight"], eps)
        return (h @ self.lm_head.T).astype(np.float32)

    def eos_ids(self):
        e = self.cfg.eos_token_id
        if e is None:
            return set()
        return set(e) if isinstance(e, list) else {int(e)}

    def greedy(self, ids, max_new_tokens, stop_at_eos=False):
        """Greedy decoding with the KV cache. Returns (generated ids, prompt
        logits [T, V], per-step top1-top2 logit margins)."""
        cache = self.new_cache()
        logits = self.forward(ids, cache)
        prompt_logits = logits
        out, margins = [], []
        eos = self.eos_ids() if stop_at_eos else set()
        for _ in range(max_new_tokens):
            last = logits[-1].astype(np.float64)
            tok = int(np.argmax(last))
            top2 = np.partition(last, -2)[-2:] if last.size > 1 else np.array([0.0, last[0]])
            margins.append(float(top2[1] - top2[0]))
            out.append(tok)
            if tok in eos:
                break
            logits = self.forward([tok], cache)
        return out, prompt_logits, margins


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------

def compare_logits(ref_logits, got_logits):
    """max |ref - got| relative to the logit scale max |ref| (issue 4's metric)."""
    scale = max(float(np.max(np.abs(ref_logits))), 1e-30) if ref_logits.size else 1.0
    return float(np.max(np.abs(ref_logits - got_logits))) / scale if ref_logits.size else 0.0


def _parse_ids(s):
    return [int(t) for t in s.split(",") if t.strip() != ""]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    def common(p):
        p.add_argument("--model", required=True, help="checkpoint directory (config.json + safetensors)")
        p.add_argument("--adapter", help="ESFT adapter directory merged into the base")
        p.add_argument("--precision", choices=("f64", "f32"), default="f64")
        p.add_argument("--allow-unused", action="store_true",
                       help="do not fail on checkpoint tensors the config does not use")

    p = sub.add_parser("logits", help="per-position logits [T, vocab] float32 .npy")
    common(p)
    p.add_argument("--ids", required=True)
    p.add_argument("--out", required=True)
    p = sub.add_parser("greedy", help="greedy generation to JSON")
    common(p)
    p.add_argument("--ids", required=True)
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--stop-at-eos", action="store_true")
    p.add_argument("--out", required=True)
    p = sub.add_parser("batch", help="greedy (and prompt logits) for a JSON list of prompts")
    common(p)
    p.add_argument("--prompts", required=True,
                   help='JSON list; each item a list of ids or {"ids": [...], "max_new_tokens": n}')
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--stop-at-eos", action="store_true")
    p.add_argument("--out", required=True)
    p.add_argument("--logits-dir", help="also write prompt_<i>.npy prompt logits here")
    p = sub.add_parser("compare", help="max|ref-got| / max|ref| of two logits .npy files")
    p.add_argument("--ref", required=True)
    p.add_argument("--got", required=True)
    p.add_argument("--tol", type=float, default=1e-4)
    args = ap.parse_args(argv)

    if args.cmd == "compare":
        r, g = np.load(args.ref).astype(np.float64), np.load(args.got).astype(np.float64)
        if r.shape != g.shape:
            print(f"hf_reference: shape mismatch {r.shape} vs {g.shape}", file=sys.stderr)
            return 1
        rel = compare_logits(r, g)
        print(json.dumps({"max_rel_diff": rel, "tol": args.tol, "ok": rel <= args.tol}))
        return 0 if rel <= args.tol else 1

    try:
        model = Model(args.model, args.adapter, args.precision, args.allow_unused)
        if args.cmd == "logits":
            np.save(args.out, model.forward(_parse_ids(args.ids)))
        elif args.cmd == "greedy":
            ids = _parse_ids(args.ids)
            gen, _, margins = model.greedy(ids, args.max_new_tokens, args.stop_at_eos)
            with open(args.out, "w") as f:
                json.dump({"prompt": ids, "generated": gen, "min_margin": min(margins, default=None),
                           "margins": margins}, f)
        else:
            with open(args.prompts) as f:
                prompts = json.load(f)
            results = []
            if args.logits_dir:
                os.makedirs(args.logits_dir, exist_ok=True)
            for n, item in enumerate(prompts):
                ids = item if isinstance(item, list) else item["ids"]
                mnt = args.max_new_tokens if isinstance(item, list) else item.get(
                    "max_new_tokens", args.max_new_tokens)
                gen, plog, margins = model.greedy(ids, mnt, args.stop_at_eos)
                if args.logits_dir:
                    np.save(os.path.join(args.logits_dir, f"prompt_{n}.npy"), plog)
                results.append({"prompt": ids, "generated": gen,
                                "min_margin": min(margins, default=None), "margins": margins})
            with open(args.out, "w") as f:
                json.dump({"results": results}, f)
    except (ReferenceError, safetensors_np.SafetensorsError, KeyError, OSError) as e:
        print(f"hf_reference: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
