"""Emotion scores from a folder written by `emotion export`, with onnxruntime, numpy and soundfile
only: no PyTorch, no funasr, not this project.

    pip install onnxruntime numpy soundfile
    python run_onnx.py EXPORTED_DIR clip.wav [more.flac ...]

Prints one JSON line per file: {"file", "emotion", "scores": {class: score}}. The steps are those
of the reference (funasr's Emotion2vec.inference): decode, mix to mono, resample to 16 kHz with
torchaudio's default windowed-sinc filter, normalise the whole clip, run the model, read `scores`.
"""

import json
import math
import sys

import numpy as np
import onnxruntime as ort
import soundfile as sf

RATE = 16000  # Hz: what the model takes
WIDTH, ROLLOFF = 6, 0.99  # torchaudio.transforms.Resample's defaults (sinc_interp_hann)


def resample(wave: np.ndarray, orig: int, new: int = RATE) -> np.ndarray:
    """Polyphase windowed-sinc resampling, torchaudio's filter (built in float64, applied in
    float32). The filter has new/g rows of about 2 * 6 * orig/g taps (g = gcd(orig, new)): small
    for 8, 22.05, 44.1 and 48 kHz, very large for a rate such as 24414 Hz."""
    if orig == new:
        return wave
    g = math.gcd(orig, new)
    orig_r, new_r = orig // g, new // g
    base = min(orig_r, new_r) * ROLLOFF
    width = math.ceil(WIDTH * orig_r / base)
    idx = np.arange(-width, width + orig_r, dtype=np.float64) / orig_r
    t = (np.arange(0, -new_r, -1, dtype=np.float32) / np.float32(new_r))[:, None] + idx[None]
    t = np.clip(t * base, -WIDTH, WIDTH)
    window = np.cos(t * math.pi / WIDTH / 2) ** 2
    t = t * math.pi
    with np.errstate(invalid="ignore", divide="ignore"):
        kernel = np.where(t == 0, 1.0, np.sin(t) / t)
    kernel = (kernel * window * (base / orig_r)).astype(np.float32)  # (new_r, taps)
    padded = np.pad(wave.astype(np.float32), (width, width + orig_r))
    frames = len(wave) // orig_r + 1
    windows = np.lib.stride_tricks.sliding_window_view(padded, kernel.shape[1])[::orig_r][:frames]
    out = (windows @ kernel.T).reshape(-1)  # frame i gives output samples i*new_r .. i*new_r+new_r-1
    return out[: math.ceil(new_r * len(wave) / orig_r)]


def load(path: str) -> np.ndarray:
    """The file as the model takes it: mono, 16 kHz, zero mean and unit variance (eps 1e-5)."""
    samples, rate = sf.read(path, dtype="float32", always_2d=True)
    wave = resample(samples.mean(axis=1), rate)
    return ((wave - wave.mean()) / np.sqrt(wave.var() + 1e-5)).astype(np.float32)


def main(folder: str, paths: list[str]) -> None:
    manifest = json.load(open(f"{folder}/manifest.json", encoding="utf-8"))
    labels = manifest["labels"]  # the head's classes in order; masked ones always score 0
    options = ort.SessionOptions()
    if manifest["precision"] == "fp32":  # map the fp32 weights as they are: packing a copy costs 1-1.5 s
        options.add_session_config_entry("session.disable_prepacking", "1")
    session = ort.InferenceSession(f"{folder}/model.onnx", options, providers=["CPUExecutionProvider"])
    waves = [load(p) for p in paths]
    batch = np.zeros((len(waves), max(len(w) for w in waves)), np.float32)  # zero-padded, masked inside
    for i, w in enumerate(waves):
        batch[i, : len(w)] = w
    lengths = np.array([len(w) for w in waves], np.int64)
    (scores,) = session.run(["scores"], {"waveforms": batch, "lengths": lengths})
    for path, row in zip(paths, scores):
        named = {lb["key"]: float(s) for lb, s in zip(labels, row) if not lb["masked"]}
        print(json.dumps({"file": path, "emotion": max(named, key=named.get), "scores": named}))


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: python run_onnx.py EXPORTED_DIR AUDIO [AUDIO ...]")
    main(sys.argv[1], sys.argv[2:])
