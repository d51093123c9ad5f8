"""The page's event handlers: Gradio values in, a WebService call, Gradio updates out.

A failed request never raises on the page: it replaces whatever result was shown with the file's
name and reason, in the result's place and in the processing log (gr.Error, which marks every
output, is kept for the /analyse API, where a client wants an exception)."""

import json
import shutil
import tempfile
import uuid
from pathlib import Path

import gradio as gr

from ..errors import AudioError
from ..model import PROJECT_ROOT
from ..results import AUDIO_FILE, EMBEDDING_FILE, RESULT_FILE
from . import render, render_speakers
from .service import NO_AUDIO_CODE, NO_FILES, SHUTTING_DOWN_CODE, Outcome, RequestError, WebService
from .tables import BATCH_EMBEDDINGS, BATCH_TABLE, display_table
from .text import ZH, lang_of, reason_text, t, warning_text

EXAMPLE_AUDIO = PROJECT_ROOT / "assets" / "example.wav"
HIDDEN = gr.update(visible=False)
MB = 2**20  # bytes: Gradio's "100mb" upload limit is 100 * 2**20
WHOLE_MESSAGES = (NO_AUDIO_CODE, SHUTTING_DOWN_CODE, NO_FILES)  # codes whose text is the whole message (no file)


def empty_values(lang: str, headline: str | None = None, log: str = "") -> tuple:
    """The result view with nothing in it: the empty state, or a message in the result's place."""
    hidden = gr.update(value=None, visible=False)
    return (headline if headline is not None else t("empty_result", lang), "", hidden, hidden, hidden, hidden,
            hidden, hidden, hidden, hidden, gr.update(visible=False), log, None)


def result_values(data: dict, folder: Path | None, request_ms: float | None, lang: str) -> tuple:
    """The result view showing one result's JSON (a fresh result or a saved result.json)."""
    files = render.result_files(folder)
    points, segments = render.timeline_points(data, lang), render.segment_table(data, lang)
    speakers = render_speakers.speakers_html(data, lang)
    frame = points is not None
    log = render.process_log(data, folder, request_ms, lang)
    if speakers is not None:
        log += "\n" + render_speakers.log_line(data, lang)
    return (
        result_headline(data, lang), render.tendencies(data, lang),
        gr.update(value=render.score_labels(data), visible=True),
        gr.update(value=points, x=t("col_time", lang), y=t("col_score", lang), color=t("col_emotion", lang),
                  visible=frame) if frame else gr.update(value=None, visible=False),
        gr.update(value=segments, visible=segments is not None),
        gr.update(value=speakers, visible=speakers is not None),
        gr.update(value=files[AUDIO_FILE], visible=files[AUDIO_FILE] is not None),
        *(gr.update(value=files[n], visible=files[n] is not None, label=render.download_label(n, data, lang))
          for n in (RESULT_FILE, EMBEDDING_FILE, AUDIO_FILE)),
        gr.update(visible=True), log, data,
    )


def result_headline(data: dict, lang: str) -> str:
    """render.headline, with the speakers found ("2 speakers", "no speech") when they were asked for
    (a silent clip's headline says so already)."""
    found = None if render.is_silent(data) else render_speakers.count_text(data, lang)
    return render.headline(data, lang) + (f" · **{found}**" if found else "")


def history_label(data: dict, lang: str) -> str:
    """render.history_label, with the speakers found when they were asked for."""
    found = render_speakers.count_text(data, lang)
    return render.history_label(data, lang) + (f" · {found}" if found else "")


def error_text(outcome: Outcome, lang: str) -> str:
    """A failed request's message, once, in the page's language: the file's name and the reason
    for its code (the service's own message, in English)."""
    if outcome.code in WHOLE_MESSAGES:
        return t(outcome.code, lang)
    if lang == ZH and outcome.code:
        reason = reason_text(outcome.error, outcome.code, lang)
        return f"{outcome.name}：{reason}" if reason != outcome.error else outcome.error
    return outcome.error


def request_error_text(exc: RequestError, lang: str) -> str:
    """A refused request's message in the page's language, by its code."""
    if exc.code in WHOLE_MESSAGES:
        return t(exc.code, lang)
    return reason_text(str(exc), exc.code, lang)


def outcome_values(outcome: Outcome, lang: str) -> tuple:
    """The result view for one request's outcome: its result (the first channel's, when each
    channel was asked for: second_channel_values() has the next), or its reason."""
    if not outcome.ok:
        message = error_text(outcome, lang)
        return empty_values(lang, f"### {t('failed', lang, error=message)}", t("log_error", lang, error=message))
    values = list(result_values(outcome.result.to_dict(), outcome.folder, outcome.request_ms, lang))
    if len(outcome.channels) > 1:  # the log lists every channel's folder
        names = ", ".join(f"{r.input.channel} -> {f}" for r, f in outcome.channels)
        values[-2] += "\n" + t("log_channels", lang, channels=names)
    return tuple(values)


def second_channel_values(outcome: Outcome, lang: str) -> tuple:
    """The second view beside the first (channels="each"): its column shown with the second
    channel's whole result (headline, scores, timeline, audio, downloads, log), else hidden."""
    if not outcome.ok or len(outcome.channels) < 2:
        return (HIDDEN, *empty_values(lang))
    result, folder = outcome.channels[1]
    return (gr.update(visible=True), *result_values(result.to_dict(), folder, None, lang))


def too_large_text(refused: list[dict], lang: str) -> str:
    """Files kept back as over the upload limit, each with its size and the limit."""
    items = "; ".join(t("too_large", lang, name=f["name"], size=f["bytes"] / MB, limit=f["limit"] / MB)
                      for f in refused)
    return f"⚠️ {t('batch_too_large', lang, items=items)}"


def owner_of(token: str | None, request: gr.Request | None) -> str | None:
    """Whose results these are: the logged-in user, else this browser's token."""
    user = getattr(request, "username", None) if request is not None else None
    return f"user:{user}" if user else token


class Handlers:
    """Every event of the page, bound to one service."""

    def __init__(self, service: WebService):
        self.service = service

    def on_load(self, token: str | None, request: gr.Request):
        token = token or uuid.uuid4().hex  # 128 random bits, kept in this browser's storage
        lang = lang_of(request.headers.get("accept-language") if request is not None else None)
        return (token, lang, render.status_text(self.service.status(), lang),
                self.history_refresh(token, lang, request))

    def announce(self, file: str | None, mic: str | None, lang: str, request: gr.Request = None):
        """Before the request queues: what it is waiting for, with an estimate where one is honest.
        The ticket is the browser session's place in the line (one per session)."""
        path = file or mic
        if not path:
            return gr.update(), None
        ticket, ahead, wait_s, duration = self.service.announce(path, getattr(request, "session_hash", None))
        name = Path(path).name
        message = (t("queued", lang, name=name, ahead=ahead) if ahead else
                   t("analysing", lang, name=name, duration=duration) if duration else f"⏳ {name}")
        if wait_s is not None:
            message += t("estimate", lang, seconds=wait_s)
        return message, ticket

    def session_ended(self, request: gr.Request = None) -> None:
        """The tab closed: its place in the waiting line is freed."""
        self.service.session_ended(getattr(request, "session_hash", None))

    def analyse(self, file, mic, granularity, want_embedding, channels, token, lang, ticket, speakers=None,
                request: gr.Request = None):
        [outcome] = self.service.serve([file or mic], [granularity], [want_embedding],
                                       [owner_of(token, request)], [ticket], [channels], speakers=[speakers])
        return (*outcome_values(outcome, lang), render.status_text(self.service.status(), lang),
                *second_channel_values(outcome, lang))

    def analyse_many(self, files, mics, granularities, want_embeddings, channels, tokens, langs, tickets, speakers):
        outcomes = self.service.serve([f or m for f, m in zip(files, mics)], granularities, want_embeddings,
                                      tokens, tickets, channels, speakers=speakers)
        rows = [(*outcome_values(o, lang), render.status_text(self.service.status(), lang),
                 *second_channel_values(o, lang)) for o, lang in zip(outcomes, langs)]
        return tuple(list(col) for col in zip(*rows))

    def analyse_api(self, file, granularity, want_embedding, channels="mix", speakers="off") -> dict:
        [outcome] = self.service.serve([file], [granularity], [want_embedding], channels=[channels],
                                       speakers=[speakers])
        if not outcome.ok:
            raise gr.Error(outcome.error, print_exception=False)
        return outcome.to_api()

    def analyse_api_many(self, files, granularities, want_embeddings, channels, speakers):
        return ([o.to_api() for o in self.service.serve(files, granularities, want_embeddings, channels=channels,
                                                        speakers=speakers)],)

    def cleared(self, lang: str):
        """A new input replaced the other one: it and the old result go (the second channel's too)."""
        return (None, *empty_values(lang), HIDDEN)

    def cleared_view(self, lang: str):
        return (*empty_values(lang), HIDDEN)

    def example(self, lang: str):
        """The shipped example, copied into the temp dir so it is served like any upload; the
        result's place says it is loaded and what to press."""
        if not EXAMPLE_AUDIO.is_file():
            raise gr.Error(t("example_missing", lang), print_exception=False)
        dest = Path(tempfile.gettempdir()) / "emotion-example" / EXAMPLE_AUDIO.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not dest.is_file() or dest.stat().st_size != EXAMPLE_AUDIO.stat().st_size:
            shutil.copyfile(EXAMPLE_AUDIO, dest)
        return (str(dest), None, *empty_values(lang, t("example_loaded", lang, name=dest.name)), HIDDEN)

    def batch(self, files, want_embedding, token, lang, refused=None, request: gr.Request = None,
              progress=gr.Progress()):
        """The batch's summary, CSV, zip and table; `refused`: files the browser kept back as over the
        upload limit (batch_too_large), named again beside the result."""
        paths = [f if isinstance(f, str) else getattr(f, "name", str(f)) for f in (files or [])]
        if not paths and refused:
            return self.batch_too_large_values(refused, lang)
        if paths:
            progress(0, desc=t("batch_start", lang, name=Path(paths[0]).name))

        def on_progress(done: int, total: int, name: str, eta_s: float | None) -> None:
            desc = t("batch_progress", lang, done=done, total=total, name=name)
            if eta_s and eta_s >= 1:
                desc += t("batch_eta", lang, seconds=eta_s)
            progress((done, total), desc=desc, unit="files")

        try:
            out = self.service.batch(paths, want_embedding, owner_of(token, request), on_progress)
        except RequestError as exc:
            message = request_error_text(exc, lang)
            return f"### {t('failed', lang, error=message)}", gr.update(visible=False), gr.update(visible=False), None
        summary = t("batch_summary", lang, total=len(out.rows), ok=len(out.rows) - len(out.failed),
                    failed=len(out.failed), path=out.folder / BATCH_TABLE)
        reasons = [reason_text(res.reason, res.code, lang) if isinstance(res, AudioError) else row.get("error")
                   for row, res in zip(out.rows, out.results)]
        notes = [None if isinstance(res, AudioError) else "; ".join(warning_text(w, lang) for w in res.warnings)
                 for res in out.results]
        failed = [f"{row['id']} ({why})" for row, why in zip(out.rows, reasons) if why]
        if failed:
            summary += "\n\n" + t("batch_failed", lang, items="; ".join(failed))
        if refused:
            summary += "\n\n" + too_large_text(refused, lang)
        zip_path = out.folder / BATCH_EMBEDDINGS
        return (summary, gr.update(value=str(out.folder / BATCH_TABLE), visible=True),
                gr.update(value=str(zip_path), visible=zip_path.is_file()),
                display_table(out.rows, self.service.labels, lang, reasons, notes))

    def history_refresh(self, token, lang, request: gr.Request):
        entries = self.service.history(owner_of(token, request))
        choices = [(history_label(data, lang), name) for name, data in entries]
        return gr.update(choices=choices, value=choices[0][1] if choices else None)

    def history_open(self, name, token, lang, request: gr.Request):
        try:
            data, folder = self.service.reopen(name, owner_of(token, request))
        except RequestError:
            message = t("choose_result", lang) if not name else t("no_such_result", lang, name=name)
            return empty_values(lang, f"### {t('failed', lang, error=message)}")
        return result_values(data, folder, None, lang)

    def history_show(self, name, token, lang, request: gr.Request):
        """The entry chosen in the list, shown at once (none chosen: the empty view)."""
        return self.history_open(name, token, lang, request) if name else empty_values(lang)

    def batch_too_large(self, info: str, request: gr.Request):
        """Files the browser kept out of a batch as over the upload limit (page.UPLOAD_GUARD_JS):
        each one's name and the reason in the batch's summary, at once and again with its result."""
        lang = lang_of(request.headers.get("accept-language") if request is not None else None)
        try:
            given = json.loads(info)
            refused = [{"name": Path(str(f["name"])).name, "bytes": float(f["bytes"]), "limit": float(given["limit"])}
                       for f in given["files"]]
            left = int(given.get("left", 0))
        except (ValueError, KeyError, TypeError):
            return tuple(gr.skip() for _ in range(5))
        if not refused:  # a new choice within the limit: those refused before are forgotten, and said no more
            return ("", *(gr.skip() for _ in range(3)), [])
        values = self.batch_too_large_values(refused, lang)
        if left:  # a drop is all or nothing: the files under the limit were not added either
            values = (values[0] + "\n\n" + t("batch_none_added", lang), *values[1:])
        return (*values, refused)

    @staticmethod
    def batch_too_large_values(refused: list[dict], lang: str) -> tuple:
        return (f"### {too_large_text(refused, lang)}", gr.update(visible=False), gr.update(visible=False), None)

    def too_large(self, info: str, request: gr.Request):
        """A file the browser refused as over the upload limit (page.UPLOAD_GUARD_JS): its name and
        the reason in the result's place and the log, as for any bad file; the old input goes."""
        lang = lang_of(request.headers.get("accept-language") if request is not None else None)
        try:
            file = json.loads(info)
            message = t("too_large", lang, name=Path(str(file["name"])).name, size=float(file["bytes"]) / MB,
                        limit=float(file["limit"]) / MB)
        except (ValueError, KeyError, TypeError):
            return gr.skip(), gr.skip(), *(gr.skip() for _ in empty_values(lang)), gr.skip()
        return (None, None, *empty_values(lang, f"### {t('failed', lang, error=message)}",
                                         t("log_error", lang, error=message)), HIDDEN)
