"""Load and soak helpers: the web app as a subprocess, simulated users, memory and handle probes.

    with AppProcess(model_dir, workdir, queue_size=4) as app:   # python app.py ... until "Ready: URL"
        records = run_users(app.url, [[clip, ...], ...])          # one gradio_client.Client per user
        app.rss_kb(), app.fd_count(), app.workers()              # from /proc

A launcher other than app.py (tests/app_variant.py: a gate, a deliberate leak) can be given with
`launcher=[...]`; it takes app.py's arguments.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.ports import free_port  # noqa: E402
from tests.media import write_wav

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 120


# ---------------------------------------------------------------- /proc probes


def proc_status_kb(pid: int, key: str = "VmRSS") -> int:
    """A field of /proc/PID/status in kB (VmRSS: resident memory, shared pages counted)."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def fd_kinds(pid: int) -> collections.Counter:
    """The process's open file descriptors by kind: socket, pipe, file, other."""
    kinds: collections.Counter = collections.Counter()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        kind = target.split(":", 1)[0] if ":" in target and not target.startswith("/") else "file"
        kinds[kind if kind in ("socket", "pipe", "file") else "other"] += 1
    return kinds


def descendants(pid: int) -> list[tuple[int, str]]:
    """(pid, role) of every process below pid (children, grandchildren, ...). The role comes from
    the command line: multiprocessing's "forkserver" and "resource_tracker", and "decoder worker"
    for a process forked by the forkserver (IsolatedDecoder's workers)."""
    parents: dict[int, list[int]] = collections.defaultdict(list)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        parents[int(stat[stat.rindex(")") + 2 :].split()[1])].append(int(entry))

    def role(child: int, parent_role: str) -> str:
        try:
            with open(f"/proc/{child}/cmdline", "rb") as fh:
                cmd = fh.read().decode(errors="replace")
        except OSError:
            return "gone"
        if parent_role == "forkserver":  # forked from it, so its command line is the forkserver's
            return "decoder worker"
        for known in ("forkserver", "resource_tracker"):
            if known in cmd:
                return known
        return "child"

    out, todo = [], [(pid, "server")]
    while todo:
        parent, parent_role = todo.pop()
        for child in parents.get(parent, []):
            r = role(child, parent_role)
            out.append((child, r))
            todo.append((child, r))
    return out


# ---------------------------------------------------------------- the app as a subprocess


class AppProcess:
    """`python app.py --model-dir M --port P --output-dir O [extra]`, started and waited for.

    stdout and stderr are drained in a thread (a full pipe would stall the server's logging);
    the last lines are kept for error messages."""

    def __init__(self, model_dir: Path, workdir: Path, queue_size: int | None = None,
                 extra: list[str] = (), launcher: list[str] | None = None, env: dict | None = None):
        self.output_dir = Path(workdir) / "outputs"
        self.port = free_port()
        args = ["--model-dir", str(model_dir), "--port", str(self.port), "--output-dir", str(self.output_dir)]
        if queue_size is not None:
            args += ["--queue-size", str(queue_size)]
        self.cmd = [sys.executable, *(launcher or ["app.py"]), *args, *extra]
        self.env = {**os.environ, "GRADIO_TEMP_DIR": str(Path(workdir) / "gradio-tmp"), "EMOTION_AUTH": "",
                    "GRADIO_ANALYTICS_ENABLED": "False", **(env or {})}
        self.lines: collections.deque[str] = collections.deque(maxlen=200)
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def __enter__(self) -> "AppProcess":
        self.proc = subprocess.Popen(self.cmd, cwd=ROOT, env=self.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        ready = threading.Event()

        def drain():
            for line in self.proc.stdout:
                self.lines.append(line)
                if line.startswith("Ready: "):
                    self.url = line.split()[1]
                    ready.set()
            ready.set()  # the process ended

        threading.Thread(target=drain, daemon=True).start()
        if not ready.wait(READY_TIMEOUT_S) or not self.url:
            self.stop()
            raise RuntimeError(f"the app did not become ready:\n{self.tail()}")
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None

    def tail(self, n: int = 40) -> str:
        return "".join(list(self.lines)[-n:])

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_kb(self) -> int:
        return proc_status_kb(self.pid)

    def fd_count(self) -> int:
        return fd_count(self.pid)

    def workers(self) -> dict[int, tuple[str, int]]:
        """The app's descendant processes (the decoder's forkserver and worker): pid -> (role, RSS kB)."""
        out = {}
        for pid, name in descendants(self.pid):
            try:
                out[pid] = (name, proc_status_kb(pid))
            except (OSError, KeyError):
                pass
        return out

    def results(self) -> list[Path]:
        """Complete result folders (a valid manifest, every listed file whole)."""
        from emotion.files import is_complete

        if not self.output_dir.is_dir():
            return []
        return [p for p in self.output_dir.iterdir() if not p.name.startswith(".") and is_complete(p)]


# ---------------------------------------------------------------- clips and users


def make_clips(folder: Path, n: int, seconds: tuple[float, float] = (0.6, 2.0),
               rates: tuple[int, ...] = (8000, 16000, 22050, 44100, 48000)) -> list[Path]:
    """n distinct short WAV clips: different seeds, lengths and sample rates."""
    folder.mkdir(parents=True, exist_ok=True)
    lo, hi = seconds
    return [write_wav(folder / f"clip_{i:03d}.wav", lo + (hi - lo) * ((i * 37) % n) / max(n - 1, 1),
                      rates[i % len(rates)], seed=1000 + i) for i in range(n)]


@dataclass
class Record:
    user: int
    index: int
    clip: str
    latency_s: float
    result: dict | None = None
    error: str | None = None


def user_loop(url: str, user: int, clips: list[Path], api_name: str = "/analyse",
              timeout_s: float = 120) -> list[Record]:
    """One simulated user: one Client, its clips one after another (bounded: len(clips) requests)."""
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False)
    records = []
    try:
        for i, clip in enumerate(clips):
            start = time.perf_counter()
            try:
                job = client.submit(handle_file(str(clip)), "utterance", False, api_name=api_name)
                result = job.result(timeout=timeout_s)
                err = result.get("error") if isinstance(result, dict) else "not a dict"
                records.append(Record(user, i, Path(clip).name, time.perf_counter() - start,
                                      result if not err else None, err))
            except Exception as exc:  # noqa: BLE001 - a failure is a record, not a crash of the loop
                records.append(Record(user, i, Path(clip).name, time.perf_counter() - start,
                                      error=f"{type(exc).__name__}: {exc}"))
    finally:
        client.close()
    return records


def run_users(url: str, clips_per_user: list[list[Path]], **kwargs) -> tuple[list[Record], float]:
    """Every user in its own thread at once; (all records, wall seconds)."""
    out: list[list[Record]] = [[] for _ in clips_per_user]

    def run(u):
        out[u] = user_loop(url, u, clips_per_user[u], **kwargs)

    threads = [threading.Thread(target=run, args=(u,), daemon=True) for u in range(len(clips_per_user))]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [r for rs in out for r in rs], time.perf_counter() - start


def percentile(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else float("nan")


def latency_summary(records: list[Record], wall_s: float) -> str:
    lat = [r.latency_s for r in records if r.error is None]
    return (f"{len(records)} requests in {wall_s:.1f} s = {len(records) / wall_s:.1f} req/s; "
            f"latency p50 {percentile(lat, 50) * 1000:.0f} ms, p95 {percentile(lat, 95) * 1000:.0f} ms, "
            f"p99 {percentile(lat, 99) * 1000:.0f} ms, max {max(lat, default=float('nan')) * 1000:.0f} ms")


# ---------------------------------------------------------------- soak: memory and handles


@dataclass
class Sample:
    requests: int
    rss_kb: int
    fds: int
    kinds: dict[str, int] = field(default_factory=dict)
    workers: dict[int, tuple[str, int]] = field(default_factory=dict)


def sample(app: AppProcess, requests: int) -> Sample:
    kinds = fd_kinds(app.pid)
    return Sample(requests, app.rss_kb(), sum(kinds.values()), dict(kinds), app.workers())


def soak(app: AppProcess, clips: list[Path], users: int, warmup: int, requests: int,
         every: int | None = None) -> tuple[list[Sample], list[Record]]:
    """warmup requests, then `requests` more, from `users` users cycling over `clips`; the server is
    sampled (RSS, open fds, descendants' RSS) after the warm-up and after every `every` requests,
    each time with no request in flight and the users' clients still connected."""
    from gradio_client import Client, handle_file

    clients = [Client(app.url, verbose=False) for _ in range(users)]
    records: list[Record] = []
    done = [0]

    def burst(n: int) -> None:
        """n requests spread over the users, all of them finished on return."""
        share = [n // users + (1 if u < n % users else 0) for u in range(users)]

        def run(u):
            for k in range(share[u]):
                clip = clips[(done[0] + u * 997 + k) % len(clips)]
                start = time.perf_counter()
                try:
                    res = clients[u].submit(handle_file(str(clip)), "utterance", False,
                                            api_name="/analyse").result(timeout=120)
                    records.append(Record(u, k, clip.name, time.perf_counter() - start, res, res.get("error")))
                except Exception as exc:  # noqa: BLE001
                    records.append(Record(u, k, clip.name, time.perf_counter() - start,
                                          error=f"{type(exc).__name__}: {exc}"))

        threads = [threading.Thread(target=run, args=(u,), daemon=True) for u in range(users)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        done[0] += n

    try:
        burst(warmup)
        samples = [sample(app, 0)]
        every = every or requests
        while done[0] - warmup < requests:
            burst(min(every, requests - (done[0] - warmup)))
            samples.append(sample(app, done[0] - warmup))
    finally:
        for c in clients:
            c.close()
    return samples, records


MEMORY_LIMIT_MB = 50.0
FD_SLACK = 8


def growth_problems(samples: list[Sample], memory_limit_mb: float = MEMORY_LIMIT_MB,
                    fd_slack: int = FD_SLACK) -> list[str]:
    """What is wrong with a soak: the server's RSS grew by memory_limit_mb or more between the
    first sample (after the warm-up) and the last, or its open file descriptors grew by more than
    fd_slack; the decoder's worker processes are held to the same memory bound, each on its own."""
    first, last = samples[0], samples[-1]
    problems = []
    grew = (last.rss_kb - first.rss_kb) / 1024
    if grew >= memory_limit_mb:
        problems.append(f"server RSS grew {grew:.1f} MB over {last.requests} requests "
                        f"({first.rss_kb / 1024:.1f} -> {last.rss_kb / 1024:.1f} MB; limit {memory_limit_mb:g} MB)")
    if last.fds - first.fds > fd_slack:
        problems.append(f"server open files grew {first.fds} -> {last.fds} (slack {fd_slack})")
    for pid, (name, kb) in last.workers.items():
        if pid in first.workers:
            w_grew = (kb - first.workers[pid][1]) / 1024
            if w_grew >= memory_limit_mb:
                problems.append(f"child {pid} ({name}) RSS grew {w_grew:.1f} MB")
    return problems


def describe(samples: list[Sample]) -> str:
    lines = []
    for s in samples:
        kids = ", ".join(f"{name} {kb / 1024:.0f} MB" for name, kb in s.workers.values())
        fds = " ".join(f"{k} {v}" for k, v in sorted(s.kinds.items()))
        lines.append(f"  after {s.requests:4d}: server RSS {s.rss_kb / 1024:7.1f} MB, open fds {s.fds:3d} ({fds})"
                     f"; children: {kids or 'none'}")
    return "\n".join(lines)
