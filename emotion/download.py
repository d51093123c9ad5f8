"""Fetching a released model folder: ModelScope first, Hugging Face second.

Files go to a temporary folder beside the target and are renamed into place only when complete,
so an interrupted download is never taken for a model.  Without network access the user gets one
clear message within seconds, not minutes of retries.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
from pathlib import Path
from urllib.parse import urlparse

from .model import KNOWN_MODELS, MODELS_ROOT, ModelNotFoundError, missing_files, not_found_message

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 3.0


def _endpoints() -> list[tuple[str, str, int]]:
    """(hub, host, port) for each hub, honouring the hubs' own endpoint variables."""
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


def download_model(name: str, target: Path | None = None) -> Path:
    """Download model `name` into `target` (default models/<name>) unless it is already there."""
    if name not in KNOWN_MODELS:
        raise ModelNotFoundError(f"unknown model {name!r}; known: {', '.join(KNOWN_MODELS)}")
    target = Path(target) if target else MODELS_ROOT / name
    if not missing_files(target):
        return target
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("EMOTION_OFFLINE") == "1":
        raise ModelNotFoundError(not_found_message(target, name) + "\n  (offline mode is set, no download tried)")
    ids = dict(zip(("modelscope", "huggingface"), KNOWN_MODELS[name]))
    fetchers = {"modelscope": _fetch_modelscope, "huggingface": _fetch_huggingface}
    errors = []
    target.parent.mkdir(parents=True, exist_ok=True)
    for hub, host, port in _endpoints():
        if not _reachable(host, port):
            errors.append(f"{hub}: {host}:{port} is not reachable")
            continue
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.partial-", dir=target.parent))
        try:
            log.info("downloading %s from %s into %s", ids[hub], hub, target)
            fetchers[hub](ids[hub], tmp)
            if missing_files(tmp):
                raise RuntimeError(f"the download lacks {', '.join(missing_files(tmp))}")
            if target.exists():
                shutil.rmtree(target)  # an incomplete folder from before
            os.rename(tmp, target)
            return target
        except Exception as exc:  # a hub failing is reported, then the next hub is tried
            errors.append(f"{hub}: {exc}")
            shutil.rmtree(tmp, ignore_errors=True)
    raise ModelNotFoundError(not_found_message(target, name) + "\n  Download failed: " + "; ".join(errors))


def ensure_model(model: str | os.PathLike | None = None) -> Path:
    """The model folder for `model` (see resolve_model_dir), downloaded first when it is the
    missing folder of a known model; otherwise a missing folder raises ModelNotFoundError."""
    from .model import resolve_model_dir

    folder = resolve_model_dir(model)
    if not missing_files(folder):
        return folder
    if folder.name in KNOWN_MODELS:
        return download_model(folder.name, folder)
    raise ModelNotFoundError(not_found_message(folder))
