"""Loading model folders: strict about what the network needs, tolerant of wrappers and extras."""

import logging
import shutil

import pytest
import torch

from emotion import Recognizer
from emotion.model import CheckpointError, ModelNotFoundError, load_model
from emotion.model import read_state_dict
from emotion.torch_engine import TorchEngine
from tests.checkpoints import OLD_TOKENS, write_model_dir


def _copy_with_state(src, dst, mutate):
    shutil.copytree(src, dst)
    state = torch.load(src / "model.pt")
    torch.save(mutate(state), dst / "model.pt")
    return dst


def test_loads_without_random_init_and_matches_file(tiny_model):
    m = load_model(tiny_model, device="cpu")
    state = torch.load(tiny_model / "model.pt")
    for k, v in m.network.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert m.dtype == torch.float32 and m.device.type == "cpu"


def test_missing_weight_fails_loudly(tiny_model, tmp_path):
    key = "blocks.0.attn.qkv.weight"
    d = _copy_with_state(tiny_model, tmp_path / "m", lambda s: {k: v for k, v in s.items() if k != key})
    with pytest.raises(CheckpointError, match=r"1 missing weights: blocks\.0\.attn\.qkv\.weight"):
        load_model(d, device="cpu")


def test_misshaped_weight_fails_loudly(tiny_model, tmp_path):
    def mutate(s):
        s["proj.weight"] = torch.zeros(5, s["proj.weight"].shape[1])
        return s

    d = _copy_with_state(tiny_model, tmp_path / "m", mutate)
    with pytest.raises(CheckpointError, match=r"mis-shaped weights: proj\.weight \(5, 64\) \(needs \(9, 64\)\)"):
        load_model(d, device="cpu")


@pytest.mark.parametrize("wrap", ["model", "state_dict", "module"])
def test_wrapped_state_dicts_load(tiny_model, tmp_path, wrap):
    def mutate(s):
        if wrap == "module":
            return {"module." + k: v for k, v in s.items()}
        return {wrap: s, "epoch": 3}

    d = _copy_with_state(tiny_model, tmp_path / "m", mutate)
    ref = load_model(tiny_model, device="cpu").network.state_dict()
    got = load_model(d, device="cpu").network.state_dict()
    assert all(torch.equal(ref[k], got[k]) for k in ref)


def test_extra_keys_are_ignored_with_one_log_line(tiny_model, caplog):
    caplog.set_level(logging.INFO, logger="emotion.model")
    load_model(tiny_model, device="cpu")
    lines = [r for r in caplog.records if "ignoring" in r.getMessage()]
    assert len(lines) == 1 and "2 tensors" in lines[0].getMessage()
    assert "_ema.num_updates" in read_state_dict(tiny_model / "model.pt")


def test_unuse_tokens_are_masked_like_the_reference(tmp_path, audio_dir):
    from emotion.verify import reference_model

    d = write_model_dir(tmp_path / "old", "tiny", tokens=OLD_TOKENS, seed=4)
    rec = Recognizer.load(d, device="cpu", warmup=False)
    res = rec.recognize(audio_dir / "mono_16000.wav")
    masked = {"disgusted", "fearful", "other", "surprised"}
    assert all(res.scores[k] == 0.0 for k in masked)
    assert abs(sum(res.scores.values()) - 1) < 1e-5
    assert res.emotion not in masked and all(t["emotion"] not in masked for t in res.top)
    ref = reference_model(d).generate(str(audio_dir / "mono_16000.wav"), disable_pbar=True)[0]
    assert len(ref["scores"]) == 5
    live = [k for k in res.scores if k not in masked]
    assert max(abs(res.scores[k] - v) for k, v in zip(live, ref["scores"])) <= 1e-4


def test_missing_folder_names_what_to_do(tmp_path):
    with pytest.raises(ModelNotFoundError) as err:
        load_model(tmp_path / "nowhere", device="cpu")
    text = str(err.value)
    assert "python -m emotion download" in text and "EMOTION_MODEL_DIR" in text and "model.pt" in text


def test_known_names_resolve_under_models():
    from emotion.model import MODELS_ROOT, resolve_model_dir

    for name in ("emotion2vec_plus_large", "emotion2vec_plus_base", "emotion2vec_plus_seed"):
        assert resolve_model_dir(name) == MODELS_ROOT / name


def test_int8_mode_quantises_the_transformer_and_stays_close(mid_model, audio_dir):
    """Opt-in int8: every linear layer of the encoder and blocks becomes a torch.ao dynamically
    quantised Linear, the head stays fp32, and scores stay near fp32's (the bound is loose:
    quantisation changes numbers).

    This pins the deprecated torch.ao path on purpose: on the large shape it is 1.22x faster than
    torchao's maintained Int8DynamicActivationInt8WeightConfig at the same fidelity (BENCHMARKS.md,
    "int8"). When torch drops torch.ao.quantization this test fails at the import below: switch
    model.quantize_linears to torchao >= 0.18 then (benchmarks/bench_int8.py has the exact call)."""
    fp32 = Recognizer(TorchEngine(load_model(mid_model, device="cpu")))
    int8 = Recognizer(TorchEngine(load_model(mid_model, device="cpu", dtype="int8")))
    assert int8.model_info().dtype == "int8"
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    net = int8.engine.model.network
    parts = (net.modality_encoders, net.blocks)
    linears = [m for part in parts for m in part.modules() if isinstance(m, torch.nn.Linear | DynamicLinear)]
    expected = sum(isinstance(m, torch.nn.Linear) for part in (fp32.engine.model.network.modality_encoders,
                                                                fp32.engine.model.network.blocks) for m in part.modules())
    assert len(linears) == expected > 0 and all(isinstance(m, DynamicLinear) for m in linears)
    assert isinstance(net.proj, torch.nn.Linear) and not isinstance(net.proj, DynamicLinear)
    clip = audio_dir / "mono_16000.wav"
    a, b = fp32.recognize(clip), int8.recognize(clip)
    diff = max(abs(a.scores[k] - b.scores[k]) for k in a.scores)
    assert 0 < diff < 0.05
    with pytest.raises(ValueError, match="CPU only"):
        from emotion.model import pick_dtype

        pick_dtype("int8", torch.device("cuda"))
