"""The Emotion2Vec network (a data2vec 2.0 audio encoder and a linear head) in plain PyTorch.

Submodule names mirror the released model.pt, so its state dict loads as is.  Differences from
the reference implementation are deliberate and numerically neutral:
- attention runs through torch's scaled_dot_product_attention (ALiBi bias and padding as its mask);
- a padded batch gives each clip exactly what it would get alone: padded frames are zeroed before
  every positional conv layer and masked as attention keys;
- nothing is randomly initialised: build on the meta device and load the weights with assign=True.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import NetworkConfig


def _layer_norm(dim: int, cfg: NetworkConfig) -> nn.LayerNorm:
    return nn.LayerNorm(dim, eps=cfg.norm_eps, elementwise_affine=cfg.norm_affine)


class _Indexed(nn.Module):
    """A container whose children are registered under the numeric names of the reference's
    nn.Sequential, so state dict keys match, while forward() stays explicit."""

    def __init__(self, children: dict[int, nn.Module]):
        super().__init__()
        for index, module in children.items():
            self.add_module(str(index), module)

    def __getitem__(self, index: int) -> nn.Module:
        return getattr(self, str(index))


def fp32_layer_norm(y: torch.Tensor, ln: nn.LayerNorm, cast: bool = True) -> torch.Tensor:
    """LayerNorm over the last dimension, computed in fp32 as the reference's Fp32LayerNorm does.
    cast=False hands a half-precision y to the kernel as it is: torch's CUDA kernel already
    accumulates in fp32 and rounds once, and the two casts are full copies of the network's
    largest activations (the first conv layer's output: ~1 GB at 32 x 10 s in fp16)."""
    if not cast or y.dtype == torch.float32:
        return F.layer_norm(y, ln.normalized_shape, ln.weight, ln.bias, ln.eps)
    return F.layer_norm(y.float(), ln.normalized_shape, ln.weight.float(), ln.bias.float(), ln.eps).type_as(y)


def channel_layer_norm(x: torch.Tensor, ln: nn.LayerNorm, cast: bool = True) -> torch.Tensor:
    """fp32_layer_norm over the channels of (B, C, T)."""
    return fp32_layer_norm(x.transpose(1, 2), ln, cast).transpose(1, 2)


class ConvLayer(_Indexed):
    """Conv1d (no bias) -> norm -> GELU, keys `0.weight` and `2.1.weight` (layer_norm mode) or
    `2.weight` (group norm on the first layer of 'default' mode)."""

    def __init__(self, n_in: int, n_out: int, kernel: int, stride: int, norm: str | None):
        children: dict[int, nn.Module] = {0: nn.Conv1d(n_in, n_out, kernel, stride=stride, bias=False)}
        if norm == "layer":
            children[2] = _Indexed({1: nn.LayerNorm(n_out)})
        elif norm == "group":
            children[2] = nn.GroupNorm(n_out, n_out, affine=True)
        super().__init__(children)
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T)
        x = self[0](x)
        if self.norm == "layer":
            x = channel_layer_norm(x, self[2][1], cast=not x.is_cuda)
        elif self.norm == "group":
            gn = self[2]
            x = F.group_norm(x.float(), gn.num_groups, gn.weight.float(), gn.bias.float(), gn.eps).type_as(x)
        return F.gelu(x)


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    """(N, W, C), contiguous, as the (N, C, 1, W) view a conv2d reads channels-last. Built from the
    strides, since with one channel (the waveform, the first layer's weight) torch cannot tell
    channels-last from channel-major and would choose the latter for the convolution's output."""
    return x[:, None].permute(0, 3, 1, 2)


def _conv2d_weight(conv: nn.Conv1d) -> torch.Tensor:
    """conv's (O, I, k) weight as the channels-last (O, I, 1, k) a time-major conv2d takes: a view
    of the weight as Emotion2VecNetwork.store_conv_weights_time_major lays it out, a copy otherwise."""
    return _channels_last(conv.weight.transpose(1, 2).contiguous())


class FeatureExtractor(nn.Module):
    """The strided conv front end: waveform (B, S) -> features (B, C, T)."""

    def __init__(self, cfg: NetworkConfig):
        super().__init__()
        layers, n_in = [], 1
        for i, (n_out, kernel, stride) in enumerate(cfg.conv_layers):
            if cfg.extractor_mode == "layer_norm":
                norm = "layer"
            else:
                norm = "group" if i == 0 else None
            layers.append(ConvLayer(n_in, n_out, kernel, stride, norm))
            n_in = n_out
        self.conv_layers = nn.ModuleList(layers)
        self.layer_norm = cfg.extractor_mode == "layer_norm"  # every layer normalised: time-major applies
        self.time_major = True
        self.as_matmul: list[torch.Tensor] | None = None  # see convs_as_matmul

    def convs_as_matmul(self, on: bool) -> None:
        """Run every layer as its input's windows side by side times the weight laid out as a matrix
        (k*I, O): the same sums as the convolution, as one MatMul node with a constant weight, which
        ONNX Runtime's dynamic int8 quantisation turns into an int8 product (its ConvInteger is
        slower than the fp32 Conv), and time-major throughout, so no layer copies its output to
        another layout. For the int8 export (emotion.export), which keeps the first layer's product
        (one input channel, the raw waveform) in fp32."""
        if not on or not self.layer_norm:
            self.as_matmul = None
            return
        self.as_matmul = [layer[0].weight.detach().permute(2, 1, 0).reshape(-1, layer[0].out_channels).contiguous()
                          for layer in self.conv_layers]

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        if self.as_matmul is not None:
            return self._matmul(wav)
        if self.time_major and self.layer_norm:
            return self._time_major(wav)
        x = wav.unsqueeze(1)
        for layer in self.conv_layers:
            x = layer(x)
        return x

    def _time_major(self, wav: torch.Tensor) -> torch.Tensor:
        """The layers with activations time-major, (B, T, C) in memory: the LayerNorm reads them as
        they lie, each convolution runs channels-last (a conv2d over a height of 1). Channel-major
        (set_time_major(False)), every layer copied its output, the network's largest tensors, to
        (B, T, C) and back; the same sums in another order, within 1e-7 of the scores
        (tests/test_fidelity.py). Returns (B, C, T), a view of (B, T, C)."""
        x = _channels_last(wav[:, :, None])  # (B, 1, 1, S), no copy
        for layer in self.conv_layers:
            conv, ln = layer[0], layer[2][1]
            y = F.conv2d(x, _conv2d_weight(conv), stride=(1, conv.stride[0]))
            y = y.squeeze(2).transpose(1, 2)  # (B, T, C)
            y = F.gelu(fp32_layer_norm(y, ln, cast=not y.is_cuda))
            x = y.transpose(1, 2).unsqueeze(2)
        return x.squeeze(2)

    def _matmul(self, wav: torch.Tensor) -> torch.Tensor:
        """See convs_as_matmul: time-major (B, T, C) from the waveform on. Returns (B, C, T)."""
        x = wav.unsqueeze(-1)  # (B, S, 1)
        for layer, weight in zip(self.conv_layers, self.as_matmul):
            cols = torch.cat(_windows(x, layer[0].kernel_size[0], layer[0].stride[0]), dim=-1)  # (B, n, k*C)
            x = F.gelu(fp32_layer_norm(cols @ weight, layer[2][1], cast=not x.is_cuda))
        return x.transpose(1, 2)


def _windows(x: torch.Tensor, k: int, s: int) -> list[torch.Tensor]:
    """The k taps of a stride-s convolution's windows over x (B, T, C), as column blocks whose
    concatenation is (B, n, k*C), tap by tap. Each run of s taps is one contiguous slice viewed as
    (B, n, s*C), without a copy (rows t, t+1, ... of a window lie next to each other); taps left
    over when s does not divide k are strided slices, one a tap."""
    b, t, c = x.shape
    n = (t - k) // s + 1  # windows (output frames)
    blocks = []
    for j in range(0, k - k % s, s):  # narrow, not a slice: torch.export can bound its length
        blocks.append(x.narrow(1, j, s * n).reshape(b, n, s * c))
    for j in range(k - k % s, k):
        blocks.append(x.narrow(1, j, s * (n - 1) + 1)[:, ::s])
    return blocks


class PositionalConv(nn.Module):
    """Grouped conv over time, 'same' padding, LayerNorm without affine, GELU (one layer)."""

    def __init__(self, cfg: NetworkConfig):
        super().__init__()
        k = cfg.conv_pos_kernel
        # Registered as "0" to match the reference key `<layer>.0.weight`.
        self.add_module(
            "0", nn.Conv1d(cfg.embed_dim, cfg.embed_dim, k, padding=k // 2, groups=cfg.conv_pos_groups)
        )
        self.trim = 1 if k % 2 == 0 else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, D, T)
        x = getattr(self, "0")(x)
        if self.trim:
            x = x[:, :, : -self.trim]
        x = F.layer_norm(x.transpose(1, 2), (x.shape[1],)).transpose(1, 2)
        return F.gelu(x)

    def forward_time_major(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, D) -> (B, T, D)
        """The same layer on time-major activations: the grouped convolution channels-last, the
        LayerNorm over the last dimension (see FeatureExtractor._time_major)."""
        conv = getattr(self, "0")
        y = F.conv2d(_channels_last(x), _conv2d_weight(conv), conv.bias, padding=(0, conv.padding[0]),
                     groups=conv.groups)
        y = y.squeeze(2).transpose(1, 2)
        if self.trim:
            y = y[:, : -self.trim]
        return F.gelu(F.layer_norm(y, (y.shape[-1],)))


class RelativePositionalEncoder(_Indexed):
    """conv_pos_depth PositionalConv layers, registered as children 1..depth (the reference's
    Sequential starts with a parameterless TransposeLast at 0)."""

    def __init__(self, cfg: NetworkConfig):
        super().__init__({i + 1: PositionalConv(cfg) for i in range(cfg.conv_pos_depth)})
        self.depth = cfg.conv_pos_depth
        self.time_major = True

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:  # (B, T, D)
        if self.time_major:  # as the activations lie: no layout copy around each layer
            keep = None if valid is None else valid.unsqueeze(-1).to(x.dtype)
            for i in range(1, self.depth + 1):
                if keep is not None:  # padded frames must look like the zeros a lone clip sees
                    x = x * keep
                x = self[i].forward_time_major(x)
            return x
        x = x.transpose(1, 2)
        keep = None if valid is None else valid.unsqueeze(1).to(x.dtype)
        for i in range(1, self.depth + 1):
            if keep is not None:  # padded frames must look like the zeros a lone clip sees
                x = x * keep
            x = self[i](x)
        return x.transpose(1, 2)


class PreNormPositionalEncoder(_Indexed):
    """conv_pos_pre_ln: a LayerNorm (key `0`) before the convs (key `1`)."""

    def __init__(self, cfg: NetworkConfig):
        super().__init__({0: nn.LayerNorm(cfg.embed_dim), 1: RelativePositionalEncoder(cfg)})

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
        return self[1](self[0](x), valid)


class Attention(nn.Module):
    def __init__(self, cfg: NetworkConfig):
        super().__init__()
        self.num_heads = cfg.num_heads
        self.qkv = nn.Linear(cfg.embed_dim, cfg.embed_dim * 3, bias=True)
        self.proj = nn.Linear(cfg.embed_dim, cfg.embed_dim)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        if attn_mask is not None and attn_mask.dtype != torch.bool:
            attn_mask = attn_mask.to(q.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, cfg: NetworkConfig):
        super().__init__()
        hidden = int(cfg.embed_dim * cfg.mlp_ratio)
        self.fc1 = nn.Linear(cfg.embed_dim, hidden)
        self.fc2 = nn.Linear(hidden, cfg.embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, cfg: NetworkConfig):
        super().__init__()
        self.layer_norm_first = cfg.layer_norm_first
        self.norm1 = _layer_norm(cfg.embed_dim, cfg)
        self.attn = Attention(cfg)
        self.norm2 = _layer_norm(cfg.embed_dim, cfg)
        self.mlp = Mlp(cfg)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        if self.layer_norm_first:
            x = x + self.attn(self.norm1(x), attn_mask)
            m = self.mlp(self.norm2(x))
            return m + m  # the reference block adds the MLP output to itself here, not to x
        x = x + self.attn(x, attn_mask)
        r = self.norm1(x)
        return self.norm2(r + self.mlp(r))


class ContextEncoder(nn.Module):
    def __init__(self, cfg: NetworkConfig):
        super().__init__()
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.prenet_depth))
        self.norm = None if cfg.layer_norm_first else _layer_norm(cfg.embed_dim, cfg)


class ProjectFeatures(_Indexed):
    def __init__(self, cfg: NetworkConfig):
        width = cfg.conv_layers[-1][0]
        super().__init__({1: nn.LayerNorm(width), 2: nn.Linear(width, cfg.embed_dim)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T) -> (B, T, D)
        return self[2](self[1](x.transpose(1, 2)))


class AudioEncoder(nn.Module):
    def __init__(self, cfg: NetworkConfig):
        super().__init__()
        self.local_encoder = FeatureExtractor(cfg)
        self.project_features = ProjectFeatures(cfg)
        self.relative_positional_encoder = (
            PreNormPositionalEncoder(cfg) if cfg.conv_pos_pre_ln else RelativePositionalEncoder(cfg)
        )
        self.context_encoder = ContextEncoder(cfg)
        if cfg.num_extra_tokens > 0:
            self.extra_tokens = nn.Parameter(torch.empty(1, cfg.num_extra_tokens, cfg.embed_dim))
        else:
            self.extra_tokens = None
        if cfg.use_alibi:
            layers = cfg.prenet_depth + cfg.depth if cfg.alibi_scale_per_layer else 1
            heads = cfg.num_alibi_heads if cfg.alibi_scale_per_head else 1
            self.alibi_scale = nn.Parameter(torch.empty(layers, 1, heads, 1, 1))
        else:
            self.alibi_scale = None


def alibi_slopes(heads: int) -> list[float]:
    """The ALiBi head slopes (geometric; interleaved for a head count that is not a power of 2)."""

    def power_of_2(n: int) -> list[float]:
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    if math.log2(heads).is_integer():
        return power_of_2(heads)
    closest = 2 ** math.floor(math.log2(heads))
    return power_of_2(closest) + alibi_slopes(2 * closest)[0::2][: heads - closest]


class Emotion2VecNetwork(nn.Module):
    """Waveform in, frame embeddings out; `proj` is the emotion head."""

    def __init__(self, cfg: NetworkConfig):
        super().__init__()
        self.cfg = cfg
        self.modality_encoders = nn.ModuleDict({"AUDIO": AudioEncoder(cfg)})
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.norm = _layer_norm(cfg.embed_dim, cfg) if cfg.layer_norm_first else None
        self.proj = nn.Linear(cfg.embed_dim, cfg.num_classes) if cfg.num_classes > 0 else None
        self._slopes: dict[torch.device, torch.Tensor] = {}

    def _time_major_parts(self):
        """(front end, positional encoder): the modules whose convolutions run time-major."""
        enc = self.modality_encoders["AUDIO"]
        rpe = enc.relative_positional_encoder
        return enc.local_encoder, (rpe[1] if isinstance(rpe, PreNormPositionalEncoder) else rpe)

    def set_time_major(self, on: bool) -> None:
        """Run the convolutions (front end, positional) on time-major activations (the default) or
        channel-major ones, the reference's layout: the same sums in another order, for comparisons."""
        fe, rpe = self._time_major_parts()
        fe.time_major = rpe.time_major = on

    def store_conv_weights_time_major(self) -> None:
        """Lay the time-major convolutions' weights out as those passes read them ((O, k, I) in
        memory), once, so that no pass copies them: call it once the weights are on their device,
        before any CUDA graph is captured (a graph keeps the storage it was captured with)."""
        fe, rpe = self._time_major_parts()
        convs = [getattr(rpe[i], "0") for i in range(1, rpe.depth + 1)]
        convs += [layer[0] for layer in fe.conv_layers] if fe.layer_norm else []
        for conv in convs:
            conv.weight.data = conv.weight.data.transpose(1, 2).contiguous().transpose(1, 2)

    def _alibi_bias(self, frames: int, device: torch.device) -> torch.Tensor:
        """Unscaled bias (1, H_alibi, T, T): -slope * |i - j|, computed as the reference does.
        The slopes are copied to the device once, so a pass makes no host-to-device copy (a CUDA
        graph capture forbids one)."""
        slopes = self._slopes.get(device)
        if slopes is None:
            slopes = torch.tensor(alibi_slopes(self.cfg.num_alibi_heads), dtype=torch.float32, device=device)
            self._slopes[device] = slopes
        pos = torch.arange(frames, device=device)
        distance = (pos.unsqueeze(0) - pos.unsqueeze(1)).abs().neg().to(torch.float32)
        return (slopes[:, None, None] * distance.unsqueeze(0)).unsqueeze(0)

    def _block_masks(
        self, frames: int, key_valid: torch.Tensor | None, device: torch.device, dtype: torch.dtype
    ) -> list[torch.Tensor | None]:
        """One attention mask per block (prenet blocks first), over T + extra tokens. Float masks
        are built in fp32 and converted to the compute dtype here, once: the blocks share one
        (B, H, T, T) mask, which each block would otherwise convert again (24 copies a pass)."""
        cfg, enc = self.cfg, self.modality_encoders["AUDIO"]
        n_blocks = cfg.prenet_depth + cfg.depth
        extra = cfg.num_extra_tokens
        pad_mask = None
        if key_valid is not None:
            valid = F.pad(key_valid, (extra, 0), value=True)
            pad_mask = torch.zeros(valid.shape, dtype=torch.float32, device=device)
            pad_mask = pad_mask.masked_fill(~valid, float("-inf"))[:, None, None, :]
        if enc.alibi_scale is None:
            mask = None if key_valid is None else F.pad(key_valid, (extra, 0), value=True)[:, None, None, :]
            return [mask] * n_blocks
        bias = self._alibi_bias(frames, device)
        scale = enc.alibi_scale.float().clamp_min(0)

        def finish(scaled: torch.Tensor) -> torch.Tensor:
            if scaled.shape[1] < cfg.num_heads:  # heads beyond the ALiBi heads get no bias
                scaled = F.pad(scaled, (0, 0, 0, 0, 0, cfg.num_heads - scaled.shape[1]))
            scaled = F.pad(scaled, (extra, 0, extra, 0))  # extra tokens: no positional bias
            return (scaled if pad_mask is None else scaled + pad_mask).to(dtype)

        if scale.shape[0] == 1:
            return [finish(bias * scale[0])] * n_blocks
        return [finish(bias * scale[i]) for i in range(n_blocks)]

    def forward(self, wav: torch.Tensor, lengths: torch.Tensor | None = None, always_mask: bool = False):
        """Frame embeddings for a batch of normalised, zero-padded waveforms.

        wav: (B, S) float; lengths: (B,) valid samples per row, or None when no row is padded.
        always_mask: mask even when no frame is padding (no data-dependent branch, which a CUDA
        graph needs; the result is the same).
        Returns (frames (B, T, D), valid (B, T) bool or None), extra tokens removed.
        """
        enc = self.modality_encoders["AUDIO"]
        x = enc.project_features(enc.local_encoder(wav))
        b, t, _ = x.shape
        valid = None
        if lengths is not None:
            n = self.cfg.num_frames(lengths)
            valid = torch.arange(t, device=x.device)[None, :] < n[:, None]
            if not always_mask and bool(valid.all()):
                valid = None
        x = x + enc.relative_positional_encoder(x, valid)
        masks = self._block_masks(t, valid, x.device, x.dtype)
        if enc.extra_tokens is not None:
            x = torch.cat([enc.extra_tokens.to(x.dtype).expand(b, -1, -1), x], dim=1)
        ctx = enc.context_encoder
        if ctx.norm is not None:  # post-LN networks normalise once before the prenet blocks
            x = ctx.norm(x)
        for i, blk in enumerate(ctx.blocks):
            x = blk(x, masks[i])
        for i, blk in enumerate(self.blocks):
            x = blk(x, masks[self.cfg.prenet_depth + i])
        if self.norm is not None:
            x = self.norm(x)
        return x[:, self.cfg.num_extra_tokens :], valid
