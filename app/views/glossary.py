"""Glossary: every key term with its definition in both languages; type to filter."""

import streamlit as st

from app import ui
from primer import content

st.title(ui.t("glossary.title"))
focus = st.query_params.get("term")
query = st.text_input(ui.t("glossary.search"), key="glossary_query", placeholder=ui.t("glossary.placeholder"))
terms = content.search_glossary(query, ui.lang()) if query else list(content.glossary().values())
if focus and not query and focus in content.glossary():
    terms = [content.glossary()[focus]] + [t for t in terms if t.id != focus]
st.caption(ui.t("glossary.count", shown=len(terms), total=len(content.glossary())))
titles = {c.id: c.text("title", ui.lang()) for c in content.chapters()}
for term in terms:
    with st.container(border=True):
        other = "zh" if ui.lang() == "en" else "en"
        st.markdown(f"**{ui.bi(term.term)}** · {term.term.get(other, '')}")
        st.markdown(ui.bi(term.definition))
        related = [ui.bi(content.glossary()[r].term) for r in term.related if r in content.glossary()]
        st.caption(
            ui.t("glossary.meta", chapter=titles.get(term.chapter, term.chapter), related=", ".join(related) or "—")
        )
