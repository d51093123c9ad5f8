"""Device out of memory: the batch is halved and retried down to one clip, then a clear busy error.

The error is injected on CPU by replacing the network's forward for batches above a size."""

import numpy as np
import pytest
import torch

from emotion import BusyError, Recognizer
from emotion.audio import load_audio
from emotion.torch_engine import TorchEngine


@pytest.fixture
def setup(tiny_recognizer, audio_dir, monkeypatch):
    rec = Recognizer(TorchEngine(tiny_recognizer.engine.model, batch_size=8), max_padding=10.0)  # the 8 clips in one batch
    clips = [load_audio(p) for p in sorted(audio_dir.glob("*.wav"))[:8]]
    expected = rec.analyse(clips)
    network = rec.engine.model.network
    real, sizes = network.forward, []

    def inject(limit):
        def forward(batch, *args, **kwargs):
            sizes.append(batch.shape[0])
            if batch.shape[0] > limit:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected)")
            return real(batch, *args, **kwargs)
        monkeypatch.setattr(network, "forward", forward)

    return rec, clips, expected, sizes, inject


def test_the_batch_is_split_until_it_fits(setup):
    rec, clips, expected, sizes, inject = setup
    inject(2)
    got = rec.analyse(clips)
    assert sizes == [8, 4, 2, 2, 4, 2, 2]  # halved twice, then four batches of two succeed
    for a, b in zip(got, expected):
        assert a.input.name == b.input.name
        assert np.allclose(a.embedding, b.embedding, atol=1e-5)
        assert a.scores == pytest.approx(b.scores, abs=1e-5)


def test_one_clip_that_does_not_fit_is_a_busy_error(setup, monkeypatch):
    rec, clips, _, sizes, inject = setup
    inject(0)
    with pytest.raises(BusyError, match="^busy: not enough GPU memory, try again$"):
        rec.analyse(clips)
    assert sizes == [8, 4, 2, 1]  # gave up at the first single clip that failed
    monkeypatch.undo()
    assert rec.analyse(clips[:1])[0].emotion  # the recognizer is usable afterwards (its lock was freed)
