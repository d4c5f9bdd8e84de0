"""The vision-transformer lab: the ViT's parts against independent computations, attention
rollout against a hand computation, the pointing game against a hand count, and the page."""

import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from primer import explain
from primer import future_vit as fv
from tests.conftest import assert_no_exception, run_page

PAGE = "views/future.py"


def test_attention_equals_torch_scaled_dot_product_attention():
    torch.manual_seed(0)
    attn = fv.SelfAttention(dim=16, heads=4)
    x = torch.randn(3, 10, 16)
    ours = attn(x)
    # independent: split q, k, v from the same projection, torch's own attention, same output map
    q, k, v = attn.qkv(x).chunk(3, dim=-1)

    def heads(t):
        return t.reshape(3, 10, 4, 4).transpose(1, 2)  # (N, h, T, d_h)

    mixed = F.scaled_dot_product_attention(heads(q), heads(k), heads(v))
    reference = attn.out(mixed.transpose(1, 2).reshape(3, 10, 16))
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-6)
    assert attn.weights.shape == (3, 4, 10, 10)
    torch.testing.assert_close(attn.weights.sum(-1), torch.ones(3, 4, 10))


def test_attention_rollout_matches_a_hand_computation():
    # two layers, three tokens, one head each (the head average is then the matrix itself)
    a1 = torch.tensor([[0.5, 0.5, 0.0], [0.0, 1.0, 0.0], [0.2, 0.2, 0.6]])
    a2 = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.0, 0.5], [0.0, 0.0, 1.0]])
    # by hand: (A + I) / 2 row-normalised (each row of A sums to 1, so + I makes rows sum to 2)
    r1 = torch.tensor([[0.75, 0.25, 0.0], [0.0, 1.0, 0.0], [0.1, 0.1, 0.8]])
    r2 = torch.tensor([[1.0, 0.0, 0.0], [0.25, 0.5, 0.25], [0.0, 0.0, 1.0]])
    expected = r2 @ r1  # later layer on the left
    # CLS row by hand: row 0 of r2 is (1, 0, 0), so it is row 0 of r1
    assert torch.allclose(expected[0], torch.tensor([0.75, 0.25, 0.0]))
    # row 1: 0.25·(0.75, 0.25, 0) + 0.5·(0, 1, 0) + 0.25·(0.1, 0.1, 0.8) = (0.2125, 0.5875, 0.2)
    assert torch.allclose(expected[1], torch.tensor([0.2125, 0.5875, 0.2]))
    got = fv.attention_rollout([a1[None, None], a2[None, None]])[0]
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(got.sum(-1), torch.ones(3))
    # two heads are averaged before the identity is added
    two = fv.attention_rollout([torch.stack([a1, a2])[None]])[0]
    avg = (a1 + a2) / 2 + torch.eye(3)
    torch.testing.assert_close(two, avg / avg.sum(-1, keepdim=True))


def test_readout_rollout_weights_the_token_rows_by_hand():
    a1 = torch.tensor([[0.5, 0.5, 0.0], [0.0, 1.0, 0.0], [0.2, 0.2, 0.6]])
    a2 = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.0, 0.5], [0.0, 0.0, 1.0]])
    attentions = [a1[None, None], a2[None, None]]
    # a CLS-only readout gives the CLS row of the hand computation above
    cls_only = fv.readout_rollout(attentions, torch.tensor([[1.0, 0.0, 0.0]]))[0]
    torch.testing.assert_close(cls_only, torch.tensor([0.75, 0.25, 0.0]))
    # half the channels from token 0, half from token 1: 0.5·(0.75, 0.25, 0) + 0.5·(0.2125, 0.5875, 0.2)
    half = fv.readout_rollout(attentions, torch.tensor([[0.5, 0.5, 0.0]]))[0]
    torch.testing.assert_close(half, torch.tensor([0.48125, 0.41875, 0.1]))


def test_max_readout_matches_an_independent_forward_and_count():
    model = fv.build_vit(patch_size=16, dim=8, depth=2, heads=2, seed=2).eval()
    x = torch.randn(3, 1, 64, 64)
    with torch.no_grad():
        logits = model(x)
        # independent: the same layers called one by one, then numpy's max and a hand count of winners
        tokens = torch.cat([model.cls_token.expand(3, -1, -1), model.patch_embed(x)], dim=1) + model.pos_embed
        for block in model.blocks:
            tokens = block(tokens)
    final = tokens.numpy()  # (3, 17, 8)
    torch.testing.assert_close(logits, model.head(torch.from_numpy(final.max(axis=1))))
    winners = final.argmax(axis=1)  # (3, 8): which token holds each channel's maximum
    counts = np.stack([np.bincount(w, minlength=17) for w in winners]) / 8
    np.testing.assert_allclose(model.readout.numpy(), counts)


def test_rollout_rows_of_a_real_model_sum_to_one():
    model = fv.build_vit(patch_size=16, dim=16, depth=3, heads=2, seed=1).eval()
    model(torch.randn(2, 1, 64, 64))
    rollout = fv.attention_rollout(model.attention_weights())
    assert rollout.shape == (2, 17, 17)
    torch.testing.assert_close(rollout.sum(-1), torch.ones(2, 17))
    maps = fv.rollout_maps(model, torch.randn(2, 1, 64, 64))
    assert maps.shape == (2, 64, 64) and (maps >= 0).all()


@pytest.mark.parametrize("patch, tokens", [(4, 256), (8, 64), (16, 16)])
def test_patch_embedding_shapes_and_token_count(patch, tokens):
    embed = fv.PatchEmbedding(patch, dim=12)
    out = embed(torch.randn(5, 1, 64, 64))
    assert out.shape == (5, tokens, 12)
    model = fv.build_vit(patch_size=patch, dim=16, depth=1, heads=2)
    assert model.num_tokens == tokens + 1
    assert model(torch.randn(2, 1, 64, 64)).shape == (2, 2)
    # a patch token is a linear function of its own patch only: token 0 is the top-left patch
    x = torch.randn(1, 1, 64, 64)
    w = embed.proj.weight.reshape(12, -1)
    torch.testing.assert_close(embed(x)[0, 0], w @ x[0, 0, :patch, :patch].reshape(-1) + embed.proj.bias)


def test_the_quiz_answer_64_by_64_with_patch_8_is_65_tokens():
    assert fv.build_vit(patch_size=8).num_tokens == 65


def permute_patches(x: torch.Tensor, patch: int, order: torch.Tensor) -> torch.Tensor:
    """Rearrange the image's P×P patches (row by row) in `order`."""
    n, c, h, w = x.shape
    g = h // patch
    blocks = x.reshape(n, c, g, patch, g, patch).permute(0, 1, 2, 4, 3, 5).reshape(n, c, g * g, patch, patch)
    blocks = blocks[:, :, order]
    return blocks.reshape(n, c, g, g, patch, patch).permute(0, 1, 2, 4, 3, 5).reshape(n, c, h, w)


def test_without_position_embedding_the_vit_cannot_tell_where_a_patch_was():
    model = fv.build_vit(patch_size=8, dim=32, depth=2, heads=4, seed=3).eval()
    x = torch.randn(3, 1, 64, 64)
    order = torch.randperm(64, generator=torch.Generator().manual_seed(0))
    shuffled = permute_patches(x, 8, order)
    assert not torch.allclose(x, shuffled)
    with torch.no_grad():
        # with its (random) position embedding, shuffling the patches changes the output
        assert not torch.allclose(model(x), model(shuffled), atol=1e-5)
        model.pos_embed.zero_()
        torch.testing.assert_close(model(x), model(shuffled), rtol=1e-4, atol=1e-5)


def test_seeded_vit_is_reproducible():
    a, b, c = fv.build_vit(seed=4), fv.build_vit(seed=4), fv.build_vit(seed=5)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert not torch.equal(a.pos_embed, c.pos_embed)


def test_pointing_game_hit_rate_against_a_hand_count():
    masks = np.zeros((4, 8, 8), bool)
    masks[:, 2:4, 2:4] = True
    maps = np.zeros((4, 8, 8), np.float32)
    maps[0, 2, 3] = 1.0  # hit
    maps[1, 7, 7] = 1.0  # miss
    maps[2, 3, 2] = 1.0  # hit
    maps[3] = -1.0  # no positive value: a miss
    scores = explain.score_maps({"a": maps}, masks)
    assert scores.hits["a"].tolist() == [True, False, True, False]  # 2 of 4 by hand
    assert scores.hits["a"].mean() == 0.5
    low, high = explain.wilson_interval(2, 4)
    assert low < 0.5 < high


def test_problems_name_bad_combinations():
    assert fv.VitLab(dim=48, heads=8).problems() == []
    assert fv.VitLab(dim=16, heads=3).problems() == ["vit.bad.heads"]
    assert fv.VitLab().sizes() == (100, 300, 1000)


def test_tiny_sweep_streams_a_record_per_run_and_keeps_maps():
    lab = fv.VitLab(largest=200, steps=8, dim=16, heads=2, depth=1)
    seen, live = [], []
    result = fv.run_sweep(lab, on_run=seen.append, on_epoch=live.append)
    assert [(r.model, r.size) for r in seen] == [(m, s) for s in (20, 60, 200) for m in fv.TRAIN_ORDER]
    # the live stream: every epoch of every run, in order, its curve growing by one point, and the
    # last point of each run is the validation AUC that run reports when it finishes
    for index, run in enumerate(seen):
        mine = [p for p in live if p.run_index == index]
        assert [p.epoch for p in mine] == list(range(1, run.epochs + 1))
        assert all(p.num_epochs == run.epochs and (p.model, p.size) == (run.model, run.size) for p in mine)
        assert [len(p.val_auc) for p in mine] == [p.epoch for p in mine]
        assert mine[-1].val_auc[-1] == run.val_auc
    n = len(result.lesion_images)
    assert n > 100 and result.maps[200]["vit"].shape == (n, 64, 64)
    view = fv.view(result, fv.VitLab(image=3, explain_size=2))
    assert view.size == 20 and view.index == 3 and 0 <= view.vit_hits <= 1
    assert fv.maps_figure(view, {k: k for k in ("image", "rollout", "gradcam")})
    curve = fv.auc_figure(seen, lab.sizes(), {k: k for k in ("vit", "cnn", "chance", "size", "auc")})
    low, high = curve.layout.xaxis.range
    assert 10**low < 20 and 10**high > 200 and list(curve.layout.xaxis.tickvals) == [20, 60, 200]
    assert fv.live_figure(live[-1], {k: k for k in ("vit", "cnn", "chance", "epoch", "val_auc")}).data[0].y == tuple(
        live[-1].val_auc
    )


def wait(at, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = at.session_state["future.vit.job"]
        if job.finished:
            return job
        time.sleep(0.2)
    raise AssertionError("the sweep did not finish")


def texts(at) -> str:
    return " ".join(str(e.value) for e in (*at.markdown, *at.caption, *at.info, *at.error))


def test_page_controls_preset_and_a_tiny_run():
    at = run_page(PAGE)
    assert_no_exception(at)
    keys = {w.key for w in (*at.slider, *at.select_slider, *at.number_input) if w.key}
    assert {"vit.patch_size", "vit.dim", "vit.depth", "vit.heads", "vit.largest", "vit.steps"} <= keys
    at.selectbox(key="presetpick.vit").set_value("patch16")
    at.button(key="presetapply.vit").click().run()
    assert at.select_slider(key="vit.patch_size").value == 16
    # a bad combination: 16 channels cannot be split into 3 heads
    at.select_slider(key="vit.dim").set_value(16)
    at.select_slider(key="vit.heads").set_value(3).run()
    assert "cannot be split into 3 heads" in texts(at)
    at.select_slider(key="vit.heads").set_value(2)
    at.select_slider(key="vit.largest").set_value(200)
    at.select_slider(key="vit.steps").set_value(40).run()
    at.button(key="future.vit.train").click().run()
    assert_no_exception(at)
    job = wait(at)
    assert job.state == "done", job.error
    at.run()
    assert_no_exception(at)
    assert "Pointing game over the" in texts(at)
    at.slider(key="vit.image").set_value(5).run()  # display only: the same job, no retraining
    assert_no_exception(at)
    assert at.session_state["future.vit.job"] is job
