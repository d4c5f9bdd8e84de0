"""Architectures: the CNN design trends as small live models, the four vision tasks on one image,
and generative models. Core: primer.architectures, primer.tasks, primer.generative; figures:
primer.architectures_figures; lab UIs: app/widgets/arch_*.py."""

import streamlit as st

from app import ui
from app.widgets import arch_blocks, arch_generative, arch_scaling, arch_tasks

page = ui.ChapterPage("architectures")
T = page.t

page.lesson("intro")

# 1. Building blocks, head to head
st.header(T("section.blocks"))
page.lesson("plain", expanded=False)
page.lesson("residual", expanded=False)
page.lesson("dense_inception", expanded=False)
page.lesson("efficiency_attention", expanded=False)
st.subheader(T("blocks.title"))
arch_blocks.blocks_lab(page)
st.subheader(T("race.title"))
page.lesson("race", expanded=False)
arch_blocks.race_lab(page)
st.subheader(T("degrade.title"))
page.lesson("degradation", expanded=False)
arch_blocks.degrade_lab(page)
st.subheader(T("scale.title"))
page.lesson("scaling", expanded=False)
arch_scaling.scale_lab(page)
st.subheader(T("frontier.title"))
arch_scaling.frontier(page)

# 2. Four tasks on one image
st.header(T("section.tasks"))
page.lesson("four_tasks", expanded=False)
page.lesson("unet", expanded=False)
page.lesson("fcn_dilated", expanded=False)
page.lesson("seg_loss", expanded=False)
page.lesson("detection", expanded=False)
page.lesson("instance", expanded=False)
arch_tasks.four_tasks_lab(page)

# 3. Generative models
st.header(T("section.generative"))
page.lesson("autoencoders", expanded=False)
st.subheader(T("dae.title"))
arch_generative.dae_lab(page)
st.subheader(T("vae.title"))
page.lesson("vae", expanded=False)
arch_generative.vae_lab(page)
st.subheader(T("gan.title"))
page.lesson("gan", expanded=False)
arch_generative.gan_lab(page)
page.lesson("translation", expanded=False)
page.lesson("synthetic")

page.lesson("transformers")
page.quiz()
