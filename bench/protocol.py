"""A Streamlit client without a browser: Streamlit's own websocket protocol, spoken from Python.

The browser and the server exchange protobuf messages over one websocket: the browser sends a
BackMsg (`rerun_script` with the page, the query string, the widgets' states and, for a widget
inside a fragment, that fragment's id); the server answers with ForwardMsgs (`new_session`,
`delta` per element, `script_finished`). A `Session` here does the same, so a benchmark goes
through the real server, session, script runner and fragment machinery, for a fraction of what a
headless browser costs on two cores.

A widget is moved the way the browser moves it: its new value is sent as a WidgetState in the
format the widget's serializer uses (a slider sends its number(s); select sliders, segmented
controls, pills, radios and select boxes send the option's label; number inputs their number), and a widget drawn inside a
fragment reruns only that fragment. (Changing the URL's query string does not move a widget bound
to it after the first run: the browser never does that either.) A fragment drawn with
`run_every` is rerun on the same timer the browser would keep (`poll`).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

# element type → (how its options are read, the WidgetState field its value travels in)
MOVABLE = {
    "slider": "double_array_value",
    "button_group": "string_array_value",  # segmented control, pills
    "radio": "string_value",
    "selectbox": "string_value",
    "number_input": "int_value or double_value",
}


@dataclass
class Widget:
    key: str  # the user key (the part after the last "-" of the element id)
    id: str
    kind: str  # proto element type
    fragment_id: str
    proto: object = field(repr=False)

    def choices(self) -> list:
        """Values this widget can be moved to, as they travel on the wire (at most 12)."""
        if self.kind == "slider":
            if self.proto.options:  # a select slider: option labels
                return list(self.proto.options)[:12]
            low, high, step = self.proto.min, self.proto.max, self.proto.step or 1
            count = min(12, int(round((high - low) / step)) + 1)
            return [low + round(i * (high - low) / step / max(count - 1, 1)) * step for i in range(count)]
        if self.kind == "button_group":
            return [option.content for option in self.proto.options][:12]
        if self.kind == "number_input":  # up to 12 steps up from the minimum (0 without one)
            step, low = self.proto.step or 1, self.proto.min if self.proto.has_min else 0
            top = self.proto.max if self.proto.has_max else low + 11 * step
            count = min(12, int(round((top - low) / step)) + 1)
            values = [low + i * step for i in range(count)]
            return [int(v) for v in values] if self.proto.data_type == self.proto.INT else values
        return list(self.proto.options)[:12]

    def state(self, value) -> WidgetState:
        state = WidgetState(id=self.id)
        if self.kind == "slider":
            if self.proto.options:
                state.string_array_value.data.append(str(value))
            else:
                state.double_array_value.data.append(float(value))
        elif self.kind == "button_group":
            state.string_array_value.data.append(str(value))
        elif self.kind == "number_input":
            if self.proto.data_type == self.proto.INT:
                state.int_value = int(value)
            else:
                state.double_value = float(value)
        else:  # radio, selectbox, text_input: the text itself
            state.string_value = str(value)
        return state


class Session:
    """One browser tab's worth of protocol: rerun requests in, deltas out."""

    def __init__(self, url: str):
        self.ws_url = url.replace("http", "ws", 1) + "/_stcore/stream"
        self.origin = url
        self.ws = None
        self.widgets: dict[str, Widget] = {}  # by user key, from the last run that drew them
        self.texts: list[str] = []  # markdown bodies (and captions) drawn by the last run
        self.metrics: dict[str, str] = {}  # st.metric label → value, as last drawn
        self.exceptions: list[str] = []  # exception elements drawn, ever
        self.auto_reruns: dict[str, float] = {}  # fragment id → seconds, from st.fragment(run_every=)

    async def __aenter__(self) -> Session:
        self.ws = await websockets.connect(self.ws_url, subprotocols=["streamlit"], origin=self.origin, max_size=2**26)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.ws.close()

    async def rerun(
        self, page: str, query: str = "", widget_states=(), fragment_id: str = "", timeout: float = 300
    ) -> float:
        """Ask for a (page or fragment) run and wait until it finishes; returns seconds taken."""
        msg = BackMsg()
        msg.rerun_script.query_string = query
        msg.rerun_script.page_name = page
        msg.rerun_script.fragment_id = fragment_id
        for state in widget_states:
            msg.rerun_script.widget_states.widgets.append(state)
        if not fragment_id:
            self.texts = []
            self.auto_reruns = {}  # a full run registers its timed fragments again
        start = time.perf_counter()
        await self.ws.send(msg.SerializeToString())
        while True:
            fwd = ForwardMsg.FromString(await asyncio.wait_for(self.ws.recv(), timeout=timeout))
            kind = fwd.WhichOneof("type")
            if kind == "delta":
                self._read(fwd.delta)
            elif kind == "auto_rerun":
                self.auto_reruns[fwd.auto_rerun.fragment_id] = fwd.auto_rerun.interval
            elif kind == "stop_auto_rerun":
                for stopped in fwd.stop_auto_rerun.fragment_ids:
                    self.auto_reruns.pop(stopped, None)
            elif kind == "script_finished":
                if fwd.script_finished == ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                    self.texts, self.auto_reruns = [], {}  # st.rerun(): the server starts a full run itself
                    continue
                return time.perf_counter() - start

    async def move(self, page: str, key: str, value, query: str = "") -> float:
        """Move the widget `key` to `value` as the browser would; returns the round trip."""
        widget = self.widgets[key]
        return await self.rerun(page, query, [widget.state(value)], fragment_id=widget.fragment_id)

    async def poll(self, page: str, query: str = "") -> float:
        """Wait out the first timed fragment's interval and rerun it, as the browser's timer does
        (a full run when the page has none); returns the round trip."""
        fragment_id, interval = next(iter(self.auto_reruns.items()), ("", 1.0))
        await asyncio.sleep(interval)
        return await self.rerun(page, query, fragment_id=fragment_id)

    async def submit(self, page: str, values: dict[str, str], button: str, query: str = "") -> float:
        """Fill text inputs (by key) and press a button with them, as one message: how a form is
        submitted, or a radio choice sent with the button beside it."""
        states = [self.widgets[key].state(value) for key, value in values.items()]
        pressed = self.widgets[button]
        states.append(WidgetState(id=pressed.id, trigger_value=True))
        return await self.rerun(page, query, states, pressed.fragment_id)

    async def press(self, page: str, key: str, query: str = "") -> float:
        widget = self.widgets[key]
        return await self.rerun(page, query, [WidgetState(id=widget.id, trigger_value=True)], widget.fragment_id)

    def _read(self, delta) -> None:
        if delta.WhichOneof("type") != "new_element":
            return
        element = delta.new_element
        kind = element.WhichOneof("type")
        if kind == "exception":
            self.exceptions.append(f"{element.exception.type}: {element.exception.message}")
        elif kind == "markdown":
            self.texts.append(element.markdown.body)
        elif kind == "metric":
            self.metrics[element.metric.label] = element.metric.body
        inner = getattr(element, kind, None) if kind else None
        widget_id = getattr(inner, "id", "") if inner is not None else ""
        parts = widget_id.split("-", 2)  # "$$ID-<hash>-<user key>"; no user key, no third part
        if len(parts) == 3:
            self.widgets[parts[2]] = Widget(parts[2], widget_id, kind, delta.fragment_id, inner)
