"""Speech spans in long recordings, found with Silero VAD (the silero-vad package, which ships
its own model: nothing is downloaded).

    spans = SpeechDetector().speech_spans(audio.samples)     # [(start_s, end_s), ...] at 16 kHz

Each span is then scored on its own (emotion.batch.job) and reported as a timeline Segment, the
schema the web app's frame timeline uses too.
"""

from __future__ import annotations

import threading

import numpy as np
import torch

from ..audio import SAMPLE_RATE
from ..streaming import load_vad

THRESHOLD = 0.5  # speech probability above which a 32 ms window counts as speech
MIN_SPEECH_S = 0.25  # shorter bursts are dropped
MIN_SILENCE_S = 0.3  # pauses shorter than this do not split a segment
SPEECH_PAD_S = 0.1  # seconds of context kept on each side of a segment
MAX_SPEECH_S = 30.0  # longer speech is split (at a pause where there is one): one model window


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

    def speech_spans(self, samples: np.ndarray) -> list[tuple[float, float]]:
        """(start, end) seconds of each stretch of speech in a 16 kHz mono clip, in order."""
        from silero_vad import get_speech_timestamps

        with torch.no_grad():
            stamps = get_speech_timestamps(
                torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)), self._model(),
                threshold=self.threshold, sampling_rate=SAMPLE_RATE,
                min_speech_duration_ms=int(self.min_speech_s * 1000),
                min_silence_duration_ms=int(self.min_silence_s * 1000),
                speech_pad_ms=int(self.speech_pad_s * 1000), max_speech_duration_s=self.max_speech_s)
        return [(s["start"] / SAMPLE_RATE, s["end"] / SAMPLE_RATE) for s in stamps]
