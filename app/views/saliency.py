"""Visualization and saliency: where the model looks, whether that is the lesion, and when a
heatmap lies. Core: primer.explain (Captum wrappers, scores, sanity check, embeddings),
primer.shortcut, primer.hybrid; figures: primer.saliency_figures."""

import time

import streamlit as st

from app import ui
from app.widgets import dicom_viewer, heatmap
from primer import explain, hybrid, i18n, shortcut
from primer import saliency_figures as figs
from primer.dicom import DicomError
from primer.explain import METHODS, SIGNED, AttributionLab, EmbeddingLab, PointingLab, SanityLab
from primer.shortcut import ShortcutLab
from primer.text import plot_literal

page = ui.ChapterPage("saliency")
T = page.t
NAMES = {m: T(f"method.{m}") for m in (*METHODS, *explain.CONTROLS, "random")}
CHUNK = 10  # lesion images scored per cached step, so a progress bar can move


def options(prefix: str):
    """format_func for stable option ids: "<prefix>.<id>" in the chapter strings."""
    return lambda o: T(f"{prefix}.{o}".replace(" ", "_"))


# Cached work: shared, read-only results keyed by model and settings (uploads are never cached).
@st.cache_resource(show_spinner=False, max_entries=1024)
def attribution(model_key, image_key, method, target, settings, _model, _x) -> explain.Attribution:
    return explain.attribute(explain.private_copy(_model), _x, method, target, settings)


@st.cache_resource(show_spinner=False, max_entries=16)
def blocks(model_key, _model) -> list[explain.Block]:
    return explain.conv_blocks(explain.private_copy(_model))


@st.cache_resource(show_spinner=False, max_entries=64)
def localization_chunk(model_key, subset, start, stop, _ctx):
    """Maps of lesion images [start:stop]; chunks do not depend on how many are scored in all,
    so raising the count only computes the new chunks."""
    return explain.localization_for(_ctx, subset, stop, start, stop)


@st.cache_resource(show_spinner=False, max_entries=64)
def sanity_step(model_key, case, index, seed, step, _ctx, _x) -> dict:
    """One cascade step's maps of the first SANITY_MAX_IMAGES images of a kind: every smaller
    'images averaged' is a slice of them, so that slider never waits for new maps."""
    return explain.sanity_step(_ctx, _x, seed, step)


@st.cache_resource(show_spinner=False, max_entries=16)
def sanity_summary(model_key, case, index, seed, _layers, _steps, _x) -> explain.SanityResult:
    """Every image's correlations, ranked once; a smaller count is `.first(count)` of it."""
    return explain.summarize_sanity(_layers, _steps, _x)


@st.cache_resource(show_spinner=False, max_entries=8)
def projection(model_key, method, perplexity, seed, _ctx):
    features = explain.embed(_ctx.model, _ctx.test.x)
    return explain.project(features, method, seed, perplexity), explain.explained_variance(features)


@st.cache_resource(show_spinner=False, max_entries=2)
def shortcut_data(settings: tuple) -> shortcut.ShortcutData:
    return shortcut.make_data(ShortcutLab(**dict(settings)))


@st.cache_resource(show_spinner=False, max_entries=6)
def shortcut_report(settings: tuple, _data) -> shortcut.ShortcutReport:
    """Both models' test results; the training queue hands back the runs it just finished."""
    return shortcut.run(ShortcutLab(**dict(settings)), shortcut.train_through_queue, _data)


@st.cache_resource(show_spinner=False, max_entries=32)
def shortcut_examples(settings: tuple, index: int, _report) -> shortcut.ExampleMaps:
    return shortcut.example_maps(_report, index)


@st.cache_data(show_spinner=False, max_entries=32)
def hybrid_case(example_id, seed, contrast) -> hybrid.HybridCase:
    return hybrid.hybrid_case(example_id, seed, contrast)


def model_context() -> explain.ModelContext:
    """The default model, or the user's own from the training lab (this session only)."""
    default = explain.from_default(ui.default_model())
    run = ui.user_run()
    if run is None:
        return default
    choice = st.radio(
        T("model.label"),
        ["default", "mine"],
        format_func=options("model"),
        horizontal=True,
        help=T("model.label.help"),
        key="saliency.model",
        persist_state="session",
    )
    if choice == "default":
        return default
    memo = st.session_state.get("saliency.user_context")
    if memo is None or memo[0] is not run:
        memo = st.session_state["saliency.user_context"] = (run, explain.from_run(run))
    if memo[1] is None:
        st.warning(T("model.not_reproducible"))
    return memo[1] or default


def uploaded_image() -> explain.ExplainedImage | None:
    """An uploaded DICOM as a network input (the imaging chapter's reader; the bytes and their
    maps stay in this session)."""
    loaded = dicom_viewer.upload("saliency.upload")
    if loaded is None:
        st.info(T("attrib.upload_hint"))
        return None
    if loaded.error is not None:
        dicom_viewer.show_error(loaded.error)
        return None
    try:
        parsed = hybrid.network_input(loaded.image)
    except DicomError as err:
        dicom_viewer.show_error(err)
        return None
    rows, cols = parsed.original_shape
    modality = ui.literal(parsed.modality, 16)  # the file's own text
    st.caption(T("attrib.upload_info", modality=modality, rows=rows, cols=cols, frames=parsed.n_frames))
    return explain.ExplainedImage(loaded.key, parsed.x, parsed.display)


def attribution_of(ctx, image, method, target, settings) -> explain.Attribution:
    settings = settings.for_method(method)
    if not image.key.startswith("upload:"):
        return attribution(ctx.key, image.key, method, target, settings, ctx.model, image.x)
    memo = st.session_state.setdefault("saliency.upload_maps", {})
    key = (ctx.key, image.key, method, target, settings)
    if key not in memo:
        memo[key] = explain.attribute(explain.private_copy(ctx.model), image.x, method, target, settings)
    return memo[key]


def explorer_image(lab, ctx, source) -> explain.ExplainedImage | None:
    if source == "upload":
        return uploaded_image()
    if source == "hybrid":
        example = lab.selectbox(
            "ct_example", "attrib.ct_example", options=list(hybrid.HYBRID_SOURCES), format_func=options("ct")
        )
        seed = lab.number("hybrid_seed", "attrib.hybrid_seed", min_value=0, max_value=999, step=1)
        contrast = lab.slider("hybrid_contrast", "attrib.hybrid_contrast", min_value=0.0, max_value=5.0, step=0.5)
        try:
            case = hybrid_case(example, seed, contrast)
        except DicomError as err:
            dicom_viewer.show_error(err)
            return None
        return explain.ExplainedImage(
            f"hybrid-{example}-{seed}-{contrast}", case.x, case.display, case.mask, int(contrast > 0)
        )
    case = lab.selectbox("case", "attrib.case", options=explain.CASES, format_func=options("case"))
    index = lab.number("index", "attrib.index", min_value=0, max_value=999, step=1)
    image, count = explain.test_image(ctx, case, index)
    st.caption(T("attrib.case_count", count=count) if image else T("attrib.no_case"))
    return image


def class_name(ctx, c: int) -> str:
    """A class's name in the reader's language; a class from the user's own data keeps its folder
    name, raw (escape it for the Markdown or Plotly string it goes into)."""
    key = f"class.{ctx.classes[c]}".replace(" ", "_")
    return T(key) if i18n.has_key(f"saliency.{key}") else str(ctx.classes[c])


def method_controls(lab, ctx, method) -> None:
    """Only the knobs of the chosen method."""
    if method in ("integrated_gradients", "deeplift"):
        lab.selectbox("baseline", "attrib.baseline", options=explain.BASELINES, format_func=options("baseline"))
    if method == "integrated_gradients":
        lab.select_slider("ig_steps", "attrib.ig_steps", options=[5, 10, 20, 50, 100, 200, 300])
    if method == "smoothgrad":
        lab.slider("smooth_samples", "attrib.smooth_samples", min_value=5, max_value=50, step=5)
        lab.slider("smooth_noise", "attrib.smooth_noise", min_value=0.0, max_value=0.5, step=0.05)
    if method in ("gradcam", "guided_gradcam"):
        back = blocks(ctx.key, ctx.model)[::-1]  # counted back from the output
        label = lambda b: T("block", number=len(back) - b, channels=back[b].channels, size=back[b].size)  # noqa: E731
        lab.selectbox("gradcam_block", "attrib.gradcam_block", options=list(range(len(back))), format_func=label)
    if method == "occlusion":
        lab.select_slider("occlusion_window", "attrib.occlusion_window", options=[4, 6, 8, 12, 16])
        lab.select_slider("occlusion_stride", "attrib.occlusion_stride", options=[2, 4, 8])


@st.fragment  # a control reruns its own lab, not the page
def explorer(ctx) -> None:
    lab = page.lab(AttributionLab)
    lab.presets()
    controls, shown = st.columns([1.2, 2])
    with controls:
        source = lab.segmented(
            "source",
            "attrib.source",
            options=["phantom", "hybrid", "upload"],
            format_func=options("attrib.source"),
            keep=True,
        )
        image = explorer_image(lab, ctx, source)
        method = lab.selectbox("method", "attrib.method", options=METHODS, format_func=NAMES.get, keep=True)
        classes = list(range(len(ctx.classes)))
        target = lab.segmented(
            "target", "attrib.target", options=classes, format_func=lambda c: ui.literal(class_name(ctx, c), 40)
        )
        method_controls(lab, ctx, method)
        opacity = lab.slider("opacity", "attrib.opacity", min_value=0.0, max_value=1.0, step=0.05, keep=True)
        show_mask = lab.checkbox("show_mask", "attrib.show_mask")
        show_grid = lab.checkbox("show_grid", "attrib.show_grid")
    if image is None:
        return
    settings = lab.state().settings()
    mask = image.mask if show_mask else None
    with shown:
        with st.spinner(T("computing")):
            result = attribution_of(ctx, image, method, target, settings)
        amap = result.map[0, 0]
        heatmap.overlay(
            image.display,
            amap,
            signed=result.signed,
            opacity=opacity,
            mask=mask,
            title=NAMES[method],
            key="attrib.overlay",
        )
        facts = explain.image_facts(ctx.model, image, result, target)
        for _, values in facts:  # class indices become translated class names
            if "cls" in values:
                values["cls"] = ui.literal(class_name(ctx, values["cls"]), 40)
        st.markdown(" · ".join(T(f"attrib.{key}", **values) for key, values in facts))
        st.caption(T(f"attrib.what.{method}"))
    if show_grid:
        st.subheader(T("attrib.grid"))
        with st.spinner(T("computing")):
            panels = [
                (NAMES[m], attribution_of(ctx, image, m, target, settings).map[0, 0], m in SIGNED) for m in METHODS
            ]
        ui.figure(figs.map_grid(image.display, panels, opacity=opacity, mask=mask), key="attrib.grid")
        st.caption(T("attrib.grid_caption"))


@st.fragment  # a control reruns its own lab, not the page
def pointing(ctx) -> None:
    lab = page.lab(PointingLab)
    lab.presets()
    cols = st.columns([1, 1, 1, 1.3], vertical_alignment="bottom")  # the switch's label stays whole when presenting
    with cols[0]:
        lab.slider("num_images", "pointing.num_images", min_value=10, max_value=150, step=10)
    with cols[1]:
        lab.slider("tolerance", "pointing.tolerance", min_value=0, max_value=6)
    with cols[2]:
        lab.segmented(
            "subset", "pointing.subset", options=["positives", "detected"], format_func=options("pointing.subset")
        )
    with cols[3]:
        lab.toggle("run", "pointing.run", keep=True)
    state = lab.state()
    if not state.run:
        st.info(T("pointing.idle"))
        return
    total = len(explain.lesion_images(ctx, state.subset, state.num_images))
    if total == 0:
        st.info(T("pointing.no_lesions"))
        return
    bar, chunks = st.empty(), []
    for start in range(0, total, CHUNK):  # chunk by chunk, so the bar moves
        bar.progress(start / total, text=T("pointing.progress", done=start, total=total))
        chunks.append(localization_chunk(ctx.key, state.subset, start, min(start + CHUNK, total), ctx))
    bar.empty()
    maps, masks, positions = explain.merge_chunks(chunks)
    rows = explain.score_maps(maps, masks, state.tolerance, positions).summary()
    fig = figs.localization_bars(rows, NAMES, pointing_title=T("pointing.pointing"), energy_title=T("pointing.energy"))
    ui.figure(fig, key="pointing.bars")
    columns = (T("pointing.col.method"), T("pointing.col.pointing"), T("pointing.col.energy"))
    table = figs.localization_table(rows, NAMES, columns)
    st.dataframe(table, hide_index=True, height=35 * (len(table) + 1) + 3)  # every row, no inner scroll
    control = {r["method"]: f"{r['pointing']:.0%}" for r in rows if r["method"] in explain.CONTROLS}
    st.caption(T("pointing.caption", n=len(positions), **control))


@st.fragment  # a control reruns its own lab, not the page
def sanity_check(ctx) -> None:
    lab = page.lab(SanityLab)
    lab.presets()
    layers = explain.cascade_layers(ctx.model)
    cols = st.columns(4, vertical_alignment="bottom")
    with cols[0]:
        lab.selectbox("case", "sanity.case", options=explain.CASES, format_func=options("case"))
    with cols[1]:
        lab.number("index", "sanity.index", min_value=0, max_value=999, step=1)
    with cols[2]:
        lab.slider("num_images", "sanity.num_images", min_value=1, max_value=explain.SANITY_MAX_IMAGES)
    with cols[3]:
        lab.number("seed", "sanity.seed", min_value=0, max_value=999, step=1)
    if st.session_state.get(lab.key("depth"), 0) > len(layers):  # a link made for a deeper model
        lab.set(depth=len(layers))
    depth = lab.slider("depth", "sanity.depth", min_value=0, max_value=len(layers), keep=True)
    state = lab.state()
    x = explain.sanity_images(ctx, state.case, state.index, explain.SANITY_MAX_IMAGES)
    if x is None:
        st.info(T("attrib.no_case"))
        return
    key = (ctx.key, state.case, state.index, state.seed)
    bar, steps = st.empty(), []
    for step in range(len(layers) + 1):
        bar.progress(step / (len(layers) + 1), text=T("sanity.progress", step=step, total=len(layers)))
        steps.append(sanity_step(*key, step, ctx, x))
    bar.empty()
    result = sanity_summary(*key, ["original", *layers], steps, x).first(state.num_images)
    layer_names = {"original": T("sanity.original"), "head": T("sanity.head")}
    layer_names |= {
        b.name: T("block_short", number=i + 1, size=b.size) for i, b in enumerate(blocks(ctx.key, ctx.model))
    }
    names = [*METHODS, "edges"]
    panels = [(T(f"short.{m}"), result.maps[m][0], m in SIGNED) for m in names]
    panels += [(f"ρ = {result.correlation[m][depth]:.2f}", result.maps[m][depth], m in SIGNED) for m in names]
    image = explain.test_image(ctx, state.case, state.index)[0]
    ui.figure(figs.map_grid(image.display, panels, opacity=0.8, cols=len(names), panel_height=125), key="sanity.grid")
    st.caption(T("sanity.grid_caption", layer=layer_names[result.layers[depth]], depth=depth))
    titles = (T("sanity.rho"), T("sanity.rho_image"))
    fig = figs.sanity_curves(
        result.layers,
        result.correlation,
        result.image_correlation,
        NAMES,
        layer_names=layer_names,
        titles=titles,
        depth=depth,
    )
    ui.figure(fig, key="sanity.curves")
    survivors = ", ".join(NAMES[m] for m in METHODS if result.correlation[m][-1] > 0.5) or T("sanity.none")
    alike = sorted(METHODS, key=lambda m: -result.image_correlation[m][-1])[:3]
    alike_text = ", ".join(f"{NAMES[m]} (ρ = {result.image_correlation[m][-1]:.2f})" for m in alike)
    st.caption(T("sanity.survivors", methods=survivors) + " " + T("sanity.image_like", methods=alike_text))


@st.fragment  # a control reruns its own lab, not the page
def shortcut_lab() -> None:
    lab = page.lab(ShortcutLab)
    lab.presets()
    cols = st.columns(4, vertical_alignment="bottom")
    with cols[0]:
        lab.segmented(
            "marker", "shortcut.marker", options=shortcut.MARKERS, format_func=options("shortcut.marker"), keep=True
        )
    with cols[1]:
        lab.segmented("control", "shortcut.control", options=shortcut.CONTROLS, format_func=options("shortcut.control"))
    with cols[2]:
        lab.slider("marker_rate", "shortcut.marker_rate", min_value=0.0, max_value=1.0, step=0.1)
    with cols[3]:
        lab.slider("contrast", "shortcut.contrast", min_value=1.0, max_value=4.0, step=0.5)
    cols = st.columns([1.3, 1, 1, 1], vertical_alignment="bottom")
    with cols[0]:
        lab.toggle("run", "shortcut.run", keep=True)
    with cols[1]:
        lab.select_slider("num_images", "shortcut.num_images", options=[600, 1200, 2000])
    with cols[2]:
        lab.number("seed", "shortcut.seed", min_value=0, max_value=999, step=1)
    with cols[3]:
        lab.number("index", "shortcut.index", min_value=0, max_value=999, step=1)
    state = lab.state()
    if not state.run:
        st.info(T("shortcut.idle"))
        return
    settings = state.settings()
    data = shortcut_data(settings)
    # Both runs go to the shared training queue (identical requests share one run; a finished
    # run is handed back at once), and the page follows their progress.
    jobs, bar = shortcut.submit(state, data), st.empty()
    while not all(job.finished for job in jobs.values()):
        done = sum(job.progress for job in jobs.values()) / len(jobs)
        waiting = max(job.position() for job in jobs.values())
        text = T("shortcut.queued", position=waiting) if waiting else T("shortcut.training", percent=done)
        bar.progress(done, text=text)
        time.sleep(0.25)
    bar.empty()
    failed = [job for job in jobs.values() if job.state != "done"]
    if failed:
        st.error(ui.error_message("saliency.shortcut", "training_failed", reason=failed[0].error or failed[0].state))
        return
    report = shortcut_report(settings, data)
    models = {m: T(f"shortcut.model.{m}") for m in shortcut.MODELS}
    variants = {v: T(f"shortcut.variant.{v}") for v in shortcut.VARIANTS}
    ui.figure(figs.shortcut_bars(report.auc, models, variants, y_title=T("shortcut.auc")), key="shortcut.bars")
    st.caption(T("shortcut.bars_caption", **report.auc["shortcut"]))
    shown = shortcut_examples(settings, state.index, report)
    short = {key: T(f"shortcut.short.{key}") for key in (*shortcut.MODELS, "marked", "clean")}
    panels = [(f"{short[m]} · {short[v]} · {NAMES[k]}", amap, k in SIGNED) for (m, v, k), amap in shown.maps.items()]
    images = [shown.images[v] for (_, v, _) in shown.maps]
    fig = figs.map_grid(
        shown.images["marked"], panels, images=images, opacity=0.6, mask=shown.mask, marker=report.marker_region, cols=4
    )
    ui.figure(fig, key="shortcut.grid")
    st.caption(
        T(
            "shortcut.grid_caption",
            shortcut_share=report.marker_share["shortcut"],
            control_share=report.marker_share["control"],
        )
    )


@st.fragment  # a control reruns its own lab, not the page
def feature_space(ctx) -> None:
    lab = page.lab(EmbeddingLab)
    lab.presets()
    cols = st.columns([1, 1.8, 1.2, 0.8], vertical_alignment="bottom")  # room for three colour choices
    with cols[0]:
        method = lab.segmented(
            "projection", "embedding.projection", options=["pca", "tsne"], format_func=options("embedding"), keep=True
        )
    with cols[1]:
        lab.segmented(
            "color", "embedding.color", options=["label", "correct", "prob"], format_func=options("embedding.color")
        )
    with cols[2]:
        lab.slider("perplexity", "embedding.perplexity", min_value=5, max_value=50, step=5, disabled=method != "tsne")
    with cols[3]:
        lab.number("seed", "embedding.seed", min_value=0, max_value=999, step=1, disabled=method != "tsne")
    state = lab.state()
    with st.spinner(T("embedding.computing")):
        perplexity = state.perplexity if state.projection == "tsne" else 0  # PCA has none: one cache entry
        coords, variance = projection(ctx.key, state.projection, perplexity, state.seed, ctx)
    labels, prob = ctx.test.y.numpy(), ctx.test_probs[:, 1]
    wrong = ((prob >= 0.5).astype(int) != labels).astype(int)
    class_names = {i: plot_literal(class_name(ctx, i)) for i in range(len(ctx.classes))}
    hover = [T("embedding.hover", i=i, cls=class_names[labels[i]], p=prob[i]) for i in range(len(labels))]
    selected = state.index % len(labels)
    groups, group_names = {
        "label": (labels, class_names),
        "correct": (wrong, {0: T("embedding.right"), 1: T("embedding.wrong")}),
    }.get(state.color, (None, None))
    fig = figs.embedding_scatter(
        coords,
        groups=groups,
        group_names=group_names,
        values=prob if groups is None else None,
        value_title=T("embedding.prob"),
        hover=hover,
        selected=selected,
        axis_titles=(T("embedding.axis1"), T("embedding.axis2")),
    )

    def pick():  # a click on a point selects that image
        points = st.session_state["saliency.embedding_chart"].selection.points
        if points:
            lab.set(index=int(points[0]["customdata"]))

    plot, side = st.columns([2, 1])
    with plot:
        height = int(480 * (1.35 if ui.presenting() else 1.0))
        fig.update_layout(height=height)
        st.plotly_chart(
            fig, key="saliency.embedding_chart", on_select=pick, selection_mode="points", config={"displaylogo": False}
        )
        st.caption(
            T("embedding.caption_pca", v1=variance[0], v2=variance[1])
            if method == "pca"
            else T("embedding.caption_tsne")
        )
    with side:
        lab.number("index", "embedding.index", min_value=0, max_value=len(labels) - 1, step=1)
        mask = None if ctx.test.mask is None else ctx.test.mask[selected].numpy()
        heatmap.overlay(ctx.test.x[selected, 0].numpy(), None, mask=mask, key="embedding.image", height=300)
        st.markdown(hover[selected])


context = model_context()
page.lesson("why")
page.lesson("methods")
page.lesson("methods_more", expanded=False)
st.header(T("attrib.title"))
explorer(context)
st.header(T("pointing.title"))
page.lesson("localization", expanded=False)
pointing(context)
st.header(T("sanity.title"))
page.lesson("sanity", expanded=False)
sanity_check(context)
st.header(T("shortcut.title"))
page.lesson("shortcut", expanded=False)
shortcut_lab()
st.header(T("embedding.title"))
page.lesson("embedding", expanded=False)
feature_space(context)
page.lesson("not_proof")
page.quiz()
