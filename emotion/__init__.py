"""Speech emotion recognition with Emotion2Vec+: a library, a command line and a web app.

    from emotion import Recognizer, write_result
    rec = Recognizer.load()                      # models/emotion2vec_plus_large, warmed up
    result = rec.recognize("clip.wav")           # or rec.recognize(samples, sample_rate=44100)
    print(result.emotion, result.confidence, result.scores)
    left, right = rec.recognize_channels("call.wav")   # a result per channel
    write_result(result, "outputs")              # result.json, embedding.npy, processed_audio.wav
    stream = StreamingRecognizer(rec, sample_rate=48000)   # chunks in, an update per hop out

Everything else stays importable from its module (emotion.sources, emotion.engine, ...).
"""

from importlib import import_module

# name: the module it comes from. Imported on first use, so that `python -m emotion --help` and the
# web app's option errors answer without loading the engine (torch takes seconds to import).
_EXPORTS = {
    "SAMPLE_RATE": "audio", "load_audio": "audio", "download_model": "download", "BusyError": "engine",
    "AudioError": "errors", "EmotionError": "errors", "Recognizer": "recognizer", "EmotionResult": "results",
    "write_result": "results", "StreamingRecognizer": "stream", "StreamUpdate": "stream",
}

__version__ = "0.4.0"
__all__ = [
    "Recognizer", "EmotionResult", "write_result", "StreamingRecognizer", "StreamUpdate", "load_audio",
    "download_model", "EmotionError", "AudioError", "BusyError", "SAMPLE_RATE", "__version__",
]


def __getattr__(name: str):
    if name not in _EXPORTS:  # emotion.audio and the like, as when this file imported them
        try:
            return import_module(f".{name}", __name__)
        except ModuleNotFoundError:
            raise AttributeError(f"module 'emotion' has no attribute {name!r}") from None
    value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value  # once found, an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
