"""Resampling to 16 kHz exactly as torchaudio.transforms.Resample does by default, without its
memory blow-up.

torchaudio builds a (new, 1, 2 * width + orig) windowed-sinc kernel in float64 and casts it to
float32, where orig/new is the rate ratio in lowest terms.  For a rate such as 24414 Hz the ratio
is 12207/8000 and the kernel has ~98 M taps: 3.4 GB and seconds to build.  Each kernel row (one
output phase) depends only on its own index, so we build and apply it in blocks of rows: the same
float64 arithmetic per row, the same float32 kernel values, a fraction of the memory.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F

LOWPASS_FILTER_WIDTH = 6  # torchaudio's defaults
ROLLOFF = 0.99
BLOCK_TAPS = 4_000_000  # kernel elements built at once (32 MB in float64)
CACHE_TAPS = 2_000_000  # kernels up to this size are kept for reuse (8 MB each in float32)


def _ratio(orig: int, new: int) -> tuple[int, int, int]:
    gcd = math.gcd(int(orig), int(new))
    orig_r, new_r = int(orig) // gcd, int(new) // gcd
    base = min(orig_r, new_r) * ROLLOFF
    width = math.ceil(LOWPASS_FILTER_WIDTH * orig_r / base)
    return orig_r, new_r, width


def _kernel_rows(orig: int, new: int, start: int, stop: int) -> torch.Tensor:
    """Rows start..stop-1 of torchaudio's sinc_interp_hann kernel, bit for bit."""
    orig_r, new_r, width = _ratio(orig, new)
    base = min(orig_r, new_r) * ROLLOFF
    idx = torch.arange(-width, width + orig_r, dtype=torch.float64)[None, None] / orig_r
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


@lru_cache(maxsize=16)
def _cached_kernel(orig: int, new: int) -> torch.Tensor:
    return _kernel_rows(orig, new, 0, _ratio(orig, new)[1])


def resample(wave: torch.Tensor, orig: int, new: int = 16000) -> torch.Tensor:
    """Resample a 1-D float32 waveform from `orig` Hz to `new` Hz (torchaudio's Resample output)."""
    if orig == new:
        return wave
    orig_r, new_r, width = _ratio(orig, new)
    length = wave.shape[-1]
    padded = F.pad(wave.reshape(1, 1, length), (width, width + orig_r))
    taps = 2 * width + orig_r
    if new_r * taps <= CACHE_TAPS:
        out = F.conv1d(padded, _cached_kernel(orig, new), stride=orig_r)  # (1, new_r, frames)
    else:
        rows = max(1, BLOCK_TAPS // taps)
        parts = [F.conv1d(padded, _kernel_rows(orig, new, s, min(s + rows, new_r)), stride=orig_r)
                 for s in range(0, new_r, rows)]
        out = torch.cat(parts, dim=1)
    out = out.transpose(1, 2).reshape(-1)
    target = math.ceil(new_r * length / orig_r)
    return out[:target].contiguous()
