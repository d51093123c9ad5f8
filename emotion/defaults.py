"""The names and default values the command line and the web app show in their help, defined
without the engine: importing this module imports no torch, so `emotion --help` and a usage
error answer at once. The engine's modules take these from here (emotion.model, emotion.decode,
emotion.recognizer, emotion.streaming, emotion.sources, emotion.settings) and re-export them.
"""

from __future__ import annotations

from pathlib import Path


def _project_root() -> Path:
    """The checkout this package lives in (models/ and outputs/ are there); for a copy installed
    into site-packages, the current folder."""
    here = Path(__file__).resolve().parent.parent
    return here if (here / "pyproject.toml").is_file() else Path.cwd()


PROJECT_ROOT = _project_root()
MODELS_ROOT = PROJECT_ROOT / "models"
DEFAULT_MODEL = "emotion2vec_plus_large"
# name: (ModelScope id, Hugging Face id)
KNOWN_MODELS = {
    "emotion2vec_plus_large": ("iic/emotion2vec_plus_large", "emotion2vec/emotion2vec_plus_large"),
    "emotion2vec_plus_base": ("iic/emotion2vec_plus_base", "emotion2vec/emotion2vec_plus_base"),
    "emotion2vec_plus_seed": ("iic/emotion2vec_plus_seed", "emotion2vec/emotion2vec_plus_seed"),
}

GRANULARITIES = ("utterance", "frame")
# Which channels are analysed: their average (the reference's way), one side, or each apart.
CHANNEL_CHOICES = ("mix", "left", "right", "each")
MAX_DURATION_S = 1800.0  # decoded audio cap (the app and CLI: $EMOTION_MAX_DURATION_S)
MAX_DECODE_S = 120.0  # wall-clock decode cap (the app and CLI: $EMOTION_MAX_DECODE_S)
# Files whose header declares up to this long are decoded whole; longer ones are streamed in
# bounded memory, where the cap allows them (the command line and the batch command: emotion.sources)
STREAM_ABOVE_S = MAX_DURATION_S
STREAM_WINDOW_S = 3.0  # seconds of audio each streaming update judges (emotion.streaming.WINDOW_S)
STREAM_HOP_S = 0.5  # seconds between streaming updates (emotion.streaming.HOP_S)

DEFAULT_MAX_SPEAKERS = 8  # --speakers auto finds at most this many (emotion.speakers.diarize)

DEFAULT_QUEUE_SIZE = 16  # web app: requests that may wait for the model
GRACE_S = 30.0  # web app: seconds a running request may take to finish once the server is stopping
