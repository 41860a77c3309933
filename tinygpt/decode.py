"""KV-cache decoding of a `GPT`: a prompt is run once through the fused attention (prefill), its
keys and values kept per layer; each further token is one single-query step
(`tinygpt.ops.decode_attention`) over the cache, so a token costs a pass over the weights instead
of a pass over the whole context.

The decoder packs each layer's query/key/value projections into one matrix and the two SwiGLU
input projections into another, so a decode step is a few large calls per layer and the Python
overhead stays small next to the matrix products."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from tinygpt.model import GPT, _ops
from tinygpt.ops.cuda import kernels_enabled
from tinygpt.precision import pick_dtype

class Decoder:
    """Decodes up to `batch_size` sequences of up to `max_len` tokens (default: the model's
    max_seq_len) together. Row b holds `lengths[b]` cached tokens; `prefill` fills rows from
    prompts, `step` appends one token to each active row and returns the next-token logits.

    The weights are read from the model when the decoder is made (packed copies, cast to
    `dtype`: 'auto', 'fp32' or 'bf16', see `tinygpt.precision.pick_dtype`): make a new decoder
    after changing the model. With `model.fused`, tinygpt's kernels run on the CPU, and on CUDA
    where they are enabled (`tinygpt.ops.cuda`); elsewhere the plain PyTorch ops do. `cuda_graph`
    (default: on where possible, i.e. on CUDA with the kernels enabled) records the first step as
    a CUDA graph and replays it for the next ones."""

    @torch.no_grad()
    def __init__(self, model: GPT, batch_size: int, max_len: int | None = None, *, dtype="auto",
                 cuda_graph: bool | None = None):
        cfg = model.config
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        max_len = cfg.max_seq_len if max_len is None else max_len
        if not 1 <= max_len <= cfg.max_seq_len:
            raise ValueError(f"max_len must be in [1, {cfg.max_seq_len}] (the model's context), got {max_len}")
        self.config, self.batch_size, self.max_len = cfg, batch_size, max_len
        self.device = model.tok_embeddings.weight.device
        self.dtype = pick_dtype(dtype, self.device)
        self.ops = _ops(model.fused)  # on CUDA: kernels if enabled (tinygpt.ops.cuda), else torch ops
        # A decode step is a few dozen small kernels: on a GPU, replaying them as one captured
        # CUDA graph saves the launches. Needs the fused decode kernel (the plain one reads the
        # positions on the host).
        graphable = self.device.type == "cuda" and model.fused and kernels_enabled()
        if cuda_graph and not graphable:
            raise ValueError("cuda_graph needs the model on a CUDA device with fused=True and tinygpt's CUDA "
                             "kernels enabled (TINYGPT_CUDA_KERNELS=1)")
        self.cuda_graph = graphable if cuda_graph is None else cuda_graph
        self._graph = None
        dt = self.dtype

        def w(t):
            return t.detach().to(dt).contiguous()

        self.embedding = w(model.tok_embeddings.weight)
        self.layers = []
        for blk in model.layers:
            a, m = blk.attn, blk.mlp
            self.layers.append({
                "norm1": w(blk.norm1.weight), "norm2": w(blk.norm2.weight),
                "wqkv": w(torch.cat([a.wq.weight, a.wk.weight, a.wv.weight])),
                "wo_t": w(a.wo.weight).t(),  # for addmm: x + y @ wo^T in one call
                "w13": w(torch.cat([m.w1.weight, m.w3.weight])),
                "w2_t": w(m.w2.weight).t(),
            })
        self.norm = w(model.norm.weight)
        self.output = self.embedding if cfg.tie_embeddings else w(model.output.weight)
        self.cos = model.rope_cos[:max_len].float().contiguous()
        self.sin = model.rope_sin[:max_len].float().contiguous()
        self.scale = 1.0 / math.sqrt(cfg.head_dim)
        shape = (batch_size, cfg.kv_heads, max_len, cfg.head_dim)
        self.k = [torch.zeros(shape, dtype=dt, device=self.device) for _ in self.layers]
        self.v = [torch.zeros(shape, dtype=dt, device=self.device) for _ in self.layers]
        self.lengths = torch.zeros(batch_size, dtype=torch.long)

    @torch.no_grad()
    def prefill(self, rows, tokens: torch.Tensor) -> torch.Tensor:
        """Runs `tokens` (n, T) through the model as the whole content of `rows` (n row indices),
        filling their caches. Returns the logits (n, V) float32 of the next token after each."""
        rows = torch.as_tensor(rows, dtype=torch.long).reshape(-1)
        tokens = torch.as_tensor(tokens, dtype=torch.long, device=self.device)
        if tokens.dim() != 2 or tokens.shape[0] != rows.numel() or tokens.shape[1] < 1:
            raise ValueError(f"tokens must have shape (len(rows), T >= 1), got {tuple(tokens.shape)}")
        n, T = tokens.shape
        if T > self.max_len:
            raise ValueError(f"a prompt of {T} tokens does not fit the cache ({self.max_len} tokens)")
        if rows.min() < 0 or rows.max() >= self.batch_size:
            raise ValueError(f"rows must be in [0, {self.batch_size}), got {rows.tolist()}")
        cfg, ops = self.config, self.ops
        H, Hkv, D = cfg.n_heads, cfg.kv_heads, cfg.head_dim
        cos, sin = self.cos[:T], self.sin[:T]
        x = F.embedding(tokens, self.embedding)
        dev_rows = rows.to(self.device)
        for i, L in enumerate(self.layers):
            qkv = F.linear(ops.rms_norm(x, L["norm1"], cfg.norm_eps), L["wqkv"])
            q, k, v = qkv.split([H * D, Hkv * D, Hkv * D], dim=-1)
            q = ops.rope(q.reshape(n, T, H, D), cos, sin).transpose(1, 2)
            k = ops.rope(k.reshape(n, T, Hkv, D), cos, sin).transpose(1, 2)
            v = v.reshape(n, T, Hkv, D).transpose(1, 2)
            self.k[i][dev_rows, :, :T] = k
            self.v[i][dev_rows, :, :T] = v
            y = ops.attention(q, k, v, causal=True, scale=self.scale)
            x = x + F.linear(y.transpose(1, 2).reshape(n, T, H * D), L["wo_t"].t())
            x = x + self._mlp(ops.rms_norm(x, L["norm2"], cfg.norm_eps), L)
        self.lengths[rows] = T
        return self._logits(x[:, -1])

    @torch.no_grad()
    def step(self, tokens: torch.Tensor, active: torch.Tensor | None = None, *, rows: int | None = None) -> torch.Tensor:
        """Appends `tokens` to the rows (those with `active` bool true; by default all) and returns
        the next-token logits float32 (rows left out get garbage). With `rows` n, only the first n
        rows are computed (`tokens` and `active` have n entries, the logits n rows; the rows past
        them must be idle): a batch that is mostly empty costs what its live rows cost. With CUDA
        graphs the logits live in a buffer that the next step overwrites."""
        n = self.batch_size if rows is None else rows
        if not 1 <= n <= self.batch_size:
            raise ValueError(f"rows must be in [1, {self.batch_size}], got {rows}")
        positions = torch.full((self.batch_size,), -1, dtype=torch.long)
        positions[:n] = self.lengths[:n]
        if active is not None:
            positions[:n][~torch.as_tensor(active, dtype=torch.bool).reshape(-1)] = -1
        if int(positions.max()) >= self.max_len:
            raise ValueError(f"the cache is full ({self.max_len} tokens): no room for another token")
        tokens = torch.as_tensor(tokens, dtype=torch.long).reshape(-1)
        if self.cuda_graph:  # the graph is recorded for the whole batch
            if self._graph is None:
                self._capture()
            self._tokens.zero_()
            self._tokens[:n].copy_(tokens)
            self._positions.copy_(positions)
            self._graph.replay()
            logits = self._graph_logits[:n]  # overwritten by the next step
        else:
            logits = self._step(tokens.to(self.device), positions[:n].to(self.device))
        self.lengths += positions >= 0
        return logits

    def _capture(self):
        """Records one decode step as a CUDA graph over static token and position buffers."""
        B = self.batch_size
        self._tokens = torch.zeros(B, dtype=torch.long, device=self.device)
        self._positions = torch.full((B,), -1, dtype=torch.long, device=self.device)  # idle: no cache write
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):  # warm-up off the capture, as torch asks
            self._step(self._tokens, self._positions)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._graph_logits = self._step(self._tokens, self._positions)
        self._graph = graph

    def _step(self, tokens_dev, pos_dev):
        """The device work of one decode step over the first len(tokens_dev) rows (no host
        synchronisation): the caches' leading rows are views, so a part of the batch costs no copy."""
        cfg, ops = self.config, self.ops
        n = tokens_dev.shape[0]
        x = F.embedding(tokens_dev, self.embedding)
        for i, L in enumerate(self.layers):
            qkv = F.linear(ops.rms_norm(x, L["norm1"], cfg.norm_eps), L["wqkv"])
            y = ops.decode_attention(qkv, self.k[i][:n], self.v[i][:n], pos_dev, self.cos, self.sin, cfg.n_heads,
                                     self.scale)
            x = torch.addmm(x, y, L["wo_t"])
            h = self._swiglu(F.linear(ops.rms_norm(x, L["norm2"], cfg.norm_eps), L["w13"]))
            x = torch.addmm(x, h, L["w2_t"])
        return self._logits(x)

    def _swiglu(self, gu):
        f = gu.shape[-1] // 2
        return F.silu(gu[..., :f]).mul_(gu[..., f:])

    def _mlp(self, h, L):
        return F.linear(self._swiglu(F.linear(h, L["w13"])), L["w2_t"].t())

    def _logits(self, x):
        return F.linear(self.ops.rms_norm(x, self.norm, self.config.norm_eps), self.output).float()
