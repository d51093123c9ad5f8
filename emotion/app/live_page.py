"""The Live tab: the microphone streamed to a LiveHub (emotion.app.live_sessions), the current emotion, a
level meter and a rolling timeline while recording, and on stop the whole recording analysed as
an upload (WebService.serve: the same result, the same saved folder and downloads).

Two paths from the microphone, because Gradio's stream is lossy by design: its recorder drops
chunks in the browser while the stream is "waiting", and its server keeps only the newest chunk
of a stream while the handler runs (/stream/{event_id} overwrites the pending data). That suits
the live updates (latest wins) but not the recording. So the page records the same MediaStream
itself (live_recorder.js, an AudioWorklet: every sample, 16-bit mono, up to MAX_RECORDING_S) and
on stop hands the whole recording to the stop event as a file input; Gradio uploads it like any
file (its upload limit, its session, its temp folder), and that is what is saved. No new route,
so no new way in: the file goes where an upload on the Analyse tab goes, and is decoded the same
way. A browser without AudioWorklet falls back to the streamed chunks, with what they miss
counted and said (LiveHub.stop).

    with gr.Tab("Live"):
        live_page.build(service, "model")        # inside the page's gr.Blocks (emotion.app.page)
"""

from __future__ import annotations

import html
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np

from ..errors import INVALID, AudioError
from ..labels import display_name
from ..recognizer import GRANULARITIES
from .handlers import empty_values, outcome_values, owner_of
from .live_sessions import (HOP_S, MAX_RECORDING_S, MAX_SESSIONS, STREAM_EVERY_S, TIMELINE_S, LiveError,
                   LiveHub, LiveView, hub_for, wav_layout)
from .service import WebService
from .text import EN, ZH, lang_of, reason_text, t
from .view import L, ResultView, result_view

RECORDER_JS = (Path(__file__).with_name("live_recorder.js").read_text(encoding="utf-8")
               .replace("__MAX_S__", f"{MAX_RECORDING_S:g}"))  # part of the page's start-up script
# the stop event's inputs, the page's own recording in place of the hidden file's (empty) value
# and what became of it (window.emotionLive.last: its size, and whether it was sent) as JSON
STOP_JS = """(language, recording, sent) => (window.emotionLive ? window.emotionLive.stop() : Promise.resolve(null))
  .catch(err => { console.warn('live recorder', err); return null; })
  .then(file => [language, file, JSON.stringify((window.emotionLive && window.emotionLive.last) || {})])"""
LIVE_CONCURRENCY = "live"  # the stream events: cheap (the model runs on the hub's worker)
CONTROL_CONCURRENCY = "live_control"  # start and stop of a recording
COLORS = {"silence": "#e4e4e7", "angry": "#e5484d", "disgusted": "#7c8a2b", "fearful": "#8e4ec6", "happy": "#f5b400",
          "neutral": "#8b9bb4", "other": "#12a594", "sad": "#3e63dd", "surprised": "#f76b15",
          "unknown": "#6f6e77"}
SILENCE_COLOR = COLORS["silence"]
FLOOR_DB = -60.0  # the level meter's empty end
LIVE_CSS = """
.live-meter{height:14px;background:#eee;border-radius:7px;overflow:hidden}
.live-meter>div{height:100%;transition:width .1s}
.live-strip{display:flex;gap:1px;height:34px;align-items:stretch}
.live-strip>span{border-radius:3px;font-size:14px;line-height:34px;text-align:center;overflow:hidden;white-space:nowrap;color:#fff}
.live-axis{display:flex;justify-content:space-between;font-size:12px;opacity:.7}
"""  # part of the page's stylesheet (emotion.app.page.CSS), sent once, not with every update


@dataclass
class LiveTab:
    audio: gr.Audio
    granularity: gr.Radio
    want_emb: gr.Checkbox
    meter: gr.HTML
    now: gr.HTML
    timeline: gr.HTML
    log_box: gr.Textbox
    view: ResultView  # the whole recording's result, as an upload's is shown
    recording: gr.State  # the stopped recording's WAV, until it is analysed
    browser_recording: gr.File  # hidden: carries the page's own recording (STOP_JS) to the stop event
    sent: gr.Textbox  # hidden: what became of the page's own recording (STOP_JS), as JSON


# ---------------------------------------------------------------- what the tab shows


def read_chunk(path: str | Path, name: str = "microphone") -> tuple[int, np.ndarray]:
    """(rate, int16 or float32 samples (n, channels)) of one chunk the recorder streams: a WAV
    whose header is the first chunk's, repeated, so its data size is wrong; all the data is taken."""
    raw = Path(path).read_bytes()
    w = wav_layout(raw, name, "a streamed chunk")
    kinds = {(1, 16): "<i2", (3, 32): "<f4", (0xFFFE, 16): "<i2"}
    if (w.tag, w.bits) not in kinds:
        raise AudioError(name, f"a streamed chunk in an unsupported format (tag {w.tag}, {w.bits} bits)", INVALID)
    dtype = np.dtype(kinds[w.tag, w.bits])
    data = raw[w.data_offset:]
    frame = dtype.itemsize * w.channels
    samples = np.frombuffer(data[: len(data) // frame * frame], dtype=dtype).reshape(-1, w.channels)
    return w.rate, samples.astype(dtype.newbyteorder("="))


def listening_html(lang: str = EN) -> str:
    """The current-emotion panel before the first update."""
    return f'<div data-seq="0"><h2>{html.escape(t("live_listening", lang))}</h2></div>'


def latency_text(view: LiveView, lang: str = EN) -> str:
    """The processing log's latency lines: the session's figures and the last window's chain."""
    lat = view.latencies
    if not lat:
        return t("live_no_latency", lang)
    p95 = sorted(lat)[min(len(lat) - 1, int(0.95 * len(lat)))]
    lines = [t("live_latency", lang, last=lat[-1], median=statistics.median(lat), p95=p95, count=len(lat))]
    c = view.current
    if c and c.done and c.update.speech:
        lines.append(t("live_chain", lang, arrived=c.arrived - c.spoken, started=c.started - c.spoken,
                       waited=c.waited_s, ready=c.done - c.spoken, model=c.update.model_ms))
    return "\n".join(lines)


def now_html(view: LiveView | None, lang: str = EN) -> str:
    """The current emotion (emoji, Chinese and English name, confidence) or silence; data-spoken
    carries when its newest sample was captured (ms since the epoch) for latency checks."""
    if view is None or view.current is None:
        return listening_html(lang)
    item = view.current
    u = item.update
    text = (f"{display_name(u.emotion, u.label.zh, u.label.emoji)} {u.confidence * 100:.1f}%" if u.speech
            else t("live_silence", lang))
    return (f'<div data-seq="{view.seq}" data-speech="{int(u.speech)}" data-spoken="{item.spoken * 1000:.0f}">'
            f"<h2>{html.escape(text)}</h2><small>{html.escape(t('live_span', lang, start=u.start_s, end=u.end_s))}"
            "</small></div>")


def live_error_text(exc: Exception, lang: str = EN) -> str:
    """A refused chunk's message in the page's language (a LiveError by its code, an AudioError by
    the file's name and its reason's code)."""
    if isinstance(exc, LiveError):
        return t(f"reason_live_{exc.code}", lang, **exc.values) if lang == ZH else str(exc)
    if isinstance(exc, AudioError):
        return f"{exc.name}：{reason_text(exc.reason, exc.code, lang)}" if lang == ZH else str(exc)
    return str(exc)


def _state(view: LiveView, lang: str) -> str:
    return t("live_speech", lang) if view.speech_now else t("silence", lang)


def meter_html(view: LiveView | None, lang: str = EN) -> str:
    """A level meter: the newest chunk's loudness, and whether the VAD hears speech."""
    if view is None:
        return f'<div class="live-meter"><div style="width:0"></div></div><small>{t("live_no_sound", lang)}</small>'
    level = max(FLOOR_DB, view.level_db)
    width = 100 * (level - FLOOR_DB) / -FLOOR_DB
    color = "#30a46c" if view.speech_now else "#a1a1aa"
    return (f'<div class="live-meter" data-db="{view.level_db:.1f}"><div style="width:{width:.0f}%;'
            f'background:{color}"></div></div><small>'
            f"{t('live_level', lang, db=view.level_db, state=_state(view, lang), seconds=view.duration_s)}</small>")


def stopped_meter_html(seconds: float, lang: str = EN) -> str:
    """The level meter once stopped: the length of the recording that is saved (the stop
    summary's), where while recording it counted what reached the live updates."""
    return (f'<div class="live-meter"><div style="width:0"></div></div>'
            f"<small>{html.escape(t('live_level_stopped', lang, seconds=seconds))}</small>")


def timeline_html(view: LiveView | None, hop_s: float = HOP_S, span_s: float = TIMELINE_S, lang: str = EN) -> str:
    """The last span_s of updates as a strip: runs of one emotion as coloured stretches with their
    emoji (and name, when there is room), silence in grey; newest on the right."""
    runs: list[list] = []  # [key, hops, label]
    for item in view.timeline if view else []:
        u = item.update
        key = u.emotion if u.speech else "silence"
        if runs and runs[-1][0] == key:
            runs[-1][1] += 1
        else:
            runs.append([key, 1, u.label])
    free = max(0, int(span_s / hop_s) - sum(r[1] for r in runs))
    cells = [f'<span style="flex:{free};background:transparent"></span>'] if free else []
    for key, hops, label in runs:
        name = t("silence", lang) if key == "silence" else (label.zh or key) if lang == ZH else key
        text = "·" if key == "silence" else label.emoji + (f" {name}" if hops >= 6 else "")
        ink = "#52525b" if key == "silence" else "#fff"
        span = t("live_run", lang, name=name, seconds=hops * hop_s)
        cells.append(f'<span data-emotion="{key}" title="{html.escape(span)}" style="flex:{hops};'
                     f'background:{COLORS.get(key, SILENCE_COLOR)};color:{ink}">{text}</span>')
    return (f'<div class="live-strip" data-runs="{len(runs)}">{"".join(cells)}</div>'
            f'<div class="live-axis"><span>-{span_s:.0f} s</span><span>{t("live_now", lang)}</span></div>')


def log_text(view: LiveView | None, hub: LiveHub, lang: str = EN) -> str:
    if view is None:
        return t("live_waiting", lang)
    vad = "Silero VAD" if hub.vad else t("live_off", lang)
    full = t("live_full", lang, limit=hub.max_s) + "\n" if view.full else ""
    lost = t("live_gap", lang, seconds=view.lost_s) + "\n" if view.lost_s else ""
    return (full + lost + t("live_status", lang, seconds=view.duration_s, db=view.level_db, state=_state(view, lang))
            + "\n"
            + t("live_updates", lang, analysed=view.analysed, silent=view.silent, dropped=view.dropped,
                window=hub.window_s, hop=hub.hop_s, vad=vad) + "\n" + latency_text(view, lang))


# ---------------------------------------------------------------- handlers


def _chunk(hub: LiveHub, key: str, chunk_path, lang: str = EN):
    """One streamed chunk: taken by the hub, then the newest view. It never waits for the model:
    while this handler runs, Gradio keeps only the newest chunk of the stream, so a handler slower
    than the chunks would lose audio (an update ready later goes out with the next chunk)."""
    arrived = time.time()
    if not chunk_path:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip()
    try:
        rate, samples = read_chunk(chunk_path)
        view = hub.push(key, samples, rate, arrived)
    except (LiveError, ValueError) as exc:  # AudioError is a ValueError
        raise gr.Error(live_error_text(exc, lang), print_exception=False) from None
    view = hub.view(key) or view
    if not view.fresh:  # the meter moves with every chunk; the rest only with a new update
        return gr.skip(), meter_html(view, lang), gr.skip(), gr.skip()
    return (now_html(view, lang), meter_html(view, lang), timeline_html(view, hub.hop_s, lang=lang),
            log_text(view, hub, lang))


def _idle(lang: str):
    """The tab before anything is recorded, in the page's language."""
    return listening_html(lang), meter_html(None, lang), timeline_html(None, lang=lang), t("live_waiting", lang)


def _started(lang: str):
    return (listening_html(lang), meter_html(None, lang), timeline_html(None, lang=lang), t("live_recording", lang),
            *empty_values(lang))


def not_sent_text(sent: str | None, lang: str = EN) -> str | None:
    """Why the page's own recording did not come (live_recorder.js's `last`, as JSON): over the
    upload limit; None when it was sent or the page said nothing."""
    try:
        last = json.loads(sent or "{}")
        size, limit = 44 + 2 * int(last["frames"]), float(last["limit"])
    except (ValueError, KeyError, TypeError):
        return None
    if last.get("sent") or size <= limit:
        return None
    return t("live_not_sent", lang, size=size / 2**20, limit=limit / 2**20)


def _stop(hub: LiveHub, key: str, lang: str = EN, browser_wav: str | None = None, sent: str | None = None):
    """End the session; the recording to analyse is the page's own (browser_wav) when it has one.
    The meter then shows the saved recording's length, as the summary does."""
    recording = hub.stop(key, Path(browser_wav) if browser_wav else None)
    if browser_wav and (recording is None or recording.path != Path(browser_wav)):
        Path(browser_wav).unlink(missing_ok=True)  # not the one saved
    if recording is None:
        return None, t("live_nothing", lang), gr.skip()
    v = recording.view
    kept = t(f"live_kept_{recording.source}", lang, streamed=recording.streamed_s)
    lost = (f"（{t('live_lost', lang, seconds=v.lost_s)}）" if lang == ZH else
            f" ({t('live_lost', lang, seconds=v.lost_s)})") if v.lost_s else ""
    why = not_sent_text(sent, lang) if recording.source == "stream" else None
    summary = (t("live_stopped", lang, seconds=recording.duration_s, analysed=v.analysed, silent=v.silent,
                 dropped=v.dropped) + f"\n{kept}{lost}" + (f"\n{why}" if why else "")
               + f"\n{latency_text(v, lang)}\n{t('live_analysing', lang)}")
    return (str(recording.path), v.lost_s), summary, stopped_meter_html(recording.duration_s, lang)


def _analyse(service: WebService, recording, granularity, want_embedding, owner, lang, log: str = ""):
    """The stopped recording, analysed and saved exactly as an upload is (in its owner's history),
    audio that never reached the server named in the result's warnings; the live panel gives way
    to its result, and the live log says it is done."""
    if not recording:
        return ("", log, *empty_values(lang))
    path, lost_s = recording
    lost = [t("warn_live_lost", EN, seconds=f"{lost_s:.1f}")] if lost_s else []  # shown in the page's language
    try:
        [outcome] = service.serve([path], [granularity], [want_embedding], [owner], warnings=[lost])
    finally:
        Path(path).unlink(missing_ok=True)
    done = t("live_saved" if outcome.ok else "live_failed", lang)
    analysing = t("live_analysing", lang)
    log = log[: -len(analysing)] + done if log.endswith(analysing) else (log + "\n" + done).strip()
    return ("", log, *outcome_values(outcome, lang))


# ---------------------------------------------------------------- layout and wiring


def layout() -> LiveTab:
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=280):
            audio = gr.Audio(sources=["microphone"], streaming=True, type="filepath", label=L("live_mic"),
                             elem_id="live_audio")
            with gr.Row():
                granularity = gr.Radio([(L(g), g) for g in GRANULARITIES], value="utterance",
                                       elem_id="live_granularity", label=L("live_granularity"))
                want_emb = gr.Checkbox(value=False, label=L("want_embedding"), elem_id="live_embedding")
            meter = gr.HTML(meter_html(None), elem_id="live_meter")  # in the page's language on load (_idle)
            log_box = gr.Textbox(label=L("live_log"), lines=6, interactive=False, elem_id="live_log")
            browser_recording = gr.File(visible=False, type="filepath", elem_id="live_browser_recording")
            sent = gr.Textbox(visible=False)
            gr.Markdown(L("live_note"))
        with gr.Column(scale=2, min_width=280):
            now = gr.HTML(listening_html(), elem_id="live_now")
            timeline = gr.HTML(timeline_html(None), label=L("live_timeline"), elem_id="live_timeline")
            view = result_view("live_")
    return LiveTab(audio, granularity, want_emb, meter, now, timeline, log_box, view, gr.State(None),
                   browser_recording, sent)


def wire(service: WebService, hub: LiveHub, tab: LiveTab, model_concurrency: str, owner, lang) -> None:
    """Connect the tab: chunks and start/stop on their own cheap queue slot (the model runs on the
    hub's worker), the analysis of a stopped recording on the model's, as an upload's. owner and
    lang are the page's browser token and language."""

    def chunk(chunk_path, request: gr.Request):  # gr.Request is given to annotated functions only
        return _chunk(hub, request.session_hash, chunk_path, lang_of(request.headers.get("accept-language")))

    def stop(language, browser_wav, sent, request: gr.Request):
        return _stop(hub, request.session_hash, language, browser_wav, sent)

    def analyse(recording, granularity, want_embedding, token, language, log, request: gr.Request):
        return _analyse(service, recording, granularity, want_embedding, owner_of(token, request), language, log)

    quiet = dict(api_visibility="private", show_progress="hidden")
    live = dict(concurrency_id=LIVE_CONCURRENCY, concurrency_limit=MAX_SESSIONS, **quiet)
    # start and stop on a slot of their own: the recordings hold the live slots while they last
    control = dict(concurrency_id=CONTROL_CONCURRENCY, concurrency_limit=MAX_SESSIONS, **quiet)
    tab.audio.stream(chunk, tab.audio, [tab.now, tab.meter, tab.timeline, tab.log_box], stream_every=STREAM_EVERY_S,
                     time_limit=int(MAX_RECORDING_S) + 60, api_name="live_chunk", **live)
    tab.audio.start_recording(_started, lang, [tab.now, tab.meter, tab.timeline, tab.log_box, *tab.view.outputs()],
                              api_name="live_start", **control)
    tab.audio.stop_recording(stop, [lang, tab.browser_recording, tab.sent], [tab.recording, tab.log_box, tab.meter],
                             js=STOP_JS,
                             api_name="live_stop", **control).then(
        analyse, [tab.recording, tab.granularity, tab.want_emb, owner, lang, tab.log_box],
        [tab.now, tab.log_box, *tab.view.outputs()],
        api_name="live_analyse", concurrency_id=model_concurrency, concurrency_limit=1, api_visibility="private",
        show_progress="hidden")


def build(service: WebService, model_concurrency: str, owner, lang) -> LiveTab:
    """Lay out and wire the Live tab inside the caller's gr.Blocks; a closed tab frees its session."""
    hub = hub_for(service.live)
    tab = layout()
    wire(service, hub, tab, model_concurrency, owner, lang)

    def closed(request: gr.Request) -> None:
        hub.close(request.session_hash, gone=True)

    blocks = gr.context.Context.root_block
    if blocks is not None:
        blocks.unload(closed)
        def idle(request: gr.Request):  # the language from the request: the page's lang State may not be set yet
            return _idle(lang_of(request.headers.get("accept-language")))

        blocks.load(idle, None, [tab.now, tab.meter, tab.timeline, tab.log_box], api_visibility="private",
                    show_progress="hidden", concurrency_id=CONTROL_CONCURRENCY, concurrency_limit=MAX_SESSIONS)
    return tab
