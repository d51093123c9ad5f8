"""emotion adapt: a head trained on labels of one's own, on the random-weight tiny model.

The label is the pitch range of one synthetic voice (tests.media.pitch_manifest), a property even
random-weight embeddings carry; the head must beat chance (1/3) by a wide margin on clips it
never saw.  These models recognise no emotion: the figures say only that the pipeline learns.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from emotion import Recognizer
from emotion.adapter import ADAPTER_FILE, HEAD_FILE, base_record, read_adapter, write_adapter
from emotion.adapt.train import (MIN_PER_LABEL, AdaptError, EmbeddingCache, adapt, check_target, open_cache,
                                 plan_adapt)
from emotion.adapt.report import save_adapt_report
from emotion.batch.inputs import ManifestError
from emotion.files import MANIFEST_FILE, is_complete
from emotion.labels import make_label, parse_tokens
from emotion.model import CheckpointError, ModelNotFoundError
from tests.load import AppProcess
from tests.media import pitch_manifest

ROOT = Path(__file__).resolve().parent.parent
CHANCE = 1 / 3


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """20 clips of 1-2 s per pitch range, plus two files that cannot be decoded, in train.csv;
    8 other clips per range in eval.csv."""
    folder = tmp_path_factory.mktemp("pitch")
    train = pitch_manifest(folder, 20, seed=0, name="train.csv")
    (folder / "broken.wav").write_bytes(b"<html>not audio</html>")
    (folder / "empty.wav").write_bytes(b"")
    with open(train, "a", encoding="utf-8") as fh:
        fh.write("broken,broken.wav,low\nempty,empty.wav,high\n")
    pitch_manifest(folder, 8, seed=1, name="eval.csv")
    return folder


@pytest.fixture(scope="module")
def adapted(clips, tiny_recognizer, tmp_path_factory):
    """The library path: plan, embed, fit, measure, write; (outcome, cache root)."""
    root = tmp_path_factory.mktemp("adapted")
    cache_root = root / ".cache"
    cache, sha = open_cache(tiny_recognizer, cache_root)
    outcome = adapt(tiny_recognizer, plan_adapt(clips / "train.csv", holdout=0.3), root / "pitch", cache, sha,
                    progress=False)
    return outcome, cache_root


def run(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "emotion", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def test_head_beats_chance_on_held_out_clips_and_folder_records_its_training(adapted, tiny_model, clips):
    outcome, _ = adapted
    ev = outcome.evaluation
    assert ev.n == 18 and ev.accuracy >= CHANCE + 0.4 and ev.uar >= CHANCE + 0.4, ev.to_dict()
    assert [item_id for item_id, _ in outcome.failed] == ["broken", "empty"]  # left out, the run went on
    folder = outcome.folder
    assert sorted(p.name for p in folder.iterdir()) == [ADAPTER_FILE, HEAD_FILE, MANIFEST_FILE]  # no model.pt
    assert is_complete(folder)
    meta = json.loads((folder / ADAPTER_FILE).read_text())
    assert meta["labels"] == ["high", "low", "mid"] and meta["head"]["in_features"] == 64
    assert (folder / meta["base"]["path"]).resolve() == tiny_model.resolve()
    trained = meta["trained"]
    assert trained["examples"] == {"high": 14, "low": 14, "mid": 14}
    assert trained["eval_examples"] == {"high": 6, "low": 6, "mid": 6}
    assert trained["failed_files"] == 2 and trained["date"] and len(trained["manifest"]["sha256"]) == 64
    saved = save_adapt_report(outcome, "tiny")
    assert [p.name for p in saved] == ["pitch_confusion.csv", "pitch_confusion.png", "pitch_metrics.json"]
    report = json.loads(saved[-1].read_text())
    assert report["adapted"]["accuracy"] == ev.accuracy and report["zero_shot"] is None  # no label maps


def test_second_run_reuses_the_cache(adapted, clips, tiny_recognizer):
    outcome, cache_root = adapted
    assert outcome.embedded.computed == 60 and outcome.embedded.cached == 0
    cache, sha = open_cache(tiny_recognizer, cache_root)
    again = adapt(tiny_recognizer, plan_adapt(clips / "train.csv", holdout=0.2, seed=1), outcome.folder, cache,
                  sha, l2=10.0, progress=False)
    assert again.embedded.computed == 0 and again.embedded.cached == 60
    assert again.embedded.seconds < 2.0  # hashing 60 small files and reading 60 vectors
    assert read_adapter(outcome.folder).trained["l2"] == 10.0  # the folder was replaced


def test_adapted_folder_loads_with_its_labels(adapted, clips, tiny_recognizer):
    released = tiny_recognizer.model_info().to_dict()
    assert released["head"] == "released" and released["base"] == released["name"] == "tiny"
    assert released["summary"] == "tiny (released head, 9 classes)"
    outcome, _ = adapted
    rec = Recognizer.load(outcome.folder, device="cpu", warmup=False)
    info = rec.model_info().to_dict()
    assert info["name"] == "pitch" and info["base"] == "tiny" and info["head"] == "adapted"
    assert info["classes"] == ["high", "low", "mid"] and "adapted head" in info["summary"]
    res = rec.recognize(clips / "low_1_000.wav", granularity="frame")
    assert list(res.scores) == ["high", "low", "mid"] and res.frame_scores.shape[1] == 3
    assert {s.emotion for s in res.segments} <= {"high", "low", "mid"}
    out = res.to_dict()
    assert out["model"]["head"] == "adapted" and out["emoji"] == "" and out["label_zh"] == ""
    assert all(t["emoji"] == "" for t in out["top"]) and res.label.display == res.emotion


def test_labels_unknown_to_the_tables_show_their_own_name():
    assert make_label("frustrated").display == "frustrated"
    assert make_label("Happy").display == "😊 开心 / Happy"
    flat, happy = parse_tokens(["平淡/flat", "开心/happy"])
    assert (flat.emoji, flat.display) == ("", "平淡 / Flat") and happy.display == "😊 开心 / Happy"


def test_moved_or_changed_base_model(tiny_model, tmp_path):
    import torch

    base = shutil.copytree(tiny_model, tmp_path / "base")
    head = {"weight": torch.zeros(2, 64), "bias": torch.zeros(2)}
    folder = write_adapter(tmp_path / "m", ["a", "b"], head, base_record(base, tmp_path / "m"), {})
    assert Recognizer.load(folder, device="cpu", warmup=False).model_info().base == "base"
    moved = shutil.copytree(folder, tmp_path / "x" / "y" / "m")  # its relative path to the base breaks
    Recognizer.load(moved, device="cpu", warmup=False)  # found at the absolute path
    (base / "config.yaml").write_text((base / "config.yaml").read_text() + "# edited\n")
    with pytest.raises(CheckpointError, match="trained on the model at"):
        Recognizer.load(moved, device="cpu", warmup=False)
    shutil.rmtree(base)
    with pytest.raises(ModelNotFoundError, match="is a head adapted on"):
        Recognizer.load(moved, device="cpu", warmup=False)


def _manifest(folder: Path, rows: list[str]) -> Path:
    path = folder / "m.csv"
    path.write_text("path,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("rows, message", [
    ([f"low_0_{i:03d}.wav,low" for i in range(10)], "one label only ('low')"),
    ([f"low_0_{i:03d}.wav," for i in range(10)], "every label in"),
    ([f"low_0_{i:03d}.wav,low" for i in range(10)] + [f"mid_0_{i:03d}.wav,mid" for i in range(3)],
     f"too few examples of 'mid' (3): adapt needs at least {MIN_PER_LABEL} of each label (at least one goes"),
])
def test_bad_manifests_are_refused_before_any_work(clips, rows, message):
    path = _manifest(clips, rows)
    with pytest.raises(AdaptError) as err:
        plan_adapt(path)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_other_refusals(clips, tiny_model, tmp_path):
    (tmp_path / "nopath.csv").write_text("file,label\na.wav,x\n")
    with pytest.raises(ManifestError, match="no 'path' column"):
        plan_adapt(tmp_path / "nopath.csv")
    other = _manifest(tmp_path, [f"{clips}/low_0_{i:03d}.wav,unheard" for i in range(5)])
    with pytest.raises(AdaptError, match="labels the training manifest lacks: unheard"):
        plan_adapt(clips / "train.csv", other)
    with pytest.raises(AdaptError, match="not an adapted model folder"):
        check_target(tiny_model)  # --out must never replace a model's weights
    with pytest.raises(AdaptError, match="must be an existing .csv or .jsonl file"):
        plan_adapt(tmp_path / "missing.csv")
    (tmp_path / "binary.csv").write_bytes(b"path,label\n\xff\xfe\x00")
    with pytest.raises(AdaptError, match="cannot be read as a manifest"):
        plan_adapt(tmp_path / "binary.csv")
    with pytest.raises(AdaptError, match="between 0 and 1"):
        plan_adapt(clips / "train.csv", holdout=1.5)


def test_too_few_after_undecodable_files_are_left_out(clips, tiny_recognizer, tmp_path):
    rows = [f"low_0_{i:03d}.wav,low" for i in range(5)] + [f"mid_0_{i:03d}.wav,mid" for i in range(4)]
    path = _manifest(clips, rows + ["broken.wav,mid"])
    with pytest.raises(AdaptError, match=r"without the 1 files that failed\) has too few examples of 'mid' \(4\)"):
        adapt(tiny_recognizer, plan_adapt(path), tmp_path / "m", EmbeddingCache(tmp_path, "k"), "0" * 64,
              progress=False)
    assert not (tmp_path / "m").exists()


def test_command_line_adapt_then_recognize_batch_and_app(clips, tiny_model, tmp_path):
    out = tmp_path / "models" / "pitch"
    p = run("adapt", clips / "train.csv", "--eval", clips / "eval.csv", "--out", out, "--model-dir", tiny_model,
            "--no-progress")
    assert p.returncode == 1, p.stderr  # two files failed; the model was written without them
    assert "FAILED  broken: " in p.stderr and "FAILED  empty: " in p.stderr and "Traceback" not in p.stderr
    assert "measured on the eval manifest (24 files)" in p.stdout
    report = json.loads((tmp_path / "models" / "pitch_metrics.json").read_text())
    assert report["adapted"]["accuracy"] >= CHANCE + 0.4, report["adapted"]
    assert (tmp_path / "models" / "pitch_confusion.png").is_file()

    p = run("recognize", clips / "high_1_000.wav", "--model-dir", out, "--output-dir", tmp_path / "results")
    assert p.returncode == 0, p.stderr
    result = json.loads(next((tmp_path / "results").glob("*/result.json")).read_text())
    assert result["emotion"] in ("high", "low", "mid") and result["model"]["head"] == "adapted"

    p = run("batch", clips / "eval.csv", "-o", tmp_path / "eval.csv", "--model-dir", out, "--no-progress")
    assert p.returncode == 0, p.stderr
    assert "unweighted average recall" in p.stdout and (tmp_path / "eval_confusion.csv").is_file()

    with AppProcess(out, tmp_path / "app") as app:
        assert "adapted head (3 labels: high, low, mid) on tiny" in app.tail(), app.tail()


def test_command_line_refusal_is_one_line(clips, tiny_model, tmp_path):
    path = _manifest(clips, [f"low_0_{i:03d}.wav,low" for i in range(6)])
    p = run("adapt", path, "--out", tmp_path / "m", "--model-dir", tiny_model, timeout=120)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip().count("\n") == 0 and p.stderr.startswith("error: ") and "one label only" in p.stderr


def test_the_page_shows_the_adapted_head_and_its_labels(adapted, clips, tmp_path):
    """The status line names the head in use; a result's headline, scores and history entry show
    the adapted labels by their own names, with no emoji."""
    from emotion.app import render
    from emotion.app.service import WebService

    outcome, _ = adapted
    service = WebService(Recognizer.load(outcome.folder, device="cpu", warmup=False), tmp_path / "out")
    status = render.status_text(service.status())
    assert "pitch: adapted head (3 labels: high, low, mid) on tiny" in status
    [served] = service.serve([str(clips / "low_1_000.wav")], ["frame"], [False], ["me"])
    data = served.result.to_dict()
    assert render.headline(data).startswith(f"## {served.result.emotion} ")
    assert set(render.score_labels(data)) == {"high", "low", "mid"}
    [(name, saved)] = service.history("me")
    assert render.history_label(saved).startswith(f"{served.result.emotion} ")
