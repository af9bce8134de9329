"""Self-tests of the NumPy reference: properties that catch real bugs.

Run: /usr/bin/python3 -m unittest discover -s tests/reference -p 'test_*.py'
"""

import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import hf_reference as ref  # noqa: E402
import safetensors_np as st  # noqa: E402
import tiny_models as tm  # noqa: E402

IDS = [5, 17, 3, 44, 9, 60, 1, 88, 23]


class TmpDirTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="refselftest")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def ckpt(self, arch, name=None, **kw):
        path = os.path.join(self.tmp, name or arch)
        cfg, w = tm.make_checkpoint(path, arch, **kw)
        return path, cfg, w


def _raw_safetensors(path, name, dtype, shape, raw):
    header = {name: {"dtype": dtype, "shape": shape, "data_offsets": [0, len(raw)]}}
    h = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + raw)


class SafetensorsTest(TmpDirTest):
    def test_bf16_known_bit_patterns(self):
        bits = [0x3F80, 0xC000, 0x3FC0, 0x7F80, 0xFF80, 0x0001, 0x0000, 0x8000, 0x4049]
        want = [1.0, -2.0, 1.5, np.inf, -np.inf, 2.0 ** -133, 0.0, -0.0, 3.140625]
        path = os.path.join(self.tmp, "b.safetensors")
        _raw_safetensors(path, "t", "BF16", [3, 3], struct.pack("<9H", *bits))
        arr, dt = st.load_file(path)["t"]
        self.assertEqual(dt, "BF16")
        self.assertEqual(arr.shape, (3, 3))
        self.assertEqual(arr.dtype, np.float32)
        np.testing.assert_array_equal(arr.ravel(), np.array(want, np.float32))
        self.assertTrue(np.signbit(arr.ravel()[7]))

    def test_f16_and_f32_known_bit_patterns(self):
        path = os.path.join(self.tmp, "h.safetensors")
        _raw_safetensors(path, "h", "F16", [4], struct.pack("<4H", 0x3C00, 0xC000, 0x7BFF, 0x0001))
        np.testing.assert_array_equal(st.load_file(path)["h"][0],
                                      np.array([1.0, -2.0, 65504.0, 2.0 ** -24], np.float32))
        _raw_safetensors(path, "f", "F32", [2], struct.pack("<2I", 0x3F800000, 0xC0490FDB))
        np.testing.assert_array_equal(st.load_file(path)["f"][0],
                                      np.array([1.0, -3.1415927], np.float32))

    def test_bf16_writer_rounds_to_nearest_even(self):
        x = np.array([1.0 + 2 ** -8, 1.0 + 3 * 2 ** -8, 1.0 + 2 ** -8 + 2 ** -20], np.float32)
        bits = st.f32_to_bf16_bits(x)
        self.assertEqual([hex(b) for b in bits], ["0x3f80", "0x3f82", "0x3f81"])

    def test_rejects_integer_dtype_and_bad_offsets(self):
        path = os.path.join(self.tmp, "i.safetensors")
        _raw_safetensors(path, "i", "I32", [1], b"\0\0\0\0")
        with self.assertRaisesRegex(st.SafetensorsError, "I32"):
            st.load_file(path)
        _raw_safetensors(path, "f", "F32", [2], b"\0\0\0\0")
        with self.assertRaisesRegex(st.SafetensorsError, "offsets"):
            st.load_file(path)

    def test_sharded_equals_single_file(self):
        p1, _, _ = self.ckpt("llama", "one", seed=3)
        p2, _, _ = self.ckpt("llama", "sharded", seed=3, shards=3)
        self.assertEqual(len([f for f in os.listdir(p2) if f.endswith(".safetensors")]), 3)
        a, b = st.load_dir(p1), st.load_dir(p2)
        self.assertEqual(sorted(a), sorted(b))
        for n in a:
            np.testing.assert_array_equal(a[n][0], b[n][0])


class ForwardTest(TmpDirTest):
    def test_kv_cache_incremental_equals_full_forward(self):
        for arch in ref.ARCHS:
            with self.subTest(arch=arch):
                path, _, _ = self.ckpt(arch)
                m = ref.Model(path)
                full = m.forward(IDS)
                cache = m.new_cache()
                parts = [m.forward(IDS[:4], cache), m.forward(IDS[4:6], cache)]
                parts += [m.forward([t], cache) for t in IDS[6:]]
                inc = np.concatenate(parts)
                self.assertEqual(full.shape, (len(IDS), 97))
                np.testing.assert_allclose(inc, full, rtol=0, atol=1e-9)
                # Causality: a prefix's logits do not depend on later tokens.
                np.testing.assert_allclose(m.forward(IDS[:5]), full[:5], rtol=0, atol=1e-9)

    def test_greedy_equals_argmax_of_full_forward(self):
        path, _, _ = self.ckpt("qwen3_moe")
        m = ref.Model(path)
        gen, _, margins = m.greedy(IDS[:4], 6)
        seq = list(IDS[:4])
        for t in gen:
            self.assertEqual(t, int(np.argmax(m.forward(seq)[-1])))
            seq.append(t)
        self.assertEqual(len(margins), 6)
        self.assertTrue(all(x >= 0 for x in margins))

    def test_mixtral_sliding_window(self):
        cfg = tm.make_config("mixtral", sliding_window=3)
        w = tm.random_weights(cfg, seed=8)
        p = os.path.join(self.tmp, "win")
        tm.write_checkpoint(p, cfg, w)
        m = ref.Model(p)
        full = m.forward(IDS)
        cache = m.new_cache()
        inc = np.concatenate([m.forward([t], cache) for t in IDS])
        np.testing.assert_allclose(inc, full, rtol=0, atol=1e-9)
        # Position 5 sees positions 3..5 only: changing token 0..2 leaves it
        # unchanged in layer 0... but layer 1 widens the receptive field to
        # 1..5, so only changing token 0 leaves position 5 untouched.
        alt = list(IDS)
        alt[0] = 50
        np.testing.assert_allclose(m.forward(alt)[5], full[5], rtol=0, atol=1e-12)
        alt[1] = 50
        self.assertGreater(np.abs(m.forward(alt)[5] - full[5]).max(), 1e-6)
        p2 = os.path.join(self.tmp, "nowin")
        tm.write_checkpoint(p2, dict(cfg, sliding_window=None), w)
        self.assertGreater(np.abs(ref.Model(p2).forward(alt)[5] - m.forward(alt)[5]).max(), 1e-6)

    def test_bf16_checkpoint_equals_f32_checkpoint_of_rounded_weights(self):
        cfg = tm.make_config("qwen2")
        w = tm.random_weights(cfg, seed=7)
        pb = os.path.join(self.tmp, "bf16")
        pf = os.path.join(self.tmp, "f32r")
        tm.write_checkpoint(pb, cfg, w, "BF16")
        tm.write_checkpoint(pf, cfg, {n: st.round_to_bf16(a) for n, a in w.items()}, "F32")
        mb = ref.Model(pb)
        self.assertEqual(set(mb.dtypes.values()), {"BF16"})
        np.testing.assert_array_equal(mb.forward(IDS), ref.Model(pf).forward(IDS))
        # ...and differs from the unrounded weights (the rounding is really applied).
        pu = os.path.join(self.tmp, "f32")
        tm.write_checkpoint(pu, cfg, w, "F32")
        self.assertGreater(np.abs(mb.forward(IDS) - ref.Model(pu).forward(IDS)).max(), 1e-4)

    def test_tied_embeddings_use_embed_tokens(self):
        cfg = tm.make_config("llama", tie_word_embeddings=True)
        w = tm.random_weights(cfg, seed=1)
        self.assertNotIn("lm_head.weight", w)
        pt = os.path.join(self.tmp, "tied")
        tm.write_checkpoint(pt, cfg, w)
        cfg2 = dict(cfg, tie_word_embeddings=False)
        w2 = dict(w, **{"lm_head.weight": w["model.embed_tokens.weight"]})
        pu = os.path.join(self.tmp, "untied")
        tm.write_checkpoint(pu, cfg2, w2)
        np.testing.assert_array_equal(ref.Model(pt).forward(IDS), ref.Model(pu).forward(IDS))

    def test_qwen2_qkv_bias_and_qwen3_qk_norm_matter(self):
        path, cfg, w = self.ckpt("qwen2")
        base = ref.Model(path).forward(IDS)
        w = dict(w)
        w["model.layers.0.self_attn.k_proj.bias"] = w["model.layers.0.self_attn.k_proj.bias"] + 1.0
        p2 = os.path.join(self.tmp, "qwen2b")
        tm.write_checkpoint(p2, cfg, w)
        self.assertGreater(np.abs(ref.Model(p2).forward(IDS) - base).max(), 1e-3)
        path, cfg, w = self.ckpt("qwen3")
        base = ref.Model(path).forward(IDS)
        w = dict(w, **{"model.layers.1.self_attn.q_norm.weight":
                       2 * w["model.layers.1.self_attn.q_norm.weight"]})
        p3 = os.path.join(self.tmp, "qwen3b")
        tm.write_checkpoint(p3, cfg, w)
        self.assertGreater(np.abs(ref.Model(p3).forward(IDS) - base).max(), 1e-3)

    def test_missing_or_misshaped_tensor_is_a_clear_error(self):
        path, cfg, w = self.ckpt("mixtral")
        name = "model.layers.1.block_sparse_moe.experts.3.w2.weight"
        w2 = {n: a for n, a in w.items() if n != name}
        p = os.path.join(self.tmp, "missing")
        tm.write_checkpoint(p, cfg, w2)
        with self.assertRaisesRegex(ref.ReferenceError, "missing tensor .*experts.3.w2"):
            ref.Model(p)
        w2 = dict(w, **{name: np.zeros((3, 3), np.float32)})
        p = os.path.join(self.tmp, "shape")
        tm.write_checkpoint(p, cfg, w2)
        with self.assertRaisesRegex(ref.ReferenceError, "experts.3.w2.*shape"):
            ref.Model(p)
        w2 = dict(w, **{"model.layers.9.mlp.up_proj.weight": np.zeros(3, np.float32)})
        p = os.path.join(self.tmp, "extra")
        tm.write_checkpoint(p, cfg, w2)
        with self.assertRaisesRegex(ref.ReferenceError, "does not use"):
            ref.Model(p)

    def test_published_config_key_sets_are_all_interpreted(self):
        # Key sets of DeepSeek-V2-Lite's config.json (original and as re-saved by
        # transformers 5 with rope_parameters) and Qwen3-30B-A3B's, with tiny dims.
        import contextlib
        import io
        v2 = dict(tm.make_config("deepseek_v2"), architectures=["DeepseekV2ForCausalLM"],
                  attention_bias=False, attention_dropout=0.0, auto_map={}, aux_loss_alpha=0.001,
                  pretraining_tp=1, seq_aux=True, torch_dtype="bfloat16", use_cache=True,
                  transformers_version="4.33.1", initializer_range=0.02)
        v2_t5 = {k: v for k, v in v2.items() if k not in ("rope_scaling", "rope_theta")}
        v2_t5.update(head_dim=8, mlp_bias=False, dtype="bfloat16", pad_token_id=None,
                     rope_parameters=dict(v2["rope_scaling"], rope_theta=10000,
                                          rope_type="yarn"))
        q3 = dict(tm.make_config("qwen3_moe"), attention_bias=False, max_window_layers=2,
                  output_router_logits=False, router_aux_loss_coef=0.001, sliding_window=None,
                  use_sliding_window=False, rope_scaling=None)
        for raw in (v2, v2_t5, q3):
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                cfg = ref.Config(raw)
            self.assertEqual(err.getvalue(), "", raw["model_type"])
            if cfg.arch == "deepseek_v2":
                r = ref.Rope(cfg, 8)
                self.assertAlmostEqual(r.softmax_mult, (0.0707 * math.log(40) + 1) ** 2, places=12)
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            ref.Config(dict(q3, brand_new_knob=3))
        self.assertIn("brand_new_knob", err.getvalue())

    def test_unsupported_config_is_rejected(self):
        for over, msg in [({"hidden_act": "gelu"}, "hidden_act"),
                          ({"rope_scaling": {"rope_type": "dynamic", "factor": 2.0}}, "dynamic"),
                          ({"use_sliding_window": True}, "sliding")]:
            cfg = tm.make_config("qwen2", **over)
            with self.assertRaisesRegex(ref.ReferenceError, msg):
                ref.Model(self._write(cfg))

    def test_missing_config_key_is_named(self):
        cfg = tm.make_config("deepseek_v3")
        del cfg["kv_lora_rank"]
        with self.assertRaisesRegex(ref.ReferenceError, "kv_lora_rank"):
            ref.Config(cfg)

    def _write(self, cfg):
        p = tempfile.mkdtemp(dir=self.tmp)
        w = tm.random_weights(dict(cfg, hidden_act="silu", use_sliding_window=False,
                                   rope_scaling=None))
        tm.write_checkpoint(p, cfg, w)
        return p


def _complex_rope_scores(q, k, inv_freq, pq, pk):
    """Interleaved-pair RoPE as complex multiplication (transformers'
    DeepseekV2 apply_rotary_emb with view_as_complex), then the dot product."""
    qc = (q[0::2] + 1j * q[1::2]) * np.exp(1j * pq * inv_freq)
    kc = (k[0::2] + 1j * k[1::2]) * np.exp(1j * pk * inv_freq)
    return float(np.real(np.sum(qc * np.conj(kc))))


class RopeTest(TmpDirTest):
    def _rope(self, arch, **over):
        return ref.Rope(ref.Config(tm.make_config(arch, **over)),
                        8 if arch.startswith("deepseek") else 8)

    def test_rope_interleave_false_uses_half_split_layout(self):
        # transformers' DeepseekV3 with rope_interleave=false skips the permutation.
        rng = np.random.default_rng(3)
        q, k = rng.standard_normal((1, 1, 8)), rng.standard_normal((1, 1, 8))
        ds = self._rope("deepseek_v3", rope_scaling=None, rope_interleave=False)
        ll = self._rope("llama", rope_scaling=None)
        c, s = ds.cos_sin([6], np.float64)
        np.testing.assert_array_equal(ds.apply(q, c, s), ll.apply(q, c, s))
        self.assertTrue(self._rope("deepseek_v3", rope_scaling=None).interleave)

    def test_scores_depend_only_on_position_difference(self):
        rng = np.random.default_rng(0)
        for arch in ("llama", "deepseek_v2"):
            rope = self._rope(arch, rope_scaling=None)
            q, k = rng.standard_normal((1, 1, 8)), rng.standard_normal((1, 1, 8))

            def score(pq, pk):
                cq, sq = rope.cos_sin([pq], np.float64)
                ck, sk = rope.cos_sin([pk], np.float64)
                return float(np.sum(rope.apply(q, cq, sq) * rope.apply(k, ck, sk)))
            base = score(7, 3)
            for shift in (1, 10, 100):
                self.assertAlmostEqual(score(7 + shift, 3 + shift), base, places=9)
            self.assertGreater(abs(score(7, 3) - score(7, 4)), 1e-6)
            self.assertAlmostEqual(score(0, 0), float(np.sum(q * k)), places=12)

    def test_deepseek_interleaved_layout_equals_complex_pair_rotation(self):
        rng = np.random.default_rng(1)
        rope = self._rope("deepseek_v2", rope_scaling=None)
        q, k = rng.standard_normal(8), rng.standard_normal(8)
        for pq, pk in [(5, 2), (40, 39), (3, 0)]:
            cq, sq = rope.cos_sin([pq], np.float64)
            ck, sk = rope.cos_sin([pk], np.float64)
            got = float(np.sum(rope.apply(q[None, None], cq, sq) * rope.apply(k[None, None], ck, sk)))
            self.assertAlmostEqual(got, _complex_rope_scores(q, k, rope.inv_freq, pq, pk), places=10)
        # The standard (half-split) layout gives a different answer on the same input.
        std = self._rope("llama", rope_scaling=None)
        c, s = std.cos_sin([5], np.float64)
        c2, s2 = std.cos_sin([2], np.float64)
        got_std = float(np.sum(std.apply(q[None, None], c, s) * std.apply(k[None, None], c2, s2)))
        self.assertGreater(abs(got_std - _complex_rope_scores(q, k, rope.inv_freq, 5, 2)), 1e-6)

    def test_yarn_factor_one_reduces_to_default(self):
        for arch, rs in [("llama", {"rope_type": "yarn", "factor": 1.0,
                                    "original_max_position_embeddings": 64}),
                         ("deepseek_v2", {"type": "yarn", "factor": 1.0, "mscale": 0.707,
                                          "mscale_all_dim": 0.707,
                                          "original_max_position_embeddings": 64})]:
            with self.subTest(arch=arch):
                cfg = tm.make_config(arch, rope_scaling=rs)
                w = tm.random_weights(cfg, seed=2)
                p1 = os.path.join(self.tmp, arch + "y")
                tm.write_checkpoint(p1, cfg, w)
                p2 = os.path.join(self.tmp, arch + "d")
                tm.write_checkpoint(p2, dict(cfg, rope_scaling=None), w)
                m1, m2 = ref.Model(p1), ref.Model(p2)
                self.assertEqual(m1.scale, m2.scale)
                np.testing.assert_allclose(m1.forward(IDS), m2.forward(IDS), rtol=0, atol=1e-12)

    def test_deepseek_yarn_mscale_constants(self):
        # DeepSeek-V2-Lite style: mscale == mscale_all_dim -> cos/sin unscaled,
        # softmax scale multiplied by mscale(factor, mscale_all_dim)^2.
        m = ref.Rope(ref.Config(tm.make_config("deepseek_v2")), 8)
        self.assertAlmostEqual(m.attention_factor, 1.0, places=15)
        ms = 0.1 * 0.707 * math.log(40) + 1.0
        self.assertAlmostEqual(m.softmax_mult, ms * ms, places=12)
        # mscale != mscale_all_dim -> ratio on cos/sin.
        rs = {"type": "yarn", "factor": 4.0, "mscale": 1.0, "mscale_all_dim": 0.5,
              "original_max_position_embeddings": 64}
        m = ref.Rope(ref.Config(tm.make_config("deepseek_v3", rope_scaling=rs)), 8)
        self.assertAlmostEqual(m.attention_factor,
                               (0.1 * math.log(4) + 1) / (0.05 * math.log(4) + 1), places=12)
        self.assertAlmostEqual(m.softmax_mult, (0.05 * math.log(4) + 1) ** 2, places=12)
        # HF yarn for llama: attention_factor 0.1 ln(f) + 1, no softmax change.
        m = ref.Rope(ref.Config(tm.make_config("llama", rope_scaling={
            "rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64})), 8)
        self.assertAlmostEqual(m.attention_factor, 0.1 * math.log(4) + 1, places=12)
        self.assertEqual(m.softmax_mult, 1.0)

    def test_yarn_blends_interpolation_and_extrapolation(self):
        m = ref.Rope(ref.Config(tm.make_config("llama", rope_scaling={
            "rope_type": "yarn", "factor": 8.0, "original_max_position_embeddings": 64})), 16)
        default = 1.0 / (10000.0 ** (np.arange(0, 16, 2) / 16))
        # find_correction_dim(32) = 16 ln(64/(64 pi)) / (2 ln 1e4) = -0.994 -> floor -> clamp 0
        # find_correction_dim(1)  = 16 ln(64/(2 pi))  / (2 ln 1e4) =  2.016 -> ceil 3
        self.assertAlmostEqual(m.inv_freq[0], default[0], places=15)  # extrapolated
        self.assertAlmostEqual(m.inv_freq[7], default[7] / 8, places=15)  # interpolated
        ramp = np.clip((np.arange(8) - 0) / 3.0, 0, 1)
        want = default / 8 * ramp + default * (1 - ramp)
        np.testing.assert_allclose(m.inv_freq, want, rtol=1e-14)

    def test_linear_and_llama3_frequencies(self):
        m = ref.Rope(ref.Config(tm.make_config("llama", rope_scaling={
            "rope_type": "linear", "factor": 4.0})), 8)
        default = 1.0 / (10000.0 ** (np.arange(0, 8, 2) / 8))
        np.testing.assert_allclose(m.inv_freq, default / 4, rtol=1e-15)
        rs = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
              "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
        m = ref.Rope(ref.Config(tm.make_config("llama", rope_theta=500000.0, rope_scaling=rs)), 128)
        d = 1.0 / (500000.0 ** (np.arange(0, 128, 2) / 128))
        wl = 2 * math.pi / d
        hi, lo, mid = wl < 8192 / 4, wl > 8192 / 1, (wl >= 2048) & (wl <= 8192)
        self.assertTrue(hi.any() and lo.any() and mid.any())
        np.testing.assert_allclose(m.inv_freq[hi], d[hi], rtol=1e-15)
        np.testing.assert_allclose(m.inv_freq[lo], d[lo] / 8, rtol=1e-15)
        s = (8192 / wl[mid] - 1) / 3
        np.testing.assert_allclose(m.inv_freq[mid], (1 - s) * d[mid] / 8 + s * d[mid], rtol=1e-14)


class MoETest(TmpDirTest):
    def _x(self, m, n=5, seed=4):
        return np.random.default_rng(seed).standard_normal((n, m.cfg.hidden_size))

    def _explicit(self, m, x, layer, probs, scale=1.0):
        out = np.zeros_like(x)
        for e in range(m.cfg.n_experts):
            g, u, d = ref.expert_tensor_names(m.cfg.arch, layer, e)
            W = m.w
            y = (ref.silu(x @ W[g].T) * (x @ W[u].T)) @ W[d].T
            out += scale * probs[:, e:e + 1] * y
        return out

    def test_all_experts_without_renormalisation_is_weighted_sum(self):
        cases = [("qwen3_moe", dict(num_experts_per_tok=6, norm_topk_prob=False), 1, "mlp.gate"),
                 ("mixtral", dict(num_experts_per_tok=4), 0, "block_sparse_moe.gate"),
                 ("qwen2_moe", dict(num_experts_per_tok=6, norm_topk_prob=False), 1, "mlp.gate"),
                 ("deepseek_v2", dict(num_experts_per_tok=8, routed_scaling_factor=1.7), 2,
                  "mlp.gate")]
        for arch, over, layer, gate in cases:
            with self.subTest(arch=arch):
                path, _, _ = self.ckpt(arch, **over)
                m = ref.Model(path)
                x = self._x(m)
                logits = x @ m.w[f"model.layers.{layer}.{gate}.weight"].T
                p = np.exp(logits - logits.max(1, keepdims=True))
                p /= p.sum(1, keepdims=True)
                want = self._explicit(m, x, layer, p, over.get("routed_scaling_factor", 1.0))
                pre = f"model.layers.{layer}.mlp."
                if arch == "qwen2_moe":
                    sg = 1 / (1 + np.exp(-(x @ m.w[pre + "shared_expert_gate.weight"].T)))
                    want += sg * m._mlp(x, pre + "shared_expert.")
                if arch == "deepseek_v2":
                    want += m._mlp(x, pre + "shared_experts.")
                np.testing.assert_allclose(m.moe(x, layer), want, rtol=1e-10, atol=1e-12)

    def test_topk_renormalisation_and_scaling_rules(self):
        # deepseek_v2: norm_topk_prob -> normalise and do NOT scale.
        path, _, _ = self.ckpt("deepseek_v2", "v2n", norm_topk_prob=True, routed_scaling_factor=3.0)
        _, w = ref.Model(path).route(self._x(ref.Model(path)), 1)
        np.testing.assert_allclose(w.sum(1), 1.0, rtol=1e-12)
        # deepseek_v3: normalise, then always scale.
        path, _, _ = self.ckpt("deepseek_v3", "v3n")
        m = ref.Model(path)
        _, w = m.route(self._x(m), 1)
        np.testing.assert_allclose(w.sum(1), 2.5, rtol=1e-12)
        # mixtral: always renormalised.
        path, _, _ = self.ckpt("mixtral", "mx")
        m = ref.Model(path)
        _, w = m.route(self._x(m), 0)
        np.testing.assert_allclose(w.sum(1), 1.0, rtol=1e-12)

    def test_group_limited_greedy_with_one_group_equals_greedy(self):
        cfg = tm.make_config("deepseek_v2")
        w = tm.random_weights(cfg, seed=5)
        p1 = os.path.join(self.tmp, "greedy")
        tm.write_checkpoint(p1, dict(cfg, topk_method="greedy"), w)
        p2 = os.path.join(self.tmp, "glg")
        tm.write_checkpoint(p2, dict(cfg, topk_method="group_limited_greedy", n_group=1,
                                     topk_group=1), w)
        p3 = os.path.join(self.tmp, "gready")  # DeepSeek-V2's original spelling
        tm.write_checkpoint(p3, dict(cfg, topk_method="gready"), w)
        a, b, c = (ref.Model(p).forward(IDS) for p in (p1, p2, p3))
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
        # With 4 groups and topk_group 1 every token's experts share one group.
        p4 = os.path.join(self.tmp, "glg4")
        tm.write_checkpoint(p4, dict(cfg, topk_method="group_limited_greedy", n_group=4,
                                     topk_group=1, num_experts_per_tok=2), w)
        m = ref.Model(p4)
        idx, _ = m.route(self._x(m, 20), 1)
        self.assertTrue(np.all(idx[:, 0] // 2 == idx[:, 1] // 2))
        self.assertGreater(np.abs(m.forward(IDS) - a).max(), 1e-6)

    def test_noaux_tc_bias_selects_but_does_not_weight(self):
        path, cfg, w = self.ckpt("deepseek_v3")
        m = ref.Model(path)
        x = self._x(m, 30)
        layer = 1
        bname = f"model.layers.{layer}.mlp.gate.e_score_correction_bias"
        m.w[bname] = np.zeros(8)
        m.w[bname][6] = 10.0  # forces expert 6 (group 3) in
        idx, wts = m.route(x, layer)
        self.assertTrue(np.all(np.any(idx == 6, axis=1)))
        scores = 1 / (1 + np.exp(-(x @ m.w[f"model.layers.{layer}.mlp.gate.weight"].T)))
        raw = np.take_along_axis(scores, idx, 1)
        np.testing.assert_allclose(wts, raw / raw.sum(1, keepdims=True) * 2.5, rtol=1e-12)
        # Group choice by the sum of the top-2 biased scores per group.
        m.w[bname] = np.zeros(8)
        m.w[bname][[0, 1]] = 5.0  # group 0 holds both -> wins; topk_group=2 -> one more group
        idx, _ = m.route(x, layer)
        choice = scores
        for t in range(x.shape[0]):
            g2 = np.sort(choice[t].reshape(4, 2), axis=1)[:, -2:].sum(1)
            g2[0] += 10.0
            groups = set(np.argsort(-g2, kind="stable")[:2])
            self.assertTrue(set(idx[t] // 2) <= groups, (t, idx[t], groups))


class MLATest(TmpDirTest):
    def _absorbed_attention(self, m, layer, x):
        """MLA the other way: absorb W_UK into the query and W_UV into the
        output, attend over the latent cache directly (never materialise K/V)."""
        cfg = m.cfg
        pos = np.arange(x.shape[0])
        cos, sin = m.rope.cos_sin(pos, np.float64)
        q_nope, q_pe, latent, k_pe = m.mla_project(x, layer, cos, sin)
        a = f"model.layers.{layer}.self_attn."
        wkv = m.w[a + "kv_b_proj.weight"].reshape(cfg.num_heads, cfg.qk_nope_head_dim + cfg.v_head_dim,
                                                  cfg.kv_lora_rank)
        w_uk, w_uv = wkv[:, :cfg.qk_nope_head_dim], wkv[:, cfg.qk_nope_head_dim:]
        q_lat = np.einsum("thn,hnr->thr", q_nope, w_uk)
        out = np.zeros((x.shape[0], cfg.num_heads, cfg.v_head_dim))
        for t in range(x.shape[0]):
            for h in range(cfg.num_heads):
                s = (latent[:t + 1] @ q_lat[t, h] + k_pe[:t + 1] @ q_pe[t, h]) * m.scale
                p = np.exp(s - s.max())
                p /= p.sum()
                out[t, h] = w_uv[h] @ (p @ latent[:t + 1])
        return out.reshape(x.shape[0], -1) @ m.w[a + "o_proj.weight"].T

    def test_materialised_equals_absorbed(self):
        for arch in ("deepseek_v2", "deepseek_v3"):  # without / with q_lora_rank
            with self.subTest(arch=arch):
                path, _, _ = self.ckpt(arch)
                m = ref.Model(path)
                self.assertEqual(m.cfg.q_lora_rank is None, arch == "deepseek_v2")
                x = np.random.default_rng(6).standard_normal((7, m.cfg.hidden_size))
                cos, sin = m.rope.cos_sin(np.arange(7), np.float64)
                naive = m._attention_mla(x, 0, {}, cos, sin, np.arange(7))
                np.testing.assert_allclose(naive, self._absorbed_attention(m, 0, x),
                                           rtol=1e-10, atol=1e-12)

    def test_latent_norms_make_mla_invariant_to_down_projection_scale(self):
        # kv_a_layernorm (and q_a_layernorm) follow the down projections, so
        # scaling the latent rows of kv_a_proj_with_mqa / all of q_a_proj by
        # c > 0 leaves logits unchanged up to the 1e-6 eps; scaling the rope
        # rows of kv_a_proj_with_mqa does not.
        path, cfg, w = self.ckpt("deepseek_v3")
        base = ref.Model(path).forward(IDS)
        r = cfg["kv_lora_rank"]
        for i in range(cfg["num_hidden_layers"]):
            a = f"model.layers.{i}.self_attn."
            w[a + "kv_a_proj_with_mqa.weight"][:r] *= 3.0
            w[a + "q_a_proj.weight"] *= 0.25
        p = os.path.join(self.tmp, "scaled")
        tm.write_checkpoint(p, cfg, w)
        np.testing.assert_allclose(ref.Model(p).forward(IDS), base, rtol=0, atol=1e-4)
        for i in range(cfg["num_hidden_layers"]):
            w[f"model.layers.{i}.self_attn.kv_a_proj_with_mqa.weight"][r:] *= 3.0
        tm.write_checkpoint(p, cfg, w)
        self.assertGreater(np.abs(ref.Model(p).forward(IDS) - base).max(), 1e-3)

    def test_layer_kinds_follow_first_k_dense_and_freq(self):
        cfg = ref.Config(tm.make_config("deepseek_v2", num_hidden_layers=6,
                                        first_k_dense_replace=1, moe_layer_freq=2))
        self.assertEqual([cfg.is_moe_layer(i) for i in range(6)],
                         [False, False, True, False, True, False])
        cfg = ref.Config(tm.make_config("qwen2_moe", num_hidden_layers=4, decoder_sparse_step=2,
                                        mlp_only_layers=[3]))
        self.assertEqual([cfg.is_moe_layer(i) for i in range(4)], [False, True, False, False])


class ESFTTest(TmpDirTest):
    def _adapter(self, name, experts, tensors, shared=False, prefix=True, dtype="F32"):
        d = os.path.join(self.tmp, name)
        os.makedirs(d)
        with open(os.path.join(d, "expert_cfg.json"), "w") as f:
            json.dump({"experts": experts, "shared_experts": shared,
                       "non_expert_modules": False}, f)
        if tensors is not None:
            t = {(n if prefix else n[len("model."):]): a for n, a in tensors.items()}
            st.save_file(os.path.join(d, "adapter.safetensors"), t, dtype)
        return d

    def test_empty_adapter_equals_base(self):
        path, _, _ = self.ckpt("deepseek_v2")
        base = ref.Model(path).forward(IDS)
        for files in (None, {}):
            d = self._adapter(f"empty{files is None}", {"1": [], "2": []}, files)
            np.testing.assert_array_equal(ref.Model(path, d).forward(IDS), base)

    def test_adapter_equals_independently_merged_checkpoint(self):
        for arch, prefix, shared in [("deepseek_v2", True, False), ("deepseek_v2", False, True),
                                     ("qwen3_moe", True, False), ("mixtral", False, False)]:
            with self.subTest(arch=arch, prefix=prefix, shared=shared):
                name = f"{arch}{prefix}{shared}"
                path, cfg, w = self.ckpt(arch, name)
                rng = np.random.default_rng(9)
                layers = [i for i in range(cfg["num_hidden_layers"])
                          if ref.Config(cfg).is_moe_layer(i)]
                experts = {str(layers[-1]): [3, 0]}
                if len(layers) > 1:
                    experts[str(layers[0])] = [1]
                new = {}
                for L, ids in experts.items():
                    for e in ids:
                        for n in ref.expert_tensor_names(arch, int(L), e):
                            new[n] = rng.standard_normal(w[n].shape).astype(np.float32) * 0.3
                if shared:
                    for L in layers:
                        for n in ref.shared_expert_tensor_names(arch, L):
                            new[n] = rng.standard_normal(w[n].shape).astype(np.float32) * 0.3
                d = self._adapter(name + "a", experts, new, shared, prefix)
                merged_path = os.path.join(self.tmp, name + "merged")
                tm.write_checkpoint(merged_path, cfg, dict(w, **new))
                got = ref.Model(path, d).forward(IDS)
                np.testing.assert_array_equal(got, ref.Model(merged_path).forward(IDS))
                self.assertGreater(np.abs(got - ref.Model(path).forward(IDS)).max(), 1e-6)

    def test_bad_adapters_are_rejected(self):
        path, cfg, w = self.ckpt("deepseek_v2")
        n = ref.expert_tensor_names("deepseek_v2", 1, 2)
        good = {k: w[k] for k in n}
        cases = [({"0": [2]}, good, "not an MoE layer"),
                 ({"1": [8]}, good, "out of range"),
                 ({"1": [2, 5]}, good, "missing tensor"),
                 ({"1": [2]}, dict(good, **{n[0]: np.zeros((3, 3), np.float32)}), "shape")]
        for i, (experts, tensors, msg) in enumerate(cases):
            with self.subTest(msg=msg):
                d = self._adapter(f"bad{i}", experts, tensors)
                with self.assertRaisesRegex(ref.ReferenceError, msg):
                    ref.Model(path, d)
        d = self._adapter("dtype", {"1": [2]}, good, dtype="BF16")
        with self.assertRaisesRegex(ref.ReferenceError, "dtype"):
            ref.Model(path, d)

    def test_unlisted_adapter_tensors_are_reported_not_used(self):
        path, cfg, w = self.ckpt("deepseek_v2")
        extra = {k: w[k] + 1.0 for k in ref.expert_tensor_names("deepseek_v2", 2, 4)}
        d = self._adapter("extra", {"1": [], "2": []}, extra)
        m = ref.Model(path, d)
        self.assertEqual(len(m.adapter_report["unused_tensors"]), 3)
        np.testing.assert_array_equal(m.forward(IDS), ref.Model(path).forward(IDS))


def _load_json(path):
    with open(path) as f:
        return json.load(f)


class CLITest(TmpDirTest):
    def _run(self, *args):
        return subprocess.run([sys.executable, os.path.join(HERE, "hf_reference.py"), *args],
                              capture_output=True, text=True, timeout=120)

    def test_logits_greedy_and_batch(self):
        path, _, _ = self.ckpt("qwen2_moe")
        m = ref.Model(path)
        out = os.path.join(self.tmp, "l.npy")
        r = self._run("logits", "--model", path, "--ids", "5,17,3", "--out", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        np.testing.assert_array_equal(np.load(out), m.forward([5, 17, 3]))
        out = os.path.join(self.tmp, "g.json")
        r = self._run("greedy", "--model", path, "--ids", "5,17,3", "--max-new-tokens", "5",
                      "--out", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        g = _load_json(out)
        self.assertEqual(g["generated"], m.greedy([5, 17, 3], 5)[0])
        prompts = os.path.join(self.tmp, "p.json")
        with open(prompts, "w") as f:
            json.dump([[5, 17, 3], {"ids": [9, 9], "max_new_tokens": 2}], f)
        out = os.path.join(self.tmp, "b.json")
        ld = os.path.join(self.tmp, "logits")
        r = self._run("batch", "--model", path, "--prompts", prompts, "--max-new-tokens", "5",
                      "--out", out, "--logits-dir", ld)
        self.assertEqual(r.returncode, 0, r.stderr)
        res = _load_json(out)["results"]
        self.assertEqual(res[0]["generated"], g["generated"])
        self.assertEqual(len(res[1]["generated"]), 2)
        np.testing.assert_array_equal(np.load(os.path.join(ld, "prompt_1.npy")), m.forward([9, 9]))

    def test_compare(self):
        a = os.path.join(self.tmp, "a.npy")
        b = os.path.join(self.tmp, "b.npy")
        np.save(a, np.array([[10.0, -20.0]], np.float32))
        np.save(b, np.array([[10.0, -20.001]], np.float32))
        r = self._run("compare", "--ref", a, "--got", b, "--tol", "1e-4")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertAlmostEqual(json.loads(r.stdout)["max_rel_diff"], 5e-5, places=6)
        r = self._run("compare", "--ref", a, "--got", b, "--tol", "1e-5")
        self.assertEqual(r.returncode, 1)

    def test_greedy_report_flags_copying_tied_model(self):
        import greedy_report
        cfg = tm.make_config("llama", tie_word_embeddings=True)
        w = tm.random_weights(cfg, seed=1)
        w["model.embed_tokens.weight"] *= 20.0  # residual dominated by the input token
        p = os.path.join(self.tmp, "copy")
        tm.write_checkpoint(p, cfg, w)
        r = greedy_report.report(ref.Model(p), [[5, 6, 7], [9]], 8)
        self.assertEqual(r["copies_last"], 2)
        self.assertEqual(r["degenerate"], 2)
        path, _, _ = self.ckpt("qwen3_moe")
        r = greedy_report.report(ref.Model(path), [[5, 6, 7], [9]], 8)
        self.assertEqual(r["copies_last"], 0)
        self.assertEqual(len(r["distinct"]), 2)

    def test_error_exit_code(self):
        r = self._run("logits", "--model", self.tmp, "--ids", "1", "--out", "/dev/null")
        self.assertEqual(r.returncode, 2)
        self.assertIn("error", r.stderr)


if __name__ == "__main__":
    unittest.main()
