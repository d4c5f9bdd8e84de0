"""Content integrity: every string, lesson, quiz, preset and glossary entry in both languages."""

import re
import string
from pathlib import Path

import pytest
import yaml

from primer import content, i18n, labstate, quiz
from tests.conftest import ROOT, import_all_core_modules

LANGS = list(i18n.LANGUAGES)
CHAPTERS = [c.id for c in content.chapters()]


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_string_has_both_languages_and_the_same_placeholders():
    for key, entry in i18n.catalog().items():
        assert isinstance(entry, dict), key
        texts = [str(entry.get(lang, "")).strip() for lang in LANGS]
        assert all(texts), f"{key} is missing a language"
        assert placeholders(entry["en"]) == placeholders(entry["zh"]), key


def test_translation_falls_back_to_english_then_to_the_key():
    assert i18n.translate("nav.home", "zh") == "首页"
    assert i18n.translate("nav.home", "xx") == "Home"
    assert i18n.translate("no.such.key", "zh") == "no.such.key"
    assert i18n.translate("quiz.score", "en", right=1, answered=2, total=5).startswith("1 right of 2")


def test_chinese_strings_are_chinese():
    """A zh entry that is just the English copied over is a missing translation."""
    cjk = re.compile(r"[\u4e00-\u9fff]")
    for key, entry in i18n.catalog().items():
        if entry["zh"] != entry["en"]:
            continue
        # identical text is fine only for proper names, symbols and numbers
        assert not re.search(r"[A-Za-z]{4,}\s+[A-Za-z]{4,}", entry["en"]), f"{key}: zh copies en"
    assert sum(bool(cjk.search(e["zh"])) for e in i18n.catalog().values()) > 0.8 * len(i18n.catalog())


@pytest.mark.parametrize("chapter_id", CHAPTERS)
def test_chapter_is_complete_in_both_languages(chapter_id):
    chapter = content.chapter(chapter_id)
    assert (ROOT / "app" / chapter.page).exists(), chapter.page
    for name in ("title", "summary"):
        assert all(chapter.text(name, lang) for lang in LANGS)
    for lab in chapter.labs:
        assert all(i18n.bilingual(lab.title, lang) and i18n.bilingual(lab.what, lang) for lang in LANGS)
    ids = {lang: [lesson.id for lesson in content.lessons(chapter_id, lang)] for lang in LANGS}
    assert ids["en"], "a chapter needs lessons"
    assert ids["en"] == ids["zh"], "en.md and zh.md must have the same lessons in the same order"
    for lang in LANGS:
        for lesson in content.lessons(chapter_id, lang):
            assert len(lesson.body) > 80, f"{chapter_id}/{lesson.id} ({lang}) is too short"
            for term in content.terms_in(lesson.body):
                assert term in content.glossary(), f"{chapter_id}/{lesson.id} links unknown term {term}"


@pytest.mark.parametrize("chapter_id", CHAPTERS)
def test_quiz_is_valid_and_explained(chapter_id):
    questions = quiz.load_quiz(chapter_id)
    assert len(questions) >= 5
    labs = {lab.id for c in content.chapters() for lab in c.labs}
    for q in questions:
        if q.lab:
            assert q.lab in labs, f"{q.key} points at unknown lab {q.lab}"
        if q.kind == "figure":
            built = quiz.build_figure(q)
            assert built.figure is not None
            key = quiz.answer_key(q, built)
            assert key is not None, f"{q.key}: no answer in file or from the figure"
            assert quiz.grade(q, key, key)


def test_quiz_schema_rejects_broken_questions():
    good = {
        "id": "q",
        "kind": "single",
        "prompt": {"en": "a", "zh": "甲"},
        "explanation": {"en": "b", "zh": "乙"},
        "options": [{"en": "x", "zh": "x"}, {"en": "y", "zh": "y"}],
        "answer": 1,
    }
    quiz.parse_question("c", good)
    for broken in (
        {**good, "answer": 2},
        {**good, "explanation": {"en": "only English"}},
        {**good, "kind": "essay"},
        {**good, "kind": "multiple", "answer": []},
        {**good, "kind": "numeric", "answer": "ten"},
        {**good, "kind": "figure", "figure": {"builder": "nomodule"}},
    ):
        with pytest.raises(quiz.QuizError):
            quiz.parse_question("c", broken)


def test_presets_match_their_labs():
    import_all_core_modules()
    for chapter_id in CHAPTERS:
        for lab_id, presets in labstate.load_presets(chapter_id).items():
            assert lab_id in labstate.LABS, f"presets for unknown lab {lab_id}"
            assert presets, lab_id
            for preset in presets:
                assert all(i18n.bilingual(preset.title, lang) for lang in LANGS)
                assert all(i18n.bilingual(preset.commentary, lang) for lang in LANGS)
                assert labstate.check_preset(labstate.LABS[lab_id], preset) == []
                labstate.from_values(labstate.LABS[lab_id], preset.values)  # constructs


def test_every_lab_state_has_presets_and_a_chapter():
    import_all_core_modules()
    chapter_labs = {f"{c.id}": {lab.id for lab in c.labs} for c in content.chapters()}
    all_labs = set().union(*chapter_labs.values()) if chapter_labs else set()
    for lab_id in labstate.LABS:
        assert lab_id in all_labs, f"lab state {lab_id} is not listed in any chapter.yaml"
        chapter_id = next(c for c, labs in chapter_labs.items() if lab_id in labs)
        assert labstate.load_presets(chapter_id).get(lab_id), f"{lab_id} needs at least one preset"


def test_glossary_entries_are_bilingual_and_related_terms_exist():
    terms = content.glossary()
    for term in terms.values():
        for lang in LANGS:
            assert i18n.bilingual(term.term, lang), term.id
            assert len(i18n.bilingual(term.definition, lang)) > 10, term.id
        for other in term.related:
            assert other in terms, f"{term.id} relates to unknown {other}"


def test_yaml_files_parse():
    for path in Path(ROOT / "lessons").rglob("*.yaml"):
        yaml.safe_load(path.read_text(encoding="utf-8"))
