"""Who felt what in a conversation: speaker turns and an emotion per turn and per speaker.

A layer on the engine, like emotion.batch: it uses the recognizer's public methods, Silero VAD
(emotion.batch.vad) and Resemblyzer's speaker encoder.

    from emotion.speakers import recognize_speakers
    analysis = recognize_speakers(recognizer, "call.wav", speakers="auto", max_speakers=4)

diarize.py: who spoke when (Diarizer, Turn, cluster); analysis.py: the emotions (recognize_speakers,
SpeakerAnalysis, SpeakerSummary, TurnEmotion).
"""

from .analysis import NO_SPEECH, SpeakerAnalysis, SpeakerSummary, TurnEmotion, recognize_speakers
from .diarize import DEFAULT_MAX_SPEAKERS, Diarization, Diarizer, SpeakerError, Turn, parse_speakers

__all__ = ["recognize_speakers", "SpeakerAnalysis", "SpeakerSummary", "TurnEmotion", "NO_SPEECH", "Diarizer",
           "Diarization", "Turn", "SpeakerError", "DEFAULT_MAX_SPEAKERS", "parse_speakers"]
