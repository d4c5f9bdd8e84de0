"""What a CNN design costs and what it sees: layer tables, FLOPs, receptive fields, diagrams, races.

    rows = layer_table(models.build("resnet_small", width=8))   # one LayerRow per block
    dot = macro_dot(model, labels)                               # Graphviz source, block by block
    dot = block_dot(signature_block(model), labels)              # inside one block (torch.fx)
    rf = receptive_field(model)                                  # input pixels one output sees

FLOPs are counted by torch itself (`torch.utils.flop_counter`: convolutions and matrix
products, 2 per multiply-add). The receptive field is measured, not derived from a formula, so
it is right for every design, branches and shortcuts included: the network is made linear and
positive (every weight 1/fan-in, ReLU and BatchNorm off, max pooling replaced by average
pooling of the same size, so no path can cancel or be switched off), and the input pixels whose
gradient reaches one output pixel are its theoretical receptive field. A squeeze-and-excitation
block averages the whole image, so its field is global.

The race trains the chosen designs on the same data with the same seed through the training
engine (`primer.train.run_experiment`, or the shared queue); `race_entries` turns the results
into one row per design for the chart.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from torch import fx, nn
from torch.utils.flop_counter import FlopCounterMode

import models
from primer.labstate import register_lab
from primer.train import RunResult, TrainLab

# The six block designs, in the order the lesson introduces them, and the deep pair.
DESIGNS: tuple[str, ...] = ("plain_cnn", "resnet_small", "dense_cnn", "inception_cnn", "separable_cnn", "se_resnet")
DEEP: tuple[str, ...] = ("plain_deep", "resnet_deep")


# ---------------------------------------------------------------------------------------------
# Lab states


@register_lab("blocks")
@dataclass
class BlocksLab:
    """One design, looked at from inside: diagram, layer table, receptive field."""

    model: str = "resnet_small"  # the design the lesson introduces first
    width: int = 8  # the training lab's default width, so numbers match what trains there
    stages: int = 3  # three halvings: 64 px → 8 px before global pooling
    input_size: int = 64  # the phantoms' size


@register_lab("race")
@dataclass
class RaceLab:
    """Which designs race, and the one training setting they all share."""

    plain_cnn: bool = True
    resnet_small: bool = True
    dense_cnn: bool = False
    inception_cnn: bool = False
    separable_cnn: bool = True
    se_resnet: bool = False
    width: int = 8  # small enough that three models train within a minute on two cores
    num_images: int = 2000  # the training lab's default data set
    num_epochs: int = 6  # the training lab's default: plain CNN passes AUC 0.95 around epoch 4
    seed: int = 0

    def chosen(self) -> list[str]:
        return [name for name in DESIGNS if getattr(self, name)]

    def train_labs(self) -> list[TrainLab]:
        """One training-lab setup per chosen design: same data, same split, same seed."""
        return [
            TrainLab(
                model=name, width=self.width, num_images=self.num_images, num_epochs=self.num_epochs, seed=self.seed
            )
            for name in self.chosen()
        ]


@register_lab("degrade")
@dataclass
class DegradeLab:
    """Deep plain vs deep residual: gradient flow at initialisation, then a training run."""

    blocks_per_stage: int = 4  # 3 stages × 4 pairs + stem = 25 conv layers (the registered deep models)
    width: int = 8
    num_images: int = 1000  # fewer images: three deep-ish runs stay under a minute or two
    num_epochs: int = 6
    seed: int = 0

    def train_labs(self) -> list[TrainLab]:
        """The shallow plain CNN as the reference, then the deep pair (registered depth)."""
        return [
            TrainLab(
                model=name, width=self.width, num_images=self.num_images, num_epochs=self.num_epochs, seed=self.seed
            )
            for name in ("plain_cnn", *DEEP)
        ]


# ---------------------------------------------------------------------------------------------
# Counting


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def conv_layer_count(model: nn.Module) -> int:
    """Convolutions on the longest input-to-output path are what "depth" means; counting every
    Conv2d is the usual shorthand (a residual 1×1 projection adds one)."""
    return sum(isinstance(m, nn.Conv2d) for m in model.modules())


def flop_counts(model: nn.Module, input_size: int = 64, in_channels: int = 1) -> dict[str, int]:
    """Forward FLOPs for one image, per module path ("" is the whole model), counted by torch."""
    probe = copy.deepcopy(model).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        probe(torch.zeros(1, in_channels, input_size, input_size))
    root = type(probe).__name__
    out = {}
    for key, by_op in counter.get_flop_counts().items():
        if key == "Global":
            continue
        path = key[len(root) + 1 :] if key.startswith(root + ".") else ("" if key == root else key)
        out[path] = int(sum(by_op.values()))
    return out


# ---------------------------------------------------------------------------------------------
# Receptive field


def _linear_positive(model: nn.Module) -> nn.Module:
    """A copy whose every path is linear with positive weights (see the module docstring)."""
    probe = copy.deepcopy(model).eval()
    for child in list(probe.modules()):
        for attr, sub in list(child.named_children()):
            if isinstance(sub, (nn.ReLU, nn.BatchNorm2d, models.SeededDropout, nn.Dropout)):
                setattr(child, attr, nn.Identity())
            elif isinstance(sub, nn.MaxPool2d):
                setattr(child, attr, nn.AvgPool2d(sub.kernel_size, sub.stride, sub.padding))
            elif isinstance(sub, nn.AdaptiveMaxPool2d):
                setattr(child, attr, nn.AdaptiveAvgPool2d(sub.output_size))
    with torch.no_grad():
        for module in probe.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                fan_in = module.weight[0].numel()
                module.weight.fill_(1.0 / fan_in)
                if module.bias is not None:
                    module.bias.zero_()
    return probe


def receptive_fields(model: nn.Module, modules: list[nn.Module], probe_sizes=(96, 192)) -> list[int | None]:
    """Receptive field (pixels, along one side) of the centre output pixel of each module in
    `modules` (submodules of `model`); None where it covers the whole input however large the
    probe (global context, as after squeeze-and-excitation or global pooling)."""
    fields = _fields_at(model, modules, probe_sizes[0])
    if any(f is None for f in fields) and len(probe_sizes) > 1:
        # A field that fills the probe may just be larger than it: look again on a bigger one.
        retry = [m for m, f in zip(modules, fields, strict=True) if f is None]
        again = iter(receptive_fields(model, retry, probe_sizes[1:]))
        fields = [next(again) if f is None else f for f in fields]
    return fields


def _fields_at(model: nn.Module, modules: list[nn.Module], probe_size: int) -> list[int | None]:
    probe = _linear_positive(model)
    lookup = dict(model.named_modules())
    names = [next(n for n, m in lookup.items() if m is target) for target in modules]
    probe_modules = dict(probe.named_modules())
    outputs: dict[str, torch.Tensor] = {}
    handles = [
        probe_modules[name].register_forward_hook(lambda _m, _i, out, name=name: outputs.__setitem__(name, out))
        for name in names
    ]
    in_channels = next(m for m in probe.modules() if isinstance(m, nn.Conv2d)).in_channels
    x = torch.ones(1, in_channels, probe_size, probe_size, requires_grad=True)
    try:
        probe(x)
    finally:
        for handle in handles:
            handle.remove()
    fields: list[int | None] = []
    for name in names:
        out = outputs[name]
        if out.dim() != 4:
            fields.append(None)
            continue
        h, w = out.shape[-2:]
        (grad,) = torch.autograd.grad(out[0, :, h // 2, w // 2].sum(), x, retain_graph=True)
        reached = grad[0].abs().sum(0) > 0  # (H, W) input pixels with a path to that output
        rows, cols = np.flatnonzero(reached.any(1).numpy()), np.flatnonzero(reached.any(0).numpy())
        last = probe_size - 1
        fills_probe = rows[0] == 0 and cols[0] == 0 and rows[-1] == last and cols[-1] == last
        fields.append(None if fills_probe else int(max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1))
    return fields


def receptive_field(model: nn.Module) -> int | None:
    """The receptive field of the last feature map (what global pooling summarises)."""
    return receptive_fields(model, [model.features])[0]


# ---------------------------------------------------------------------------------------------
# The layer table


@dataclass(frozen=True)
class LayerRow:
    name: str  # module path, e.g. "features.3"
    kind: str  # "conv", "residual", "dense", ... (a stable id the page translates)
    detail: str  # e.g. "3×3 conv, 16 ch" or "8 → 16 ch"
    output_shape: tuple[int, ...]  # (C, H, W) or (C,) for one image
    params: int
    flops: int  # forward, one image
    receptive_field: int | None  # pixels; None: the whole image


KINDS = {
    "Sequential": "conv",
    "ResidualBlock": "residual",
    "SEResidualBlock": "se_residual",
    "DenseBlock": "dense",
    "InceptionBlock": "inception",
    "SeparableConv": "separable",
    "PlainPair": "plain_pair",
    "MaxPool2d": "max_pool",
    "AdaptiveMaxPool2d": "global_max_pool",
    "AdaptiveAvgPool2d": "global_avg_pool",
    "Linear": "linear",
}


def _kind(module: nn.Module) -> str:
    kind = KINDS.get(type(module).__name__, type(module).__name__.lower())
    if kind == "conv":
        convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
        if convs and convs[0].kernel_size == (1, 1):
            return "conv1x1"
    return kind


def _detail(module: nn.Module, c_in: int, c_out: int) -> str:
    """Kernel and channels in symbols that read the same in every language: "3×3, 8 → 16",
    "2×2 /2" (a pooling window and its stride)."""
    if isinstance(module, nn.MaxPool2d):
        return f"{module.kernel_size}×{module.kernel_size} /{module.stride}"
    if isinstance(module, nn.Linear):
        return f"{module.in_features} → {module.out_features}"
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    if isinstance(module, nn.Sequential) and len(convs) == 1:
        k = convs[0].kernel_size[0]
        return f"{k}×{k}, {c_in} → {c_out}"
    return f"{c_in} → {c_out}" if convs else ""


def layer_table(model: nn.Module, input_size: int = 64, in_channels: int = 1) -> list[LayerRow]:
    """One row per block of `model.features`, then the global pooling and the linear head:
    output shape, parameters, forward FLOPs and receptive field."""
    blocks = list(model.features.named_children())
    rows_for = [(f"features.{name}", module) for name, module in blocks]
    rows_for += [("pool", model.pool), ("head", model.head)]
    shapes: dict[str, tuple[int, ...]] = {}
    handles = [
        module.register_forward_hook(lambda _m, _i, out, name=name: shapes.__setitem__(name, tuple(out.shape[1:])))
        for name, module in rows_for
    ]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, in_channels, input_size, input_size))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    flops = flop_counts(model, input_size, in_channels)
    fields = receptive_fields(model, [module for _, module in rows_for[:-1]]) + [None]
    rows, c_in = [], in_channels
    for (name, module), field in zip(rows_for, fields, strict=True):
        shape = shapes[name]
        if name == "pool":
            shape = shape[:1]  # (C, 1, 1) → (C,): one number per channel
        c_out = shape[0]
        rows.append(
            LayerRow(
                name,
                _kind(module),
                _detail(module, c_in, c_out),
                shape,
                parameter_count(module),
                flops.get(name, 0),
                field,
            )
        )
        c_in = c_out
    return rows


@dataclass(frozen=True)
class Summary:
    params: int
    flops: int  # forward, one image
    conv_layers: int
    receptive_field: int | None  # of the last feature map; None: the whole image


def summary_from_rows(model: nn.Module, rows: list[LayerRow]) -> Summary:
    """Totals for the model whose layer table is `rows` (the last feature row's field is the
    field global pooling summarises)."""
    features = [r for r in rows if r.name.startswith("features.")]
    return Summary(
        parameter_count(model), sum(r.flops for r in rows), conv_layer_count(model), features[-1].receptive_field
    )


def summary(model: nn.Module, input_size: int = 64) -> Summary:
    return summary_from_rows(model, layer_table(model, input_size))


# ---------------------------------------------------------------------------------------------
# Diagrams (Graphviz DOT source; the page draws it with st.graphviz_chart)


def _quote(text: str) -> str:
    escaped = str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"' + escaped + '"'


KIND_COLORS = {
    "conv": "#dbe9f6",
    "conv1x1": "#dbe9f6",
    "plain_pair": "#dbe9f6",
    "residual": "#fde0c5",
    "se_residual": "#f9d0e0",
    "dense": "#d9f0d3",
    "inception": "#e8dcf2",
    "separable": "#fff3bf",
    "max_pool": "#eeeeee",
    "global_max_pool": "#eeeeee",
    "global_avg_pool": "#eeeeee",
    "linear": "#cfd8dc",
}


def macro_dot(
    rows: list[LayerRow], names: dict[str, str], input_size: int = 64, in_channels: int = 1, rankdir: str = "TB"
) -> str:
    """The whole network top to bottom (or `rankdir="LR"`), one box per block; runs of identical
    blocks merge into one box marked "× n". `names` translates kinds (and "input"/"output")."""
    input_label = names.get("input", "input") + f"\n{in_channels}×{input_size}×{input_size}"
    lines = [
        "digraph G {",
        f"rankdir={rankdir}; nodesep=0.25; ranksep=0.3;",
        'node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=11];',
        f"n_in [label={_quote(input_label)}, fillcolor=white];",
    ]
    merged: list[tuple[LayerRow, int]] = []
    for row in rows:
        if merged and merged[-1][0].kind == row.kind and merged[-1][0].output_shape == row.output_shape:
            merged[-1] = (merged[-1][0], merged[-1][1] + 1)
        else:
            merged.append((row, 1))
    previous = "n_in"
    for i, (row, count) in enumerate(merged):
        shape = "×".join(str(s) for s in row.output_shape)
        title = names.get(row.kind, row.kind) + (f" × {count}" if count > 1 else "")
        node = f"n{i}"
        color = KIND_COLORS.get(row.kind, "#ffffff")
        lines.append(f"{node} [label={_quote(title + chr(10) + shape)}, fillcolor={_quote(color)}];")
        lines.append(f"{previous} -> {node};")
        previous = node
    lines.append("}")
    return "\n".join(lines)


class _BlockTracer(fx.Tracer):
    """Trace a block down to single layers, but keep conv-BN-ReLU triples as one node."""

    def is_leaf_module(self, module: nn.Module, qualname: str) -> bool:
        if isinstance(module, nn.Sequential) and _is_conv_unit(module):
            return True
        return super().is_leaf_module(module, qualname)


def _is_conv_unit(module: nn.Sequential) -> bool:
    children = list(module.children())
    return (
        bool(children)
        and isinstance(children[0], nn.Conv2d)
        and all(isinstance(c, (nn.Conv2d, nn.BatchNorm2d, nn.ReLU)) for c in children)
        and sum(isinstance(c, nn.Conv2d) for c in children) == 1
    )


def _describe(module: nn.Module) -> tuple[str, str]:
    """(label, colour) of one leaf module in the block diagram."""
    if isinstance(module, nn.Sequential) and _is_conv_unit(module):
        conv = module[0]
        k = conv.kernel_size[0]
        extra = " depthwise" if conv.groups > 1 else ""
        has_relu = any(isinstance(c, nn.ReLU) for c in module)
        return f"{k}×{k} conv{extra}, {conv.out_channels} ch\nBN{' + ReLU' if has_relu else ''}", (
            "#fff3bf" if conv.groups > 1 else "#dbe9f6"
        )
    if isinstance(module, nn.Conv2d):
        k = module.kernel_size[0]
        return f"{k}×{k} conv, {module.out_channels} ch", "#dbe9f6"
    if isinstance(module, nn.BatchNorm2d):
        return "BN", "#f5f5f5"
    if isinstance(module, nn.ReLU):
        return "ReLU", "#f5f5f5"
    if isinstance(module, nn.Sigmoid):
        return "sigmoid", "#f9d0e0"
    if isinstance(module, nn.MaxPool2d):
        return f"{module.kernel_size}×{module.kernel_size} max pool", "#eeeeee"
    if isinstance(module, nn.AdaptiveAvgPool2d):
        return "global avg pool", "#f9d0e0"
    return type(module).__name__, "#ffffff"


def block_dot(block: nn.Module, names: dict[str, str]) -> str:
    """Inside one block, traced with torch.fx from the real module: every layer, and the adds,
    concatenations and multiplications that make a design what it is."""
    graph = _BlockTracer().trace(block)
    modules = dict(block.named_modules())
    lines = [
        "digraph G {",
        "rankdir=TB; nodesep=0.3; ranksep=0.25;",
        'node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=11, fillcolor=white];',
    ]
    ids: dict[fx.Node, str] = {}
    for i, node in enumerate(graph.nodes):
        node_id = f"v{i}"
        ids[node] = node_id
        if node.op == "placeholder":
            label, color, shape = names.get("block_in", "input"), "white", "box"
        elif node.op == "output":
            label, color, shape = names.get("block_out", "output"), "white", "box"
        elif node.op == "call_module":
            (label, color), shape = _describe(modules[node.target]), "box"
        else:
            target = getattr(node.target, "__name__", str(node.target))
            symbol = {"add": "+", "cat": names.get("concat", "concat"), "mul": "×", "relu": "ReLU"}.get(target, target)
            label, color, shape = symbol, "#fde0c5" if target in ("add", "mul") else "#d9f0d3", "circle"
            if target in ("relu",):
                shape, color = "box", "#f5f5f5"
            if target == "cat":
                shape = "box"
        lines.append(f"{node_id} [label={_quote(label)}, fillcolor={_quote(color)}, shape={shape}];")
    for node in graph.nodes:
        for source in node.all_input_nodes:
            lines.append(f"{ids[source]} -> {ids[node]};")
    lines.append("}")
    return "\n".join(lines)


def signature_block(model: nn.Module) -> nn.Module:
    """The block that defines a design: one from the second stage (it changes the channel
    count, so projections show). A plain CNN has no block type of its own: its signature is
    the pair of conv-BN-ReLU layers that a residual block wraps with a shortcut."""
    candidates = [m for m in model.features.children() if not isinstance(m, nn.MaxPool2d)]
    designed = [m for m in candidates[1:] if not (isinstance(m, nn.Sequential) and _is_conv_unit(m))]
    if not designed:
        return nn.Sequential(*candidates[2:4])
    return designed[len(designed) // 3] if len(designed) > 3 else designed[min(1, len(designed) - 1)]


# ---------------------------------------------------------------------------------------------
# Race


@dataclass(frozen=True)
class RaceEntry:
    """One design's finished run, for the chart and the table."""

    model: str
    params: int
    flops: int  # forward, one 64 px image
    seconds: float  # training time (the runs take turns, so times compare)
    test_auc: float
    test_accuracy: float
    epoch_seconds: tuple[float, ...]  # wall time at the end of each epoch
    val_auc: tuple[float, ...]  # validation AUC at the end of each epoch
    train_loss: tuple[float, ...]
    train_accuracy: tuple[float, ...]


@lru_cache(maxsize=64)
def model_size(model_name: str, width: int, input_size: int = 64) -> tuple[int, int]:
    """(parameters, forward FLOPs for one image) of a registered classifier."""
    model = models.build(model_name, seed=0, width=width)
    return parameter_count(model), flop_counts(model, input_size).get("", 0)


def race_entry(model_name: str, width: int, epochs: list, result: RunResult | None = None) -> RaceEntry:
    """A design's race line from its epoch records so far; test numbers once `result` exists."""
    params, flops = model_size(model_name, width)
    return RaceEntry(
        model=model_name,
        params=params,
        flops=flops,
        seconds=result.seconds if result is not None else (epochs[-1].seconds if epochs else 0.0),
        test_auc=result.test_auc if result is not None else float("nan"),
        test_accuracy=result.test_accuracy if result is not None else float("nan"),
        epoch_seconds=tuple(e.seconds for e in epochs),
        val_auc=tuple(e.val_auc for e in epochs),
        train_loss=tuple(e.train_loss for e in epochs),
        train_accuracy=tuple(e.train_accuracy for e in epochs),
    )


# ---------------------------------------------------------------------------------------------
# Gradient flow at initialisation (the degradation lab's instant figure)


@dataclass(frozen=True)
class GradientFlow:
    model: str
    layer: tuple[int, ...]  # 1 = the conv layer next to the input
    grad_norm: tuple[float, ...]  # RMS gradient of each conv layer's weights, one batch


def gradient_flow(
    name: str, blocks_per_stage: int, width: int = 8, seed: int = 0, batch: int = 16, size: int = 32
) -> GradientFlow:
    """How strongly the loss gradient reaches each conv layer of a freshly initialised network,
    input side first, for one batch of phantoms (same batch for every model). Small 32 px
    images keep it instant; the gradient's layer-to-layer pattern does not depend on the size."""
    from primer.synth import PhantomConfig
    from primer.train import phantom_data

    data = phantom_data(PhantomConfig(n=batch, size=size, radius=2.5, seed=seed))
    model = models.build(name, seed=seed, width=width, blocks_per_stage=blocks_per_stage).train()
    loss = nn.functional.cross_entropy(model(data.x), data.y)
    loss.backward()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size != (1, 1)]
    norms = tuple(float(m.weight.grad.pow(2).mean().sqrt()) for m in convs)
    return GradientFlow(name, tuple(range(1, len(convs) + 1)), norms)
