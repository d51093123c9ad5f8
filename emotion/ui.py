"""The Gradio 6 web app: one clip, a batch of files, and earlier results.

    demo = build_app(recognizer, output_root)
    demo.launch(**launch_kwargs(output_root))
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import zipfile
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .audio import AudioError  # noqa: E402
from .batch import result_row  # noqa: E402
from .recognizer import GRANULARITIES, BusyError  # noqa: E402
from .model import MODELS_ROOT, PROJECT_ROOT  # noqa: E402
from .results import AUDIO_FILE, EMBEDDING_FILE, RESULT_FILE, ResultWriteError, write_result  # noqa: E402
from .storage import write_folder  # noqa: E402

log = logging.getLogger(__name__)

EXAMPLE_AUDIO = PROJECT_ROOT / "assets" / "example.wav"
DEFAULT_QUEUE_SIZE = 16
MAX_PLOT_FRAMES = 600  # timeline points per emotion; longer clips are subsampled for the chart
MODEL_CONCURRENCY = "model"
SHUTTING_DOWN = "the server is shutting down: try again in a moment"
COALESCE_MAX = 16
BATCH_TABLE = "batch_results.csv"
BATCH_EMBEDDINGS = "embeddings.zip"  # requests handed to the model together when coalescing

CSS = """
#emotion_md { font-size: 1.6em; }
.gradio-container { max-width: 1200px !important; margin: auto; }
"""


# ---------------------------------------------------------------- helpers


class Drain:
    """Requests in flight; once closed it refuses new ones and waits for the running to finish."""

    def __init__(self):
        self._cond = threading.Condition()
        self._running = 0
        self.closed = False

    def enter(self) -> bool:
        with self._cond:
            if self.closed:
                return False
            self._running += 1
            return True

    def leave(self) -> None:
        with self._cond:
            self._running -= 1
            self._cond.notify_all()

    def close(self, grace_s: float) -> bool:
        """Refuse new requests; True if those running finished within grace_s."""
        with self._cond:
            self.closed = True
            return self._cond.wait_for(lambda: self._running == 0, timeout=grace_s)


def rss_mb() -> float | None:
    """This process's resident memory in MB, from /proc (no psutil)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def status_text(recognizer) -> str:
    info = recognizer.model_info()
    parts = [f"**Ready** · model {info['name']}", f"device {info['device']}", f"dtype {info['dtype']}"]
    mem = rss_mb()
    if mem is not None:
        parts.append(f"RSS {mem:.0f} MB")
    if str(info["device"]).startswith("cuda"):
        try:
            import torch

            parts.append(f"GPU {torch.cuda.memory_allocated() / 2**20:.0f} MB")
        except Exception:  # pragma: no cover - informative only
            pass
    return " · ".join(parts)


def _class_order(recognizer) -> list[str]:
    return [lb.key for lb in recognizer.model.labels]


def _label_dict(res) -> dict[str, float]:
    return {f"{lb.emoji} {lb.zh} / {lb.key}": float(res.scores[lb.key]) for lb in res.labels if not lb.masked}


def _bar_frame(res) -> pd.DataFrame:
    return pd.DataFrame({"emotion": list(res.scores), "score": [float(v) for v in res.scores.values()]})


def _timeline_frame(res) -> pd.DataFrame:
    starts = np.asarray(res.frame_starts, dtype=np.float64)
    scores = np.asarray(res.frame_scores, dtype=np.float64)
    step = max(1, int(np.ceil(len(starts) / MAX_PLOT_FRAMES)))
    starts, scores = starts[::step], scores[::step]
    keys = [lb.key for lb in res.labels]
    rows = {"time_s": np.repeat(starts, len(keys)), "score": scores.reshape(-1),
            "emotion": np.tile(keys, len(starts))}
    return pd.DataFrame(rows)


def _segments_frame(res) -> pd.DataFrame:
    labels = {lb.key: lb for lb in res.labels}
    rows = [{"start_s": round(s.start, 2), "end_s": round(s.end, 2), "emotion": s.emotion,
             "label": labels[s.emotion].display if s.emotion in labels else s.emotion,
             "confidence": round(float(s.confidence), 4)} for s in res.segments]
    return pd.DataFrame(rows, columns=["start_s", "end_s", "emotion", "label", "confidence"])


def headline(emoji: str, zh: str, key: str, confidence: float) -> str:
    return f"## {emoji} {zh} / {key.capitalize()} {confidence * 100:.1f}%"


def tendencies(top: list[dict]) -> str:
    rest = top[1:]
    if not rest:
        return ""
    items = ", ".join(f"{t['emoji']} {t['label_zh']} / {t['emotion']} {t['score'] * 100:.1f}%" for t in rest)
    return f"Also: {items}"


def _process_log(res, folder: Path, request_ms: float) -> str:
    t = res.timing
    lines = [f"file: {res.input.get('name')}  duration: {res.input.get('duration_s', 0):.2f} s  "
             f"source rate: {res.input.get('sample_rate')} Hz  channels: {res.input.get('channels')}",
             f"granularity: {res.granularity}  chunks: {res.chunks}",
             f"decode: {t.get('decode_ms', 0) - t.get('resample_ms', 0):.1f} ms  "
             f"resample: {t.get('resample_ms', 0):.1f} ms  inference: {t.get('inference_ms', 0):.1f} ms  "
             f"request: {request_ms:.1f} ms",
             f"saved: {folder.name}"]
    lines += [f"warning: {w}" for w in res.warnings]
    return "\n".join(lines)


def _result_files(folder: Path) -> list[str]:
    return [str(folder / n) for n in (RESULT_FILE, EMBEDDING_FILE, AUDIO_FILE) if (folder / n).is_file()]


def _write_embeddings_zip(fh, embeddings: list[tuple[str, np.ndarray]]) -> None:
    """One <file stem>.npy per analysed file (a repeated name gets _1, _2, ...)."""
    seen: dict[str, int] = {}
    with zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, emb in embeddings:
            n = seen.get(name, 0)
            seen[name] = n + 1
            npy = io.BytesIO()
            np.save(npy, np.asarray(emb, dtype=np.float32))
            zf.writestr(f"{Path(name).stem}{'_' + str(n) if n else ''}.npy", npy.getvalue())


def _example_copy() -> str:
    """The shipped example, copied into the temp dir so it is served like any upload."""
    if not EXAMPLE_AUDIO.is_file():
        raise gr.Error("the example clip (assets/example.wav) is missing", print_exception=False)
    dest = Path(tempfile.gettempdir()) / "emotion-example" / EXAMPLE_AUDIO.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not dest.is_file() or dest.stat().st_size != EXAMPLE_AUDIO.stat().st_size:
        shutil.copyfile(EXAMPLE_AUDIO, dest)
    return str(dest)


# ---------------------------------------------------------------- history


def list_history(output_root: Path, limit: int = 200) -> list[str]:
    root = Path(output_root)
    if not root.is_dir():
        return []
    names = [p.name for p in root.iterdir()
             if p.is_dir() and not p.name.startswith(".") and (p / RESULT_FILE).is_file()]
    return sorted(names, reverse=True)[:limit]


def _history_folder(output_root: Path, name: str | None) -> Path:
    if not name:
        raise gr.Error("choose a result first", print_exception=False)
    root = Path(output_root).resolve()
    folder = (root / name).resolve()
    if folder.parent != root or not (folder / RESULT_FILE).is_file():
        raise gr.Error(f"{name}: no such result", print_exception=False)
    return folder


# ---------------------------------------------------------------- the app


def build_app(recognizer, output_root: str | os.PathLike, queue_size: int | None = None,
              coalesce: bool | None = None, max_batch: int = COALESCE_MAX) -> gr.Blocks:
    """The Blocks app around one loaded recognizer; results are written under output_root.

    coalesce: hand requests that wait together to the model as one padded batch (default: on a
    GPU, where that pays; on a CPU one at a time is faster)."""
    if coalesce is None:
        coalesce = str(recognizer.model_info().get("device", "cpu")).startswith("cuda")
    output_root = Path(output_root).resolve()
    output_root.mkdir(parents=True, exist_ok=True)
    if queue_size is None:
        queue_size = int(os.environ.get("EMOTION_QUEUE_SIZE", DEFAULT_QUEUE_SIZE))
    order = _class_order(recognizer)
    drain = Drain()

    def serve_many(paths, grans, embs) -> list:
        """Each request's (result, saved folder, request ms), or its error text. Requests of one
        granularity are analysed together, in padded batches where the device makes that pay."""
        if not drain.enter():
            return [SHUTTING_DOWN] * len(paths)
        try:
            return _serve_many(paths, grans, embs)
        finally:
            drain.leave()

    def _serve_many(paths, grans, embs) -> list:
        start = time.perf_counter()
        outcomes: list = [None] * len(paths)
        by_granularity: dict[str, list[int]] = {}
        for i, (path, gran) in enumerate(zip(paths, grans)):
            if not path:
                outcomes[i] = "no audio: upload a file, record, or load the example"
            elif gran not in GRANULARITIES:
                outcomes[i] = f"unknown granularity {gran!r}"
            else:
                by_granularity.setdefault(gran, []).append(i)
        for gran, idx in by_granularity.items():
            try:
                results = recognizer.recognize_many([paths[i] for i in idx], granularity=gran)
            except BusyError as exc:
                results = [str(exc)] * len(idx)
            except Exception:
                log.exception("recognition failed")
                results = [None] * len(idx)
            for i, res in zip(idx, results):
                name = Path(str(paths[i])).name
                if isinstance(res, AudioError):
                    outcomes[i] = f"{res.name}: {res.reason}"
                    continue
                if res is None or isinstance(res, str):
                    outcomes[i] = f"{name}: {res or 'the clip could not be analysed'}"
                    continue
                try:
                    folder = write_result(res, output_root, embedding=bool(embs[i]))
                except OSError as exc:
                    log.error("could not save a result: %s", exc)
                    outcomes[i] = f"{name}: the result could not be saved ({exc.strerror or 'write error'})"
                    continue
                outcomes[i] = (res, folder, (time.perf_counter() - start) * 1000)
        return outcomes

    def page_outputs(outcome) -> tuple:
        """The Analyse tab's outputs for one outcome (an error text shows in place of the result)."""
        if isinstance(outcome, str):
            return (f"### ⚠️ {outcome}", "", None, None, gr.LinePlot(value=None, visible=False),
                    gr.Dataframe(value=None, visible=False), outcome, [], None, status_text(recognizer))
        res, folder, request_ms = outcome
        frame = res.granularity == "frame"
        return (
            headline(res.label.emoji, res.label.zh, res.emotion, res.confidence),
            tendencies(res.top),
            _label_dict(res),
            _bar_frame(res),
            gr.LinePlot(value=_timeline_frame(res) if frame else None, visible=frame),
            gr.Dataframe(value=_segments_frame(res) if frame else None, visible=frame),
            _process_log(res, folder, request_ms),
            _result_files(folder),
            res.to_dict(),  # write_result has already checked it is strict JSON
            status_text(recognizer),
        )

    def api_output(outcome) -> dict:
        if isinstance(outcome, str):
            return {"error": outcome}
        res, folder, _ = outcome
        return {**res.to_dict(), "saved": folder.name}

    def one(outcome):
        if isinstance(outcome, str):
            raise gr.Error(outcome, print_exception=False)
        return outcome

    def recognize(audio_path, granularity, want_embedding):
        return page_outputs(one(serve_many([audio_path], [granularity], [want_embedding])[0]))

    def analyse(audio_path, granularity, want_embedding):
        return api_output(one(serve_many([audio_path], [granularity], [want_embedding])[0]))

    def recognize_coalesced(audio_paths, granularities, want_embeddings):
        rows = [page_outputs(o) for o in serve_many(audio_paths, granularities, want_embeddings)]
        return tuple(list(col) for col in zip(*rows))

    def analyse_coalesced(audio_paths, granularities, want_embeddings):
        return ([api_output(o) for o in serve_many(audio_paths, granularities, want_embeddings)],)

    def batch(files, granularity, want_embedding, progress=gr.Progress()):
        paths = [f if isinstance(f, str) else getattr(f, "name", str(f)) for f in (files or [])]
        if not paths:
            raise gr.Error("no files: choose one or more audio files", print_exception=False)
        if granularity not in GRANULARITIES:
            raise gr.Error(f"unknown granularity {granularity!r}", print_exception=False)
        if not drain.enter():
            raise gr.Error(SHUTTING_DOWN, print_exception=False)
        try:
            return _batch(paths, granularity, want_embedding, progress)
        finally:
            drain.leave()

    def _batch(paths, granularity, want_embedding, progress):
        progress(0, desc="decoding")
        done = [0]

        def tick(i, _res):
            done[0] += 1
            progress(done[0] / len(paths), desc=f"{done[0]}/{len(paths)}")

        try:
            results = recognizer.recognize_many(paths, granularity=granularity, on_result=tick)
        except BusyError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        except Exception:
            log.exception("batch failed")
            raise gr.Error("the batch could not be analysed", print_exception=False) from None
        columns = ["path", "emotion", "confidence", *order, "duration_s", "error"]
        rows = [result_row(res, Path(path).name) for path, res in zip(paths, results)]
        table = pd.DataFrame(rows, columns=columns).round(6)
        files = {BATCH_TABLE: lambda fh: fh.write(table.to_csv(index=False).encode("utf-8"))}
        embeddings = [(row["path"], res.embedding) for row, res in zip(rows, results)
                      if not isinstance(res, AudioError)]
        if want_embedding and embeddings:
            files[BATCH_EMBEDDINGS] = lambda fh: _write_embeddings_zip(fh, embeddings)
        try:
            folder = write_folder(output_root, files)  # complete, or not there at all
        except ResultWriteError as exc:
            raise gr.Error(f"the results could not be saved: {exc.strerror}", print_exception=False) from None
        out_files = [str(folder / name) for name in files]
        failed = sum(1 for r in results if isinstance(r, AudioError))
        summary = f"{len(paths) - failed} analysed, {failed} failed · saved in {folder.name}"
        return table, out_files, summary

    def example():
        return _example_copy()

    def history_refresh():
        names = list_history(output_root)
        return gr.Dropdown(choices=names, value=names[0] if names else None)

    def history_open(name):
        folder = _history_folder(output_root, name)
        try:
            data = json.loads((folder / RESULT_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise gr.Error(f"{name}: result.json cannot be read", print_exception=False) from None
        summary = headline(data.get("emoji", ""), data.get("label_zh", ""), str(data.get("emotion", "")),
                           float(data.get("confidence", 0.0)))
        summary += f"\n\n{tendencies(data.get('top', []))}\n\n" \
                   f"file: `{data.get('input', {}).get('name', '?')}` · {data.get('granularity', '?')} · " \
                   f"{data.get('timestamp', '?')}"
        return summary, data, _result_files(folder)

    with gr.Blocks(title="Speech emotion recognition", delete_cache=(3600, 86400)) as demo:
        gr.Markdown("# Speech emotion recognition · 语音情感识别\nEmotion2Vec+ · nine emotions")
        status = gr.Markdown(status_text(recognizer), elem_id="model_status")
        with gr.Tabs():
            with gr.Tab("Analyse", id="single"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=1, min_width=300):
                        audio = gr.Audio(type="filepath", sources=["upload", "microphone"],
                                         label="Audio", elem_id="audio_in")
                        with gr.Row():
                            granularity = gr.Radio(list(GRANULARITIES), value="utterance",
                                                   label="Granularity", elem_id="granularity")
                            want_emb = gr.Checkbox(value=False, label="Extract embedding",
                                                   elem_id="want_embedding")
                        with gr.Row():
                            example_btn = gr.Button("Example audio", elem_id="example_btn", size="sm")
                            analyse_btn = gr.Button("Analyse", variant="primary", elem_id="analyse_btn")
                        log_box = gr.Textbox(label="Processing log", lines=5, interactive=False,
                                             elem_id="process_log")
                        files = gr.File(label="Downloads", file_count="multiple", interactive=False,
                                        elem_id="downloads")
                    with gr.Column(scale=2, min_width=300):
                        main_md = gr.Markdown(elem_id="emotion_md")
                        tend_md = gr.Markdown(elem_id="tendencies_md")
                        label = gr.Label(num_top_classes=9, label="All scores", elem_id="scores_label")
                        bar = gr.BarPlot(x="emotion", y="score", sort=order, y_lim=[0, 1],
                                         label="Scores", elem_id="bar_plot")
                        line = gr.LinePlot(x="time_s", y="score", color="emotion", y_lim=[0, 1],
                                           label="Timeline (per-frame scores)", visible=False,
                                           elem_id="timeline_plot")
                        segments = gr.Dataframe(label="Segments", visible=False, interactive=False,
                                                elem_id="segments_df")
                        with gr.Accordion("result.json", open=False):
                            result_json = gr.JSON(elem_id="result_json")
                        # /analyse: the same request for programs, answered with the result's JSON alone
                        api_btn = gr.Button(visible=False)
                        api_json = gr.JSON(visible=False)
            with gr.Tab("Batch", id="batch"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=1, min_width=300):
                        batch_files = gr.File(file_count="multiple", label="Audio files",
                                              elem_id="batch_files")
                        with gr.Row():
                            batch_gran = gr.Radio(list(GRANULARITIES), value="utterance",
                                                  label="Granularity")
                            batch_emb = gr.Checkbox(value=False, label="Embeddings zip")
                        batch_btn = gr.Button("Analyse all", variant="primary", elem_id="batch_btn")
                        batch_summary = gr.Markdown(elem_id="batch_summary")
                        batch_out = gr.File(label="Downloads (CSV, embeddings)", file_count="multiple",
                                            interactive=False, elem_id="batch_downloads")
                    with gr.Column(scale=2, min_width=300):
                        batch_table = gr.Dataframe(label="Results", interactive=False,
                                                   elem_id="batch_table")
            with gr.Tab("History", id="history"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=1, min_width=300):
                        hist_dd = gr.Dropdown(choices=list_history(output_root), label="Earlier results",
                                              allow_custom_value=True,
                                              elem_id="history_dd")
                        with gr.Row():
                            hist_refresh = gr.Button("Refresh", size="sm", elem_id="history_refresh")
                            hist_open = gr.Button("Open", variant="primary", size="sm", elem_id="history_open")
                        hist_files = gr.File(label="Files", file_count="multiple", interactive=False,
                                             elem_id="history_files")
                    with gr.Column(scale=2, min_width=300):
                        hist_md = gr.Markdown(elem_id="history_md")
                        hist_json = gr.JSON(elem_id="history_json")

        model_event = dict(concurrency_id=MODEL_CONCURRENCY, concurrency_limit=1, api_visibility="public")
        if coalesce:
            model_event.update(batch=True, max_batch_size=max_batch)
        analysed = analyse_btn.click(
            recognize_coalesced if coalesce else recognize, [audio, granularity, want_emb],
            [main_md, tend_md, label, bar, line, segments, log_box, files, result_json, status],
            api_name="recognize", **model_event)
        api_btn.click(analyse_coalesced if coalesce else analyse, [audio, granularity, want_emb], api_json,
                      api_name="analyse", **model_event)
        analysed.success(history_refresh, None, hist_dd, api_name="history_after_recognize",
                         api_visibility="private", concurrency_id="light", concurrency_limit=4)
        batch_btn.click(batch, [batch_files, batch_gran, batch_emb], [batch_table, batch_out, batch_summary],
                        api_name="batch", api_visibility="public", concurrency_id=MODEL_CONCURRENCY,
                        concurrency_limit=1)
        example_btn.click(example, None, audio, api_name="example", api_visibility="private",
                          concurrency_id="light", concurrency_limit=4)
        hist_refresh.click(history_refresh, None, hist_dd, api_name="history_refresh",
                           api_visibility="private", concurrency_id="light", concurrency_limit=4)
        hist_open.click(history_open, hist_dd, [hist_md, hist_json, hist_files], api_name="history_open",
                        api_visibility="undocumented", concurrency_id="light", concurrency_limit=4)
        demo.load(lambda: (status_text(recognizer), history_refresh()), None, [status, hist_dd],
                  api_name="status", api_visibility="private", concurrency_id="light", concurrency_limit=4)

    demo.queue(max_size=queue_size, default_concurrency_limit=1, api_open=False)
    demo.drain = drain  # app.py closes it on SIGTERM so the request in flight can finish
    return demo


def launch_kwargs(output_root: str | os.PathLike, models_root: str | os.PathLike | None = None,
                  max_file_size: str | int = "100mb", host: str | None = None, port: int | None = None,
                  auth: str | None = None) -> dict:
    """Safe launch() settings: loopback by default, outputs only, no monitoring, no tracebacks."""
    host = host or os.environ.get("GRADIO_SERVER_NAME") or "127.0.0.1"
    port = int(port or os.environ.get("GRADIO_SERVER_PORT") or 7860)
    auth = auth if auth is not None else os.environ.get("EMOTION_AUTH")
    kwargs = dict(
        server_name=host,
        server_port=port,
        share=False,
        mcp_server=False,
        ssr_mode=False,
        show_error=False,
        enable_monitoring=False,
        strict_cors=True,
        max_file_size=max_file_size,
        allowed_paths=[str(Path(output_root).resolve())],
        blocked_paths=[str(Path(models_root or MODELS_ROOT).resolve())],
        theme=gr.themes.Soft(),
        css=CSS,
        run_history=False,
    )
    if auth:
        user, sep, password = auth.partition(":")
        if not sep or not user or not password:
            raise ValueError('EMOTION_AUTH must look like "user:password"')
        kwargs["auth"] = (user, password)
    return kwargs
