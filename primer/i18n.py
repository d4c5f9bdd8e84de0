"""One translation helper for every string the user reads.

UI strings live beside the lessons as YAML, both languages side by side so a missing translation
is visible at a glance (and a test fails on it):

    lessons/strings.yaml            global strings: key: {en: ..., zh: ...}
    lessons/<chapter>/strings.yaml  a chapter's strings, looked up as "<chapter>.<key>"

Values may hold str.format placeholders ("{n} images"). English is the fallback, then the key
itself, so a missing string shows up on the page instead of crashing it.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

LANGUAGES: dict[str, str] = {"en": "English", "zh": "中文"}
DEFAULT_LANGUAGE = "en"
LESSONS_DIR = Path(__file__).resolve().parent.parent / "lessons"


def bilingual(value, lang: str) -> str:
    """Pick one language from a {en: ..., zh: ...} mapping (English if the other is missing)."""
    if isinstance(value, dict):
        return value.get(lang) or value.get(DEFAULT_LANGUAGE) or ""
    return "" if value is None else str(value)


def read_yaml(path: Path):
    """Parse a YAML file with libyaml's safe loader when PyYAML was built with it: the pure-Python
    loader takes about 0.3 s for the app's strings alone, on the path to the first page."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(path.read_text(encoding="utf-8"), Loader=loader)  # noqa: S506 - a safe loader


def _read_strings(path: Path, prefix: str) -> dict[str, dict[str, str]]:
    data = read_yaml(path) or {}
    return {f"{prefix}{key}": value for key, value in data.items()}


@lru_cache(maxsize=1)
def catalog() -> dict[str, dict[str, str]]:
    """Every UI string: key → {lang: text}. Chapter keys are prefixed with the chapter id."""
    strings = _read_strings(LESSONS_DIR / "strings.yaml", "")
    for path in sorted(LESSONS_DIR.glob("*/strings.yaml")):
        strings.update(_read_strings(path, f"{path.parent.name}."))
    return strings


def translate(key: str, lang: str = DEFAULT_LANGUAGE, /, **values) -> str:
    """The text of `key` in `lang`, formatted with `values`."""
    entry = catalog().get(key)
    text = bilingual(entry, lang) if entry is not None else key
    return text.format(**values) if values else text


def has_key(key: str) -> bool:
    return key in catalog()
