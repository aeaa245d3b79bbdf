"""Zorro (Recasens et al., 2023, arXiv 2301.09595): one transformer over audio, video and fusion tokens whose
attention mask keeps the audio and video streams modality-pure.

    tokens = [audio patches | video tubelets | fusion tokens]        (+ learned position and modality embeddings)
    mask[i, j] = (type(i) == type(j)) or (type(i) == FUSION)          row i = query, column j = key

Audio tokens attend to audio, video tokens to video, fusion tokens to everything; nothing attends to the fusion
tokens except the fusion tokens. The audio output, read by pooling the audio tokens, is then an exact function of
the audio input alone (and likewise for video), at every depth. The same model with `zorro=False` (every token
attends to every token) is the usual "entangled" multimodal transformer.

A missing modality (`audio=None` or `visual=None`) drops its tokens. Under the Zorro mask this changes nothing in
the other stream: that is uni-modal inference. Without the mask it is the "modality absent" test of an entangled
model, whose streams were trained to read the other modality.

`forward` returns the keys of `AVClassifier`, so the Trainer, `evaluate` and `predict` work unchanged:
`logits` (head on the pooled fusion tokens), `audio` / `visual` (heads on the pooled audio / video tokens),
`split` (None), `features` {modality: pooled stream (B, dim)}; plus `fusion` (pooled fusion tokens) and
`embeddings` {modality: projection of the pooled stream} for the contrastive loss
(`avlab.methods.zorro_contrastive`).

Differences from `AVClassifier`:
* the heads are *trained* heads on the stream outputs (`detach_heads=False`): Zorro supervises each output with
  its own cross-entropy, which is exactly the Trainer's base losses `fused` + `head_audio` + `head_visual`.
  `detach_heads=True` detaches *every* head, the fusion head included, so the base losses train only the heads
  (online linear probes) and the transformer learns from a method's losses alone: contrastive pre-training.
* the transformer is shared by the streams, so `encoder(m)` is a view: its parameters are the modality's own
  (patch projection, position and modality embedding; what the Trainer's `grad_norm_<m>` measures), its forward
  runs the whole model on that modality alone and returns the pooled stream (what `diagnostics.features` and
  `linear_probe` read: the uni-modal inference features).
* there is no `fusion(a, v)` module on pooled features, so `diagnostics.shapley` does not apply; compare
  `evaluate(model, data, ("audio",))` etc. instead.

The mask is built with explicit parentheses. The public reimplementation (lucidrains/zorro-pytorch 0.1.1) pools
its outputs with `pool_mask | ret_types == GLOBAL`, which Python reads as `(pool_mask | ret_types) == GLOBAL`: its
"pure" audio and video outputs attend uniformly over all tokens, both modalities included
(shared/research/methods.md §5.3). Here the read-out is a plain mean over each stream's own tokens.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from avlab.models.classifier import MODALITIES

AUDIO, VIDEO, FUSION = 0, 1, 2  # token types, in sequence order


def token_types(n_audio: int, n_video: int, n_fusion: int) -> torch.Tensor:
    """(N,) type of each token of the sequence [audio | video | fusion]."""
    return torch.cat([torch.full((n,), t, dtype=torch.long)
                      for n, t in ((n_audio, AUDIO), (n_video, VIDEO), (n_fusion, FUSION))])


def zorro_mask(n_audio: int, n_video: int, n_fusion: int) -> torch.Tensor:
    """(N, N) boolean attention mask, True where query i (row) may attend to key j (column):
    same modality, or the query is a fusion token."""
    types = token_types(n_audio, n_video, n_fusion)
    query, key = types[:, None], types[None, :]
    return (query == key) | (query == FUSION)  # parentheses: `|` binds tighter than `==` in Python


def full_mask(n_audio: int, n_video: int, n_fusion: int) -> torch.Tensor:
    """(N, N) all-True mask: every token attends to every token (the entangled baseline)."""
    n = n_audio + n_video + n_fusion
    return torch.ones(n, n, dtype=torch.bool)


class Attention(nn.Module):
    """Multi-head self-attention with a boolean mask. Written out (no fused kernel) so that a masked key
    contributes an exact zero: the streams' independence holds bit for bit, not just to rounding."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        scores = (q @ k.transpose(-2, -1)) * self.scale  # (B, heads, N, N)
        weights = scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)  # every row keeps >= 1 key: no NaN
        return self.out((weights @ v).transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(LN x), then x + MLP(LN x)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int = 2):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), mask)
        return x + self.mlp(self.norm2(x))


class Tokenizer(nn.Module):
    """Cuts an input into non-overlapping patches (audio: (B, C, F, T) into pf x pt patches; video:
    (B, C, T, H, W) into pt x ph x pw tubelets), projects each to `dim` and adds a learned position embedding
    and the modality's learned embedding."""

    def __init__(self, input_shape: tuple[int, ...], patch: tuple[int, ...], dim: int):
        super().__init__()
        if len(input_shape) != len(patch) + 1:
            raise ValueError(f"input shape {input_shape} (channels first) and patch {patch} disagree")
        if any(s % p for s, p in zip(input_shape[1:], patch)):
            raise ValueError(f"patch {patch} does not tile the input {input_shape[1:]}")
        self.input_shape, self.patch, self.out_dim = tuple(input_shape), tuple(patch), dim
        self.grid = tuple(s // p for s, p in zip(input_shape[1:], patch))
        self.num_tokens = int(torch.tensor(self.grid).prod())
        patch_dim = input_shape[0] * int(torch.tensor(patch).prod())
        self.proj = nn.Linear(patch_dim, dim)
        self.pos = nn.Parameter(torch.randn(self.num_tokens, dim) * 0.02)
        self.modality_embedding = nn.Parameter(torch.randn(dim) * 0.02)

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, *sizes) -> (B, tokens, C * prod(patch)), tokens in row-major order of the patch grid."""
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"expected a batch of shape (B, {', '.join(map(str, self.input_shape))}), "
                             f"got {tuple(x.shape)}")
        b, c, k = x.shape[0], x.shape[1], len(self.patch)
        # (B, C, g1, p1, g2, p2, ...) -> (B, g1, g2, ..., C, p1, p2, ...) -> (B, tokens, C * prod(p))
        split = [b, c] + [s for pair in zip(self.grid, self.patch) for s in pair]
        order = [0] + [2 + 2 * i for i in range(k)] + [1] + [3 + 2 * i for i in range(k)]
        return x.reshape(split).permute(order).reshape(b, self.num_tokens, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.patchify(x)) + self.pos + self.modality_embedding


class StreamEncoder(nn.Module):
    """`model.encoder(m)`: one modality's stream of an `AVTransformer`. Its parameters are that modality's own
    (its tokenizer); calling it runs the model on that modality alone and returns the pooled stream (B, dim)."""

    def __init__(self, model: "AVTransformer", modality: str):
        super().__init__()
        self.tokenizer = model.tokenizer(modality)
        self.modality, self.out_dim = modality, model.dim
        self.__dict__["_model"] = model  # a plain reference, not a submodule: parameters() stay modality-specific

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._model(**{self.modality: x})["features"][self.modality]


class AVTransformer(nn.Module):
    """Audio-visual transformer, Zorro-masked (`zorro=True`) or fully connected (`zorro=False`).

    audio (B, 1, 32, 32) -> 8x8 patches: 16 tokens; visual (B, 1, 4, 32, 32) -> 2x8x8 tubelets: 32 tokens;
    plus `fusion_tokens` learned tokens. `depth` pre-norm blocks of width `dim`, final LayerNorm, then each
    stream is mean-pooled over its own tokens and has a linear classifier head; the audio and video streams
    also have a projection head (`embeddings`, for the contrastive loss)."""

    def __init__(self, num_classes: int, dim: int = 64, depth: int = 2, heads: int = 2, fusion_tokens: int = 4,
                 zorro: bool = True, audio_shape=(1, 32, 32), visual_shape=(1, 4, 32, 32), audio_patch=(8, 8),
                 visual_patch=(2, 8, 8), mlp_ratio: int = 2, embed_dim: int | None = None,
                 detach_heads: bool = False):
        super().__init__()
        if fusion_tokens < 1:
            raise ValueError("AVTransformer needs at least one fusion token: the fused logits are read from them")
        self.num_classes, self.dim, self.zorro, self.detach_heads = num_classes, dim, zorro, detach_heads
        self.fusion_name = "zorro" if zorro else "full-attention"
        self.audio = Tokenizer(audio_shape, audio_patch, dim)
        self.visual = Tokenizer(visual_shape, visual_patch, dim)
        self.fusion_tokens = nn.Parameter(torch.randn(fusion_tokens, dim) * 0.02)
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.heads = nn.ModuleDict({m: nn.Linear(dim, num_classes) for m in (*MODALITIES, "fusion")})
        embed_dim = embed_dim or dim
        # SimCLR / MoCo-v3 style projection head. Its batch norm centres the batch: without it the masked
        # model's pooled video features start almost identical across clips (cosine ~0.98) and the
        # contrastive loss stalls at log(batch size).
        self.project = nn.ModuleDict({m: nn.Sequential(nn.Linear(dim, dim), nn.BatchNorm1d(dim), nn.ReLU(),
                                                       nn.Linear(dim, embed_dim)) for m in MODALITIES})

    def tokenizer(self, modality: str) -> Tokenizer:
        if modality not in MODALITIES:
            raise ValueError(f"unknown modality {modality!r}; choose one of {MODALITIES}")
        return getattr(self, modality)

    def encoder(self, modality: str) -> StreamEncoder:
        return StreamEncoder(self, modality)

    def mask(self, n_audio: int, n_video: int) -> torch.Tensor:
        n_fusion = len(self.fusion_tokens)
        return (zorro_mask if self.zorro else full_mask)(n_audio, n_video, n_fusion)

    def forward(self, audio: torch.Tensor | None = None, visual: torch.Tensor | None = None) -> dict:
        if audio is None and visual is None:
            raise ValueError("AVTransformer needs at least one of audio= or visual=")
        if audio is not None and visual is not None and len(audio) != len(visual):
            raise ValueError(f"audio batch {tuple(audio.shape)} and visual batch {tuple(visual.shape)} differ in size")
        streams = {m: self.tokenizer(m)(x) for m, x in (("audio", audio), ("visual", visual)) if x is not None}
        ref = next(iter(streams.values()))
        fusion = self.fusion_tokens.expand(len(ref), -1, -1)
        x = torch.cat([*streams.values(), fusion], dim=1)
        sizes = [s.shape[1] for s in streams.values()] + [fusion.shape[1]]
        n_audio = streams["audio"].shape[1] if "audio" in streams else 0
        n_video = streams["visual"].shape[1] if "visual" in streams else 0
        mask = self.mask(n_audio, n_video).to(x.device)
        for block in self.blocks:
            x = block(x, mask)
        x = self.norm(x)
        pooled = dict(zip([*streams, "fusion"], (t.mean(dim=1) for t in x.split(sizes, dim=1))))
        features = {m: pooled[m] for m in streams}

        def head(name):
            f = pooled[name]
            return self.heads[name](f.detach() if self.detach_heads else f)

        # (the projection's batch norm cannot train on a batch of one: no embeddings then)
        embed = len(ref) > 1 or not self.training
        out = {"logits": head("fusion"), "split": None, "features": features, "fusion": pooled["fusion"],
               "embeddings": {m: self.project[m](f) for m, f in features.items()} if embed else {}}
        for m in MODALITIES:
            out[m] = head(m) if m in streams else None
        return out


def build_transformer(data, zorro: bool = True, **kwargs) -> AVTransformer:
    """An AVTransformer whose input shapes match `data`'s samples."""
    sample = data[0]
    return AVTransformer(data.num_classes, zorro=zorro, audio_shape=tuple(sample["audio"].shape),
                         visual_shape=tuple(sample["visual"].shape), **kwargs)
