"""The chapter registry, lesson prose and glossary, read from `lessons/`.

A chapter exists when `lessons/<id>/chapter.yaml` does; the app lists exactly those, in `order`.
Its lesson prose is `en.md` / `zh.md`, split into short lessons by level-2 headings that carry
an id, so both languages can be checked for the same structure:

    ## Loss and gradient descent {#loss}

Key terms link to the glossary with `[[term_id]]` or `[[term_id|shown text]]`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from primer import i18n
from primer.i18n import LESSONS_DIR, bilingual, read_yaml

HEADING = re.compile(r"^##\s+(?P<title>.+?)\s*\{#(?P<id>[a-z0-9_\-]+)\}\s*$", re.MULTILINE)
TERM_LINK = re.compile(r"\[\[(?P<term>[a-z0-9_\-]+)(?:\|(?P<text>[^\]]+))?\]\]")


@dataclass(frozen=True)
class Lab:
    id: str
    title: dict
    what: dict  # one sentence: what the learner does in it


@dataclass(frozen=True)
class Chapter:
    id: str
    order: int
    icon: str
    title: dict
    summary: dict
    minutes: int  # estimated time to read the lessons and try every lab
    labs: tuple[Lab, ...] = field(default_factory=tuple)

    @property
    def page(self) -> str:
        """The page script, relative to app/ (where main.py routes from)."""
        return f"views/{self.id}.py"

    def text(self, name: str, lang: str) -> str:
        return bilingual(getattr(self, name), lang)


@lru_cache(maxsize=1)
def chapters() -> tuple[Chapter, ...]:
    """Every registered chapter, in reading order."""
    found = []
    for path in sorted(LESSONS_DIR.glob("*/chapter.yaml")):
        data = read_yaml(path)
        labs = tuple(Lab(id=lab["id"], title=lab["title"], what=lab["what"]) for lab in data.get("labs") or ())
        found.append(
            Chapter(
                id=path.parent.name,
                order=int(data["order"]),
                icon=data["icon"],
                title=data["title"],
                summary=data["summary"],
                minutes=int(data["minutes"]),
                labs=labs,
            )
        )
    return tuple(sorted(found, key=lambda c: c.order))


def chapter(chapter_id: str) -> Chapter:
    for c in chapters():
        if c.id == chapter_id:
            return c
    raise KeyError(chapter_id)


@dataclass(frozen=True)
class Lesson:
    id: str
    title: str
    body: str  # markdown, term links still as [[...]]


@lru_cache(maxsize=64)
def lessons(chapter_id: str, lang: str) -> tuple[Lesson, ...]:
    """The chapter's lessons in one language, in file order."""
    path = LESSONS_DIR / chapter_id / f"{lang}.md"
    if not path.exists():
        return ()
    text = path.read_text(encoding="utf-8")
    heads = list(HEADING.finditer(text))
    out = []
    for i, head in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
        out.append(Lesson(id=head["id"], title=head["title"], body=text[head.end() : end].strip()))
    return tuple(out)


def lesson(chapter_id: str, lesson_id: str, lang: str) -> Lesson:
    for item in lessons(chapter_id, lang):
        if item.id == lesson_id:
            return item
    raise KeyError(f"{chapter_id}/{lesson_id} ({lang})")


def terms_in(markdown: str) -> list[str]:
    """Glossary term ids linked from a piece of prose, in order of first appearance."""
    return list(dict.fromkeys(m["term"] for m in TERM_LINK.finditer(markdown)))


# ---------------------------------------------------------------------------------------------
# Glossary: each chapter owns the terms it introduces, in lessons/<chapter>/glossary.yaml.


@dataclass(frozen=True)
class Term:
    id: str
    term: dict  # the word itself, {en, zh}
    definition: dict  # one to three sentences, {en, zh}
    chapter: str
    related: tuple[str, ...] = ()


@lru_cache(maxsize=1)
def glossary() -> dict[str, Term]:
    terms: dict[str, Term] = {}
    for path in sorted(LESSONS_DIR.glob("*/glossary.yaml")):
        data = read_yaml(path) or {}
        for term_id, entry in data.items():
            if term_id in terms:
                raise ValueError(f"glossary term {term_id!r} defined twice ({path})")
            for part in ("term", "definition"):
                # An unquoted comma inside a YAML flow mapping silently makes a new key; catch it.
                if set(entry[part]) != set(i18n.LANGUAGES) or not all(isinstance(v, str) for v in entry[part].values()):
                    raise ValueError(f"glossary term {term_id!r} ({path}): {part} needs one string per language")
            terms[term_id] = Term(
                id=term_id,
                term=entry["term"],
                definition=entry["definition"],
                chapter=path.parent.name,
                related=tuple(entry.get("related", [])),
            )
    return dict(sorted(terms.items(), key=lambda kv: kv[1].term["en"].lower()))


def render_term_links(markdown: str, lang: str, href: str = "glossary") -> str:
    """Replace [[term]] links with markdown links to the glossary page's entry (it opens in a
    new tab, next to the lesson)."""
    terms = glossary()

    def link(match: re.Match) -> str:
        term = terms.get(match["term"])
        shown = match["text"] or (bilingual(term.term, lang) if term else match["term"])
        return f"[{shown}](/{href}?term={match['term']})"

    return TERM_LINK.sub(link, markdown)


def search_glossary(query: str, lang: str) -> list[Term]:
    """Terms whose word or definition (in either language) contains every word of the query."""
    words = query.lower().split()
    out = []
    for term in glossary().values():
        haystack = " ".join([*term.term.values(), *term.definition.values(), term.id]).lower()
        if all(w in haystack for w in words):
            out.append(term)
    return out
