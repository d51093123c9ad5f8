"""Random-weight Emotion2Vec checkpoints in the released folder layout, built with funasr's own
Emotion2vec class, for tests and benchmarks.  These models recognise nothing: they exist to
compare our engine with the reference on identical weights.

    python -m tests.checkpoints OUT_DIR --shape large   # the full large shape (~1.3 GB)
"""

from __future__ import annotations

import argparse
import json
from collections import OrderedDict
from pathlib import Path

import torch
import yaml

TOKENS = ["生气/angry", "厌恶/disgusted", "恐惧/fearful", "开心/happy", "中立/neutral",
          "其他/other", "难过/sad", "吃惊/surprised", "<unk>"]
OLD_TOKENS = ["生气/angry", "unuse_0", "unuse_1", "开心/happy", "中立/neutral",
              "unuse_2", "难过/sad", "unuse_3", "<unk>"]

# name: (embed_dim, heads, prenet_depth, depth, extra_tokens, conv_channels, conv_pos_depth,
#        alibi scale per layer)
SHAPES = {
    "tiny": (64, 4, 1, 2, 2, 32, 2, False),
    "tiny_per_layer": (64, 4, 1, 2, 2, 32, 2, True),
    "mid": (192, 12, 2, 3, 10, 512, 5, False),
    "large": (1024, 16, 16, 8, 10, 512, 5, False),
}


def model_conf(shape: str) -> dict:
    dim, heads, prenet, depth, extra, channels, pos_depth, per_layer = SHAPES[shape]
    spec = f"[({channels}, 10, 5)] + [({channels}, 3, 2)] * 4 + [({channels},2,2)] + [({channels},2,2)]"
    return {
        "loss_beta": 0.0, "loss_scale": None, "depth": depth, "start_drop_path_rate": 0.0,
        "end_drop_path_rate": 0.0, "num_heads": heads, "norm_eps": 1e-05, "norm_affine": True,
        "encoder_dropout": 0.1, "post_mlp_drop": 0.1, "attention_dropout": 0.1,
        "activation_dropout": 0.0, "dropout_input": 0.0, "layerdrop": 0.05, "embed_dim": dim,
        "mlp_ratio": 4.0, "layer_norm_first": False, "average_top_k_layers": 8,
        "end_of_block_targets": False, "clone_batch": 8, "layer_norm_target_layer": False,
        "batch_norm_target_layer": False, "instance_norm_target_layer": True,
        "instance_norm_targets": False, "layer_norm_targets": False, "ema_decay": 0.999,
        "ema_same_dtype": True, "log_norms": True, "ema_end_decay": 0.99999,
        "ema_anneal_end_step": 20000, "ema_encoder_only": False, "max_update": 100000,
        "extractor_mode": "layer_norm", "shared_decoder": None, "min_target_var": 0.1,
        "min_pred_var": 0.01, "supported_modality": "AUDIO", "mae_init": False, "seed": 1,
        "skip_ema": False, "cls_loss": 0.0, "recon_loss": 0.0, "d2v_loss": 1.0,
        "decoder_group": False, "adversarial_training": False, "adversarial_hidden_dim": 128,
        "adversarial_weight": 0.1, "cls_type": "chunk", "normalize": True,
        "modalities": {"audio": {
            "type": "AUDIO", "prenet_depth": prenet, "prenet_layerdrop": 0.05,
            "prenet_dropout": 0.1, "start_drop_path_rate": 0.0, "end_drop_path_rate": 0.0,
            "num_extra_tokens": extra, "init_extra_token_zero": True, "mask_noise_std": 0.01,
            "mask_prob_min": None, "mask_prob": 0.5, "inverse_mask": False,
            "mask_prob_adjust": 0.05, "keep_masked_pct": 0.0, "mask_length": 5,
            "add_masks": False, "remove_masks": False, "mask_dropout": 0.0,
            "encoder_zero_mask": True, "mask_channel_prob": 0.0, "mask_channel_length": 64,
            "ema_local_encoder": False, "local_grad_mult": 1.0, "use_alibi_encoder": True,
            "alibi_scale": 1.0, "learned_alibi": False, "alibi_max_pos": None,
            "learned_alibi_scale": True, "learned_alibi_scale_per_head": True,
            "learned_alibi_scale_per_layer": per_layer, "num_alibi_heads": heads,
            "model_depth": depth,
            "decoder": {"decoder_dim": 384, "decoder_groups": 16, "decoder_kernel": 7,
                        "decoder_layers": 4, "input_dropout": 0.1, "add_positions_masked": False,
                        "add_positions_all": False, "decoder_residual": True,
                        "projection_layers": 1, "projection_ratio": 2.0},
            "extractor_mode": "layer_norm", "feature_encoder_spec": spec,
            "conv_pos_width": 95, "conv_pos_groups": 16, "conv_pos_depth": pos_depth,
            "conv_pos_pre_ln": False,
        }},
    }


def random_state_dict(shape: str, num_classes: int, seed: int) -> "OrderedDict[str, torch.Tensor]":
    """funasr's Emotion2vec with every parameter randomised (norms and ALiBi scales included),
    as the released model.pt holds it: no decoder keys, a few extra tensors."""
    from funasr.models.emotion2vec.model import Emotion2vec

    torch.manual_seed(seed)
    model = Emotion2vec(model_conf=model_conf(shape), vocab_size=num_classes)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("alibi_scale"):
                p.copy_(torch.rand(p.shape, generator=gen) * 1.5 + 0.25)
                p.view(-1)[0] = -0.3  # the reference clamps scales at 0: exercise it
            elif "norm" in name or ".2.1." in name or "project_features.1" in name:
                base = 1.0 if name.endswith("weight") else 0.0
                p.copy_(base + 0.1 * torch.randn(p.shape, generator=gen))
            elif name.endswith("extra_tokens"):
                p.copy_(torch.randn(p.shape, generator=gen))
            elif name.endswith("bias"):
                p.copy_(0.02 * torch.randn(p.shape, generator=gen))
    state = OrderedDict(
        (k, v.detach().clone()) for k, v in model.state_dict().items()
        if not k.startswith("modality_encoders.AUDIO.decoder.")
    )
    # The released file holds tensors inference never reads; a loader must ignore them.
    state["_ema.num_updates"] = torch.tensor(1000)
    state["modality_encoders.AUDIO.unused_projection.weight"] = torch.zeros(4, 4)
    return state


def write_model_dir(out: Path, shape: str = "tiny", tokens: list[str] = TOKENS, seed: int = 0,
                    state_dict=None) -> Path:
    """Write config.yaml, model.pt, tokens.txt and configuration.json into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    config = {"model": "Emotion2vec", "model_conf": model_conf(shape),
              "tokenizer": "CharTokenizer", "tokenizer_conf": {"unk_symbol": "<unk>"}}
    (out / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False))
    (out / "tokens.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")
    (out / "configuration.json").write_text(json.dumps({
        "framework": "pytorch", "task": "emotion-recognition",
        "model": {"type": "emotion2vec"}, "pipeline": {"type": "funasr-pipeline"},
        "file_path_metas": {"init_param": "model.pt", "config": "config.yaml",
                            "tokenizer_conf": {"token_list": "tokens.txt"}},
    }, indent=2))
    if state_dict is None:
        state_dict = random_state_dict(shape, len(tokens), seed)
    torch.save(state_dict, out / "model.pt")
    return out


def shared_model_dir(cache: Path, name: str, shape: str, seed: int) -> Path:
    """write_model_dir(cache/name/name, shape, seed=seed), made once for every process that asks
    (the two passes of `./run.sh test` and their workers): the first takes a lock and writes it
    into a temporary folder renamed into place, the others wait on the lock and find it made. Each
    model in a folder of its own, as the app lists a model folder's siblings."""
    import fcntl
    import shutil

    home = cache / name
    home.mkdir(parents=True, exist_ok=True)
    with open(cache / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (home / name).is_dir():
            tmp = home / f".{name}.partial"
            shutil.rmtree(tmp, ignore_errors=True)
            write_model_dir(tmp, shape, seed=seed)
            tmp.rename(home / name)
    return home / name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="large")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    write_model_dir(args.out, args.shape, seed=args.seed)
    print(args.out)


if __name__ == "__main__":
    main()
