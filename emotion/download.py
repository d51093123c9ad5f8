"""Fetching a released model folder: ModelScope first, Hugging Face second.

Files go to a temporary folder beside the target and are renamed into place only when complete,
so an interrupted download is never taken for a model.  Without network access the user gets one
clear message within seconds, not minutes of retries.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from .adapter import is_adapted, read_adapter
from .export import is_exported
from .files import staged_folder
from .model import (KNOWN_MODELS, MODELS_ROOT, ModelNotFoundError, base_dir, missing_files, not_found_message,
                    resolve_model_dir)

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 3.0


def _endpoints() -> list[tuple[str, str, int]]:
    """(hub, host, port) for each hub. MODELSCOPE_DOMAIN and HF_ENDPOINT are the hub libraries'
    own variables (they read them too), so they are read here, where those libraries are called,
    rather than through the app's settings."""
    ms = os.environ.get("MODELSCOPE_DOMAIN", "www.modelscope.cn")
    ms_url = urlparse(ms if "://" in ms else f"https://{ms}")
    hf_url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    return [("modelscope", ms_url.hostname, ms_url.port or (443 if ms_url.scheme == "https" else 80)),
            ("huggingface", hf_url.hostname, hf_url.port or (443 if hf_url.scheme == "https" else 80))]


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def _fetch_modelscope(repo: str, dest: Path) -> None:
    from modelscope.hub.snapshot_download import snapshot_download

    snapshot_download(repo, local_dir=str(dest))


def _fetch_huggingface(repo: str, dest: Path) -> None:
    from huggingface_hub import snapshot_download

    snapshot_download(repo, local_dir=str(dest))


def download_model(name: str, target: Path | None = None, offline: bool = False) -> Path:
    """Download model `name` into `target` (default models/<name>) unless it is already there;
    offline: never try (the missing model is reported at once)."""
    if name not in KNOWN_MODELS:
        raise ModelNotFoundError(f"unknown model {name!r}; known: {', '.join(KNOWN_MODELS)}")
    target = Path(target) if target else MODELS_ROOT / name
    if not missing_files(target):
        return target
    if offline:
        raise ModelNotFoundError(not_found_message(target, name) + "\n  (offline mode is set, no download tried)")
    ids = dict(zip(("modelscope", "huggingface"), KNOWN_MODELS[name]))
    fetchers = {"modelscope": _fetch_modelscope, "huggingface": _fetch_huggingface}
    errors = []
    for hub, host, port in _endpoints():
        if not _reachable(host, port):
            errors.append(f"{hub}: {host}:{port} is not reachable")
            continue
        try:
            log.info("downloading %s from %s into %s", ids[hub], hub, target)
            with staged_folder(target, replace=True) as tmp:  # replaces an incomplete folder from before
                fetchers[hub](ids[hub], tmp)
                if missing_files(tmp):
                    raise RuntimeError(f"the download lacks {', '.join(missing_files(tmp))}")
            return target
        except Exception as exc:  # a hub failing is reported, then the next hub is tried
            errors.append(f"{hub}: {exc}")
    raise ModelNotFoundError(not_found_message(target, name) + "\n  Download failed: " + "; ".join(errors))


def ensure_model(model: str | os.PathLike | None = None, offline: bool = False) -> Path:
    """The model folder for `model` (see resolve_model_dir), downloaded first when it is the
    missing folder of a known model; otherwise a missing folder raises ModelNotFoundError."""
    folder = resolve_model_dir(model)
    if is_exported(folder):  # written by `emotion export`: it runs on ONNX Runtime as it is
        return folder
    if is_adapted(folder):  # a head of ours on a released model: that model is what may be missing
        base = base_dir(read_adapter(folder))
        if missing_files(base) and base.name in KNOWN_MODELS:
            download_model(base.name, base, offline)
        return folder
    if not missing_files(folder):
        return folder
    if folder.name in KNOWN_MODELS:
        return download_model(folder.name, folder, offline)
    raise ModelNotFoundError(not_found_message(folder))
