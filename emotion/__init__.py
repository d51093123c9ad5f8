"""Speech emotion recognition with Emotion2Vec+: a library, a command line and a web app.

    from emotion import Recognizer, write_result
    rec = Recognizer.load()                      # models/emotion2vec_plus_large, warmed up
    result = rec.recognize("clip.wav")           # or rec.recognize(samples, sample_rate=44100)
    for side in rec.recognize_channels("call.wav"):   # a result per channel
    print(result.emotion, result.confidence, result.scores)
    write_result(result, "outputs")              # result.json, embedding.npy, processed_audio.wav
    stream = StreamingRecognizer(rec, sample_rate=48000)   # chunks in, an update per hop out

Everything else stays importable from its module (emotion.sources, emotion.engine, ...).
"""

from .audio import SAMPLE_RATE, load_audio
from .download import download_model
from .engine import BusyError
from .errors import AudioError, EmotionError
from .recognizer import Recognizer
from .results import EmotionResult, write_result
from .stream import StreamingRecognizer, StreamUpdate

__version__ = "0.4.0"
__all__ = [
    "Recognizer", "EmotionResult", "write_result", "StreamingRecognizer", "StreamUpdate", "load_audio",
    "download_model", "EmotionError", "AudioError", "BusyError", "SAMPLE_RATE", "__version__",
]
