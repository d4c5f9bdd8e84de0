"""LightFigure against Plotly itself: the same spec sent to the browser, with or without validation."""

import json

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio

from primer.light_figure import LightFigure, axes, grid


def browser_json(fig) -> dict:
    """What st.plotly_chart sends: the figure's dict as JSON (arrays as Plotly's base64 specs).
    Plotly's default template is left out: Streamlit's theme replaces it in the browser."""
    sent = json.loads(pio.to_json(fig.to_dict(), validate=False))
    sent["layout"].pop("template", None)
    return sent


def spec() -> dict:
    layout = grid(1, 2, ["left", "right"], h_space=0.1)
    layout.update(height=300, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    z = np.arange(12, dtype=np.float32).reshape(3, 4)
    data = [
        {"type": "heatmap", "z": z, "xaxis": axes(1)[0], "yaxis": axes(1)[1], "showscale": False},
        {"type": "heatmap", "z": -z, "xaxis": axes(2)[0], "yaxis": axes(2)[1], "showscale": False},
    ]
    return {"data": data, "layout": layout}


def test_the_light_figure_sends_what_a_validated_figure_sends():
    assert browser_json(LightFigure(spec())) == browser_json(go.Figure(spec()))


def test_update_layout_merges_like_plotly_without_building_the_layout():
    light, plotly = LightFigure(spec()), go.Figure(spec())
    for fig in (light, plotly):
        fig.update_layout(margin={"t": 80}, showlegend=False)
        fig.update_layout({"height": 360})
    assert light._light_layout is not None  # still a dict: nothing was validated
    assert browser_json(light)["layout"] == browser_json(plotly)["layout"]
    assert light.height == 360


def test_magic_underscores_and_layout_access_fall_back_to_plotly():
    light, plotly = LightFigure(spec()), go.Figure(spec())
    for fig in (light, plotly):
        fig.update_layout(xaxis_title="mm", paper_bgcolor="black")
    assert light.layout.xaxis.title.text == "mm"
    for fig in (light, plotly):
        fig.update_layout(height=500)
    assert browser_json(light)["layout"] == browser_json(plotly)["layout"]
    # the default template, skipped while the layout was a dict, is there once it is built
    assert light.to_dict()["layout"]["template"] == plotly.to_dict()["layout"]["template"]


def test_a_shared_nested_dict_is_not_changed_by_a_merge():
    margin = {"l": 10, "r": 10, "t": 40, "b": 10}
    first = LightFigure({"data": [], "layout": {"margin": margin}})
    first.update_layout(margin={"t": 90})
    assert margin["t"] == 40 and first.to_dict()["layout"]["margin"]["t"] == 90


def built_figures():
    """Light figures from the builders that skip Plotly's validation, on small inputs."""
    from primer import metrics, train_figures
    from primer import metrics_figures as mf
    from primer import saliency_figures as sf
    from primer import terminology_figures as tf
    from primer.synth import PhantomConfig, generate
    from primer.train import EpochRecord

    rng = np.random.default_rng(0)
    labels, scores = np.r_[np.ones(30), np.zeros(30)], rng.normal(size=60) + np.r_[np.ones(30), np.zeros(30)]
    roc = metrics.roc(labels, scores)
    yield mf.confusion_figure(metrics.Confusion(tp=8, fp=3, tn=20, fn=2))
    yield mf.roc_figure([{"name": "model", "fpr": roc.fpr, "tpr": roc.tpr}], operating_point=(0.2, 0.7))
    yield mf.quiz_roc_point().figure
    yield mf.overlap_figure(rng.random((12, 12)), rng.integers(0, 4, (12, 12)))
    rho = {"saliency": np.linspace(1, 0, 4), "edges": np.ones(4)}
    names = {"saliency": "Saliency", "edges": "Edges"}
    yield sf.sanity_curves(["a", "b", "c", "d"], rho, rho, names, layer_names={}, titles=("left", "right"), depth=2)
    multi = generate(PhantomConfig(n=4, size=48, max_lesions=2, min_lesions=2, prevalence=1.0))
    yield tf.task_families(multi)
    epochs = [EpochRecord(i + 1, 0.7, 0.6, 0.8, 0.6, 0.7, float(i)) for i in range(3)]
    keys = ("loss", "performance", "train_loss", "val_loss", "train_accuracy", "val_accuracy", "val_auc", "previous",
            "epoch", "chance")  # fmt: skip
    yield train_figures.curves(epochs, 6, {k: k for k in keys}, previous=epochs)
    yield train_figures.image_grid(rng.random((3, 8, 8)), ["a", "b", "c"], rng.random((3, 8, 8)) > 0.8)


def test_what_the_light_builders_send_passes_plotly_validation_unchanged():
    """No typo or invalid value hides in a figure that is never validated: Plotly validating the
    same traces and layout (it raises on an unknown property) sends the same JSON."""
    for fig in built_figures():
        assert isinstance(fig, LightFigure)
        validated = go.Figure({"data": fig.light_data, "layout": fig.to_dict()["layout"]})
        assert browser_json(fig) == browser_json(validated)
