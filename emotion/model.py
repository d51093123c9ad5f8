"""Finding a model folder and loading its weights into the network, strictly and fast.

The network is built on the meta device (no random initialisation) and the state dict is read
with mmap and assigned as is, so loading costs little more than reading the file.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .adapter import HEAD_FILE, Adapter, is_adapted, read_adapter
from .config import NetworkConfig, load_config
from .defaults import DEFAULT_MODEL, KNOWN_MODELS, MODELS_ROOT, PROJECT_ROOT  # noqa: F401 (re-exported)
from .errors import EmotionError, SettingsError
from .files import is_complete
from .labels import Label, read_tokens
from .network import Emotion2VecNetwork

log = logging.getLogger(__name__)

REQUIRED_FILES = ("config.yaml", "model.pt", "tokens.txt")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
INT8 = "int8"  # opt-in on CPU: the transformer's linear layers dynamically quantised, the rest fp32


class ModelNotFoundError(EmotionError, RuntimeError):
    """No usable model folder where one was expected."""


class CheckpointError(EmotionError, RuntimeError):
    """model.pt does not hold the weights the network needs."""


def resolve_model_dir(model: str | os.PathLike | None = None) -> Path:
    """A known model name (models/<name>), a folder path, or None: models/emotion2vec_plus_large."""
    if model is None:
        model = DEFAULT_MODEL
    if str(model) in KNOWN_MODELS:
        return MODELS_ROOT / str(model)
    return Path(model).expanduser().resolve()


def missing_files(model_dir: Path) -> list[str]:
    """The files a model folder lacks; for an adapted folder, those its base model lacks."""
    if is_adapted(model_dir):
        try:
            model_dir = base_dir(read_adapter(model_dir))
        except EmotionError:
            return []  # a broken adapter.json is reported, with its reason, when the model loads
    return [name for name in REQUIRED_FILES if not (model_dir / name).is_file()]


def model_labels(model_dir: Path) -> list[Label]:
    """A model folder's classes without loading it: an adapted folder's labels, or tokens.txt's."""
    return read_adapter(model_dir).labels if is_adapted(model_dir) else read_tokens(model_dir / "tokens.txt")


def base_dir(adapter: Adapter) -> Path:
    """The base model folder of an adapted one: its recorded path, else its absolute path, else
    models/<name> for a released model's name; the first of these when none holds the files."""
    candidates = adapter.base_candidates()
    if adapter.base.get("name") in KNOWN_MODELS:
        candidates.append(MODELS_ROOT / adapter.base["name"])
    for folder in candidates:
        if all((folder / name).is_file() for name in REQUIRED_FILES):
            return folder
    return candidates[0]


def _download_command(model_dir: Path, name: str) -> str | None:
    """The download command that fills model_dir: models/<name> is its default; another folder is
    named with --model-dir, but only when it is missing or empty (a download replaces the folder)."""
    import shlex

    if Path(model_dir).resolve() == (MODELS_ROOT / name).resolve():
        return f"python -m emotion download {name}"
    if Path(model_dir).is_dir() and any(Path(model_dir).iterdir()):
        return None
    return f"python -m emotion download {name} --model-dir {shlex.quote(str(model_dir))}"


def not_found_message(model_dir: Path, name: str | None = None) -> str:
    name = name or (model_dir.name if model_dir.name in KNOWN_MODELS else DEFAULT_MODEL)
    ms_id, hf_id = KNOWN_MODELS[name]
    missing = missing_files(model_dir)
    command = _download_command(model_dir, name)
    files = f"the files of ModelScope {ms_id} (or Hugging Face {hf_id})"
    get = (f"  Get it with:   {command}\n  or copy {files} into that folder.\n" if command
           else f"  Copy {files} into that folder ({', '.join(missing)}).\n")
    return (
        f"No model in {model_dir} (missing: {', '.join(missing)}).\n" + get +
        "  To use a model elsewhere, set EMOTION_MODEL_DIR=/path/to/folder or pass --model-dir."
    )


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The plain state dict in model.pt: unwrapped from "state_dict"/"model", "module." stripped."""
    try:
        try:
            state = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
        except RuntimeError:  # a legacy (non-zip) file cannot be memory-mapped
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a damaged or foreign file
        raise CheckpointError(f"{path} cannot be read as PyTorch weights ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:200] if str(exc) else 'no detail'})") from None
    for wrapper in ("state_dict", "model_state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, not a state dict")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}


def assign_weights(network: torch.nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """Load `state` into a meta-device network; fail on any missing or mis-shaped weight."""
    expected = network.state_dict()
    missing = [k for k in expected if k not in state]
    wrong = [f"{k} {tuple(state[k].shape)} (needs {tuple(v.shape)})"
             for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if missing or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing weights: {', '.join(missing[:5])}"
                         + (" ..." if len(missing) > 5 else ""))
        if wrong:
            parts.append(f"{len(wrong)} mis-shaped weights: {'; '.join(wrong[:5])}"
                         + (" ..." if len(wrong) > 5 else ""))
        raise CheckpointError(f"{path} does not fit config.yaml: " + "; ".join(parts))
    extra = sorted(set(state) - set(expected))
    if extra:
        log.info("ignoring %d tensors in %s that inference does not use (e.g. %s)",
                 len(extra), path.name, extra[0])
    network.load_state_dict({k: state[k].float() for k in expected}, strict=True, assign=True)


def use_available_cores() -> None:
    """torch counts the host's cores; in a container limited to fewer, extra threads only contend."""
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return
    if torch.get_num_threads() > available:
        torch.set_num_threads(available)


def _parse_device(device: str | None) -> torch.device | None:
    if device in (None, "auto"):
        return None
    try:
        return torch.device(device)
    except RuntimeError:
        raise SettingsError(f"unknown device {device!r}: choose auto, cpu or cuda") from None


def pick_device(device: str | None) -> torch.device:
    wanted = _parse_device(device)
    if wanted is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if wanted.type == "cuda" and not torch.cuda.is_available():
        raise SettingsError(f"--device {device} was asked for, but no CUDA device is available")
    return wanted


def pick_dtype(dtype: str | None, device: torch.device) -> torch.dtype:
    """The dtype for a name on a device; int8 computes in fp32 around its quantised layers."""
    if dtype in (None, "auto"):
        return torch.float32 if device.type == "cpu" else torch.float16
    if dtype == INT8:
        if device.type != "cpu":
            raise SettingsError(f"--dtype int8 runs on the CPU only, not on {device.type}: "
                                "use --device cpu, or fp16/bf16 on a GPU")
        return torch.float32
    if dtype not in DTYPES:
        raise SettingsError(f"unknown dtype {dtype!r}: choose from auto, {', '.join(DTYPES)}, {INT8}")
    return DTYPES[dtype]


def quantize_linears(network: Emotion2VecNetwork) -> None:
    """Dynamic int8 quantisation of every linear layer but the classifier head, in place.

    torch.ao's quantize_dynamic is deprecated, and kept on purpose: on the large shape it is 1.22x
    faster than torchao's maintained int8 path at the same fidelity (BENCHMARKS.md, "int8")."""
    from torch.ao.quantization import quantize_dynamic

    for part in (network.modality_encoders, network.blocks):
        quantize_dynamic(part, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)


@dataclass
class LoadedModel:
    network: Emotion2VecNetwork
    config: NetworkConfig
    labels: list[Label]
    name: str
    path: Path
    device: torch.device
    dtype: torch.dtype
    load_seconds: float
    quantized: bool = False
    base_path: Path | None = None  # the folder whose weights the network holds (None: path)
    adapter: Adapter | None = None  # an adapted head (None: the released one)

    @property
    def dtype_name(self) -> str:
        return INT8 if self.quantized else {v: k for k, v in DTYPES.items()}[self.dtype]

    @property
    def base_name(self) -> str:
        return (self.base_path or self.path).name

    def describe(self) -> str:
        """One line for people: which model and which head."""
        classes = [lb.key for lb in self.labels if not lb.masked]
        if self.adapter is None:
            return f"{self.name} (released head, {len(classes)} classes)"
        return f"{self.name}: adapted head ({len(classes)} labels: {', '.join(classes)}) on {self.base_name}"


def _check_base(adapter: Adapter, folder: Path) -> None:
    """Refuse a base whose model.pt or config.yaml is not the one the head was trained on (size
    and config hash: cheap; `emotion verify` also compares model.pt's sha256)."""
    from .files import file_sha256

    want = adapter.base
    size = (folder / "model.pt").stat().st_size
    if size != want.get("model_bytes") or file_sha256(folder / "config.yaml") != want.get("config_sha256"):
        raise CheckpointError(
            f"{adapter.folder} was trained on the model at {want.get('absolute_path')} (model.pt "
            f"{want.get('model_bytes')} bytes), but {folder} holds another: put that model there, "
            f"or run emotion adapt again on this one")


def _adapted_head(adapter: Adapter, config: NetworkConfig) -> torch.nn.Linear:
    """The adapted head as a Linear layer (fp32), checked against its labels and the base's width."""
    path = adapter.folder / HEAD_FILE
    if not is_complete(adapter.folder):
        raise CheckpointError(f"{adapter.folder} is incomplete (its manifest.json does not match its "
                              "files): run emotion adapt again")
    state = read_state_dict(path)
    want = {"weight": (len(adapter.labels), config.embed_dim), "bias": (len(adapter.labels),)}
    wrong = [f"{k} {tuple(state[k].shape) if k in state else 'missing'} (needs {v})"
             for k, v in want.items() if k not in state or tuple(state[k].shape) != v]
    if wrong:
        raise CheckpointError(f"{path} does not fit its {len(adapter.labels)} labels and the base model's "
                              f"width {config.embed_dim}: {'; '.join(wrong)}")
    head = torch.nn.Linear(config.embed_dim, len(adapter.labels))
    head.load_state_dict({k: state[k].float() for k in want})
    return head


def load_model(model: str | os.PathLike | None = None, device: str | None = "auto",
               dtype: str | None = "auto") -> LoadedModel:
    """Load a model folder (see resolve_model_dir) onto `device`, ready for inference."""
    start = time.perf_counter()
    wanted = _parse_device(device)
    if wanted is not None:  # a pair that cannot work is named before CUDA is looked for
        pick_dtype(dtype, wanted)
    dev = pick_device(device)
    dt = pick_dtype(dtype, dev)
    use_available_cores()
    model_dir = resolve_model_dir(model)
    adapter = read_adapter(model_dir) if is_adapted(model_dir) else None
    weights_dir = base_dir(adapter) if adapter else model_dir
    if missing_files(weights_dir):
        raise ModelNotFoundError((f"{model_dir} is a head adapted on {weights_dir}, which is not there.\n"
                                  if adapter else "") + not_found_message(weights_dir))
    labels = read_tokens(weights_dir / "tokens.txt")
    config = load_config(weights_dir / "config.yaml", num_classes=len(labels))
    with torch.device("meta"):
        network = Emotion2VecNetwork(config)
    assign_weights(network, read_state_dict(weights_dir / "model.pt"), weights_dir / "model.pt")
    if adapter:
        _check_base(adapter, weights_dir)
        network.proj, labels = _adapted_head(adapter, config), adapter.labels
    # to the device first, then to the dtype there: on a GPU the cast runs on the device instead of
    # converting the whole checkpoint on the CPU before the copy (on a CPU the two are one step)
    network = network.to(device=dev).to(dtype=dt).eval().requires_grad_(False)
    network.store_conv_weights_time_major()  # once, so that no pass copies them
    if dev.type == "cuda" and dt != torch.float32:
        torch.cuda.empty_cache()  # the fp32 copies' memory back to the card, not held in torch's cache
    if adapter:
        network.proj.float()  # a small head, kept in fp32 whatever the network's dtype
    if dtype == INT8:
        quantize_linears(network)
    loaded = LoadedModel(network, config, labels, model_dir.name, model_dir, dev, dt,
                         time.perf_counter() - start, quantized=dtype == INT8,
                         base_path=weights_dir if adapter else None, adapter=adapter)
    log.info("loaded %s on %s (%s) in %.2f s", loaded.describe(), dev, loaded.dtype_name, loaded.load_seconds)
    return loaded
