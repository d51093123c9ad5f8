"""What the web app does for a request, without Gradio: the page (emotion.app.page) only lays
out and wires; tests call this directly.

    service = WebService(recognizer, "outputs")
    [outcome] = service.serve(["clip.wav"], ["utterance"], [False], owners=["browser token"])
    outcome.result, outcome.folder, outcome.error        # EmotionResult and its saved folder, or why not
    [talk] = service.serve(["call.wav"], ["utterance"], [False], speakers=["auto"])
    talk.result.speakers                                 # who felt what (emotion.speakers), saved in result.json

Policy kept here: requests of one granularity analysed together (padded batches where the device
makes that pay); every outcome saved as a result folder, under its owner's own folder (a browser
or a logged-in user) so that each sees only its own history; a bad file costs its own request
only; once the service is closed (SIGTERM) new requests are refused while running ones finish;
one log line per request (file, duration, emotion, time; never audio content). A request with
speakers (SPEAKER_CHOICES but "off") is analysed alone by emotion.speakers.recognize_speakers,
with one Diarizer loaded on first use and kept for the server's life.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .. import results as folders
from ..decode import CHANNEL_CHOICES, probe_seconds
from ..defaults import DEFAULT_MAX_SPEAKERS, GRACE_S, GRANULARITIES
from ..engine import BusyError
from ..errors import AudioError, EmotionError
from ..files import write_folder
from ..labels import label_keys
from ..results import USERS  # output_root/users/<owner digest>/<result folder>: one per browser or login
from ..results import EmotionResult, next_folder, write_result
from .service_state import Drain, SpeedMeter, WaitingLine, rss_mb
from .tables import batch_files, batch_rows

log = logging.getLogger(__name__)

SHUTTING_DOWN = "the server is shutting down: try again in a moment"
NO_AUDIO = "no audio: upload a file, record, or load the example"
NOT_ANALYSED = "the clip could not be analysed"
NO_SPEAKERS_PACKAGE = ("finding speakers needs the speakers extra (pip install 'emotion[speakers]'), "
                       "which this server does not have")
SPEAKERS_OFF = "off"
# The page's speaker choices: off (one result for the whole clip), auto (estimated, at most
# DEFAULT_MAX_SPEAKERS), or a number given.
SPEAKER_CHOICES = (SPEAKERS_OFF, "auto", *(str(n) for n in range(2, DEFAULT_MAX_SPEAKERS + 1)))
# Why a request failed beyond the library's reasons (emotion.errors.REASONS): Outcome.code,
# AudioError.code of a batch's row, RequestError.code; the page words each (text.json reason_<code>).
BUSY, NOT_ANALYSED_CODE, NOT_SAVED = "busy", "not_analysed", "not_saved"
NO_AUDIO_CODE, SHUTTING_DOWN_CODE, NO_FILES = "no_audio", "shutting_down", "no_files"
NO_SPEAKERS = "no_speakers"


class RequestError(EmotionError):
    """A request that cannot be served; the message is for the user, `code` says which kind."""

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        self.code = code


@dataclass
class Outcome:
    """One request's end: a saved result, or the reason there is none."""

    name: str  # the file's name
    result: EmotionResult | None = None
    folder: Path | None = None  # where the result was saved
    request_ms: float = 0.0
    error: str | None = None  # "<name>: <reason>", for the user
    code: str | None = None  # why not: an emotion.errors.REASONS code, or one of the service's (BUSY, ...)
    channels: list[tuple[EmotionResult, Path]] = field(default_factory=list)  # channels="each": every one


    @property
    def ok(self) -> bool:
        return self.error is None

    def to_api(self) -> dict:
        """The JSON the /analyse endpoint answers with."""
        if not self.ok:
            return {"error": self.error}
        out = {**self.result.to_dict(), "saved": self.folder.name}
        if len(self.channels) > 1:
            out["channels"] = [{**r.to_dict(), "saved": f.name} for r, f in self.channels]
        return out


@dataclass
class BatchOutcome:
    rows: list[dict]  # one per file, in the `emotion batch` row shape
    results: list  # EmotionResult or AudioError per file
    folder: Path  # the saved CSV (and embeddings zip)
    files: list[Path]
    failed: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)


def owner_digest(owner: str) -> str:
    """The folder name of an owner's results: a digest, so the folder does not reveal the token."""
    return hashlib.sha256(owner.encode("utf-8")).hexdigest()[:32]


SECRET_FILE = ".owner-secret"


def owner_secret(output_root: str | os.PathLike) -> str:
    """The key browsers keep their owner token under, made once per output folder (so a browser
    keeps its history across restarts) and readable by this user only."""
    import secrets

    from ..files import atomic_file

    path = Path(output_root) / SECRET_FILE
    try:
        return path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        secret = secrets.token_urlsafe(24)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path, "w", encoding="ascii") as fh:
            os.fchmod(fh.fileno(), 0o600)
            fh.write(secret)
        return secret



class WebService:
    """One loaded recognizer serving the page's requests; results are saved under output_root.
    live: the Live tab's recognizer (default: the same); diarizer: an emotion.speakers.Diarizer to
    share (default: one loaded on the first request with speakers)."""

    def __init__(self, recognizer, output_root: str | Path, live=None, diarizer=None):
        self.recognizer = recognizer
        self.live = live or recognizer  # the Live tab's (Settings.live_recognizer)
        self.output_root = Path(output_root).resolve()
        self.output_root.mkdir(parents=True, exist_ok=True)
        self.drain = Drain()
        self.speed = SpeedMeter()
        self.line = WaitingLine()
        self.labels = label_keys(recognizer.labels)
        self._diarizer = diarizer  # emotion.speakers.Diarizer; None: loaded by the first request with speakers
        self._diarizer_lock = threading.Lock()

    def status(self) -> dict:
        """The model in use and the memory it takes: name, device, dtype, rss_mb (and gpu_mb)."""
        info = {**self.recognizer.model_info().to_dict(), "rss_mb": rss_mb()}
        if str(info["device"]).startswith("cuda"):
            import torch

            info["gpu_mb"] = torch.cuda.memory_allocated() / 2**20
        return info

    def results_root(self, owner: str | None) -> Path:
        """Where an owner's results go (no owner: the output folder itself, as for API calls)."""
        return self.output_root / USERS / owner_digest(owner) if owner else self.output_root

    def _guarded(self, work: Callable, refused):
        if not self.drain.enter():
            return refused()
        try:
            return work()
        finally:
            self.drain.leave()

    # -- one clip per request (several when requests are coalesced) --------------------------

    def serve(self, paths: list, granularities: list[str], embeddings: list[bool],
              owners: list[str | None] | None = None, tickets: list[str | None] | None = None,
              channels: list[str] | None = None, warnings: list[list[str]] | None = None,
              speakers: list[str | None] | None = None) -> list[Outcome]:
        """Each request's Outcome. Requests of one granularity and channel choice are analysed
        together; tickets are announce()'s, so the waiting line forgets them. speakers: each
        request's SPEAKER_CHOICES entry (None or "off": none)."""
        self.line.started(list(tickets or []))
        names = [Path(str(p)).name if p else "" for p in paths]
        owners = owners or [None] * len(paths)
        channels = [c or "mix" for c in channels] if channels else ["mix"] * len(paths)
        warnings = warnings or [[]] * len(paths)
        speakers = [s or SPEAKERS_OFF for s in speakers] if speakers else [SPEAKERS_OFF] * len(paths)
        return self._guarded(lambda: self._serve(paths, granularities, embeddings, owners, names, channels, warnings,
                                                 speakers),
                             lambda: [Outcome(n, error=SHUTTING_DOWN, code=SHUTTING_DOWN_CODE) for n in names])

    def _serve(self, paths, granularities, embeddings, owners, names, channels, warnings, speakers) -> list[Outcome]:
        start = time.perf_counter()
        outcomes: list[Outcome | None] = [None] * len(paths)
        groups: dict[tuple[str, str], list[int]] = {}
        for i, (path, gran, chosen, who) in enumerate(zip(paths, granularities, channels, speakers)):
            if not path:
                outcomes[i] = Outcome(names[i], error=NO_AUDIO, code=NO_AUDIO_CODE)
            elif gran not in GRANULARITIES or chosen not in CHANNEL_CHOICES:
                outcomes[i] = Outcome(names[i], error=f"unknown granularity {gran!r} or channels {chosen!r}")
            elif who not in SPEAKER_CHOICES:
                outcomes[i] = Outcome(names[i], error=f"{names[i]}: speakers must be one of "
                                                      f"{', '.join(SPEAKER_CHOICES)}, not {who!r}")
            elif who != SPEAKERS_OFF:  # analysed alone: its turns are a batch of their own
                res = self._recognize_speakers(paths[i], gran, chosen, who)
                outcomes[i] = self._save(names[i], res, bool(embeddings[i]), owners[i], start, warnings[i])
            else:
                groups.setdefault((gran, chosen), []).append(i)
        for (gran, chosen), idx in groups.items():
            for i, res in zip(idx, self._recognize([paths[i] for i in idx], gran, chosen)):
                outcomes[i] = self._save(names[i], res, bool(embeddings[i]), owners[i], start, warnings[i])
        for o in outcomes:
            self._log(o)
        return outcomes

    def _recognize(self, paths: list, granularity: str, channels: str = "mix", on_result=None) -> list:
        """recognize_many's outcomes, each failure as an AudioError whose reason is for the user
        (a busy device says so; any other failure is logged and shown as NOT_ANALYSED)."""
        out = self.recognizer.recognize_many(paths, granularity=granularity, channels=channels, on_result=on_result)
        for i, res in enumerate(out):
            if isinstance(res, EmotionError) and not isinstance(res, AudioError):
                if not isinstance(res, BusyError):
                    log.error("analysing %s failed: %s", Path(str(paths[i])).name, res)
                busy = isinstance(res, BusyError)
                out[i] = AudioError(Path(str(paths[i])).name, str(res) if busy else NOT_ANALYSED,
                                    BUSY if busy else NOT_ANALYSED_CODE)
        return out

    def diarizer(self):
        """The server's one Diarizer (the VAD and the speaker encoder), loaded on first use."""
        with self._diarizer_lock:
            if self._diarizer is None:
                from ..speakers import Diarizer

                self._diarizer = Diarizer()
            return self._diarizer

    def _recognize_speakers(self, path, granularity: str, channels: str, speakers: str):
        """recognize_speakers' whole-clip result (its `speakers` section set: who felt what), or an
        AudioError whose reason is for the user. channels="each": one speaker per channel."""
        name = Path(str(path)).name
        try:
            from ..speakers import recognize_speakers

            count = speakers if speakers == "auto" else int(speakers)
            analysis = recognize_speakers(self.recognizer, path, count, DEFAULT_MAX_SPEAKERS, channels=channels,
                                          granularity=granularity, diarizer=self.diarizer())
        except ImportError as exc:
            log.error("speakers are not available: %s", exc)
            return AudioError(name, NO_SPEAKERS_PACKAGE, NO_SPEAKERS)
        except AudioError as exc:
            return exc
        except BusyError as exc:
            return AudioError(name, str(exc), BUSY)
        except Exception:  # a fault in the VAD or the speaker encoder costs this request, not the page
            log.exception("analysing %s by speaker failed", name)
            return AudioError(name, NOT_ANALYSED, NOT_ANALYSED_CODE)
        return analysis.result

    def _save(self, name: str, res, embedding: bool, owner: str | None, start: float,
              warnings: list[str] = ()) -> Outcome:
        """Save a request's result (one folder per channel when each was asked for), with the
        caller's warnings added to the result's own."""
        if isinstance(res, AudioError):
            return Outcome(name, error=f"{res.name}: {res.reason}", code=res.code)
        results = res if isinstance(res, list) else [res]
        for one in results:
            one.warnings.extend(warnings)
        saved = []
        for one in results:
            # the upload's temporary path means nothing to its owner (its name is input.name), and a
            # "path" in the JSON the page returns is taken for a file to fetch by Gradio's clients
            one.input.path = None
        try:
            for one in results:
                saved.append((one, write_result(one, self.results_root(owner), embedding=embedding)))
        except OSError as exc:
            log.error("could not save a result: %s", exc)
            return Outcome(name, error=f"{name}: the result could not be saved ({exc.strerror or 'write error'})",
                           code=NOT_SAVED)
        elapsed = time.perf_counter() - start
        self.speed.add(results[0].input.duration_s * len(results), elapsed)
        return Outcome(name, saved[0][0], saved[0][1], elapsed * 1000, channels=saved)

    @staticmethod
    def _log(o: Outcome) -> None:
        if o.ok:
            log.info("request: %s, %.2f s of audio, %s %.3f, %.0f ms", o.name, o.result.input.duration_s,
                     o.result.emotion, o.result.confidence, o.request_ms)
        else:
            log.info("request: %s failed: %s", o.name, o.error)

    def announce(self, path: str, session: str | None = None) -> tuple[str, int, float | None, float | None]:
        """A request about to queue: (ticket for serve(), requests ahead of it, estimated seconds
        until its result at the speed measured so far or None, its audio's declared length).
        session: the browser session's key; a session holds one place in the line."""
        duration = probe_seconds(path)
        ticket, ahead, ahead_s = self.line.join(duration or 0.0, session)
        wait = self.speed.seconds_for(ahead_s + (duration or 0.0)) if duration else None
        return ticket, ahead, wait, duration

    def session_ended(self, session: str | None) -> None:
        """A browser session ended (its tab closed): a request it announced will not start."""
        self.line.leave(session)

    # -- many files, one table ------------------------------------------------------------------

    def batch(self, paths: list[str], embedding: bool, owner: str | None = None,
              on_progress: Callable[[int, int, str, float | None], None] | None = None) -> BatchOutcome:
        """Analyse `paths` one model batch at a time into one table (saved as the batch command's
        CSV, with an embeddings zip if asked). on_progress(done, total, name, eta_s) after each file."""
        if not paths:
            raise RequestError("no files: choose one or more audio files", NO_FILES)

        def refused():
            raise RequestError(SHUTTING_DOWN, SHUTTING_DOWN_CODE)

        return self._guarded(lambda: self._batch(paths, embedding, owner, on_progress), refused)

    def _batch(self, paths, embedding, owner, on_progress) -> BatchOutcome:
        start, done = time.perf_counter(), [0]

        def tick(i: int, _res) -> None:
            done[0] += 1
            elapsed = time.perf_counter() - start
            eta = elapsed / done[0] * (len(paths) - done[0]) if done[0] < len(paths) else 0.0
            if on_progress:
                on_progress(done[0], len(paths), Path(paths[i]).name, eta)

        results = self._recognize(paths, "utterance", on_result=tick)
        rows = batch_rows(paths, results, self.labels, embedding)
        files = batch_files(rows, self.labels, results, embedding)
        try:
            folder = write_folder(next_folder(self.results_root(owner)), files)
        except OSError as exc:
            raise RequestError(f"the results could not be saved: {exc.strerror}", NOT_SAVED) from None
        failed = [(r["id"], r["error"]) for r in rows if r.get("error")]
        log.info("batch: %d files, %d failed, %.1f s", len(paths), len(failed), time.perf_counter() - start)
        return BatchOutcome(rows, results, folder, [folder / name for name in files], failed)

    # -- earlier results ------------------------------------------------------------------------

    def history(self, owner: str | None) -> list[tuple[str, dict]]:
        """An owner's saved results, newest first: (name, result JSON)."""
        root = self.results_root(owner)
        entries = []
        for name in folders.list_results(root):
            try:
                entries.append((name, folders.read_result(root, name)[0]))
            except folders.NoSuchResult:
                continue
        return entries

    def reopen(self, name: str | None, owner: str | None) -> tuple[dict, Path]:
        """One of the owner's results: its JSON and its folder."""
        try:
            return folders.read_result(self.results_root(owner), name)
        except folders.NoSuchResult as exc:
            raise RequestError(str(exc)) from None

    def close(self, grace_s: float = GRACE_S) -> bool:
        """Refuse new requests; True when those running finished within grace_s."""
        return self.drain.close(grace_s)
