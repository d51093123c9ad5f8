"""python -m emotion batch: the table, its formats, resuming after a kill, evaluation, segments."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from emotion.app import cli
from emotion.batch.inputs import gather_inputs
from emotion.batch.evaluation import evaluate
from emotion.labels import label_keys
from emotion.batch.sinks import read_rows
from tests.media import write_wav

ROOT = Path(__file__).resolve().parent.parent
AUDIO_FILES = ["a.wav", "c.mp3", "f.flac", "g.wav", "sub/b.wav", "sub/d.m4a", "sub/h.ogg", "sub/deeper/e.opus"]
BROKEN = {"broken.wav": "not a readable audio file", "sub/empty.flac": "the file is empty",
          "too_short.wav": "too short"}
TOL = 1e-6  # MKL's float32 sums may differ in the last bit between runs


def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "emotion", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "PYTHONWARNINGS": "ignore"})


def batch(*args) -> int:
    """The command line in this process (no interpreter start-up per call)."""
    return cli.main(["batch", *map(str, args), "--no-progress"])


def canonical(rows: list[dict]) -> list[dict]:
    """Rows of any format in one form: empty cells as None, numbers as numbers."""
    out = []
    for row in rows:
        clean = {}
        for k, v in row.items():
            if v == "" or v is None:
                clean[k] = None
            elif k in ("size", "mtime_ns", "segment"):
                clean[k] = int(v)
            else:
                try:
                    clean[k] = float(v) if k not in ("id", "path", "label", "emotion", "error", "sha256",
                                                     "embedding") else v
                except ValueError:
                    clean[k] = v
        out.append(clean)
    return out


def assert_same_rows(a: list[dict], b: list[dict]) -> None:
    a, b = canonical(a), canonical(b)
    assert [(r["path"], r.get("segment")) for r in a] == [(r["path"], r.get("segment")) for r in b]
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for k in x:
            if isinstance(x[k], float) and isinstance(y[k], float):
                assert abs(x[k] - y[k]) <= TOL, (x["path"], k, x[k], y[k])
            else:
                assert x[k] == y[k], (x["path"], k, x[k], y[k])


def test_folder_of_mixed_and_broken_files_gives_the_full_table(tiny_model, tiny_recognizer, batch_inputs, tmp_path):
    out = tmp_path / "results.csv"
    p = run_cli("batch", batch_inputs, "-o", out, "--model-dir", tiny_model)
    assert p.returncode == 1, p.stderr  # some failed
    assert "Traceback" not in p.stderr
    assert f"{len(AUDIO_FILES) + len(BROKEN)} files: {len(AUDIO_FILES)} analysed, {len(BROKEN)} failed, " \
           "0 done earlier" in p.stderr
    for name, reason in BROKEN.items():
        assert f"FAILED  {batch_inputs / name}: {reason}" in p.stderr

    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    keys = label_keys(tiny_recognizer.labels)
    assert list(rows[0]) == ["id", "path", "label", "emotion", "confidence", *keys, "duration_s", "size",
                             "mtime_ns", "sha256", "warnings", "error"]
    by_path = {Path(r["path"]).relative_to(batch_inputs).as_posix(): r for r in rows}
    assert sorted(by_path) == sorted(AUDIO_FILES + list(BROKEN))  # notes.txt is not audio: not listed...
    assert f"skipped 1 file that is not audio by extension: {batch_inputs / 'notes.txt'}" in p.stderr  # ...but said
    assert [r["path"] for r in rows] == sorted(r["path"] for r in rows)  # input order: sorted paths
    for name, reason in BROKEN.items():
        row = by_path[name]
        assert row["error"].startswith(reason) and row["emotion"] == "" and row["confidence"] == ""
    for name in AUDIO_FILES:
        row, ref = by_path[name], tiny_recognizer.recognize(batch_inputs / name)
        assert row["error"] == row["warnings"] == "" and row["emotion"] == ref.emotion
        assert abs(float(row["confidence"]) - ref.confidence) <= TOL
        assert max(abs(float(row[k]) - ref.scores[k]) for k in keys) <= TOL
        assert float(row["duration_s"]) == pytest.approx(ref.input.duration_s)
        assert row["sha256"] == ref.input.sha256
        assert int(row["size"]) == (batch_inputs / name).stat().st_size


def test_csv_jsonl_parquet_and_embeddings_agree(tiny_model, tiny_recognizer, batch_inputs, tmp_path):
    tables = {}
    for fmt in ("csv", "jsonl", "parquet"):
        out = tmp_path / f"results.{fmt}"
        emb = tmp_path / ("emb_npy" if fmt == "csv" else f"emb_{fmt}.npz")
        assert batch(batch_inputs, "-o", out, "--model-dir", tiny_model, "--embeddings", emb) == 1
        tables[fmt] = read_rows(out)
    assert not list(tmp_path.glob(".*"))  # no journal, staging folder or temporary file left behind
    strip = [{k: v for k, v in r.items() if k != "embedding"} for r in tables["csv"]]
    assert_same_rows(strip, tables["jsonl"])
    assert_same_rows(tables["jsonl"], tables["parquet"])

    ok = [r for r in tables["jsonl"] if not r["error"]]
    refs = {r["path"]: tiny_recognizer.recognize(r["path"]).embedding for r in ok}
    for row in tables["csv"]:  # one .npy per file, named in the row
        if row["error"]:
            assert row["embedding"] == ""
        else:
            vec = np.load(tmp_path / "emb_npy" / row["embedding"])
            assert vec.shape == (64,) and np.allclose(vec, refs[row["path"]], atol=1e-5)
    with np.load(tmp_path / "emb_parquet.npz") as archive:  # one array, an index of paths and ids
        assert archive["embeddings"].shape == (len(ok), 64)
        assert list(archive["path"]) == [r["path"] for r in ok] and list(archive["id"]) == [r["id"] for r in ok]
        for path, vec in zip(archive["path"], archive["embeddings"]):
            assert np.allclose(vec, refs[path], atol=1e-5)


def _count(output: Path) -> int:
    text = output.read_text() if output.exists() else ""
    return text.count("\n") - 1  # lines after the header


def test_killed_run_resumes_without_redoing_work(tiny_model, tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(36):
        write_wav(folder / f"clip{i:02d}.wav", 4.0 + (i % 5), 16000, seed=i)
    (folder / "bad.mp3").write_bytes(b"ID3 but nothing else")
    out = tmp_path / "results.csv"
    args = ["batch", folder, "-o", out, "--model-dir", tiny_model, "--group", "1", "--workers", "1", "--no-progress"]
    proc = subprocess.Popen([sys.executable, "-m", "emotion", *map(str, args)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while _count(out) < 6 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_at_kill = _count(out)
    assert 6 <= done_at_kill < 37, "the run ended before it could be killed midway"
    with open(out, "a") as fh:  # what a kill in the middle of a write leaves: a partial line
        fh.write(f"{folder}/clip30.wav,{folder}/clip30.wav,,sad,0.2")
    assert read_rows(out)  # still readable

    p = run_cli(*args[:-1], "--no-progress")
    assert p.returncode == 1 and "Traceback" not in p.stderr
    import re

    counts = re.search(r"37 files: (\d+) analysed, (\d+) failed, (\d+) done earlier", p.stderr)
    assert counts and int(counts[1]) + int(counts[2]) == 37 - done_at_kill and int(counts[3]) == done_at_kill
    assert p.stderr.count("FAILED  ") == 1  # the one broken file, whichever run met it

    again = run_cli(*args)  # a finished job reruns without analysing anything
    assert "37 files: 0 analysed, 0 failed, 37 done earlier" in again.stderr and again.stderr.count("FAILED  ") == 1

    whole = tmp_path / "whole.csv"
    assert batch(folder, "-o", whole, "--model-dir", tiny_model) == 1
    resumed = read_rows(out)
    assert len(resumed) == 37
    assert_same_rows(resumed, read_rows(whole))


def test_changed_files_are_redone_and_hash_mode_ignores_touches(tiny_model, audio_dir, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("mono_16000.wav", "mono_8000.wav"):
        (folder / name).write_bytes((audio_dir / name).read_bytes())
    out, hashed = tmp_path / "r.jsonl", tmp_path / "h.jsonl"
    assert batch(folder, "-o", out, "--model-dir", tiny_model) == 0
    assert batch(folder, "-o", hashed, "--model-dir", tiny_model, "--hash") == 0
    later = time.time() + 5
    os.utime(folder / "mono_8000.wav", (later, later))  # same bytes, new mtime
    capsys.readouterr()
    assert batch(folder, "-o", out, "--model-dir", tiny_model) == 0
    assert "2 files: 1 analysed, 0 failed, 1 done earlier" in capsys.readouterr().err
    assert batch(folder, "-o", hashed, "--model-dir", tiny_model, "--hash") == 0
    assert "2 files: 0 analysed, 0 failed, 2 done earlier" in capsys.readouterr().err
    rows = read_rows(out)
    assert len(rows) == 2 and rows[1]["mtime_ns"] == (folder / "mono_8000.wav").stat().st_mtime_ns


def test_labelled_manifest_prints_and_saves_metrics(tiny_model, tiny_recognizer, batch_inputs, tmp_path, capsys):
    truth = {"a.wav": "sad", "c.mp3": "Happiness", "f.flac": "中立", "g.wav": "sad", "sub/b.wav": "angry",
             "sub/d.m4a": "sad", "sub/h.ogg": "neutral", "broken.wav": "happy"}
    manifest = tmp_path / "labelled.csv"
    with open(manifest, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "path", "label", "speaker"])
        for n, (name, label) in enumerate(truth.items()):
            writer.writerow([f"utt{n}", batch_inputs / name, label, "s1"])
    out = tmp_path / "eval.csv"
    assert batch(manifest, "-o", out, "--model-dir", tiny_model) == 1  # broken.wav failed
    printed = capsys.readouterr().out

    # the hand computation: predictions from the library, labels mapped by hand
    mapped = {"Happiness": "happy", "中立": "neutral"}
    pairs = [(mapped.get(label, label), tiny_recognizer.recognize(batch_inputs / name).emotion)
             for name, label in truth.items() if name != "broken.wav"]
    correct = sum(t == p for t, p in pairs)
    recall = {}
    for cls in {t for t, _ in pairs}:
        mine = [p for t, p in pairs if t == cls]
        recall[cls] = sum(p == cls for p in mine) / len(mine)
    uar = sum(recall.values()) / len(recall)
    assert f"accuracy {correct / 7:.4f}   unweighted average recall (UAR) {uar:.4f}" in printed
    assert "1 failed (not counted)" in printed and "confusion matrix" in printed

    metrics = json.loads((tmp_path / "eval_metrics.json").read_text())
    assert metrics["n"] == 7 and metrics["accuracy"] == pytest.approx(correct / 7)
    assert metrics["recall"] == pytest.approx(recall) and metrics["uar"] == pytest.approx(uar)
    with open(tmp_path / "eval_confusion.csv", newline="") as fh:
        table = list(csv.reader(fh))
    classes = table[0][1:]
    for t, p in set(pairs):
        assert int(table[1 + classes.index(t)][1 + classes.index(p)]) == sum(x == (t, p) for x in pairs)
    assert sum(int(x) for line in table[1:] for x in line[1:]) == 7
    from PIL import Image

    with Image.open(tmp_path / "eval_confusion.png") as png:
        assert png.format == "PNG" and png.size[0] > 200
    rows = read_rows(out)
    assert [r["id"] for r in rows] == [f"utt{n}" for n in range(8)]
    assert rows[1]["label"] == "Happiness"  # the table keeps labels as the manifest wrote them


def test_evaluate_by_hand():
    keys = ["angry", "happy", "neutral", "sad"]
    ev = evaluate(["angry", "ANGRY", "hap", "happy", "happy", "neutral", "bored"],
                  ["angry", "happy", "happy", "happy", "angry", "angry", "sad"], keys)
    assert ev.classes == ["angry", "happy", "neutral", "sad", "bored"]
    assert ev.confusion.tolist() == [[1, 1, 0, 0, 0], [1, 2, 0, 0, 0], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0],
                                     [0, 0, 0, 1, 0]]
    assert ev.accuracy == pytest.approx(3 / 7)
    assert ev.recall == pytest.approx({"angry": 0.5, "happy": 2 / 3, "neutral": 0.0, "bored": 0.0})
    assert ev.uar == pytest.approx((0.5 + 2 / 3) / 4)


def test_jsonl_manifest_with_relative_paths(tmp_path, batch_inputs):
    (tmp_path / "m").mkdir()
    manifest = tmp_path / "m" / "list.jsonl"
    rel = os.path.relpath(batch_inputs / "a.wav", manifest.parent)
    manifest.write_text(json.dumps({"path": rel, "label": "sad"}) + "\n\n" + json.dumps({"path": str(batch_inputs / "c.mp3")}) + "\n")
    items = gather_inputs([manifest, batch_inputs / "a.wav"])
    assert [(Path(i.path), i.id, i.label) for i in items] == [
        (batch_inputs / "a.wav", rel, "sad"), (batch_inputs / "c.mp3", str(batch_inputs / "c.mp3"), None),
        (batch_inputs / "a.wav", str(batch_inputs / "a.wav"), None)]


def test_bad_manifest_output_or_model_exit_2(tiny_model, tmp_path, batch_inputs, capsys):
    manifest = tmp_path / "m.csv"
    manifest.write_text("file,label\nx.wav,sad\n")
    assert batch(manifest, "-o", tmp_path / "o.csv", "--model-dir", tmp_path / "none") == 2
    assert "no 'path' column" in capsys.readouterr().err
    assert batch(batch_inputs / "a.wav", "-o", tmp_path / "o.csv", "--model-dir", tmp_path / "none") == 2
    assert "error:" in capsys.readouterr().err
    assert batch(batch_inputs / "a.wav", "-o", tmp_path / "o.txt", "--model-dir", tiny_model) == 2
    assert "must end in one of .csv, .jsonl, .parquet" in capsys.readouterr().err
    out = tmp_path / "o.csv"  # a missing input fails as a bad file does: its own row, the others analysed
    missing = tmp_path / "no such file.wav"
    assert batch(batch_inputs / "a.wav", missing, "-o", out, "--model-dir", tiny_model) == 1
    assert f"FAILED  {missing}: no such file" in capsys.readouterr().err
    rows = read_rows(out)
    assert [(r["id"], r["error"]) for r in rows] == [(str(batch_inputs / "a.wav"), ""), (str(missing), "no such file")]


def test_segment_mode_scores_each_stretch_of_speech(tiny_model, tiny_recognizer, speech_file, tmp_path):
    out = tmp_path / "segments.jsonl"
    assert batch(speech_file, "-o", out, "--model-dir", tiny_model, "--segment") == 0
    rows = read_rows(out)
    segs, whole = rows[:-1], rows[-1]
    assert [r["segment"] for r in segs] == [0, 1] and whole["segment"] is None
    (s0, e0), (s1, e1) = [(r["start"], r["end"]) for r in segs]
    assert 0.0 <= s0 < 0.8 and 2.4 < e0 < 3.3  # first utterance: speech at about 0.4-2.8 s
    assert 5.8 < s1 < 6.9 and 9.0 < e1 <= 10.0  # second: about 6.4-9.4 s, after 3 s of silence
    assert whole["start"] == 0.0 and whole["end"] == pytest.approx(9.984, abs=1e-3)
    samples = tiny_recognizer.recognize(speech_file).audio
    for r in segs:  # each segment row is the library's result on that stretch
        ref = tiny_recognizer.recognize(samples[round(r["start"] * 16000) : round(r["end"] * 16000)], 16000)
        assert r["emotion"] == ref.emotion and abs(r["confidence"] - ref.confidence) <= TOL
        assert r["duration_s"] == pytest.approx(r["end"] - r["start"], abs=1e-3)
    ref = tiny_recognizer.recognize(speech_file)
    assert whole["emotion"] == ref.emotion and abs(whole["confidence"] - ref.confidence) <= TOL


def _sphere(path: Path, subtype: str, seed: int) -> Path:
    """A NIST SPHERE file, as the telephone and meeting corpora hold them (written by libsndfile)."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    t = np.arange(8000 * 2) / 8000
    x = 0.3 * np.sin(2 * np.pi * (180 + 40 * seed) * t) + 0.02 * rng.standard_normal(len(t))
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x.astype(np.float32), 8000, format="NIST", subtype=subtype)
    return path


def test_sphere_found_rerun_names_earlier_failures_and_results_keep_the_path(tiny_model, tmp_path, capsys,
                                                                             monkeypatch):
    """.sph (PCM and mu-law) is found by the folder search and decoded; a rerun of a finished job
    with an earlier failure says so in its line (and still exits 1); result.json keeps the path as
    given, so two test.sph of different folders are told apart."""
    import re

    folder = tmp_path / "corpus"
    _sphere(folder / "a" / "test.sph", "PCM_16", 1)
    _sphere(folder / "b" / "test.sph", "ULAW", 2)
    (folder / "b" / "empty.sph").write_bytes(b"")
    out = tmp_path / "r.csv"
    assert batch(folder, "-o", out, "--model-dir", tiny_model) == 1
    first = capsys.readouterr().err
    assert "3 files: 2 analysed, 1 failed, 0 done earlier" in first and "skipped" not in first
    rows = read_rows(out)
    assert sorted(Path(r["path"]).relative_to(folder).as_posix() for r in rows) == \
        ["a/test.sph", "b/empty.sph", "b/test.sph"]
    assert sum(1 for r in rows if r["emotion"]) == 2
    assert batch(folder, "-o", out, "--model-dir", tiny_model) == 1  # nothing to do, the failure stands
    line = capsys.readouterr().err
    assert "3 files: 0 analysed, 0 failed, 3 done earlier (1 of them failed: see --retry-failed)" in line, line

    monkeypatch.chdir(folder)
    outputs = tmp_path / "outputs"
    assert cli.main(["recognize", "a/test.sph", "b/test.sph", "--model-dir", str(tiny_model),
                     "--output-dir", str(outputs), "--no-embedding"]) == 0
    saved = [json.loads((f / "result.json").read_text()) for f in outputs.iterdir()]
    assert sorted(r["input"]["path"] for r in saved) == ["a/test.sph", "b/test.sph"]
    assert [r["input"]["name"] for r in saved] == ["test.sph", "test.sph"]  # kept for existing readers
    assert all(re.fullmatch(r"[0-9a-f]{64}", r["input"]["sha256"]) for r in saved)
