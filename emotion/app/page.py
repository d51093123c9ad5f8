"""The Gradio 6 page: lays out the components and wires them to a WebService; what a request
does is in emotion.app.service, what a result looks like in emotion.app.render.

    demo = build_app(WebService(recognizer, "outputs"))
    demo.launch(**launch_kwargs(...))          # emotion.app.server
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import gradio as gr

from ..labels import label_keys
from ..model import PROJECT_ROOT
from ..recognizer import GRANULARITIES
from . import live_page, render
from .service import DEFAULT_QUEUE_SIZE, Outcome, RequestError, WebService

EXAMPLE_AUDIO = PROJECT_ROOT / "assets" / "example.wav"
MODEL_CONCURRENCY = "model"  # every event that uses the model shares this queue slot
LIGHT = dict(concurrency_id="light", concurrency_limit=4)  # events that do not touch the model
COALESCE_MAX = 16  # requests handed to the model together when coalescing
CSS = """
#emotion_md { font-size: 1.6em; }
.gradio-container { max-width: 1200px !important; margin: auto; }
"""


@dataclass
class AnalyseTab:
    audio: gr.Audio
    granularity: gr.Radio
    want_emb: gr.Checkbox
    example_btn: gr.Button
    analyse_btn: gr.Button
    log_box: gr.Textbox
    files: gr.File
    main_md: gr.Markdown
    tend_md: gr.Markdown
    label: gr.Label
    bar: gr.BarPlot
    line: gr.LinePlot
    segments: gr.Dataframe
    result_json: gr.JSON
    api_btn: gr.Button  # /analyse: the same request for programs, answered with the JSON alone
    api_json: gr.JSON


@dataclass
class BatchTab:
    files: gr.File
    granularity: gr.Radio
    want_emb: gr.Checkbox
    button: gr.Button
    summary: gr.Markdown
    downloads: gr.File
    table: gr.Dataframe


@dataclass
class HistoryTab:
    choice: gr.Dropdown
    refresh: gr.Button
    open: gr.Button
    files: gr.File
    summary: gr.Markdown
    json: gr.JSON


# ---------------------------------------------------------------- layout


def _analyse_tab(classes: list[str]) -> AnalyseTab:
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300):
            audio = gr.Audio(type="filepath", sources=["upload", "microphone"], label="Audio", elem_id="audio_in")
            with gr.Row():
                granularity = gr.Radio(list(GRANULARITIES), value="utterance", label="Granularity",
                                       elem_id="granularity")
                want_emb = gr.Checkbox(value=False, label="Extract embedding", elem_id="want_embedding")
            with gr.Row():
                example_btn = gr.Button("Example audio", elem_id="example_btn", size="sm")
                analyse_btn = gr.Button("Analyse", variant="primary", elem_id="analyse_btn")
            log_box = gr.Textbox(label="Processing log", lines=5, interactive=False, elem_id="process_log")
            files = gr.File(label="Downloads", file_count="multiple", interactive=False, elem_id="downloads")
        with gr.Column(scale=2, min_width=300):
            main_md = gr.Markdown(elem_id="emotion_md")
            tend_md = gr.Markdown(elem_id="tendencies_md")
            label = gr.Label(num_top_classes=len(classes), label="All scores", elem_id="scores_label")
            bar = gr.BarPlot(x="emotion", y="score", sort=classes, y_lim=[0, 1], label="Scores", elem_id="bar_plot")
            line = gr.LinePlot(x="time_s", y="score", color="emotion", y_lim=[0, 1],
                               label="Timeline (per-frame scores)", visible=False, elem_id="timeline_plot")
            segments = gr.Dataframe(label="Segments", visible=False, interactive=False, elem_id="segments_df")
            with gr.Accordion("result.json", open=False):
                result_json = gr.JSON(elem_id="result_json")
            api_btn = gr.Button(visible=False)
            api_json = gr.JSON(visible=False)
    return AnalyseTab(audio, granularity, want_emb, example_btn, analyse_btn, log_box, files, main_md, tend_md,
                      label, bar, line, segments, result_json, api_btn, api_json)


def _batch_tab() -> BatchTab:
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300):
            files = gr.File(file_count="multiple", label="Audio files", elem_id="batch_files")
            with gr.Row():
                granularity = gr.Radio(list(GRANULARITIES), value="utterance", label="Granularity")
                want_emb = gr.Checkbox(value=False, label="Embeddings zip")
            button = gr.Button("Analyse all", variant="primary", elem_id="batch_btn")
            summary = gr.Markdown(elem_id="batch_summary")
            downloads = gr.File(label="Downloads (CSV, embeddings)", file_count="multiple", interactive=False,
                                elem_id="batch_downloads")
        with gr.Column(scale=2, min_width=300):
            table = gr.Dataframe(label="Results", interactive=False, elem_id="batch_table")
    return BatchTab(files, granularity, want_emb, button, summary, downloads, table)


def _history_tab(names: list[str]) -> HistoryTab:
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300):
            choice = gr.Dropdown(choices=names, label="Earlier results", allow_custom_value=True,
                                 elem_id="history_dd")
            with gr.Row():
                refresh = gr.Button("Refresh", size="sm", elem_id="history_refresh")
                open_btn = gr.Button("Open", variant="primary", size="sm", elem_id="history_open")
            files = gr.File(label="Files", file_count="multiple", interactive=False, elem_id="history_files")
        with gr.Column(scale=2, min_width=300):
            summary = gr.Markdown(elem_id="history_md")
            data = gr.JSON(elem_id="history_json")
    return HistoryTab(choice, refresh, open_btn, files, summary, data)


def layout(service: WebService) -> tuple[gr.Markdown, AnalyseTab, BatchTab, HistoryTab]:
    """The page's components, inside the caller's gr.Blocks."""
    gr.Markdown("# Speech emotion recognition · 语音情感识别\nEmotion2Vec+ · nine emotions")
    status = gr.Markdown(render.status_text(service.status()), elem_id="model_status")
    with gr.Tabs():
        with gr.Tab("Analyse", id="single"):
            analyse = _analyse_tab(label_keys(service.recognizer.model.labels))
        with gr.Tab("Batch", id="batch"):
            batch = _batch_tab()
        with gr.Tab("History", id="history"):
            history = _history_tab(service.history())
        with gr.Tab("Live", id="live"):
            live_page.build(service, MODEL_CONCURRENCY)
    return status, analyse, batch, history


# ---------------------------------------------------------------- handlers


def _analyse_values(service: WebService, outcome: Outcome) -> tuple:
    """The Analyse tab's outputs for one outcome (an error text shows in place of the result)."""
    status = render.status_text(service.status())
    if not outcome.ok:
        return (f"### ⚠️ {outcome.error}", "", None, None, gr.LinePlot(value=None, visible=False),
                gr.Dataframe(value=None, visible=False), outcome.error, [], None, status)
    res, frame = outcome.result, outcome.result.granularity == "frame"
    return (render.headline(res.label.emoji, res.label.zh, res.emotion, res.confidence),
            render.tendencies(res.top), render.score_labels(res), render.score_bars(res),
            gr.LinePlot(value=render.timeline_points(res) if frame else None, visible=frame),
            gr.Dataframe(value=render.segment_table(res) if frame else None, visible=frame),
            render.process_log(res, outcome.folder, outcome.request_ms), render.result_files(outcome.folder),
            res.to_dict(),  # write_result has already checked it is strict JSON
            status)


def _one(outcome: Outcome) -> Outcome:
    if not outcome.ok:
        raise gr.Error(outcome.error, print_exception=False)
    return outcome


def _recognize(service, audio_path, granularity, want_embedding):
    return _analyse_values(service, _one(service.serve([audio_path], [granularity], [want_embedding])[0]))


def _analyse(service, audio_path, granularity, want_embedding):
    return _one(service.serve([audio_path], [granularity], [want_embedding])[0]).to_api()


def _recognize_coalesced(service, audio_paths, granularities, want_embeddings):
    rows = [_analyse_values(service, o) for o in service.serve(audio_paths, granularities, want_embeddings)]
    return tuple(list(col) for col in zip(*rows))


def _analyse_coalesced(service, audio_paths, granularities, want_embeddings):
    return ([o.to_api() for o in service.serve(audio_paths, granularities, want_embeddings)],)


def _batch(service, files, granularity, want_embedding, progress=gr.Progress()):
    paths = [f if isinstance(f, str) else getattr(f, "name", str(f)) for f in (files or [])]
    progress(0, desc="decoding")
    done = [0]

    def tick(i, _res):
        done[0] += 1
        progress(done[0] / len(paths), desc=f"{done[0]}/{len(paths)}")

    try:
        out = service.batch(paths, granularity, want_embedding, on_result=tick)
    except RequestError as exc:
        raise gr.Error(str(exc), print_exception=False) from None
    import pandas as pd

    return pd.DataFrame(out.rows, columns=out.columns), [str(p) for p in out.files], out.summary


def _example() -> str:
    """The shipped example, copied into the temp dir so it is served like any upload."""
    if not EXAMPLE_AUDIO.is_file():
        raise gr.Error("the example clip (assets/example.wav) is missing", print_exception=False)
    dest = Path(tempfile.gettempdir()) / "emotion-example" / EXAMPLE_AUDIO.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not dest.is_file() or dest.stat().st_size != EXAMPLE_AUDIO.stat().st_size:
        shutil.copyfile(EXAMPLE_AUDIO, dest)
    return str(dest)


def _history_refresh(service):
    names = service.history()
    return gr.Dropdown(choices=names, value=names[0] if names else None)


def _history_open(service, name):
    try:
        data, folder = service.reopen(name)
    except RequestError as exc:
        raise gr.Error(str(exc), print_exception=False) from None
    return render.history_summary(data), data, render.result_files(folder)


# ---------------------------------------------------------------- wiring


def wire(service: WebService, status, analyse: AnalyseTab, batch: BatchTab, history: HistoryTab,
         coalesce: bool, max_batch: int) -> None:
    """Connect the components to the service; every model event shares one queue slot."""
    model_event = dict(concurrency_id=MODEL_CONCURRENCY, concurrency_limit=1, api_visibility="public")
    if coalesce:
        model_event.update(batch=True, max_batch_size=max_batch)
    a = analyse
    analysed = a.analyse_btn.click(
        partial(_recognize_coalesced if coalesce else _recognize, service), [a.audio, a.granularity, a.want_emb],
        [a.main_md, a.tend_md, a.label, a.bar, a.line, a.segments, a.log_box, a.files, a.result_json, status],
        api_name="recognize", **model_event)
    a.api_btn.click(partial(_analyse_coalesced if coalesce else _analyse, service),
                    [a.audio, a.granularity, a.want_emb], a.api_json, api_name="analyse", **model_event)
    refresh = partial(_history_refresh, service)
    analysed.success(refresh, None, history.choice, api_name="history_after_recognize",
                     api_visibility="private", **LIGHT)
    batch.button.click(partial(_batch, service), [batch.files, batch.granularity, batch.want_emb],
                       [batch.table, batch.downloads, batch.summary], api_name="batch", api_visibility="public",
                       concurrency_id=MODEL_CONCURRENCY, concurrency_limit=1)
    a.example_btn.click(_example, None, a.audio, api_name="example", api_visibility="private", **LIGHT)
    history.refresh.click(refresh, None, history.choice, api_name="history_refresh", api_visibility="private",
                          **LIGHT)
    history.open.click(partial(_history_open, service), history.choice,
                       [history.summary, history.json, history.files], api_name="history_open",
                       api_visibility="undocumented", **LIGHT)


def build_app(service: WebService, queue_size: int = DEFAULT_QUEUE_SIZE, coalesce: bool | None = None,
              max_batch: int = COALESCE_MAX) -> gr.Blocks:
    """The Blocks app around one WebService.

    coalesce: hand requests that wait together to the model as one padded batch (default: on a
    GPU, where that pays; on a CPU one at a time is faster)."""
    if coalesce is None:
        coalesce = str(service.status().get("device", "cpu")).startswith("cuda")
    with gr.Blocks(title="Speech emotion recognition", delete_cache=(3600, 86400)) as demo:
        status, analyse, batch, history = layout(service)
        wire(service, status, analyse, batch, history, coalesce, max_batch)
        demo.load(lambda: (render.status_text(service.status()), _history_refresh(service)), None,
                  [status, history.choice], api_name="status", api_visibility="private", **LIGHT)
    demo.queue(max_size=queue_size, default_concurrency_limit=1, api_open=False)
    return demo
