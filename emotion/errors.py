"""The one base class of every error a user can cause and fix.

Each concrete error also keeps the built-in base it had before (AudioError is a ValueError,
ResultWriteError an OSError, ...), so `except ValueError` in a caller's code still catches it.
The command line and the web app catch EmotionError once, at the entry point, and show its
message: one line (or a short how-to) and exit code 2, never a traceback.
"""

from __future__ import annotations


class EmotionError(Exception):
    """Something the user can fix: a bad file, a missing model, a setting that cannot work."""


class SettingsError(EmotionError, ValueError):
    """A setting that cannot work: an unknown dtype, int8 on a GPU, CUDA where there is none, a
    malformed environment variable."""


# Why an input is refused: every AudioError carries one of these codes (its `reason` is the text
# shown to the user).  The list is fixed; docs/reliability.md documents it.
NO_FILE = "no_file"  # missing, or not a regular file
EMPTY = "empty"  # zero bytes
NOT_AUDIO = "not_audio"  # no decoder recognises the content (html, random bytes, broken header)
NO_AUDIO_STREAM = "no_audio_stream"  # a media file without sound (an image, a silent video)
UNDECODABLE = "undecodable"  # an audio stream whose data cannot be decoded at all
NO_SAMPLES = "no_samples"  # a well-formed file holding zero frames
BAD_SAMPLE_RATE = "bad_sample_rate"  # outside the accepted source rates
BAD_CHANNELS = "bad_channels"  # 0 or more than the accepted channel count
FORMAT_CHANGE = "format_change"  # sample rate or channel count changes mid-stream
NOT_FINITE = "not_finite"  # NaN or infinite samples
TOO_SHORT = "too_short"  # under the minimum duration
TOO_LONG = "too_long"  # over the duration cap, by its header or once decoded
DECODE_TIMEOUT = "decode_timeout"  # decoding took longer than the decode-time cap
DECODER_CRASHED = "decoder_crashed"  # the isolated decoder died or failed on this file
INVALID = "invalid"  # samples of the wrong shape handed over by a caller
REASONS = (NO_FILE, EMPTY, NOT_AUDIO, NO_AUDIO_STREAM, UNDECODABLE, NO_SAMPLES, BAD_SAMPLE_RATE,
           BAD_CHANNELS, FORMAT_CHANGE, NOT_FINITE, TOO_SHORT, TOO_LONG, DECODE_TIMEOUT,
           DECODER_CRASHED, INVALID)


class AudioError(EmotionError, ValueError):
    """An input that cannot be analysed: `name` the file, `reason` the text for the user, `code`
    one of REASONS."""

    def __init__(self, name: str, reason: str, code: str = INVALID):
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason
        self.code = code

    def __reduce__(self):  # pickles whole, for worker processes
        return type(self), (self.name, self.reason, self.code)
