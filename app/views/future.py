"""Future directions: domain shift, federated learning, uncertainty, self-supervised pretraining,
vision transformers and subgroup performance, each a live lab; then what deployment takes."""

from app import ui
from app.widgets import future_vit

page = ui.ChapterPage("future")
page.lesson("intro")

# Each lab is one widget module (app/widgets/future_*.py, core in primer/future_*.py) that draws
# its own subheader, intro, presets, controls, results and (collapsed) lessons, in this order:
# SLOT shift
# SLOT federated
# SLOT uncertainty
# SLOT selfsup
future_vit.lab(page)
# SLOT fairness
page.quiz()
