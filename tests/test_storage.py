"""Result folders: manifest last, disk full, many writers at once, start-up sweep, retention."""

import errno
import hashlib
import json
import os
import threading
import time

import pytest

from emotion import files, write_result
from emotion.results import sweep_outputs
from emotion.settings import Settings
from emotion.errors import SettingsError
from emotion.files import MANIFEST_FILE, ResultWriteError, is_complete


@pytest.fixture(scope="module")
def result(tiny_recognizer, audio_dir):
    return tiny_recognizer.recognize(audio_dir / "mono_16000.wav")


def folders(root):
    return sorted(p for p in root.iterdir())


def test_manifest_lists_every_file_with_size_and_sha256(result, tmp_path):
    folder = write_result(result, tmp_path)
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    assert sorted(manifest["files"]) == ["embedding.npy", "processed_audio.wav", "result.json"]
    for name, info in manifest["files"].items():
        data = (folder / name).read_bytes()
        assert info == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert is_complete(folder)
    (folder / "embedding.npy").write_bytes(b"cut")  # a damaged file no longer matches
    assert not is_complete(folder)


def test_manifest_is_written_last(result, tmp_path, monkeypatch):
    order = []
    real = files._write_synced
    monkeypatch.setattr(files, "_write_synced", lambda path, write: order.append(path.name) or real(path, write))
    write_result(result, tmp_path)
    assert order[-1] == MANIFEST_FILE and len(order) == 4


@pytest.mark.parametrize("failing_call", [1, 3, 4, 5])  # result.json, the audio, the manifest, the folder
def test_disk_full_is_a_clear_error_and_leaves_nothing(result, tmp_path, monkeypatch, failing_call):
    earlier = write_result(result, tmp_path)
    before = {p: p.read_bytes() for p in earlier.iterdir()}
    calls = []
    real_fsync = os.fsync

    def fsync(fd):  # where a full disk shows up for buffered writes
        calls.append(fd)
        if len(calls) == failing_call:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(files.os, "fsync", fsync)
    with pytest.raises(ResultWriteError, match="disk is full") as err:
        write_result(result, tmp_path)
    assert isinstance(err.value, OSError) and err.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert folders(tmp_path) == [earlier]  # no partial folder, no temporary folder
    assert {p: p.read_bytes() for p in earlier.iterdir()} == before and is_complete(earlier)


def test_disk_full_on_the_first_write(result, tmp_path, monkeypatch):
    real_open = open

    def full_open(path, mode="r", *args, **kwargs):
        if "w" in mode or "x" in mode:  # any file opened for writing
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", full_open)
    with pytest.raises(ResultWriteError, match="disk is full"):
        write_result(result, tmp_path)
    monkeypatch.undo()
    assert folders(tmp_path) == []


def test_32_simultaneous_writers_collide_nowhere(result, tmp_path):
    n = 32
    barrier = threading.Barrier(n)
    written, errors = [], []

    def writer():
        barrier.wait()
        try:
            written.append(write_result(result, tmp_path))
        except Exception as exc:  # collected: the assertion below names it
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(written)) == n and folders(tmp_path) == sorted(written)
    assert all(is_complete(f) for f in written)


def backdate(path, seconds):
    t = time.time() - seconds
    os.utime(path, (t, t))


def test_sweep_removes_leftovers_and_keeps_the_rest(result, tmp_path):
    good = write_result(result, tmp_path)
    crashed_tmp = tmp_path / ".tmp-abc123"  # a writer killed mid-write
    crashed_tmp.mkdir()
    (crashed_tmp / "result.json").write_text("{")
    unsealed = tmp_path / "20260101_120000_0123abcd"  # a result folder without its manifest
    unsealed.mkdir()
    (unsealed / "result.json").write_text("{}")
    young_tmp = tmp_path / ".tmp-inflight"  # another process writing right now
    young_tmp.mkdir()
    foreign = tmp_path / "batch_20260101_120000"  # not ours: never touched
    foreign.mkdir()
    for p in (crashed_tmp, unsealed, foreign):
        backdate(p, 3600)
    removed = sweep_outputs(tmp_path)
    assert sorted(removed) == sorted([crashed_tmp, unsealed])
    assert folders(tmp_path) == sorted([good, young_tmp, foreign])
    assert sweep_outputs(tmp_path, min_age_s=0) == [young_tmp]


def test_retention_removes_results_older_than_n_days(result, tmp_path, monkeypatch):
    old, recent = write_result(result, tmp_path), write_result(result, tmp_path)
    backdate(old / MANIFEST_FILE, 8 * 86400)
    backdate(recent / MANIFEST_FILE, 6 * 86400)
    assert Settings.from_env({}).retention_days is None
    assert sweep_outputs(tmp_path) == []  # off by default
    days = Settings.from_env({"EMOTION_RETENTION_DAYS": "7"}).retention_days
    assert sweep_outputs(tmp_path, days) == [old]
    assert folders(tmp_path) == [recent]
    assert sweep_outputs(tmp_path, retention_days=5) == [recent]
    with pytest.raises(SettingsError, match="EMOTION_RETENTION_DAYS must be a number"):
        Settings.from_env({"EMOTION_RETENTION_DAYS": "a week"})
