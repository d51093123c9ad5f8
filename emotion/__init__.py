"""Speech emotion recognition with Emotion2Vec+: a library, a command line and a web app.

    from emotion import Recognizer, write_result
    rec = Recognizer.load()                      # models/emotion2vec_plus_large, warmed up
    result = rec.recognize("clip.wav")           # or rec.recognize(samples, sample_rate=44100)
    print(result.emotion, result.confidence, result.scores)
    write_result(result, "outputs")              # result.json, embedding.npy, processed_audio.wav
    stream = StreamingRecognizer(rec, sample_rate=48000)   # chunks in, an update per hop out

Everything else stays importable from its module (emotion.model, emotion.isolation, ...).
"""

from .audio import SAMPLE_RATE, Audio, AudioError, load_audio
from .errors import EmotionError
from .hub import download_model
from .labels import EMOTIONS, Label
from .recognizer import BusyError, Recognizer
from .results import EmotionResult, write_result
from .stream import StreamingRecognizer, StreamUpdate
from .timeline import Segment

__all__ = [
    "Recognizer", "EmotionResult", "Segment", "write_result", "load_audio", "Audio", "SAMPLE_RATE",
    "EMOTIONS", "Label", "download_model", "EmotionError", "AudioError", "BusyError",
    "StreamingRecognizer", "StreamUpdate",
]
