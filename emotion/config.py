"""The network's shape, read from a released model folder's config.yaml.

Every dimension comes from the file: nothing about the large, base or seed models is hard-coded.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import yaml

from .errors import EmotionError


class ConfigError(EmotionError, ValueError):
    """A model folder's config.yaml or tokens.txt that does not describe a network this package
    can build; the message names the file and what is wrong."""


@dataclass(frozen=True)
class NetworkConfig:
    embed_dim: int
    num_heads: int
    depth: int  # main blocks
    prenet_depth: int  # blocks of the audio encoder's context encoder
    mlp_ratio: float
    norm_eps: float
    norm_affine: bool
    layer_norm_first: bool
    conv_layers: tuple[tuple[int, int, int], ...]  # (channels, kernel, stride) per conv layer
    extractor_mode: str  # "layer_norm" or "default"
    conv_pos_width: int
    conv_pos_groups: int
    conv_pos_depth: int
    conv_pos_pre_ln: bool
    num_extra_tokens: int
    use_alibi: bool
    num_alibi_heads: int
    alibi_scale_per_layer: bool
    alibi_scale_per_head: bool
    alibi_scale_init: float
    normalize: bool  # layer-normalise the whole waveform before the network
    num_classes: int

    @property
    def conv_pos_kernel(self) -> int:
        return max(3, self.conv_pos_width // self.conv_pos_depth)

    @property
    def total_stride(self) -> int:
        stride = 1
        for _, _, s in self.conv_layers:
            stride *= s
        return stride

    def num_frames(self, num_samples):
        """Frames the conv front end makes of `num_samples` (an int, or a tensor of lengths);
        partial last frames do not count."""
        n = num_samples
        for _, kernel, stride in self.conv_layers:
            n = (n - kernel) // stride + 1
        return max(n, 0) if isinstance(n, int) else n.clamp(min=0)


def parse_layer_spec(spec: str) -> tuple[tuple[int, int, int], ...]:
    """Evaluate a feature_encoder_spec such as '[(512, 10, 5)] + [(512, 3, 2)] * 4' safely.

    Only list/tuple literals of integers, '+' and '*' are allowed (the reference uses eval()).
    """

    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [ev(e) for e in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
            left, right = ev(node.left), ev(node.right)
            return left + right if isinstance(node.op, ast.Add) else left * right
        raise ConfigError(f"unsupported expression in feature_encoder_spec: {ast.dump(node)}")

    try:
        value = ev(ast.parse(spec, mode="eval"))
    except SyntaxError as exc:
        raise ConfigError(f"feature_encoder_spec is not an expression: {spec!r}") from exc
    layers = tuple(tuple(layer) for layer in value)
    if not layers or any(len(layer) != 3 for layer in layers):
        raise ConfigError(f"feature_encoder_spec must list (channels, kernel, stride): {spec!r}")
    return layers


def _require(mapping: dict, key: str, where: str):
    if key not in mapping or mapping[key] is None:
        raise ConfigError(f"config.yaml has no {where}.{key}")
    return mapping[key]


def load_config(path: Path, num_classes: int) -> NetworkConfig:
    """Read config.yaml (the released format: model_conf with modalities.audio)."""
    try:
        with open(path, encoding="utf-8") as fh:
            raw = yaml.safe_load(fh)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise ConfigError(f"{path} is not valid YAML{line}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("model_conf"), dict):
        raise ConfigError(f"{path} has no model_conf section")
    if raw.get("model", "Emotion2vec") != "Emotion2vec":
        raise ConfigError(f"{path} describes model {raw.get('model')!r}, not Emotion2vec")
    mc = raw["model_conf"]
    audio = (mc.get("modalities") or {}).get("audio")
    if not isinstance(audio, dict):
        raise ConfigError(f"{path} has no model_conf.modalities.audio section")
    r, a = (lambda k: _require(mc, k, "model_conf")), (
        lambda k: _require(audio, k, "model_conf.modalities.audio")
    )
    num_heads = int(r("num_heads"))
    if audio.get("learned_alibi", False):
        raise ConfigError(f"{path}: learned_alibi (a learned bias table) is not supported")
    mode = str(audio.get("extractor_mode", mc.get("extractor_mode", "layer_norm")))
    if mode not in ("layer_norm", "default"):
        raise ConfigError(f"{path}: unknown extractor_mode {mode!r}")
    return NetworkConfig(
        embed_dim=int(r("embed_dim")),
        num_heads=num_heads,
        depth=int(r("depth")),
        prenet_depth=int(a("prenet_depth")),
        mlp_ratio=float(r("mlp_ratio")),
        norm_eps=float(r("norm_eps")),
        norm_affine=bool(mc.get("norm_affine", True)),
        layer_norm_first=bool(r("layer_norm_first")),
        conv_layers=parse_layer_spec(str(a("feature_encoder_spec"))),
        extractor_mode=mode,
        conv_pos_width=int(a("conv_pos_width")),
        conv_pos_groups=int(a("conv_pos_groups")),
        conv_pos_depth=int(a("conv_pos_depth")),
        conv_pos_pre_ln=bool(audio.get("conv_pos_pre_ln", False)),
        num_extra_tokens=int(audio.get("num_extra_tokens", 0)),
        use_alibi=bool(audio.get("use_alibi_encoder", False)),
        num_alibi_heads=int(audio.get("num_alibi_heads", num_heads)),
        alibi_scale_per_layer=bool(audio.get("learned_alibi_scale_per_layer", False)),
        alibi_scale_per_head=bool(audio.get("learned_alibi_scale_per_head", False)),
        alibi_scale_init=float(audio.get("alibi_scale", 1.0)),
        normalize=bool(mc.get("normalize", False)),
        num_classes=num_classes,
    )
