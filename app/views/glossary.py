"""Glossary: every key term with its definition in both languages; type to filter, narrow to one
chapter, and follow related terms from one entry to the next."""

from urllib.parse import quote

import streamlit as st

from app import ui
from primer import content, i18n

ALL = "all"

st.title(ui.t("glossary.title"))
terms_by_id = content.glossary()
chapters = {c.id: c.text("title", ui.lang()) for c in content.chapters()}
focus = st.query_params.get("term")

search, chapter_filter = st.columns([2, 1])
query = search.text_input(ui.t("glossary.search"), key="glossary_query", placeholder=ui.t("glossary.placeholder"))
owners = [ALL] + [c for c in chapters if any(t.chapter == c for t in terms_by_id.values())]
chosen = chapter_filter.selectbox(
    ui.t("nav.chapters"),
    owners,
    format_func=lambda c: ui.t("terminology.glossary_all") if c == ALL else chapters[c],
    key="glossary_chapter",
)

terms = content.search_glossary(query, ui.lang()) if query else list(terms_by_id.values())
if chosen != ALL:
    terms = [t for t in terms if t.chapter == chosen]
if focus in terms_by_id and not query:
    terms = [terms_by_id[focus]] + [t for t in terms if t.id != focus]
st.caption(ui.t("glossary.count", shown=len(terms), total=len(terms_by_id)))

# Links to related entries keep the reader's language (the URL carries it).
lang_param = "" if ui.lang() == i18n.DEFAULT_LANGUAGE else f"&lang={quote(i18n.LANGUAGES[ui.lang()])}"
other = "zh" if ui.lang() == "en" else "en"
for term in terms:
    with st.container(border=True):
        heading = f"**{ui.bi(term.term)}** · {term.term.get(other, '')}"
        if term.id == focus and not query:
            heading = f":material/bookmark: {heading} · :green[{ui.t('terminology.glossary_linked')}]"
        st.markdown(heading)
        st.markdown(ui.bi(term.definition))
        related = [
            f"[{ui.bi(terms_by_id[r].term)}](/glossary?term={r}{lang_param})" for r in term.related if r in terms_by_id
        ]
        st.caption(
            ui.t("glossary.meta", chapter=chapters.get(term.chapter, term.chapter), related=" · ".join(related) or "—")
        )
