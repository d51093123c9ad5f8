"""The Gradio 6 page: lays out the components and wires them to the handlers (emotion.app.handlers);
what a request does is in emotion.app.service, what a result looks like in emotion.app.render,
every word in emotion.app.text.

    demo = build_app(WebService(recognizer, "outputs"))
    launch(demo, **launch_kwargs(...))          # emotion.app.server
"""

import gradio as gr

from ..audio import AUDIO_EXTENSIONS, MAX_DURATION_S
from ..decode import CHANNEL_CHOICES
from ..defaults import DEFAULT_MAX_SPEAKERS
from ..recognizer import GRANULARITIES
from . import live_page, text
from .handlers import Handlers
from .live_sessions import HOP_S, WINDOW_S
from .view import L, result_view
from ..settings import DEFAULT_QUEUE_SIZE
from .service import SPEAKER_CHOICES, SPEAKERS_OFF, WebService

MODEL_CONCURRENCY = "model"  # every event that uses the model shares this queue slot
LIGHT = dict(concurrency_id="light", concurrency_limit=4, show_progress="hidden")  # events that do not touch the model
COALESCE_MAX = 16  # requests handed to the model together when coalescing
MAX_UPLOAD_MB = 100
# Extensions the pickers offer: whatever the folder search takes, video containers with sound
# included (a browser calls a .webm "video/webm", which an audio-only picker refuses).
MEDIA_TYPES = sorted(AUDIO_EXTENSIONS)
CSS = """
.gradio-container { max-width: 1200px !important; margin: auto; }
#emotion_md h2, #history_emotion_md h2 { margin-bottom: 0.1em; }
/* the file box keeps one height, empty or holding a file: the button under it does not move */
#file_in { height: 150px; min-height: 150px; }
#model_status { color: #166534; }
#model_status p { background: #dcfce7; border: 1px solid #86efac; border-radius: 8px; padding: 4px 10px;
                  display: inline-block; }
.gradio-container, .gradio-container * { min-width: 0; overflow-wrap: anywhere; }
.prose code { white-space: pre-wrap; word-break: break-all; }
/* logs: lines break at spaces, never inside a Chinese word ("保存 / 于：") */
textarea { word-break: keep-all; }
.reading-table { max-height: 520px; overflow: auto; }
.reading-table table { width: 100%; border-collapse: collapse; font-size: 14px; line-height: 1.35; }
.reading-table caption { text-align: left; font-weight: 600; padding: 2px 0 6px; }
.reading-table th, .reading-table td { text-align: left; vertical-align: top; padding: 5px 8px;
                                       border-bottom: 1px solid var(--border-color-primary); }
.reading-table th { overflow-wrap: normal; background: var(--table-odd-background-fill); }
.reading-table th > span { white-space: nowrap; }
@media (max-width: 480px) { .reading-table table { font-size: 13px; }
                            .reading-table th, .reading-table td { padding: 4px 5px; } }
/* a chart fits its box, whatever its legend needs (Vega fits the plot to the box's width) */
[id$="timeline_plot"] { contain: inline-size; overflow: hidden; }
/* a long clip's waveform (about 20 px a second) scrolls inside the player instead of widening the page */
[id$="processed_audio"] { contain: inline-size; overflow: hidden; }
.reading-table .num { text-align: right; font-variant-numeric: tabular-nums; }
.reading-table td.num { overflow-wrap: normal; white-space: nowrap; }  /* "19.04", never "19.0 / 4" */
.hidden-trigger { display: none !important; }
/* who spoke when: a lane per speaker, a turn a bar coloured by its emotion (render_speakers) */
.speaker-lanes { margin: 4px 0 12px; font-size: 14px; }
.speaker-lanes .lanes-caption { font-weight: 600; padding: 2px 0 6px; }
.speaker-lanes .lane { display: flex; align-items: center; gap: 6px; margin: 3px 0; }
.speaker-lanes .lane-name { flex: 0 0 3.2em; overflow-wrap: normal; word-break: keep-all; }
.speaker-lanes .lane-track { position: relative; flex: 1 1 auto; height: 22px; border-radius: 4px;
                             background: var(--neutral-100, #f3f4f6); overflow: hidden; }
.speaker-lanes .turn { position: absolute; top: 2px; bottom: 2px; min-width: 2px; border-radius: 3px; }
/* each second's label under its place on the axis (the first and the last inside the track) */
.speaker-lanes .lane-ticks { position: relative; flex: 1 1 auto; height: 1.4em; font-size: 12px;
                             color: var(--body-text-color-subdued); font-variant-numeric: tabular-nums; }
.speaker-lanes .lane-ticks span { position: absolute; top: 0; white-space: nowrap; transform: translateX(-50%); }
.speaker-lanes .lane-ticks span:first-child { transform: none; }
.speaker-lanes .lane-ticks span:last-child { transform: translateX(-100%); }
.speaker-lanes .lane-axis .lane-name { font-size: 12px; color: var(--body-text-color-subdued); }
.speaker-lanes .lane-legend { display: flex; flex-wrap: wrap; gap: 4px 12px; margin-top: 6px; font-size: 13px; }
.speaker-lanes .lane-legend i { display: inline-block; width: 12px; height: 12px; border-radius: 2px;
                                margin-right: 4px; vertical-align: -1px; }
.speakers-block .reading-table { margin-bottom: 12px; }
@media (max-width: 480px) { .speakers-block .reading-table th, .speakers-block .reading-table td { padding: 4px 4px; } }
.speakers-none { font-size: 16px; font-weight: 600; }
""" + live_page.LIVE_CSS
# A file over the upload limit is refused in the browser before it is sent (the server would
# answer 413, which Gradio shows only as a passing pop-up): its name and size go to a hidden
# button, whose handler puts the reason in the result's place and the log (Analyse: #too_large_btn)
# or the batch's summary (Batch: #batch_too_large_btn; the other files chosen are uploaded).
UPLOAD_GUARD_JS = """() => {
  const limit = window.emotionUploadLimit = %d;  // also the Live recorder's (live_recorder.js)
  const boxes = {'#file_in': ['__emotionTooLarge', '#too_large_btn'],
                 '#batch_files': ['__emotionBatchTooLarge', '#batch_too_large_btn']};
  const guard = (box, files, event) => {
    const all = [...(files || [])], big = all.filter(f => f.size > limit);
    const [slot, button] = boxes[box], input = event.target.type === 'file' ? event.target : null;
    if (!big.length) {  // a new batch choice forgets the files refused before it
      if (box === '#batch_files' && all.length) {
        window[slot] = JSON.stringify({files: [], limit: limit}); document.querySelector(button).click(); }
      return; }
    const rest = box === '#batch_files' ? all.filter(f => f.size <= limit) : [];
    let kept = 0;
    if (rest.length && input) {  // the files under the limit go on to Gradio as chosen
      const keep = new DataTransfer(); rest.forEach(f => keep.items.add(f)); input.files = keep.files;
      kept = rest.length;
    } else {
      event.preventDefault(); event.stopImmediatePropagation();
      if (input) input.value = '';
    }
    window[slot] = JSON.stringify(box === '#file_in' ? {name: big[0].name, bytes: big[0].size, limit: limit} :
      {files: big.map(f => ({name: f.name, bytes: f.size})), limit: limit, kept: kept, left: rest.length - kept});
    document.querySelector(button).click();
  };
  const within = target => Object.keys(boxes).find(box => target.closest && target.closest(box));
  document.addEventListener('change', e => {
    const box = within(e.target);
    if (box && e.target.matches('input[type=file]')) guard(box, e.target.files, e); }, true);
  document.addEventListener('drop', e => {
    const box = within(e.target);
    if (box) guard(box, e.dataTransfer && e.dataTransfer.files, e); }, true);
}"""


def page_js(max_bytes: int) -> str:
    """The page's start-up script (launch(js=...)): files over max_bytes are refused in place, and
    the Live tab's own recorder is installed (live_page.RECORDER_JS)."""
    return f"() => {{ ({UPLOAD_GUARD_JS % max_bytes})(); ({live_page.RECORDER_JS})(); }}"


def page_i18n(max_duration_s: float = MAX_DURATION_S, max_upload_mb: int = MAX_UPLOAD_MB) -> gr.I18n:
    """The I18n table for launch(i18n=...)."""
    return gr.I18n(**text.translations(minutes=max_duration_s / 60, mb=max_upload_mb, hop=HOP_S, window=WINDOW_S,
                                       max_speakers=DEFAULT_MAX_SPEAKERS))


def _analyse_inputs():
    file_in = gr.File(label=L("file_in"), file_types=MEDIA_TYPES, type="filepath", elem_id="file_in")
    mic_in = gr.Audio(sources=["microphone"], type="filepath", label=L("mic_in"), elem_id="mic_in")
    with gr.Row():
        granularity = gr.Radio([(L(g), g) for g in GRANULARITIES], value="utterance", label=L("granularity"),
                               elem_id="granularity")
        want_emb = gr.Checkbox(value=False, label=L("want_embedding"), elem_id="want_embedding")
    channels = gr.Radio([(L(c), c) for c in CHANNEL_CHOICES], value="mix", label=L("channels"), elem_id="channels")
    speaker_names = {SPEAKERS_OFF: L("speakers_off"), "auto": L("speakers_auto_choice")}
    speakers = gr.Dropdown([(speaker_names.get(c, c), c) for c in SPEAKER_CHOICES], value=SPEAKERS_OFF,
                           label=L("speakers"), info=L("speakers_info"), elem_id="speakers")
    with gr.Row():
        example_btn = gr.Button(L("example"), size="sm", elem_id="example_btn")
        analyse_btn = gr.Button(L("analyse"), variant="primary", elem_id="analyse_btn")
    gr.Markdown(L("limits"), elem_id="limits")
    return file_in, mic_in, granularity, want_emb, channels, speakers, example_btn, analyse_btn


def _batch_tab():
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=280):
            files = gr.File(file_count="multiple", file_types=MEDIA_TYPES, label=L("batch_files"),
                            elem_id="batch_files")
            want_emb = gr.Checkbox(value=False, label=L("batch_embeddings"), elem_id="batch_embeddings")
            gr.Markdown(L("batch_note"))
            button = gr.Button(L("analyse_all"), variant="primary", elem_id="batch_btn")
            progress = gr.Markdown(elem_id="batch_progress")  # the progress line, beside the button
            too_large = gr.Button(elem_id="batch_too_large_btn", elem_classes="hidden-trigger")
            refused = gr.State([])  # the files refused as over the limit: named again with the batch's result
        with gr.Column(scale=2, min_width=280):
            summary = gr.Markdown(elem_id="batch_summary")
            with gr.Row():
                csv_btn = gr.DownloadButton(L("download_csv"), visible=False, size="sm", elem_id="batch_csv")
                zip_btn = gr.DownloadButton(L("download_zip"), visible=False, size="sm", elem_id="batch_zip")
            table = gr.HTML(elem_id="batch_table")  # tables.display_table
    return files, want_emb, button, progress, summary, csv_btn, zip_btn, table, too_large, refused


def _result_columns():
    """The result view, and beside it (channels="each") the second channel's, hidden until then."""
    with gr.Row(equal_height=False):
        with gr.Column(min_width=280):
            view = result_view()
        with gr.Column(min_width=280, visible=False, elem_id="second_channel") as second_box:
            second = result_view("ch2_")
    return view, second_box, second


def _history_tab():
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=280):
            choice = gr.Dropdown(choices=[], label=L("history_choice"), allow_custom_value=True, elem_id="history_dd")
            with gr.Row():
                refresh = gr.Button(L("refresh"), size="sm", elem_id="history_refresh")
                open_btn = gr.Button(L("open"), variant="primary", size="sm", elem_id="history_open")
        with gr.Column(scale=2, min_width=280):
            view = result_view("history_")
    return choice, refresh, open_btn, view


def build_app(service: WebService, queue_size: int = DEFAULT_QUEUE_SIZE, coalesce: bool | None = None,
              max_batch: int = COALESCE_MAX, owner_secret: str | None = None) -> gr.Blocks:
    """The Blocks app around one WebService.

    coalesce: hand requests that wait together to the model as one padded batch (default: on a
    GPU, where that pays; on a CPU one at a time is faster). owner_secret: the key the browser's
    owner token is stored under (stable across restarts, so a browser keeps its history)."""
    if coalesce is None:
        coalesce = str(service.status().get("device", "cpu")).startswith("cuda")
    h = Handlers(service)
    with gr.Blocks(title="Speech emotion recognition · 语音情感识别", delete_cache=(3600, 86400)) as demo:
        owner = gr.BrowserState(None, storage_key="emotion-owner", secret=owner_secret)
        lang = gr.State(text.EN)
        ticket = gr.State(None)
        gr.Markdown(L("title"), elem_id="title")
        gr.Markdown(L("subtitle"))
        status = gr.Markdown(elem_id="model_status")
        with gr.Tabs():
            with gr.Tab(L("tab_analyse"), id="single"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=1, min_width=280):
                        (file_in, mic_in, granularity, want_emb, channels, speakers, example_btn,
                         analyse_btn) = _analyse_inputs()
                    with gr.Column(scale=2, min_width=280, elem_id="result_column"):
                        view, second_box, second = _result_columns()
                        api_btn = gr.Button(visible=False)  # /analyse: the same request for programs
                        api_json = gr.JSON(visible=False)
                        too_large_btn = gr.Button(elem_id="too_large_btn", elem_classes="hidden-trigger")
                        too_large_info = gr.Textbox(visible=False)  # {"name", "bytes", "limit"}, from UPLOAD_GUARD_JS
            with gr.Tab(L("tab_batch"), id="batch"):
                batch = _batch_tab()
            with gr.Tab(L("tab_history"), id="history"):
                hist_choice, hist_refresh, hist_open, hist_view = _history_tab()
            with gr.Tab(L("tab_live"), id="live"):
                live_page.build(service, MODEL_CONCURRENCY, owner, lang)
        inputs = [file_in, mic_in, granularity, want_emb, channels, owner, lang, ticket, speakers]
        model = dict(concurrency_id=MODEL_CONCURRENCY, concurrency_limit=1, show_progress="hidden")
        announce = analyse_btn.click(h.announce, [file_in, mic_in, lang], [view.headline, ticket],
                                     api_visibility="private", **LIGHT)
        shown = [*view.outputs(), status, second_box, *second.outputs()]
        if coalesce:
            analysed = announce.then(h.analyse_many, inputs, shown, api_name="recognize",
                                     api_visibility="public", batch=True, max_batch_size=max_batch, **model)
            api_btn.click(h.analyse_api_many, [file_in, granularity, want_emb, channels, speakers], api_json,
                          api_name="analyse", api_visibility="public", batch=True, max_batch_size=max_batch, **model)
        else:
            analysed = announce.then(h.analyse, inputs, shown, api_name="recognize", api_visibility="public", **model)
            api_btn.click(h.analyse_api, [file_in, granularity, want_emb, channels, speakers], api_json,
                          api_name="analyse", api_visibility="public", **model)
        analysed.then(h.history_refresh, [owner, lang], hist_choice, api_visibility="private", **LIGHT)
        file_in.upload(h.cleared, lang, [mic_in, *view.outputs(), second_box], api_visibility="private", **LIGHT)
        mic_in.stop_recording(h.cleared, lang, [file_in, *view.outputs(), second_box], api_visibility="private",
                              **LIGHT)
        for box in (file_in, mic_in):
            box.clear(h.cleared_view, lang, [*view.outputs(), second_box], api_visibility="private", **LIGHT)
        too_large_btn.click(h.too_large, too_large_info, [file_in, mic_in, *view.outputs(), second_box],
                            js="() => [window.__emotionTooLarge || '']", api_visibility="private", **LIGHT)
        example_btn.click(h.example, lang, [file_in, mic_in, *view.outputs(), second_box], api_visibility="private",
                          **LIGHT)
        files, b_emb, b_btn, b_progress, b_summary, b_csv, b_zip, b_table, b_too_large, b_refused = batch
        b_btn.click(h.batch, [files, b_emb, owner, lang, b_refused], [b_summary, b_csv, b_zip, b_table],
                    api_name="batch", api_visibility="public", concurrency_id=MODEL_CONCURRENCY, concurrency_limit=1,
                    show_progress_on=b_progress)
        b_too_large.click(h.batch_too_large, too_large_info, [b_summary, b_csv, b_zip, b_table, b_refused],
                          js="() => [window.__emotionBatchTooLarge || '']", api_visibility="private", **LIGHT)
        files.clear(lambda: [], None, b_refused, api_visibility="private", **LIGHT)
        hist_refresh.click(h.history_refresh, [owner, lang], hist_choice, api_visibility="private", **LIGHT)
        hist_open.click(h.history_open, [hist_choice, owner, lang], hist_view.outputs(), api_name="history_open",
                        api_visibility="undocumented", **LIGHT)
        # the chosen entry is shown at once, the newest preselected after a refresh included
        hist_choice.change(h.history_show, [hist_choice, owner, lang], hist_view.outputs(), api_visibility="private",
                           **LIGHT)
        demo.load(h.on_load, owner, [owner, lang, status, hist_choice], api_visibility="private", **LIGHT)
        demo.unload(h.session_ended)  # a closed tab's announced request will not start
    demo.queue(max_size=queue_size, default_concurrency_limit=1, api_open=False)
    return demo
