"""What the web app does for a request, without Gradio: the page (emotion.app.page) only lays
out and wires; tests call this directly.

    service = WebService(recognizer, "outputs")
    [outcome] = service.serve(["clip.wav"], ["utterance"], [False])
    outcome.result, outcome.folder, outcome.error        # EmotionResult and its saved folder, or why not

Policy kept here: requests of one granularity analysed together (padded batches where the device
makes that pay); every outcome saved as a result folder; a bad file costs its own request only;
once the service is closed (SIGTERM) new requests are refused while running ones finish.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..audio import AudioError
from ..errors import EmotionError
from ..labels import label_keys
from ..recognizer import GRANULARITIES, BusyError
from ..files import write_folder
from ..results import EmotionResult, next_folder, write_result
from . import outputs
from .tables import batch_files, batch_table

log = logging.getLogger(__name__)

DEFAULT_QUEUE_SIZE = 16  # requests that may wait for the model
GRACE_S = 30.0  # seconds a running request may take to finish once the server is stopping
SHUTTING_DOWN = "the server is shutting down: try again in a moment"
NO_AUDIO = "no audio: upload a file, record, or load the example"
NOT_ANALYSED = "the clip could not be analysed"


class RequestError(EmotionError):
    """A request that cannot be served; the message is for the user."""


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


@dataclass
class Outcome:
    """One request's end: a saved result, or the reason there is none."""

    name: str  # the file's name
    result: EmotionResult | None = None
    folder: Path | None = None  # where the result was saved
    request_ms: float = 0.0
    error: str | None = None  # "<name>: <reason>", for the user

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_api(self) -> dict:
        """The JSON the /analyse endpoint answers with."""
        if not self.ok:
            return {"error": self.error}
        return {**self.result.to_dict(), "saved": self.folder.name}


@dataclass
class BatchOutcome:
    rows: list[dict]  # one per file, in the batch command's row shape
    columns: list[str]
    folder: Path  # the saved CSV (and embeddings zip)
    files: list[Path]
    failed: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)

    @property
    def summary(self) -> str:
        return f"{len(self.rows) - len(self.failed)} analysed, {len(self.failed)} failed · saved in {self.folder.name}"


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


class WebService:
    """One loaded recognizer serving the page's requests; results are saved under output_root."""

    def __init__(self, recognizer, output_root: str | Path):
        self.recognizer = recognizer
        self.output_root = Path(output_root).resolve()
        self.output_root.mkdir(parents=True, exist_ok=True)
        self.drain = Drain()

    def status(self) -> dict:
        """The model in use and the memory it takes: name, device, dtype, rss_mb (and gpu_mb)."""
        info = {**self.recognizer.model_info(), "rss_mb": rss_mb()}
        if str(info["device"]).startswith("cuda"):
            import torch

            info["gpu_mb"] = torch.cuda.memory_allocated() / 2**20
        return info

    def _guarded(self, work: Callable, refused):
        if not self.drain.enter():
            return refused()
        try:
            return work()
        finally:
            self.drain.leave()

    # -- one clip per request (several when requests are coalesced) --------------------------

    def serve(self, paths: list, granularities: list[str], embeddings: list[bool]) -> list[Outcome]:
        """Each request's Outcome. Requests of one granularity are analysed together."""
        names = [Path(str(p)).name if p else "" for p in paths]
        return self._guarded(lambda: self._serve(paths, granularities, embeddings, names),
                             lambda: [Outcome(n, error=SHUTTING_DOWN) for n in names])

    def _serve(self, paths, granularities, embeddings, names) -> list[Outcome]:
        start = time.perf_counter()
        outcomes: list[Outcome | None] = [None] * len(paths)
        by_granularity: dict[str, list[int]] = {}
        for i, (path, gran) in enumerate(zip(paths, granularities)):
            if not path:
                outcomes[i] = Outcome(names[i], error=NO_AUDIO)
            elif gran not in GRANULARITIES:
                outcomes[i] = Outcome(names[i], error=f"unknown granularity {gran!r}")
            else:
                by_granularity.setdefault(gran, []).append(i)
        for gran, idx in by_granularity.items():
            for i, res in zip(idx, self._recognize([paths[i] for i in idx], gran)):
                outcomes[i] = self._save(names[i], res, bool(embeddings[i]), start)
        return outcomes

    def _recognize(self, paths: list, granularity: str) -> list:
        try:
            return self.recognizer.recognize_many(paths, granularity=granularity)
        except BusyError as exc:
            return [str(exc)] * len(paths)
        except Exception:
            log.exception("recognition failed")
            return [NOT_ANALYSED] * len(paths)

    def _save(self, name: str, res, embedding: bool, start: float) -> Outcome:
        if isinstance(res, AudioError):
            return Outcome(name, error=f"{res.name}: {res.reason}")
        if not isinstance(res, EmotionResult):
            return Outcome(name, error=f"{name}: {res or NOT_ANALYSED}")
        try:
            folder = write_result(res, self.output_root, embedding=embedding)
        except OSError as exc:
            log.error("could not save a result: %s", exc)
            return Outcome(name, error=f"{name}: the result could not be saved ({exc.strerror or 'write error'})")
        return Outcome(name, res, folder, (time.perf_counter() - start) * 1000)

    # -- many files, one table ------------------------------------------------------------------

    def batch(self, paths: list[str], granularity: str, embedding: bool,
              on_result: Callable[[int, object], None] | None = None) -> BatchOutcome:
        """Analyse `paths` into one table (saved as CSV, with an embeddings zip if asked)."""
        if not paths:
            raise RequestError("no files: choose one or more audio files")
        if granularity not in GRANULARITIES:
            raise RequestError(f"unknown granularity {granularity!r}")

        def refused():
            raise RequestError(SHUTTING_DOWN)

        return self._guarded(lambda: self._batch(paths, granularity, embedding, on_result), refused)

    def _batch(self, paths, granularity, embedding, on_result) -> BatchOutcome:
        try:
            results = self.recognizer.recognize_many(paths, granularity=granularity, on_result=on_result)
        except BusyError as exc:
            raise RequestError(str(exc)) from None
        except Exception:
            log.exception("batch failed")
            raise RequestError("the batch could not be analysed") from None
        keys = label_keys(self.recognizer.model.labels)
        rows, columns = batch_table(paths, results, keys)
        files = batch_files(rows, columns, results, embedding)
        try:
            folder = write_folder(next_folder(self.output_root), files)
        except OSError as exc:
            raise RequestError(f"the results could not be saved: {exc.strerror}") from None
        failed = [(r["path"], r["error"]) for r in rows if r.get("error")]
        return BatchOutcome(rows, columns, folder, [folder / name for name in files], failed)

    # -- earlier results ------------------------------------------------------------------------

    def history(self) -> list[str]:
        return outputs.list_results(self.output_root)

    def reopen(self, name: str | None) -> tuple[dict, Path]:
        """An earlier result's JSON and its folder."""
        try:
            return outputs.read_result(self.output_root, name)
        except outputs.NoSuchResult as exc:
            raise RequestError(str(exc)) from None

    def close(self, grace_s: float = GRACE_S) -> bool:
        """Refuse new requests; True when those running finished within grace_s."""
        return self.drain.close(grace_s)
