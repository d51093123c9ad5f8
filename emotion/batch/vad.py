"""Speech spans in long recordings, found with Silero VAD (the silero-vad package, which ships
its own model: nothing is downloaded).

    spans = SpeechDetector().speech_spans(audio.samples)     # [(start_s, end_s), ...] at 16 kHz

Each span is then scored on its own (emotion.batch.job) and reported as a timeline Segment, the
schema the web app's frame timeline uses too.
"""

from __future__ import annotations

import threading
from array import array

import numpy as np
import torch

from ..audio import SAMPLE_RATE
from ..streaming import load_vad

THRESHOLD = 0.5  # speech probability above which a 32 ms window counts as speech
MIN_SPEECH_S = 0.25  # shorter bursts are dropped
MIN_SILENCE_S = 0.3  # pauses shorter than this do not split a segment
SPEECH_PAD_S = 0.1  # seconds of context kept on each side of a segment
MAX_SPEECH_S = 30.0  # longer speech is split (at a pause where there is one): one model window
VAD_STEP = 512  # samples per VAD step at 16 kHz (32 ms)


class SpeechDetector:
    """Finds speech in 16 kHz mono clips.  Thread-safe: each thread gets its own VAD state."""

    def __init__(self, threshold: float = THRESHOLD, min_speech_s: float = MIN_SPEECH_S,
                 min_silence_s: float = MIN_SILENCE_S, speech_pad_s: float = SPEECH_PAD_S,
                 max_speech_s: float = MAX_SPEECH_S):
        self.threshold = threshold
        self.min_speech_s = min_speech_s
        self.min_silence_s = min_silence_s
        self.speech_pad_s = speech_pad_s
        self.max_speech_s = max_speech_s
        self._local = threading.local()
        self._model()  # fail now, with a clear message, rather than on the first file

    def _model(self):
        model = getattr(self._local, "model", None)
        if model is None:
            model = self._local.model = load_vad("--segment")  # the TorchScript model inside the package
        return model

    def options(self) -> dict:
        """The settings Silero VAD's get_speech_timestamps is given."""
        return dict(threshold=self.threshold, sampling_rate=SAMPLE_RATE,
                    min_speech_duration_ms=int(self.min_speech_s * 1000),
                    min_silence_duration_ms=int(self.min_silence_s * 1000),
                    speech_pad_ms=int(self.speech_pad_s * 1000), max_speech_duration_s=self.max_speech_s)

    def speech_spans(self, samples: np.ndarray) -> list[tuple[float, float]]:
        """(start, end) seconds of each stretch of speech in a 16 kHz mono clip, in order."""
        from silero_vad import get_speech_timestamps

        with torch.no_grad():
            stamps = get_speech_timestamps(torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)),
                                           self._model(), **self.options())
        return [(s["start"] / SAMPLE_RATE, s["end"] / SAMPLE_RATE) for s in stamps]

    def streams(self, n: int = 1) -> list["SpeechStream"]:
        """n streams (one per channel of a recording read piece by piece), each with its own VAD
        state; they run in this thread."""
        models = getattr(self._local, "extra", None)
        if models is None:
            models = self._local.extra = []
        while len(models) < n - 1:
            models.append(load_vad("--speakers"))
        return [SpeechStream(self, model) for model in [self._model()] + models[:n - 1]]


class SpeechStream:
    """The speech of a 16 kHz mono clip fed piece by piece (push), in bounded memory: the VAD runs
    on each 32 ms step as it comes, its state carried over, and keeps one probability per step (4
    bytes per 32 ms); spans() then applies the same rules to them, so the spans are exactly what
    SpeechDetector.speech_spans gives on the whole clip."""

    def __init__(self, detector: SpeechDetector, model):
        self._detector, self._model = detector, model
        self._model.reset_states()
        self._rest = np.zeros(0, np.float32)  # the part of a step still to come
        self._probs = array("f")
        self.samples = 0

    def push(self, samples: np.ndarray) -> None:
        data = np.concatenate([self._rest, np.asarray(samples, np.float32)])
        self.samples += len(samples)
        whole = len(data) - len(data) % VAD_STEP
        with torch.no_grad():
            for at in range(0, whole, VAD_STEP):
                self._probs.append(self._model(torch.from_numpy(data[at:at + VAD_STEP]), SAMPLE_RATE).item())
        self._rest = data[whole:].copy()

    def spans(self) -> list[tuple[float, float]]:
        """(start, end) seconds of each stretch of speech in all that was pushed."""
        from silero_vad import get_speech_timestamps_from_probs

        if len(self._rest):  # the last step, padded with silence as get_speech_timestamps does
            with torch.no_grad():
                last = np.zeros(VAD_STEP, np.float32)
                last[:len(self._rest)] = self._rest
                self._probs.append(self._model(torch.from_numpy(last), SAMPLE_RATE).item())
            self._rest = np.zeros(0, np.float32)
        stamps = get_speech_timestamps_from_probs(self._probs.tolist(), audio_length_samples=self.samples,
                                                  **self._detector.options())
        return [(s["start"] / SAMPLE_RATE, s["end"] / SAMPLE_RATE) for s in stamps]
