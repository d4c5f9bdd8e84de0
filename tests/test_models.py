"""Every registered model: output shape, gradient reaches the input, seeded initialisation."""

import pytest
import torch

import models

CLASSIFIERS = models.names("classifier")


def test_registry_lists_the_required_designs():
    assert {"plain_cnn", "resnet_small"} <= set(CLASSIFIERS)
    for name in models.names():
        spec = models.spec(name)
        assert spec.title["en"] and spec.title["zh"] and spec.description["en"] and spec.description["zh"]


@pytest.mark.parametrize("name", CLASSIFIERS)
@pytest.mark.parametrize("size", [32, 64])
def test_classifier_shape_and_gradient_reaches_the_input(name, size):
    model = models.build(name, seed=0, num_classes=3)
    x = torch.randn(4, 1, size, size, requires_grad=True)
    logits = model(x)
    assert logits.shape == (4, 3)
    logits[:, 1].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # every image's gradient depends on that image: BatchNorm in train mode mixes the batch,
    # so check in eval mode that images do not leak into each other
    model.eval()
    x = torch.randn(4, 1, size, size, requires_grad=True)
    model(x)[0, 1].backward()
    assert x.grad[0].abs().sum() > 0 and x.grad[1:].abs().sum() == 0


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_seeded_initialisation_is_reproducible_and_independent_of_global_state(name):
    torch.manual_seed(123)
    a = models.build(name, seed=7)
    torch.manual_seed(999)
    b = models.build(name, seed=7)
    c = models.build(name, seed=8)
    for (ka, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(va, vb), ka
    assert any(not torch.equal(va, vc) for va, vc in zip(a.state_dict().values(), c.state_dict().values(), strict=True))


def test_seeded_dropout_uses_the_trainer_generator():
    layer = models.SeededDropout(0.5).train()
    x = torch.ones(1000)
    layer.generator = torch.Generator().manual_seed(1)
    first = layer(x)
    layer.generator = torch.Generator().manual_seed(1)
    assert torch.equal(first, layer(x))
    assert set(first.unique().tolist()) <= {0.0, 2.0}  # inverted dropout keeps the expectation
    assert abs(first.mean().item() - 1.0) < 0.1
    assert torch.equal(layer.eval()(x), x)
