"""The emotion classes: tokens.txt lines mapped to English keys, Chinese names and emoji."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .config import ConfigError

# The released head's classes, in class-index order.
EMOTIONS = ("angry", "disgusted", "fearful", "happy", "neutral", "other", "sad", "surprised", "unknown")
CHINESE = {"angry": "生气", "disgusted": "厌恶", "fearful": "恐惧", "happy": "开心", "neutral": "中立",
           "other": "其他", "sad": "难过", "surprised": "吃惊", "unknown": "未知"}
EMOJI = {"angry": "😠", "disgusted": "🤢", "fearful": "😨", "happy": "😊", "neutral": "😐",
         "other": "🤔", "sad": "😢", "surprised": "😲", "unknown": "❓"}
UNUSED_PREFIX = "unuse"  # older tokens.txt files name masked classes unuse_0..unuse_3


@dataclass(frozen=True)
class Label:
    key: str  # English key used in results ("happy")
    zh: str
    emoji: str
    token: str  # the tokens.txt line ("开心/happy")
    masked: bool  # an "unuse" class: logit -inf, score 0

    @property
    def display(self) -> str:
        return display_name(self.key, self.zh, self.emoji)


def display_name(key: str, zh: str | None = None, emoji: str | None = None) -> str:
    """How a class is shown to people: "😊 开心 / Happy" for a class the tables know; a label they
    do not know (an adapted head's "frustrated") shows its own name as written, with no emoji.
    zh and emoji default to the tables'."""
    zh = CHINESE.get(key.lower(), "") if zh is None else zh
    emoji = EMOJI.get(key.lower(), "") if emoji is None else emoji
    name = f"{zh} / {key.capitalize()}" if zh and zh != key else key
    return f"{emoji} {name}" if emoji else name


def make_label(name: str, token: str | None = None, masked: bool = False) -> Label:
    """A class by its name: one of the released nine (any case) gets its Chinese name and emoji;
    any other name is its own display name, with no Chinese name and no emoji."""
    low = name.lower()
    if low in EMOJI:
        return Label(name, CHINESE[low], EMOJI[low], token or name, masked)
    return Label(name, "", "", token or name, masked)


def parse_tokens(lines: list[str]) -> list[Label]:
    """Map tokens.txt lines to labels.  "开心/happy" gives happy; "<unk>" gives unknown; an
    "unuse_N" line in a 9-class file takes the released class name of its position and is masked."""
    labels = []
    for index, token in enumerate(lines):
        masked = token.startswith(UNUSED_PREFIX)
        if masked and len(lines) == len(EMOTIONS):
            key = EMOTIONS[index]
        elif token == "<unk>":
            key = "unknown"
        elif "/" in token:
            key = token.rsplit("/", 1)[1].strip().lower()
        else:
            key = token.strip()
        label = make_label(key, token, masked)
        if "/" in token:  # the file's own Chinese name wins over the table's
            label = Label(key, token.split("/", 1)[0], label.emoji, token, masked)
        labels.append(label)
    keys = label_keys(labels)
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise ConfigError(f"tokens.txt names a class twice: {', '.join(twice)}")
    return labels


def label_keys(labels: list[Label]) -> list[str]:
    """The classes' English keys, in the head's order."""
    return [label.key for label in labels]


def read_tokens(path: Path) -> list[Label]:
    """The classes a model folder's tokens.txt lists, one per line, in the head's order."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text") from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise ConfigError(f"{path} lists no classes")
    try:
        return parse_tokens(lines)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
