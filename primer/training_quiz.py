"""Figure builders for the training chapter's "read the figure" quiz questions.

Each builder draws made-up but realistic curves from a seeded generator (no training happens)
and computes the answer from the very arrays it plots, so the key always matches the picture.
Labels are bilingual because a builder does not know the reader's language.

    fq = validation_curves(seed=4, patience=3)   # FigureQuestion(figure, answer=<epoch>)
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

from primer.quiz import FigureQuestion

TRAIN_COLOR = "#1f77b4"
VAL_COLOR = "#d62728"
CHANCE_LOSS = math.log(2.0)  # cross-entropy of a two-class model that always says 50%


def _layout(fig: go.Figure, y_title: str) -> go.Figure:
    fig.update_layout(
        xaxis_title="Epoch · 训练轮次",
        yaxis_title=y_title,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        margin={"l": 60, "r": 20, "t": 40, "b": 50},
        hovermode="x unified",
        height=320,
    )
    return fig


def overfitting_losses(seed: int = 0, epochs: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """(train_loss, val_loss), each (epochs,): a small training set, a large model, no
    regularization. Training loss falls towards zero; validation loss falls, bottoms out and
    climbs as the network memorizes."""
    rng = np.random.default_rng(seed)
    t = np.arange(1, epochs + 1, dtype=float)
    turn = rng.uniform(0.3, 0.5) * epochs  # where memorizing starts to outweigh learning
    train = 0.7 * np.exp(-t / rng.uniform(4.0, 6.0)) + 0.01
    train *= np.exp(rng.normal(0.0, 0.04, epochs))  # multiplicative: stays positive and shrinks with it
    floor = rng.uniform(0.25, 0.35)
    val = floor + 0.45 * np.exp(-t / (turn / 3.0)) + 0.35 * (np.maximum(t - turn, 0.0) / epochs) ** 1.3
    val += rng.normal(0.0, 0.008, epochs)
    return train, val


def early_stop_epoch(val_loss: np.ndarray, patience: int) -> int:
    """The epoch (1-based) at which early stopping ends training: the first time the validation
    loss has failed to beat its best so far for `patience` epochs in a row. The same rule as
    primer.train.fit (strictly lower counts as better); the last epoch if it never triggers."""
    best, waited = math.inf, 0
    for epoch, loss in enumerate(val_loss, start=1):
        if loss < best:
            best, waited = loss, 0
        else:
            waited += 1
            if waited >= patience:
                return epoch
    return len(val_loss)


def validation_curves(seed: int = 0, epochs: int = 30, ask: str = "best", patience: int = 3) -> FigureQuestion:
    """Training and validation loss of an overfitting run.

    ask="best": the answer is the epoch with the lowest validation loss (where overfitting
    begins, and whose weights early stopping keeps). ask="stop": the epoch at which early
    stopping with `patience` ends the run."""
    if ask not in ("best", "stop"):
        raise ValueError("ask must be 'best' or 'stop'")
    train, val = overfitting_losses(seed, epochs)
    epoch = np.arange(1, epochs + 1)
    fig = go.Figure()
    fig.add_scatter(
        x=epoch, y=train, mode="lines+markers", name="Training loss · 训练集损失", line={"color": TRAIN_COLOR}
    )
    fig.add_scatter(
        x=epoch, y=val, mode="lines+markers", name="Validation loss · 验证集损失", line={"color": VAL_COLOR}
    )
    fig.update_traces(hovertemplate="%{y:.3f}")
    fig.update_xaxes(dtick=2)
    fig.update_yaxes(rangemode="tozero")
    best = int(np.argmin(val)) + 1
    answer = best if ask == "best" else early_stop_epoch(val, patience)
    return FigureQuestion(_layout(fig, "Loss · 损失"), answer, extra={"best_epoch": best})


LR_PROFILES = ("too_low", "good", "too_high")


def learning_rate_losses(seed: int = 0, epochs: int = 15) -> dict[str, np.ndarray]:
    """Training loss per epoch for three learning rates on the same task, (epochs,) each.

    too_low: creeps down and is still far from done. good: falls quickly towards zero.
    too_high: jumps up in the first epochs, then sits flat at ln 2 ≈ 0.69, the loss of a network
    that answers 50% for every image (what the lab shows when Adam's rate is far too large)."""
    rng = np.random.default_rng(seed)
    t = np.arange(1, epochs + 1, dtype=float)
    start = rng.uniform(0.85, 0.95)
    low = CHANCE_LOSS + (start - CHANCE_LOSS) * np.exp(-t / 4.0) - 0.012 * (t - 1)
    good = 0.06 + (start - 0.06) * np.exp(-(t - 1) / rng.uniform(2.0, 3.0))
    high = CHANCE_LOSS + np.where(t <= 3, rng.uniform(1.5, 2.5) * np.exp(-(t - 1) * 1.2) + 0.4 * (t == 2), 0.0)
    noise = {name: rng.normal(0.0, scale, epochs) for name, scale in (("low", 0.01), ("good", 0.01), ("high", 0.004))}
    return {
        "too_low": low + noise["low"],
        "good": np.maximum(good + noise["good"], 0.02),
        "too_high": high + noise["high"],
    }


def learning_rate_curves(seed: int = 0, epochs: int = 15, target: str = "too_high") -> FigureQuestion:
    """Three training-loss curves labelled A, B, C in a seeded order; the answer is the index
    (0 = A) of the curve whose learning rate is `target` ("too_low", "good" or "too_high")."""
    if target not in LR_PROFILES:
        raise ValueError(f"target must be one of {LR_PROFILES}")
    losses = learning_rate_losses(seed, epochs)
    order = [LR_PROFILES[i] for i in np.random.default_rng(seed + 1).permutation(len(LR_PROFILES))]
    epoch = np.arange(1, epochs + 1)
    fig = go.Figure()
    for letter, profile, dash in zip("ABC", order, ("solid", "dash", "dot"), strict=True):
        fig.add_scatter(
            x=epoch,
            y=losses[profile],
            mode="lines+markers",
            name=f"Curve {letter} · 曲线 {letter}",
            line={"dash": dash, "width": 2.5},
        )
    fig.add_hline(y=CHANCE_LOSS, line={"color": "grey", "width": 1, "dash": "dot"})
    fig.add_annotation(
        x=epochs,
        y=CHANCE_LOSS,
        text="ln 2 ≈ 0.69",
        showarrow=False,
        xanchor="right",
        yanchor="bottom",
        font={"color": "grey"},
    )
    fig.update_traces(hovertemplate="%{y:.3f}", selector={"type": "scatter"})
    fig.update_yaxes(rangemode="tozero")
    return FigureQuestion(_layout(fig, "Training loss · 训练集损失"), order.index(target), extra={"order": order})
