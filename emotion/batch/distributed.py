"""The batch job on Ray Data: the same decoding and scoring (emotion.batch.job) inside a pool of
actors, one model replica per GPU or per group of CPU cores; rows come back to this process,
which writes and resumes exactly as the local path does.

    scorer = ray_scorer(settings, address=None)      # None: a local Ray instance
    run_job(items, sink, scorer)

A cluster is reached with its address ("auto" on a node of it, or "ray://HEAD:10001").  Every node
needs this project's Python packages installed and the model folder at the same path; the
`emotion` package itself is shipped to the workers by Ray.  Input paths must be readable by the
workers under the same names (a shared file system).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import EmotionError
from ..torch_engine import GPU_BATCH
from .inputs import BatchItem
from .job import DECODE_WORKERS, GROUP_BATCHES, GROUP_FILES, Scored

log = logging.getLogger(__name__)

LOCAL = "local"  # the address that means: start a Ray instance on this machine


class RayUnavailableError(EmotionError, RuntimeError):
    """Ray is not installed."""


class _Replica:
    """One model replica inside a Ray actor: the recognizer from the job's settings (the one
    factory), items scored by the same local scorer as a job in one process; rows go back as JSON."""

    def __init__(self, settings, segment: bool, use_hash: bool, workers: int, threads: int | None,
                 channels: str = "mix"):
        import torch

        from .vad import SpeechDetector

        if threads:
            torch.set_num_threads(threads)
        self.recognizer = settings.recognizer(warmup=False)
        self.detector = SpeechDetector() if segment else None
        self.use_hash, self.channels, self.workers = use_hash, channels, workers

    def __call__(self, batch: dict) -> dict:
        import json

        from .job import local_scorer

        items = [BatchItem(str(p), str(i), None if lb is None or lb == "" else str(lb))
                 for p, i, lb in zip(batch["path"], batch["id"], batch["label"])]
        scorer = local_scorer(self.recognizer, self.detector, self.workers, len(items), self.use_hash, self.channels)
        scored = list(scorer(items))
        return {
            "n": np.arange(len(scored)),
            "rows": np.array([json.dumps(s.rows, allow_nan=False) for s in scored], dtype=object),
            "embedding": np.array([b"" if s.embedding is None else
                                   np.asarray(s.embedding, np.float32).tobytes() for s in scored], dtype=object),
            "audio_s": np.array([s.audio_s for s in scored], dtype=np.float64),
        }


def init_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Connect to a Ray cluster, or start a local instance on the loopback interface; either way
    the `emotion` package is shipped to the workers.  (A Ray session started elsewhere is used as
    it is: its workers must be able to import `emotion`.)"""
    try:
        import ray
    except ImportError as exc:
        raise RayUnavailableError("--ray needs the ray package (pip install 'ray[data]')") from exc
    if ray.is_initialized():
        return
    shipped = {"py_modules": [str(Path(__file__).resolve().parent.parent)]}  # the emotion package
    if address in (None, LOCAL):
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report leaves the machine
        ray.init(num_cpus=num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1",
                 log_to_driver=False, configure_logging=False, runtime_env=shipped)
    else:
        ray.init(address=address, log_to_driver=False, configure_logging=False, runtime_env=shipped)


def ray_scorer(settings, address: str | None = None, segment: bool = False, use_hash: bool = False,
               replicas: int | None = None, cpus_per_replica: int | None = None,
               workers: int = DECODE_WORKERS, group: int | None = None, channels: str = "mix"):
    """A scorer for emotion.batch.run_job that runs on Ray Data; each replica builds its
    recognizer from `settings` (emotion.settings.Settings: model, device, dtype, engine options,
    audio limits).  With GPUs in the cluster (and device not cpu), one replica per GPU; otherwise
    one per `cpus_per_replica` cores (default: the cluster's cores split in two, at most 8 each).
    Yields in input order."""
    init_ray(address)
    import ray
    import ray.data

    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0)) if settings.device != "cpu" else 0
    cpus = max(1, int(resources.get("CPU", 1)))
    if gpus:
        replicas = replicas or gpus
        per_replica = {"num_gpus": 1, "num_cpus": cpus_per_replica or 1}
        threads = cpus_per_replica
    else:
        cpus_per_replica = cpus_per_replica or max(1, min(8, cpus // 2))
        replicas = replicas or max(1, cpus // cpus_per_replica)
        per_replica = {"num_cpus": cpus_per_replica}
        threads = cpus_per_replica
    group = group or (GROUP_BATCHES * GPU_BATCH if gpus else GROUP_FILES)  # files per call
    log.info("Ray: %d replicas, each %s", replicas, per_replica)

    def run(items: list[BatchItem]) -> Iterator[Scored]:
        if not items:
            return
        ray.data.DataContext.get_current().execution_options.preserve_order = True
        ds = ray.data.from_items([{"path": it.path, "id": it.id, "label": it.label or ""} for it in items],
                                 override_num_blocks=max(1, min(len(items), replicas * 4)))
        ds = ds.map_batches(
            _Replica, batch_size=group, batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=replicas),
            fn_constructor_kwargs={"settings": settings, "segment": segment, "use_hash": use_hash,
                                   "workers": workers, "threads": threads, "channels": channels},
            **per_replica)
        by_key = {(it.path, it.id): it for it in items}
        import json

        for out in ds.iter_rows():
            rows = json.loads(out["rows"])
            item = by_key[(rows[-1]["path"], rows[-1]["id"])]
            raw = out["embedding"]
            embedding = np.frombuffer(raw, dtype=np.float32).copy() if len(raw) else None
            yield Scored(item, rows, embedding, float(out["audio_s"]))

    return run
