"""A lab's whole state is one small dataclass; presets are named values for it.

Like TensorFlow Playground, everything that defines an experiment (controls, seed, chosen
example) is a handful of plain fields, so it can live in the URL and a link reopens the exact
setup. A lab declares its state once:

    @register_lab("training.train")
    @dataclass
    class TrainLab:
        learning_rate: float = 1e-3  # Adam's usual starting point
        ...

and the app binds one widget per field to the query string (`app/ui.py`). Presets live in
`lessons/<chapter>/presets.yaml`:

    <lab id>:
      - id: overfit
        title: {en: ..., zh: ...}
        commentary: {en: one sentence, zh: ...}
        values: {field: value, ...}

A test checks every preset against its lab's fields and types.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from primer.i18n import LESSONS_DIR, read_yaml

LABS: dict[str, type] = {}


def register_lab(lab_id: str):
    """Class decorator: make a lab state dataclass known under `lab_id` ("<chapter>.<lab>")."""

    def wrap(cls):
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"{cls.__name__} must be a dataclass")
        if lab_id in LABS and LABS[lab_id] is not cls:
            raise ValueError(f"lab {lab_id!r} registered twice")
        LABS[lab_id] = cls
        cls.lab_id = lab_id
        return cls

    return wrap


def field_defaults(cls) -> dict[str, Any]:
    return {f.name: f.default for f in dataclasses.fields(cls)}


def from_values(cls, values: dict[str, Any]):
    """Build a state from a dict, ignoring unknown keys and keeping defaults for missing ones."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names})


@dataclass(frozen=True)
class Preset:
    id: str
    title: dict
    commentary: dict
    values: dict


@lru_cache(maxsize=32)
def load_presets(chapter: str) -> dict[str, tuple[Preset, ...]]:
    """The chapter's presets, by lab id (the full "<chapter>.<lab>" id)."""
    path = LESSONS_DIR / chapter / "presets.yaml"
    if not path.exists():
        return {}
    raw = read_yaml(path) or {}
    out = {}
    for lab_id, items in raw.items():
        out[lab_id] = tuple(
            Preset(id=p["id"], title=p["title"], commentary=p["commentary"], values=p.get("values", {})) for p in items
        )
    return out


def check_preset(cls, preset: Preset) -> list[str]:
    """Problems with a preset against its lab's state class (empty when it is valid)."""
    problems = []
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name, value in preset.values.items():
        if name not in fields:
            problems.append(f"{preset.id}: unknown field {name!r}")
            continue
        default = fields[name].default
        int_for_float = isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool)
        if default is not None and not isinstance(value, type(default)) and not int_for_float:
            problems.append(f"{preset.id}: {name}={value!r} is not a {type(default).__name__}")
    return problems
