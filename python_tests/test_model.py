"""tinygpt.model: config, presets, the GPT forward pass, saving and loading, the optimizer, and the
fused op path against the reference one."""

import json
import math

import pytest
import safetensors.torch
import torch
import torch.nn.functional as F

import tinygpt.ops
from tinygpt.model import GPT, PRESETS, GPTConfig, get_preset
from tinygpt.ops import reference

SMALL = dict(vocab_size=256, dim=64, n_layers=2, n_heads=4, n_kv_heads=2, max_seq_len=64)

FUSED_OPS = ("attention", "rms_norm", "rope", "swiglu", "cross_entropy")
MISSING_FUSED = [name for name in FUSED_OPS if not hasattr(tinygpt.ops, name)]
needs_fused = pytest.mark.skipif(
    bool(MISSING_FUSED),
    reason=f"tinygpt.ops lacks the fused {', '.join(MISSING_FUSED)} (not merged into this branch yet)",
)


def small_model(seed=0, fused=False, **overrides):
    torch.manual_seed(seed)
    return GPT(GPTConfig(**{**SMALL, **overrides}), fused=fused)


def batch(cfg, B=2, T=17, seed=1):
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(cfg.vocab_size, (B, T), generator=g)
    targets = torch.randint(cfg.vocab_size, (B, T), generator=g)
    return idx, targets


def expected_params(c: GPTConfig) -> int:
    """An independent statement of the parameter count."""
    hd = c.dim // c.n_heads
    kv = c.n_kv_heads or c.n_heads
    hidden = c.hidden_dim or 32 * math.ceil(int(8 * c.dim / 3) / 32)
    attn = c.dim * c.dim * 2 + 2 * c.dim * kv * hd
    per_layer = attn + 3 * c.dim * hidden + 2 * c.dim
    head = 0 if c.tie_embeddings else c.vocab_size * c.dim
    return c.vocab_size * c.dim + c.n_layers * per_layer + c.dim + head


# --------------------------------------------------------------------------------------------
# Config and presets
# --------------------------------------------------------------------------------------------

def test_presets_parameter_counts_are_near_their_names():
    rows = []
    for name, cfg in PRESETS.items():
        with torch.device("meta"):  # shapes only: no memory, no time
            n = GPT(cfg).num_params()
        assert n == expected_params(cfg)
        target = float(name[:-1]) * {"k": 1e3, "m": 1e6}[name[-1]]
        assert 0.8 * target <= n <= 1.2 * target, (name, n)
        assert cfg.vocab_size == 4096 and cfg.tie_embeddings
        rows.append(f"{name:>5} dim {cfg.dim:4} layers {cfg.n_layers:2} heads {cfg.n_heads:2} "
                    f"kv {cfg.kv_heads:2} hidden {cfg.ffn_dim:5} ctx {cfg.max_seq_len:5} "
                    f"params {n:>11,} ({n / target - 1:+.1%})")
    print("\n" + "\n".join(rows))
    assert list(PRESETS) == ["260k", "1m", "3m", "8m", "15m", "33m", "42m", "110m"]


def test_llama2c_shapes_in_the_presets():
    c = PRESETS["110m"]
    assert (c.dim, c.n_heads) == (768, 12)
    assert GPTConfig() == PRESETS["8m"]  # llama2.c stories15M's shape: 7.2M params at vocab 4096


def test_meta_count_matches_a_real_model():
    torch.manual_seed(0)
    assert GPT(PRESETS["260k"]).num_params() == expected_params(PRESETS["260k"]) == 300_816


def test_get_preset():
    c = get_preset("15m", max_seq_len=512, n_kv_heads=2)
    assert (c.dim, c.max_seq_len, c.n_kv_heads) == (432, 512, 2)
    assert PRESETS["15m"].max_seq_len == 256  # a copy
    assert get_preset("1m") == PRESETS["1m"] and get_preset("1m") is not PRESETS["1m"]
    with pytest.raises(ValueError, match=r"unknown model preset '7m'.*260k, 1m, 3m, 8m, 15m, 33m, 42m, 110m"):
        get_preset("7m")
    with pytest.raises(ValueError, match="unknown GPT config key.*'depth'"):
        get_preset("1m", depth=3)
    with pytest.raises(ValueError, match="n_heads"):
        get_preset("1m", n_heads=5)


def test_hidden_dim_rule():
    assert GPTConfig().ffn_dim == 768
    assert GPTConfig(dim=64, n_heads=4).ffn_dim == 192  # int(170.67) = 170, up to 192
    assert GPTConfig(dim=64, n_heads=4, multiple_of=4).ffn_dim == 172  # llama2.c stories260K
    assert GPTConfig(hidden_dim=100).ffn_dim == 100
    assert GPTConfig(n_kv_heads=None).kv_heads == 6 and GPTConfig(n_kv_heads=2).kv_heads == 2


@pytest.mark.parametrize("kw, msg", [
    (dict(dim=100, n_heads=6), r"dim \(100\) must be divisible by n_heads \(6\)"),
    (dict(dim=90, n_heads=6), "head_dim .* 15 must be even"),
    (dict(n_heads=6, n_kv_heads=4), r"n_heads \(6\) must be a multiple of n_kv_heads \(4\)"),
    (dict(dim=0), "dim must be a positive int"),
    (dict(n_layers=-1), "n_layers must be a positive int"),
    (dict(vocab_size=0), "vocab_size must be a positive int"),
    (dict(n_kv_heads=0), "n_kv_heads must be a positive int or None"),
    (dict(hidden_dim=0), "hidden_dim must be a positive int or None"),
    (dict(max_seq_len=0), "max_seq_len must be a positive int"),
    (dict(norm_eps=0.0), "norm_eps must be a positive number"),
    (dict(rope_theta=-1.0), "rope_theta must be a positive number"),
])
def test_config_validation(kw, msg):
    with pytest.raises(ValueError, match=msg):
        GPTConfig(**kw)
    cfg = GPTConfig()
    for k, v in kw.items():
        setattr(cfg, k, v)
    with pytest.raises(ValueError, match=msg):
        cfg.validate()


@pytest.mark.parametrize("kw, msg", [
    (dict(dim=4, n_heads=8), r"dim \(4\) must be divisible by n_heads \(8\)"),  # a head of 0 channels
    (dict(dim=8, n_heads=8), r"head_dim = dim / n_heads = 1 must be even"),
    (dict(n_heads=0), "GPTConfig.n_heads must be a positive int, got 0"),
    (dict(n_heads=None), "GPTConfig.n_heads must be a positive int, got None"),
    (dict(dim=64, n_heads=4, n_kv_heads=8), r"n_heads \(4\) must be a multiple of n_kv_heads \(8\)"),
])
def test_impossible_head_sizes_name_the_setting(kw, msg):
    """Shapes that give no model fail as ValueError naming the setting, never as a division by
    zero or a kernel's error, also for a config edited after it was made."""
    with pytest.raises(ValueError, match=msg):
        GPTConfig(**kw)
    cfg = GPTConfig(dim=64, n_heads=4)
    for k, v in kw.items():
        setattr(cfg, k, v)
    with pytest.raises(ValueError, match=msg):
        GPT(cfg)


def test_config_dict_round_trip():
    for cfg in [GPTConfig(), *PRESETS.values(), GPTConfig(**SMALL, tie_embeddings=False, hidden_dim=96)]:
        d = json.loads(json.dumps(cfg.to_dict()))
        assert GPTConfig.from_dict(d) == cfg
    assert GPTConfig.from_dict({"dim": 64, "n_heads": 4}) == GPTConfig(dim=64, n_heads=4)
    assert GPTConfig.from_dict({"rope_theta": 500000}).rope_theta == 500000.0


@pytest.mark.parametrize("d, msg", [
    ({"dim": 64, "depth": 3}, r"unknown GPT config key\(s\) \['depth'\]"),
    ({"dim": "288"}, r"dim must be a positive int, got '288'"),
    ({"dim": 288.0}, "dim must be a positive int, got 288.0"),
    ({"n_layers": True}, "n_layers must be a positive int, got True"),
    ({"n_kv_heads": "2"}, "n_kv_heads must be a positive int or None"),
    ({"norm_eps": "1e-5"}, "norm_eps must be a positive number"),
    ({"tie_embeddings": 1}, "tie_embeddings must be true or false"),
    ([("dim", 64)], "must be a dict"),
])
def test_from_dict_refuses(d, msg):
    with pytest.raises(ValueError, match=msg):
        GPTConfig.from_dict(d)


# --------------------------------------------------------------------------------------------
# Forward
# --------------------------------------------------------------------------------------------

def test_forward_shapes_and_loss():
    model = small_model()
    cfg = model.config
    idx, targets = batch(cfg, B=3, T=20)
    logits = model(idx)
    assert logits.shape == (3, 20, cfg.vocab_size) and logits.dtype == torch.float32
    loss = model(idx, targets)
    assert loss.shape == ()
    torch.testing.assert_close(loss, F.cross_entropy(logits.view(-1, cfg.vocab_size), targets.view(-1)))
    assert abs(loss.item() - math.log(cfg.vocab_size)) < 0.5  # small init: near uniform
    targets[:, ::3] = -100
    torch.testing.assert_close(model(idx, targets),
                               F.cross_entropy(logits.view(-1, cfg.vocab_size), targets.view(-1)))
    assert model(idx[:, :1]).shape == (3, 1, cfg.vocab_size)
    assert model(torch.zeros(1, cfg.max_seq_len, dtype=torch.long)).shape == (1, 64, cfg.vocab_size)


def test_forward_refuses_bad_input():
    model = small_model()
    with pytest.raises(ValueError, match="sequence length 65 is longer than max_seq_len 64"):
        model(torch.zeros(1, 65, dtype=torch.long))
    with pytest.raises(ValueError, match=r"shape \(B, T\)"):
        model(torch.zeros(65, dtype=torch.long))


def test_causality():
    model = small_model()
    idx, _ = batch(model.config, B=2, T=24)
    logits = model(idx)
    for t in (0, 7, 22):
        changed = idx.clone()
        changed[:, t + 1:] = torch.randint(model.config.vocab_size, changed[:, t + 1:].shape)
        changed[:, t + 1:] = (changed[:, t + 1:] + 1) % model.config.vocab_size  # surely different
        other = model(changed)
        torch.testing.assert_close(other[:, :t + 1], logits[:, :t + 1], rtol=0, atol=1e-6)
        assert not torch.allclose(other[:, t + 1:], logits[:, t + 1:])


def test_gqa_has_fewer_parameters_and_equals_mha_with_shared_kv_heads():
    gqa = small_model(n_kv_heads=2)
    mha = small_model(n_kv_heads=None)
    c = gqa.config
    assert mha.num_params() - gqa.num_params() == c.n_layers * 2 * c.dim * (c.n_heads - 2) * c.head_dim
    assert gqa.layers[0].attn.wk.weight.shape == (2 * c.head_dim, c.dim)
    # An MHA model whose heads h use kv head h // (n_heads / n_kv_heads) computes the same.
    group = c.n_heads // c.kv_heads
    state = gqa.state_dict()
    for k, v in list(state.items()):
        if k.endswith(("attn.wk.weight", "attn.wv.weight")):
            state[k] = v.view(c.kv_heads, c.head_dim, c.dim).repeat_interleave(group, 0).reshape(-1, c.dim)
    mha.load_state_dict(state)
    idx, targets = batch(c)
    torch.testing.assert_close(mha(idx), gqa(idx), rtol=1e-5, atol=1e-6)
    assert GPT(get_preset("8m", n_kv_heads=2), fused=False).num_params() < GPT(PRESETS["8m"]).num_params()


def test_tied_weights():
    tied = small_model()
    untied = small_model(tie_embeddings=False)
    assert tied.output.weight is tied.tok_embeddings.weight
    assert untied.output.weight is not untied.tok_embeddings.weight
    V, d = tied.config.vocab_size, tied.config.dim
    assert tied.num_params() == expected_params(tied.config)
    assert untied.num_params() == tied.num_params() + V * d
    assert tied.num_params(non_embedding=True) == untied.num_params(non_embedding=True) == tied.num_params() - V * d
    idx, targets = batch(tied.config)
    tied(idx, targets).backward()
    # one gradient, from both uses
    assert tied.output.weight.grad is tied.tok_embeddings.weight.grad


def test_init():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=512, dim=128, n_layers=4, n_heads=4), fused=False)
    small = 0.02 / math.sqrt(2 * 4)
    for name, p in model.named_parameters():
        if "norm" in name:
            assert torch.equal(p, torch.ones_like(p)), name
        else:
            std = small if name.endswith(("wo.weight", "w2.weight")) else 0.02
            assert abs(p.std().item() / std - 1) < 0.1, name
            assert abs(p.mean().item()) < 0.1 * std, name
    assert model.rope_cos.shape == (model.config.max_seq_len, 16)
    assert "rope_cos" not in model.state_dict()
    cos, sin = reference.rope_tables(model.config.max_seq_len, 32, 10000.0)
    assert torch.equal(model.rope_cos, cos) and torch.equal(model.rope_sin, sin)


# --------------------------------------------------------------------------------------------
# Saving and loading
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("tie", [True, False])
def test_save_load_round_trip(tmp_path, tie):
    model = small_model(tie_embeddings=tie)
    idx, _ = batch(model.config)
    model.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
    tensors = safetensors.torch.load_file(tmp_path / "m" / "model.safetensors")
    assert ("output.weight" in tensors) == (not tie)  # the tied head is stored once
    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    assert meta == {"format": "tinygpt-model", "version": 1, "config": model.config.to_dict()}

    for fused in (False, True):
        loaded = GPT.load(tmp_path / "m", fused=fused)
        assert loaded.fused is fused and loaded.config == model.config
        assert (loaded.output.weight is loaded.tok_embeddings.weight) == tie
    loaded.fused = False
    assert torch.equal(loaded(idx), model(idx))
    model.save(tmp_path / "m")  # overwrites
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]


@pytest.fixture
def saved(tmp_path):
    model = small_model()
    model.save(tmp_path / "m")
    return tmp_path / "m"


def rewrite_config(d, edit):
    path = d / "config.json"
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))


def rewrite_weights(d, edit, keep_metadata=True):
    path = d / "model.safetensors"
    with safetensors.safe_open(str(path), "pt") as f:
        metadata = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    edit(tensors)
    safetensors.torch.save_file(tensors, path, metadata=metadata if keep_metadata else None)


def test_load_refuses_missing_things(tmp_path, saved):
    with pytest.raises(FileNotFoundError, match="model directory not found"):
        GPT.load(tmp_path / "nope")
    (saved / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model file not found: .*model.safetensors"):
        GPT.load(saved)
    small_model().save(saved)
    (saved / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="model file not found: .*config.json"):
        GPT.load(saved)


@pytest.mark.parametrize("keep", [0, 7, 100, -1000])
def test_load_refuses_truncated_weights(saved, keep):
    path = saved / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[:keep])
    with pytest.raises(ValueError, match=r"model.safetensors is corrupt or truncated"):
        GPT.load(saved)


def test_load_refuses_garbage_weights(saved):
    (saved / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!" + bytes(64))
    with pytest.raises(ValueError, match=r"model.safetensors is corrupt or truncated"):
        GPT.load(saved)


@pytest.mark.parametrize("keep_metadata", [True, False])
def test_load_refuses_wrong_tensors(saved, keep_metadata):
    def wrong_shape(t):
        t["layers.1.mlp.w1.weight"] = torch.zeros(10, 64)

    rewrite_weights(saved, wrong_shape, keep_metadata)
    with pytest.raises(ValueError, match=r"layers.1.mlp.w1.weight has shape \(10, 64\), the config needs \(192, 64\)"):
        GPT.load(saved)

    rewrite_weights(saved, lambda t: t.pop("norm.weight"), keep_metadata)
    with pytest.raises(ValueError, match=r"missing tensors \['norm.weight'\]"):
        GPT.load(saved)

    rewrite_weights(saved, lambda t: t.update({"norm.weight": torch.ones(64), "extra": torch.zeros(2)}),
                    keep_metadata)
    with pytest.raises(ValueError, match=r"unexpected tensors \['extra'\]"):
        GPT.load(saved)

    rewrite_weights(saved, lambda t: t.update({"norm.weight": torch.ones(64, dtype=torch.int32)}), keep_metadata)
    rewrite_weights(saved, lambda t: t.pop("extra"), keep_metadata)
    with pytest.raises(ValueError, match="norm.weight has dtype torch.int32"):
        GPT.load(saved)


def test_load_refuses_weights_from_another_save(tmp_path, saved):
    # Same shapes, different config: only the config stored beside the weights can tell.
    small_model(rope_theta=500000.0).save(tmp_path / "other")
    (tmp_path / "other" / "model.safetensors").replace(saved / "model.safetensors")
    with pytest.raises(ValueError, match="do not belong together"):
        GPT.load(saved)


@pytest.mark.parametrize("edit, exc, msg", [
    (lambda m: m["config"].update(depth=3), ValueError, r"invalid model config: unknown GPT config key\(s\) \['depth'\]"),
    (lambda m: m["config"].update(dim="64"), ValueError, "invalid model config: GPTConfig.dim must be a positive int"),
    (lambda m: m.update(version=2), ValueError, "newer tinygpt .*version 2.*upgrade tinygpt"),
    (lambda m: m.update(version="1"), ValueError, "bad version '1'"),
    (lambda m: m.update(format="tinygpt-tokenizer"), ValueError, "not a tinygpt model config"),
    (lambda m: m.pop("config"), ValueError, "invalid model config: a GPT config must be a dict"),
])
def test_load_refuses_bad_config(saved, edit, exc, msg):
    rewrite_config(saved, edit)
    with pytest.raises(exc, match=msg):
        GPT.load(saved)


def test_load_refuses_unreadable_config(saved):
    (saved / "config.json").write_text('{"format": "tinygpt-model", "vers')
    with pytest.raises(ValueError, match="config.json is not a tinygpt model config .unreadable JSON"):
        GPT.load(saved)


def test_load_checks_weights_against_config(saved):
    rewrite_config(saved, lambda m: m["config"].update(n_layers=3))
    with pytest.raises(ValueError, match="do not belong together"):
        GPT.load(saved)
    rewrite_weights(saved, lambda t: None, keep_metadata=False)  # a file without our metadata
    with pytest.raises(ValueError, match=r"missing tensors \['layers.2.attn.wk.weight'"):
        GPT.load(saved)


# --------------------------------------------------------------------------------------------
# Optimizer and training
# --------------------------------------------------------------------------------------------

def test_configure_optimizer_groups():
    model = small_model()
    opt = model.configure_optimizer(lr=1e-3, weight_decay=0.1, betas=(0.9, 0.99))
    assert isinstance(opt, torch.optim.AdamW)
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert decay["betas"] == (0.9, 0.99) and decay["lr"] == 1e-3
    names = {id(p): n for n, p in model.named_parameters()}
    decay_names = {names[id(p)] for p in decay["params"]}
    no_decay_names = {names[id(p)] for p in no_decay["params"]}
    assert no_decay_names == {n for n in names.values() if "norm" in n}
    assert "tok_embeddings.weight" in decay_names and "layers.0.attn.wq.weight" in decay_names
    assert all(p.dim() == 2 for p in decay["params"]) and all(p.dim() == 1 for p in no_decay["params"])
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == model.num_params()


def test_training_reduces_the_loss():
    model = small_model(fused=False)
    idx, targets = batch(model.config, B=4, T=32)
    opt = model.configure_optimizer(lr=3e-3, weight_decay=0.1)
    losses = []
    for _ in range(15):
        loss = model(idx, targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[1] < losses[0] and losses[-1] < 0.5 * losses[0], losses


# --------------------------------------------------------------------------------------------
# The fused path
# --------------------------------------------------------------------------------------------

def test_fused_switch_picks_the_op_set(monkeypatch):
    """Stand-ins for the fused ops (the reference ones, counted) show which set each call uses."""
    calls = []
    for name in FUSED_OPS:
        def op(*a, _name=name, **kw):
            calls.append(_name)
            return getattr(reference, _name)(*a, **kw)
        monkeypatch.setattr(tinygpt.ops, name, op, raising=False)
    model = small_model(fused=True)
    idx, targets = batch(model.config)
    fused_loss = model(idx, targets)
    assert set(calls) == set(FUSED_OPS)
    L = model.config.n_layers
    assert calls.count("rms_norm") == 2 * L + 1 and calls.count("rope") == 2 * L
    calls.clear()
    model.fused = False
    assert torch.equal(model(idx, targets), fused_loss) and calls == []
    model.fused = True
    model(idx)
    assert "attention" in calls and "cross_entropy" not in calls


def loss_and_grads(model, idx, targets, *, fused, bf16=False):
    model.fused = fused
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = model(idx, targets)
    loss.backward()
    return loss.detach().float(), {n: p.grad.clone() for n, p in model.named_parameters()}


def fused_test_batch(model):
    idx, targets = batch(model.config, B=2, T=33)
    targets[0, :5] = -100
    return idx, targets


@needs_fused
def test_fused_matches_reference_fp32():
    model = small_model()
    idx, targets = fused_test_batch(model)
    ref_loss, ref_grads = loss_and_grads(model, idx, targets, fused=False)
    loss, grads = loss_and_grads(model, idx, targets, fused=True)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-4, atol=1e-5)
    for name, g in ref_grads.items():
        torch.testing.assert_close(grads[name], g, rtol=1e-4, atol=1e-5, msg=lambda m: f"{name}: {m}")
    fused_logits = model(idx)
    model.fused = False
    torch.testing.assert_close(fused_logits, model(idx), rtol=1e-4, atol=1e-5)


@needs_fused
def test_fused_matches_reference_bf16_autocast():
    model = small_model()
    idx, targets = fused_test_batch(model)
    try:
        loss, grads = loss_and_grads(model, idx, targets, fused=True, bf16=True)
    except (RuntimeError, NotImplementedError, TypeError) as e:
        pytest.skip(f"the fused ops do not take bf16: {e}")
    ref_loss, ref_grads = loss_and_grads(model, idx, targets, fused=False, bf16=True)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-2, atol=1e-2)
    for name, g in ref_grads.items():
        # bf16 keeps ~3 significant digits; compare each gradient as a whole
        err = (grads[name] - g).norm() / g.norm().clamp_min(1e-12)
        assert err < 3e-2, f"{name}: relative gradient error {err:.3g} (bf16 autocast)"
