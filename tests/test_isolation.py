"""Decoding in worker processes: a crash or a hang costs one file, never the caller."""

import threading
import time

import numpy as np
import pytest


from emotion import AudioError, Recognizer
from emotion.audio import load_audio
from emotion.errors import DECODE_TIMEOUT, DECODER_CRASHED, NOT_AUDIO
from emotion.isolation import IsolatedDecoder
from tests.faulty_decoder import load_or_fail
from emotion.sources import AudioOpener


@pytest.fixture(scope="module")
def decoder():
    with IsolatedDecoder(timeout_s=1.5, load=load_or_fail) as dec:
        dec.warm()
        yield dec


@pytest.fixture(scope="module")
def clip(audio_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("faults")
    data = (audio_dir / "mono_44100.wav").read_bytes()
    for name in ("ok.wav", "crash.wav", "exit.wav", "hang.wav", "bug.wav"):
        (folder / name).write_bytes(data)
    return folder


def pids(dec):
    return {w.process.pid for w in dec._all}


def test_same_audio_as_in_process(decoder, audio_dir):
    for name in ("stereo_44100.wav", "clip.mp3", "clip.opus"):
        ours, ref = decoder.load(audio_dir / name), load_audio(audio_dir / name)
        assert np.array_equal(ours.samples, ref.samples) and ours.sha256 == ref.sha256
        assert (ours.source_rate, ours.channels, ours.warnings) == (ref.source_rate, ref.channels, ref.warnings)


@pytest.mark.parametrize("name,how", [("crash.wav", "signal 6"), ("exit.wav", "exit code 3")])
@pytest.mark.serial  # timed
def test_a_dying_decoder_costs_one_file(decoder, clip, name, how):
    before = pids(decoder)
    start = time.perf_counter()
    with pytest.raises(AudioError) as err:
        decoder.load(clip / name)
    assert time.perf_counter() - start < 2
    assert err.value.code == DECODER_CRASHED and how in err.value.reason and err.value.name == name
    assert decoder.load(clip / "ok.wav").duration_s > 1  # the next request is served
    assert pids(decoder).isdisjoint(before)  # by a fresh worker


@pytest.mark.serial  # timed
def test_a_hanging_decoder_is_killed_at_the_hard_timeout(decoder, clip):
    before = pids(decoder)
    start = time.perf_counter()
    with pytest.raises(AudioError) as err:
        decoder.load(clip / "hang.wav")
    took = time.perf_counter() - start
    assert err.value.code == DECODE_TIMEOUT and 1.5 <= took < 3
    assert decoder.load(clip / "ok.wav").duration_s > 1
    assert pids(decoder).isdisjoint(before)


def test_errors_come_back_whole_and_the_worker_lives_on(decoder, clip, tmp_path):
    bad = tmp_path / "page.wav"
    bad.write_bytes(b"<html></html>" * 50)
    before = pids(decoder)
    with pytest.raises(AudioError) as err:
        decoder.load(bad)
    assert err.value.code == NOT_AUDIO and err.value.name == "page.wav"
    with pytest.raises(AudioError) as err:
        decoder.load(clip / "bug.wav")
    assert err.value.code == DECODER_CRASHED and "KeyError" in err.value.reason
    assert pids(decoder) == before


def test_workers_serve_threads_in_parallel(audio_dir):
    names = ["mono_8000.wav", "clip.flac", "clip.m4a", "stereo_44100.wav"] * 2
    out = {}
    with IsolatedDecoder(workers=2) as dec:
        threads = [threading.Thread(target=lambda i=i, n=n: out.__setitem__(i, dec.load(audio_dir / n)))
                   for i, n in enumerate(names)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(dec._all) == 2
        processes = [w.process for w in dec._all]
    assert all(np.array_equal(out[i].samples, load_audio(audio_dir / n).samples) for i, n in enumerate(names))
    assert not any(p.is_alive() for p in processes)  # close() stopped them


def test_recognizer_with_isolated_loader_keeps_going(tiny_recognizer, decoder, clip, audio_dir):
    rec = Recognizer(tiny_recognizer.engine, AudioOpener(load=decoder.load_channels))
    out = rec.recognize_many([clip / "ok.wav", clip / "crash.wav", audio_dir / "clip.flac"])
    assert out[1].code == DECODER_CRASHED
    assert out[0].scores == pytest.approx(tiny_recognizer.recognize(clip / "ok.wav").scores, abs=1e-6)
    assert out[2].input.name == "clip.flac"
