"""The DICOM viewer, shared by every page that opens a DICOM: the imaging chapter's viewer lab
and the saliency chapter's "your own DICOM".

    loaded = dicom_viewer.source_picker(lab)            # bundled example or upload; None: nothing yet
    frame, center, width = dicom_viewer.window_controls(lab, loaded)
    dicom_viewer.image_panel(loaded, frame, center, width, log_counts=True)
    dicom_viewer.metadata_panel(loaded)

or, on a page with its own controls, `loaded = dicom_viewer.upload("saliency.upload")` for an
uploaded image alone (a Loaded: `.image` is the DicomImage, or `.error` says why there is none;
`show_error(loaded.error)` prints its translated message). source_picker binds the lab's `source`
field (str); window_controls binds `center`, `width` (float) and `frame` (int, counted from 1),
or the field names it is given.

Caching: bundled examples are decoded with st.cache_data keyed by the example id. Uploaded bytes
are kept only in this session's st.session_state, keyed by the upload's file_id, decoded once, and
dropped when the file is removed from the uploader; they are never cached across sessions and
never written to disk. Text that comes from a file is shown as text (st.dataframe, st.code) or
escaped for the Markdown or Plotly string it goes into (primer.text), never read as markup.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import string
from dataclasses import dataclass

import pyarrow as pa
import streamlit as st

from app import ui
from primer import i18n
from primer.deid import MetaRow, burned_in_text_risk, metadata_rows
from primer.dicom import (
    EXAMPLES,
    WINDOW_PRESETS,
    DicomError,
    DicomImage,
    Example,
    WindowRange,
    auto_window,
    deidentify,
    hu_presets_apply,
    load_example,
    read_dicom,
    suggested_window,
    window_coverage,
    window_edges,
    window_range,
)
from primer.imaging_figures import (
    histogram_figure,
    image_figure,
    mismatch,
    mismatch_figure,
    steps_figure,
    tensor_steps,
    training_window,
)
from primer.labstate import field_defaults
from primer.text import markdown_literal, plot_literal

UPLOAD = "upload"  # the source value meaning "the file the user uploaded"
_UPLOADS = "dicom_viewer.uploads"  # session_state: uploader key → {file_id: Upload}
T = "imaging."  # the viewer's strings live with the imaging chapter


def t(key: str, **values) -> str:
    return ui.t(T + key, **values)


# ──────────────────────────────────────── loading ────────────────────────────────────────────


@dataclass
class Extras:
    """What the viewer derives once per image (not per slider move)."""

    suggested: tuple[float, float, str]  # the window the image opens with
    auto: tuple[float, float]  # the 1st–99th percentile window
    limits: WindowRange
    rows: list[MetaRow]  # metadata, identifying values masked
    table: pa.Table  # the same rows as an Arrow table: st.dataframe sends it without pandas
    deidentified: bytes | None
    deid_error: DicomError | None
    burned_in_risk: bool


def _extras(img: DicomImage, preset: str | None) -> Extras:
    try:
        deidentified, deid_error = deidentify(img.dataset), None
    except DicomError as exc:
        deidentified, deid_error = None, exc
    rows = metadata_rows(img.dataset)
    columns = {"tag": [r.tag for r in rows], "keyword": [r.keyword for r in rows]}
    columns |= {"vr": [r.vr for r in rows], "value": [r.value for r in rows]}
    return Extras(
        suggested=suggested_window(img, preset),
        auto=auto_window(img.pixels),
        limits=window_range(img),
        rows=rows,
        table=pa.table(columns),
        deidentified=deidentified,
        deid_error=deid_error,
        burned_in_risk=burned_in_text_risk(img.dataset),
    )


@dataclass
class Loaded:
    """The image a viewer shows, or why there is none."""

    key: str  # "example:<id>" or "upload:<file_id>": names the image for zoom state and set-up
    name: str  # shown as text only (an upload's file name comes from the user)
    image: DicomImage | None
    error: DicomError | None
    example: Example | None = None
    extras: Extras | None = None


@st.cache_data(max_entries=12, show_spinner=False)
def example_image(example_id: str) -> DicomImage:
    """A bundled example, decoded once per process (cache keyed by the example id)."""
    return load_example(example_id)


@st.cache_data(max_entries=12, show_spinner=False)
def _example_extras(example_id: str) -> Extras:
    example = next(e for e in EXAMPLES if e.id == example_id)
    return _extras(example_image(example_id), example.preset)


def load_bundled(example_id: str) -> Loaded:
    example = next((e for e in EXAMPLES if e.id == example_id), None)
    name = t(f"example.{example_id}") if example else example_id
    try:
        img = example_image(example_id)
    except DicomError as exc:
        return Loaded(f"example:{example_id}", name, None, exc, example)
    return Loaded(f"example:{example_id}", name, img, None, example, _example_extras(example_id))


@dataclass
class Upload:
    file_id: str
    name: str
    data: bytes  # the file as uploaded: in this session's memory only
    loaded: Loaded


def upload(key: str, *, label: str | None = None) -> Loaded | None:
    """A file uploader for one DICOM (no extension filter: many DICOM files have none).

    The file is read once per upload and kept, with its bytes, in st.session_state under the
    upload's file_id; removing it from the uploader drops it. Returns None until a file is given.
    """
    file = st.file_uploader(label or t("upload"), key=key, help=t("upload.help"))
    held: dict[str, Upload] = st.session_state.setdefault(_UPLOADS, {}).setdefault(key, {})
    if file is None:
        held.clear()
        return None
    if file.file_id not in held:
        held.clear()  # one file per uploader: the previous one leaves memory
        data = file.getvalue()
        try:
            img = read_dicom(data)
            loaded = Loaded(f"upload:{file.file_id}", file.name, img, None, None, _extras(img, None))
        except DicomError as exc:
            loaded = Loaded(f"upload:{file.file_id}", file.name, None, exc)
        held[file.file_id] = Upload(file.file_id, file.name, data, loaded)
    return held[file.file_id].loaded


def source_picker(lab, *, field: str = "source", upload_key: str | None = None) -> Loaded | None:
    """Bundled example or upload, bound to the lab's `field`; the example's lesson as a caption."""
    options = [e.id for e in EXAMPLES] + [UPLOAD]
    pick, side = st.columns([2, 3], vertical_alignment="bottom")
    with pick:
        choice = lab.selectbox(
            field,
            "source",
            options=options,
            keep=True,
            format_func=lambda v: t("source.upload") if v == UPLOAD else t(f"example.{v}"),
            on_change=_window_pending,
            args=(lab,),
        )
    key = upload_key or f"{lab.id}.upload"
    if choice != UPLOAD:  # the uploader is not drawn, so its file is gone: free the bytes now
        st.session_state.get(_UPLOADS, {}).pop(key, None)
    if choice == UPLOAD:
        with side:
            loaded = upload(key)
        if loaded is None:
            st.info(t("upload_prompt"))
        return loaded
    loaded = load_bundled(choice)
    if loaded.example is not None:
        side.caption(ui.bi(loaded.example.teaches))
    return loaded


def _window_pending(lab) -> None:
    """After the user picks another source, open it with its own suggested window."""
    st.session_state[f"{lab.id}.window_pending"] = True


# ─────────────────────────────────────── error messages ──────────────────────────────────────


def error_text(exc: DicomError) -> str:
    """The translated message for a DicomError, with its detail in the message's placeholders."""
    detail = dict(exc.detail)
    for name in ("declared", "needed", "limit", "file"):  # bytes → MB for the message
        if f"{name}_bytes" in detail:
            detail[f"{name}_mb"] = f"{detail[f'{name}_bytes'] / 1024**2:,.0f}"
    if "frame" in detail:
        detail["frame_number"] = int(detail["frame"]) + 1  # the core counts frames from 0
    key = f"{T}error.{exc.code}"
    if not i18n.has_key(key):
        return ui.t("ui.error.unknown", code=exc.code)
    fields = {name for _, name, _, _ in string.Formatter().parse(ui.t(key)) if name}
    # Details can come from the file (a transfer syntax UID, a decoder's words): shown as written
    return ui.t(key, **{name: markdown_literal(detail.get(name, "?"), 80) for name in fields})


def show_error(exc: DicomError) -> None:
    st.error(error_text(exc), icon=":material/error:")
    technical = exc.detail.get("error") or exc.detail.get("reason")
    if technical:
        with st.expander(t("error.technical")):
            st.code(str(technical), language=None, wrap_lines=True)


# ─────────────────────────────────────── window controls ─────────────────────────────────────


def window_controls(
    lab,
    loaded: Loaded,
    *,
    center: str = "center",
    width: str = "width",
    frame: str = "frame",
    keep: bool = True,
) -> tuple[int, float, float]:
    """Preset buttons, then level and width (and frame for multi-frame images), each as a slider
    beside a number box.

    Returns (frame index from 0, center, width). Colour images have no window: their stored
    colours are what is shown, so only the frame control appears.
    """
    img, extras = loaded.image, loaded.extras
    keys = {center: lab.key(center), width: lab.key(width), frame: lab.key(frame)}
    _set_up_window(lab, loaded, keys[center], keys[width], keys[frame])
    defaults = field_defaults(lab.cls)
    limits = _widened(extras.limits, defaults[center], defaults[width])

    if not img.is_color:
        current = tuple(float(st.session_state.get(keys[f], defaults[f])) for f in (center, width))
        _preset_buttons(lab, img, extras, keys[center], keys[width], current)
    columns = st.columns(3, gap="medium")
    center_value, width_value = 128.0, 256.0  # colour: identity on 0–255 (see suggested_window)
    if img.is_color:
        columns[0].caption(t("colour_note"))
    else:
        number_format = "%.0f" if limits.step >= 1 else "%.4g"
        with columns[0]:
            center_value = _slider_and_box(
                lab, center, "center", limits.center_min, limits.center_max, limits.step, number_format, keep
            )
        with columns[1]:
            width_value = _slider_and_box(
                lab, width, "width", limits.width_min, limits.width_max, limits.step, number_format, keep
            )
    with columns[-1]:
        if img.n_frames > 1:
            frame_index = _slider_and_box(lab, frame, "frame", 1, img.n_frames, 1, "%d", keep=False) - 1
        else:
            # Drawn even for one frame, so a later image's frame (from a preset) reaches the URL
            st.session_state[keys[frame]] = 1
            lab.number(frame, "frame", min_value=1, max_value=1, step=1, disabled=True)
            frame_index = 0
    return frame_index, float(center_value), float(width_value)


def _widened(limits: WindowRange, center: float, width: float) -> WindowRange:
    """The limits stretched to hold the lab's default window (a widget's default must be in range)."""
    step = limits.step
    return dataclasses.replace(
        limits,
        center_min=min(limits.center_min, math.floor(center / step) * step),
        center_max=max(limits.center_max, math.ceil(center / step) * step),
        width_max=max(limits.width_max, math.ceil(width / step) * step),
    )


def _slider_and_box(lab, field: str, label_key: str, low, high, step, number_format: str, keep: bool):
    """A slider for dragging and a number box for exact values, showing one lab field.

    The number box is the lab's URL-bound widget. Its identity is its key alone, so it keeps
    its URL parameter when another image brings other limits; a slider with new limits is a new
    widget to Streamlit, and a value set from Python on a new widget never reaches the address
    bar. So the slider is unbound and mirrors the box: the box is drawn first (it reads the URL
    on a fresh page), the slider is set from it, and dragging the slider writes the box.
    """
    kind = type(field_defaults(lab.cls)[field])  # int or float, as the lab declares
    low, high, step = kind(low), kind(high), kind(step)
    bound_key, slider_key = lab.key(field), f"{lab.key(field)}.slider"
    held = st.session_state.get(bound_key)
    if held is not None and not low <= held <= high:
        st.session_state[bound_key] = kind(min(max(held, low), high))  # outside this image's range

    def from_slider() -> None:
        st.session_state[bound_key] = st.session_state[slider_key]

    help_key = f"{T}{label_key}.help"
    help_text = ui.t(help_key) if i18n.has_key(help_key) else None
    where = lab.page.hidden_controls() if ui.presenting() and not keep else contextlib.nullcontext()
    with where:
        drag, box = st.columns([3, 1.2], vertical_alignment="bottom")
        with box:
            value = lab.number(
                field,
                label_key,
                min_value=low,
                max_value=high,
                step=step,
                format=number_format,
                label_visibility="collapsed",
                keep=True,  # placed by `where` above, beside its slider
            )
        st.session_state[slider_key] = value
        with drag:
            st.slider(
                lab.page.t(label_key),
                min_value=low,
                max_value=high,
                step=step,
                format=number_format,
                key=slider_key,
                on_change=from_slider,
                help=help_text,
            )
    return value


def _set_up_window(lab, loaded: Loaded, center_key: str, width_key: str, frame_key: str) -> None:
    """Open a newly chosen or newly uploaded image with its suggested window.

    A link or preset that names an example keeps its own window: only a source picked by hand
    (the picker's on_change) or a new upload resets the window.
    """
    marker, pending_key = f"{lab.id}.window_for", f"{lab.id}.window_pending"
    is_new_upload = loaded.key.startswith("upload:") and st.session_state.get(marker) != loaded.key
    if st.session_state.get(pending_key) or is_new_upload:
        center_value, width_value, _ = loaded.extras.suggested
        st.session_state[center_key] = float(center_value)
        st.session_state[width_key] = float(width_value)
        st.session_state[frame_key] = 1
        st.session_state[pending_key] = False
    st.session_state[marker] = loaded.key


def _preset_buttons(
    lab, img: DicomImage, extras: Extras, center_key: str, width_key: str, current: tuple[float, float]
) -> None:
    """One button per HU preset, per window the file suggests (up to three) and "auto"; the
    button of the window in use is highlighted."""

    def apply(center_value: float, width_value: float) -> None:
        st.session_state[center_key] = float(center_value)
        st.session_state[width_key] = float(width_value)

    choices: list[tuple[str, float, float, bool, str | None]] = []
    usable = hu_presets_apply(img)
    for name, (c, w) in WINDOW_PRESETS.items():
        choices.append((t(f"preset.{name}"), c, w, usable, None if usable else t("preset.not_hu")))
    for number, (c, w, _) in enumerate(img.file_windows[:3], start=1):
        label = t("preset.file") if len(img.file_windows) == 1 else t("preset.file_n", n=number)
        choices.append((label, c, w, True, t("preset.file.help", center=f"{c:g}", width=f"{w:g}")))
    auto_center, auto_width = extras.auto
    choices.append((t("preset.auto"), auto_center, auto_width, True, t("preset.auto.help")))

    st.caption(t("presets.label"))
    columns = st.columns(len(choices))
    for column, (label, c, w, enabled, help_text) in zip(columns, choices, strict=True):
        active = enabled and abs(current[0] - c) <= 0.5 and abs(current[1] - w) <= 0.5
        column.button(
            label,
            key=f"{lab.id}.wl.{label}",
            on_click=apply,
            args=(c, w),
            disabled=not enabled,
            help=help_text,
            type="primary" if active else "secondary",
            width="stretch",
        )


# ───────────────────────────────────────── the image ─────────────────────────────────────────

_UNIT_NAMES = {"HU", "raw", "US", "OD", "RGB", "GY", "CNTS", "BQML", "MGML", "PCNT"}


def units_label(img: DicomImage) -> str:
    """Units as words for the page: translated when known, else the file's own text (raw: escape
    it for the sink it goes to)."""
    units = img.units.strip()
    key = f"{T}units.{units}"
    if units in _UNIT_NAMES and i18n.has_key(key):
        return ui.t(key)
    return units[:16] or t("units.raw")


def image_panel(
    loaded: Loaded, frame: int, center: float, width: float, *, log_counts: bool = True, key: str = "viewer"
) -> None:
    """The windowed image with a value readout on hover, beside the histogram with the window."""
    img = loaded.image
    units = units_label(img)
    left, right = st.columns([3, 2], gap="medium")
    with left:
        figure = image_figure(img, frame, center, width, value_name=plot_literal(units, 24), revision=loaded.key)
        ui.figure(figure, key=f"{key}.image")
        st.caption(_image_sentence(img, center, width, markdown_literal(units)))
        if loaded.extras.burned_in_risk:
            st.warning(t("burned_in"), icon=":material/warning:")
    with right:
        if img.is_color:
            st.info(t("histogram.colour"))
        else:
            labels = {"x": plot_literal(units), "y": t("histogram.pixels"), "ramp": t("histogram.ramp")}
            histogram = histogram_figure(
                img.pixels[frame],
                center,
                width,
                invert=img.invert_for_display,
                log_counts=log_counts,
                value_range=img.value_range,
                labels=labels,
            )
            ui.figure(histogram, key=f"{key}.histogram")
            st.caption(_coverage_sentence(img, frame, center, width) + " " + t("histogram.caption"))
        _properties(loaded)


def number(value: float) -> str:
    """A value for the page: 4 significant digits (whole numbers from 10 000 on), thousands
    separators, a true minus sign."""
    text = f"{value:,.0f}" if abs(value) >= 10_000 else f"{value:,.4g}"
    return text.replace("-", "−")


def _shades(img: DicomImage) -> tuple[str, str]:
    """The shades of the lowest and highest values (MONOCHROME1 is inverted for display)."""
    if img.invert_for_display:
        return t("histogram.white"), t("histogram.black")
    return t("histogram.black"), t("histogram.white")


def _coverage_sentence(img: DicomImage, frame: int, center: float, width: float) -> str:
    coverage = window_coverage(img.pixels[frame], center, width)
    low_shade, high_shade = _shades(img)
    return t(
        "histogram.coverage",
        below=f"{100 * coverage.below:.0f}%",
        inside=f"{100 * coverage.inside:.0f}%",
        above=f"{100 * coverage.above:.0f}%",
        low_shade=low_shade,
        high_shade=high_shade,
    )


def _image_sentence(img: DicomImage, center: float, width: float, units: str) -> str:
    if img.is_color:
        return t("image.caption_colour")
    low, high = window_edges(center, width)
    low_shade, high_shade = _shades(img)
    sentence = t(
        "image.caption", low=number(low), high=number(high), units=units, low_shade=low_shade, high_shade=high_shade
    )
    if img.invert_for_display:
        sentence += " " + t("image.caption_inverted")
    return sentence


def _properties(loaded: Loaded) -> None:
    """What the reader found, as a two-column table of plain text."""
    img = loaded.image
    spacing = "—"
    if img.pixel_spacing:
        spacing = f"{img.pixel_spacing[0]:.3g} × {img.pixel_spacing[1]:.3g} mm"
        if img.pixel_spacing_source == "ImagerPixelSpacing":
            spacing += f" ({t('prop.at_detector')})"
        elif img.pixel_spacing_source == "SequenceOfUltrasoundRegions":
            spacing += f" ({t('prop.us_region')})"
    rows = [
        (t("prop.file"), loaded.name),
        (t("prop.modality"), img.modality or "—"),
        (t("prop.sop_class"), img.sop_class or "—"),
        (t("prop.photometric"), img.photometric),
        (t("prop.size"), f"{img.cols} × {img.rows}"),
        (t("prop.frames"), str(img.n_frames)),
        (t("prop.spacing"), spacing),
        (t("prop.bits"), str(img.bits_stored)),
        (t("prop.units"), units_label(img)),
        (t("prop.range"), f"{number(img.value_range[0])} … {number(img.value_range[1])}"),
        (t("prop.syntax"), img.transfer_syntax + (f" · {t('prop.lossy')}" if img.lossy else "")),
    ]
    if img.file_windows:
        rows.append((t("prop.file_windows"), "; ".join(f"{c:g} / {w:g}" for c, w, _ in img.file_windows[:4])))
    st.dataframe(
        pa.table({"name": [r[0] for r in rows], "value": [r[1] for r in rows]}),
        hide_index=True,
        width="stretch",
        height=35 * (len(rows) + 1) + 3,  # every row visible, no inner scrolling
        column_config={
            "name": st.column_config.TextColumn(t("prop.name"), width="medium"),
            "value": st.column_config.TextColumn(t("prop.value"), width="large"),
        },
    )


# ───────────────────────────────────── metadata and download ─────────────────────────────────


def metadata_panel(loaded: Loaded, *, key: str = "viewer") -> None:
    """The header as a table with identifying values masked, and the de-identified download."""
    extras = loaded.extras
    masked = sum(r.masked for r in extras.rows)
    query = st.text_input(t("metadata.filter"), key=f"{key}.metadata_filter", placeholder=t("metadata.placeholder"))
    table = extras.table
    if query:
        needle = query.lower()
        keep = [needle in f"{r.tag} {r.keyword} {r.value}".lower() for r in extras.rows]
        table = table.filter(pa.array(keep))
    st.caption(t("metadata.count", shown=table.num_rows, total=len(extras.rows), masked=masked))
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        height=360,
        column_config={
            "tag": st.column_config.TextColumn(t("metadata.tag")),
            "keyword": st.column_config.TextColumn(t("metadata.keyword")),
            "vr": st.column_config.TextColumn("VR", width="small"),
            "value": st.column_config.TextColumn(t("metadata.value"), width="large"),
        },
    )
    if extras.deidentified is not None:
        deidentified = extras.deidentified
        st.download_button(
            t("deid.download"),
            lambda: deidentified,  # handed over on click, not re-sent on every rerun
            file_name="deidentified.dcm",
            mime="application/dicom",
            icon=":material/download:",
            key=f"{key}.deid",
            help=t("deid.help"),
            on_click="ignore",
        )
        st.caption(t("deid.caption"))
    else:
        show_error(extras.deid_error)


# ───────────────────────────────────── from DICOM to tensor ──────────────────────────────────


def tensor_panel(loaded: Loaded, frame: int, center: float, width: float, state, *, key: str = "tensor") -> None:
    """Every step from stored values to the network's input, each as an image with its value
    range; the final tensor's shape and dtype; and, when `state.train_window` differs from the
    window in use, what the network saw in training beside what it gets now."""
    img = loaded.image
    if img.is_color:
        center, width = 128.0, 256.0  # luminance 0–255 kept whole
    try:
        steps = tensor_steps(img, frame, center, width, state)
    except DicomError as exc:
        show_error(exc)
        return
    ui.figure(steps_figure(steps, [t(f"step.{s.name}") for s in steps]), key=f"{key}.steps")
    for column, step in zip(st.columns(len(steps)), steps, strict=True):
        column.caption(
            t("step.range", low=number(step.min), high=number(step.max), dtype=step.dtype, shape=_shape(step))
            + "  \n"
            + t(f"step.{step.name}.what")
        )
    final = steps[-1]
    st.success(t("tensor.final", shape=_shape(final), dtype=final.dtype), icon=":material/check_circle:")

    if state.train_window == "same":
        st.caption(t("tensor.same"))
        return
    train_center, train_width = training_window(img, frame, state.train_window, center, width)
    trained = tensor_steps(img, frame, train_center, train_width, state)
    result = mismatch(steps, trained)
    st.subheader(t("tensor.mismatch.title"))
    titles = [
        t("tensor.mismatch.now", center=number(center), width=number(width)),
        t("tensor.mismatch.trained", center=number(train_center), width=number(train_width)),
        t("tensor.mismatch.difference"),
    ]
    ui.figure(mismatch_figure(result, titles), key=f"{key}.mismatch")
    metric, caption = st.columns([1, 3], vertical_alignment="center")
    metric.metric(t("tensor.mismatch.mean"), f"{100 * result.mean_abs:.1f}%")
    caption.caption(t("tensor.mismatch.caption", changed=f"{100 * result.changed:.0f}%"))


def _shape(step) -> str:
    return " × ".join(str(n) for n in step.shape)
