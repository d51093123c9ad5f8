"""Resampling to 16 kHz exactly as torchaudio.transforms.Resample does by default, without its
memory and time blow-up, whole or as a stream.

torchaudio builds a (new, 1, 2 * width + orig) windowed-sinc kernel in float64, casts it to
float32 and runs one conv1d, where orig/new is the rate ratio in lowest terms.  For a rate such
as 24414 Hz the ratio is 12207/8000 and the kernel has ~98 M taps: 3.4 GB and seconds to build,
and ~120 ms of conv1d even for a 2 s clip.  Yet each kernel row (one output phase) is zero in
float32 outside a band of about 2 * 6 / rolloff input samples around its phase: beyond it the
sinc is clamped to +-6 lobes, where window * sinc is ~1e-49 and rounds to zero.  So the rows are
built and applied in blocks, each block cropped to the columns where its rows can be non-zero:
~3.3 M taps instead of 98 M for 24414 Hz (13 MB, cached), 12 ms for a 2 s clip.

Why the output stays bit-identical: the kept taps are computed with torchaudio's arithmetic,
element for element, and the conv1d call is one that sums exactly as torchaudio's does.  PyTorch
runs torchaudio's conv1d (batch 1, one channel) with its own im2col + GEMM when the padded input
has at most 20480 samples, and with oneDNN's direct convolution above that; the GEMM sums the taps
in blocks, oneDNN in one chain of fused multiply-adds in tap order, in which a zero tap adds
nothing.  So: small kernels are used whole, as torchaudio uses them (cached); large ones are
banded in oneDNN's regime (every call's input kept above the threshold) and full-width row by row
block in the GEMM's.  The tests compare with torchaudio at many rates and lengths, both regimes.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from typing import Iterable, Iterator

import torch
import torch.nn.functional as F

LOWPASS_FILTER_WIDTH = 6  # torchaudio's defaults
ROLLOFF = 0.99
DENSE_TAPS = 2_000_000  # kernels up to this size are used whole, as torchaudio does (8 MB in float32)
BLOCK_ROWS = 256  # rows (output phases) of a large kernel built and applied together
BAND_MARGIN = 2  # columns kept beyond the computed band on each side (they hold exact zeros)
CACHE_TAPS = 32_000_000  # kernels kept for reuse, all rates together (128 MB in float32)
NATIVE_CONV_NUMEL = 20480  # PyTorch's own conv1d below this input size, oneDNN's above (use_mkldnn)
MIN_FRAMES = 16  # oneDNN calls compute a power of two of output frames, at least this many
CALL_SAMPLES = 1 << 20  # input samples per oneDNN call, at most (about 22 s at 48 kHz)
# Source rates whose kernels are built before the first file arrives (where decoding happens):
# telephone, CD-family, TESS (24414 Hz) and video rates.
COMMON_RATES = (8000, 11025, 22050, 24000, 24414, 32000, 44100, 48000)

Blocks = list[tuple[int, torch.Tensor]]  # (first column, (rows, 1, columns) float32), in row order


def _ratio(orig: int, new: int) -> tuple[int, int, int]:
    gcd = math.gcd(int(orig), int(new))
    orig_r, new_r = int(orig) // gcd, int(new) // gcd
    base = min(orig_r, new_r) * ROLLOFF
    width = math.ceil(LOWPASS_FILTER_WIDTH * orig_r / base)
    return orig_r, new_r, width


def _kernel_rows(orig: int, new: int, start: int, stop: int, lo: int = 0, hi: int | None = None) -> torch.Tensor:
    """Rows start..stop-1, columns lo..hi-1 of torchaudio's sinc_interp_hann kernel, bit for bit."""
    orig_r, new_r, width = _ratio(orig, new)
    hi = 2 * width + orig_r if hi is None else hi
    base = min(orig_r, new_r) * ROLLOFF
    idx = torch.arange(lo - width, hi - width, dtype=torch.float64)[None, None] / orig_r
    # torchaudio: torch.arange(0, -new, -1) in the default dtype (float32), divided by new.
    t = (-torch.arange(start, stop, dtype=torch.float32))[:, None, None] / new_r + idx
    t *= base
    t = t.clamp_(-LOWPASS_FILTER_WIDTH, LOWPASS_FILTER_WIDTH)
    window = torch.cos(t * math.pi / LOWPASS_FILTER_WIDTH / 2) ** 2
    t *= math.pi
    scale = base / orig_r
    kernels = torch.where(t == 0, torch.tensor(1.0).to(t), t.sin() / t)
    kernels *= window * scale
    return kernels.to(torch.float32)


def _band(orig: int, new: int, start: int, stop: int) -> tuple[int, int]:
    """The columns [lo, hi) outside which rows start..stop-1 are zero: |t| >= the filter width."""
    orig_r, new_r, width = _ratio(orig, new)
    reach = LOWPASS_FILTER_WIDTH * orig_r / (min(orig_r, new_r) * ROLLOFF)  # in columns
    lo = math.floor(width + start * orig_r / new_r - reach) - BAND_MARGIN
    hi = math.ceil(width + (stop - 1) * orig_r / new_r + reach) + 1 + BAND_MARGIN
    return max(0, lo), min(2 * width + orig_r, hi)


def _spans(orig: int, new: int) -> list[tuple[int, int, int, int]]:
    """(first row, row after the last, lo, hi) of each block of a banded kernel."""
    new_r = _ratio(orig, new)[1]
    return [(a, min(a + BLOCK_ROWS, new_r), *_band(orig, new, a, min(a + BLOCK_ROWS, new_r)))
            for a in range(0, new_r, BLOCK_ROWS)]


def _build(orig: int, new: int) -> Iterator[tuple[int, torch.Tensor]]:
    """The kernel as blocks: whole when small, else banded blocks of rows."""
    orig_r, new_r, width = _ratio(orig, new)
    if new_r * (2 * width + orig_r) <= DENSE_TAPS:
        yield 0, _kernel_rows(orig, new, 0, new_r)
        return
    for a, b, lo, hi in _spans(orig, new):
        yield lo, _kernel_rows(orig, new, a, b, lo, hi)


_cache: OrderedDict[tuple[int, int], Blocks] = OrderedDict()
_cache_lock = threading.Lock()


def _kernel(orig: int, new: int) -> Iterable[tuple[int, torch.Tensor]]:
    """The kernel of orig -> new as blocks: from the cache (least recently used out first,
    CACHE_TAPS in all), else built (and cached if it fits; one too large is built block by block
    as it is applied, so memory stays bounded)."""
    key = (int(orig), int(new))
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    orig_r, new_r, width = _ratio(orig, new)
    taps = min(new_r * (2 * width + orig_r), sum((b - a) * (hi - lo) for a, b, lo, hi in _spans(orig, new)))
    if taps > CACHE_TAPS:
        return _build(orig, new)
    blocks = list(_build(orig, new))
    with _cache_lock:
        _cache[key] = blocks
        while sum(k.numel() for blk in _cache.values() for _, k in blk) > CACHE_TAPS:
            _cache.popitem(last=False)
    return blocks


def warm_kernels(rates: Iterable[int] = COMMON_RATES, new: int = 16000) -> None:
    """Build (and cache) the kernels of these source rates now, so that the first file at one of
    them does not pay for it: call it where decoding happens."""
    for rate in rates:
        if rate != new:
            _kernel(rate, new)


def _native(numel: int) -> bool:
    """Whether PyTorch runs conv1d on an input this long with its own GEMM (not oneDNN)."""
    return numel <= NATIVE_CONV_NUMEL or not torch.backends.mkldnn.is_available() or \
        not torch.backends.mkldnn.enabled


def _frames(padded: torch.Tensor, orig: int, new: int, frames: int, native: bool) -> torch.Tensor:
    """The first `frames` output frames (new_r samples each) of a padded (1, 1, n) input, flat.

    native: sum as PyTorch's own GEMM does (full-width rows, one call); else as oneDNN does
    (banded rows, CALL_SAMPLES of input per call, so that memory stays bounded however long the
    input: each output frame is the same chain of multiply-adds whatever the call)."""
    orig_r, _, width = _ratio(orig, new)
    if native:
        taps = 2 * width + orig_r
        parts = [F.conv1d(padded, F.pad(k, (lo, taps - lo - k.shape[-1])), stride=orig_r)[..., :frames]
                 for lo, k in _kernel(orig, new)]  # a band widened to every column, zeros outside
        return torch.cat(parts, dim=1).transpose(1, 2).reshape(-1)
    step = max(MIN_FRAMES, 1 << ((CALL_SAMPLES // orig_r).bit_length() - 1))
    parts = [torch.cat([_call(padded, first * orig_r + lo, k, orig_r, min(step, frames - first))
                        for first in range(0, frames, step)], dim=2) for lo, k in _kernel(orig, new)]
    return torch.cat(parts, dim=1).transpose(1, 2).reshape(-1)


def _call(padded: torch.Tensor, start: int, kernel: torch.Tensor, stride: int, frames: int) -> torch.Tensor:
    """`frames` output frames of one kernel block from padded[start:], in oneDNN's regime.  Zeros
    past the end change no wanted frame: the input is lengthened past NATIVE_CONV_NUMEL, and to a
    power of two of frames, so that oneDNN's kernels are reused across lengths."""
    used = (frames - 1) * stride + kernel.shape[-1]
    rounded = (max(MIN_FRAMES, 1 << (frames - 1).bit_length()) - 1) * stride + kernel.shape[-1]
    x = F.pad(padded[..., start : start + used], (0, max(rounded, NATIVE_CONV_NUMEL + 1) - used))
    return F.conv1d(x, kernel, stride=stride)[..., :frames]


def resample(wave: torch.Tensor, orig: int, new: int = 16000) -> torch.Tensor:
    """Resample a 1-D float32 waveform from `orig` Hz to `new` Hz (torchaudio's Resample output)."""
    if orig == new:
        return wave
    orig_r, new_r, width = _ratio(orig, new)
    length = wave.shape[-1]
    padded = F.pad(wave.reshape(1, 1, length), (width, width + orig_r))
    out = _frames(padded, orig, new, length // orig_r + 1, _native(padded.numel()))
    return out[: math.ceil(new_r * length / orig_r)].contiguous()


class StreamResampler:
    """resample() of a long waveform fed in pieces: push() returns what can be computed so far,
    flush() the rest.  Together they equal resample() of the whole, bit for bit, for a whole
    longer than NATIVE_CONV_NUMEL samples (the only kind worth streaming), while holding only
    about one kernel's width of input."""

    def __init__(self, orig: int, new: int = 16000):
        self.orig, self.new = int(orig), int(new)
        self._orig_r, self._new_r, self._width = _ratio(orig, new)
        self._pending = torch.zeros(self._width)  # the left zero padding, then unused input
        self.fed = 0  # input samples pushed
        self._emitted = 0  # output samples returned

    def _take(self, frames: int) -> torch.Tensor:
        if frames <= 0:
            return torch.zeros(0)
        out = _frames(self._pending.reshape(1, 1, -1), self.orig, self.new, frames, native=False)
        self._pending = self._pending[frames * self._orig_r :].clone()
        return out

    def _ready(self) -> int:
        taps = 2 * self._width + self._orig_r
        return (len(self._pending) - taps) // self._orig_r + 1 if len(self._pending) >= taps else 0

    def push(self, wave: torch.Tensor) -> torch.Tensor:
        """Resampled output for `wave` (1-D float32) so far: about len(wave) * new / orig samples."""
        self.fed += len(wave)
        if self.orig == self.new:
            return wave
        self._pending = torch.cat([self._pending, wave])
        out = self._take(self._ready())
        self._emitted += len(out)
        return out

    def flush(self) -> torch.Tensor:
        """The rest, once the input has ended."""
        if self.orig == self.new:
            return torch.zeros(0)
        self._pending = torch.cat([self._pending, torch.zeros(self._width + self._orig_r)])
        out = self._take(self._ready())
        target = math.ceil(self._new_r * self.fed / self._orig_r)
        out = out[: max(0, target - self._emitted)].contiguous()
        self._emitted += len(out)
        return out
