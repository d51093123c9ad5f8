"""Speech emotion recognition with Emotion2Vec+: a library, a command line and a web app.

    from emotion import Recognizer
    rec = Recognizer.load()                      # models/emotion2vec_plus_large, warmed up
    result = rec.recognize("clip.wav")           # or rec.recognize(samples, sample_rate=44100)
    print(result.emotion, result.confidence, result.scores)
    write_result(result, "outputs")              # result.json, embedding.npy, processed_audio.wav
"""

from .audio import SAMPLE_RATE, Audio, AudioError, load_audio
from .download import download_model, ensure_model
from .isolation import IsolatedDecoder
from .labels import EMOTIONS, Label
from .model import CheckpointError, LoadedModel, ModelNotFoundError, load_model
from .recognizer import GRANULARITIES, BusyError, Recognizer, get_recognizer
from .results import EmotionResult, write_result
from .storage import ResultWriteError, sweep_outputs
from .timeline import Segment

__all__ = [
    "SAMPLE_RATE", "Audio", "AudioError", "load_audio", "download_model", "ensure_model",
    "EMOTIONS", "Label", "CheckpointError", "LoadedModel", "ModelNotFoundError", "load_model",
    "GRANULARITIES", "BusyError", "Recognizer", "get_recognizer", "EmotionResult", "write_result", "Segment",
    "IsolatedDecoder", "ResultWriteError", "sweep_outputs",
]
