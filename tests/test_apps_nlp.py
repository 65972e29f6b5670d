"""Tests of hypercore.apps.nlp: the constructed language, tokenizer, adapters, methods."""

import pytest
import torch

from hypercore.apps.nlp import (
    FEATURES,
    HyperAdapters,
    SeparateAdapters,
    SharedAdapter,
    TinyEncoder,
    WordTokenizer,
    apply_adapter,
    make_sentences,
    make_task_data,
    task_labels,
    train_method,
)
from hypercore.errors import HypercoreError, HypercoreTypeError, ShapeError


def test_sentences_features_and_grammar():
    s, f = make_sentences(200, torch.Generator().manual_seed(0))
    assert f.shape == (200, len(FEATURES))
    for sentence, (neg, plural, _, past) in zip(s, f.tolist(), strict=True):
        words = sentence.split()
        assert ("not" in words) == bool(neg)
        if neg:
            aux = words[words.index("not") - 1]
            assert aux == ("did" if past else ("do" if plural else "does"))
    # deterministic under a seed
    assert (
        make_sentences(5, torch.Generator().manual_seed(1))[0]
        == make_sentences(5, torch.Generator().manual_seed(1))[0]
    )


def test_task_labels_parity_by_hand():
    feats = torch.tensor([[1.0, 0, 1, 0], [1, 1, 0, 0], [0, 0, 0, 1]])
    assert task_labels(feats, torch.tensor([1.0, 0, 1, 0])).tolist() == [0, 1, 0]
    assert task_labels(feats, torch.tensor([1.0, 0, 0, 0])).tolist() == [1, 1, 0]
    with pytest.raises(ShapeError, match="descriptor"):
        task_labels(feats, torch.ones(3))


def test_tokenizer_roundtrip_and_errors():
    tok = WordTokenizer()
    ids = tok.encode(["the cat sees a good apple", "the dogs do not see"], 9)
    assert ids.shape == (2, 9) and ids[:, 0].eq(tok.cls).all() and ids[1, -1] == tok.pad
    assert tok.decode(ids) == ["the cat sees a good apple", "the dogs do not see"]
    assert tok.encode(["zebra"])[0, 1] == tok.unk
    with pytest.raises(ShapeError, match="length"):
        tok.encode(["the cat sees a good apple"], 3)
    with pytest.raises(HypercoreTypeError, match="sentences"):
        tok.encode("the cat")


def test_apply_adapter_by_hand_and_batched():
    torch.manual_seed(0)
    h = torch.randn(3, 4, 5)
    w = {"0.weight": torch.randn(2, 5), "0.bias": torch.randn(2)}
    w |= {"2.weight": torch.randn(5, 2), "2.bias": torch.randn(5)}
    expected = h + torch.relu(h @ w["0.weight"].T + w["0.bias"]) @ w["2.weight"].T + w["2.bias"]
    torch.testing.assert_close(apply_adapter(h, w), expected)
    batched = {k: v.expand(3, *v.shape) for k, v in w.items()}
    torch.testing.assert_close(apply_adapter(h, batched), expected)
    with pytest.raises(ShapeError):
        apply_adapter(h[:2], batched)


@pytest.mark.parametrize("kind", ["separate", "shared", "hyper"])
def test_methods_shapes_gradients_and_frozen_backbone(kind):
    torch.manual_seed(0)
    tok = WordTokenizer()
    backbone = TinyEncoder(len(tok), d_model=16, num_layers=2, num_heads=2)
    descriptors = torch.tensor([[1.0, 0, 0, 0], [0, 1, 0, 0]])
    data = make_task_data(tok, descriptors, 8, torch.Generator().manual_seed(0))
    method = {
        "separate": SeparateAdapters(2, 16, 4, 2),
        "shared": SharedAdapter(4, 16, 4, 2),
        "hyper": HyperAdapters(4, 16, 4, 2),
    }[kind]
    before = [p.clone() for p in backbone.parameters()]
    losses = train_method(method, backbone, data, 3, lr=1e-2)
    assert losses.shape == (3,) and torch.isfinite(losses).all()
    assert all(torch.equal(a, b) for a, b in zip(before, backbone.parameters(), strict=True))
    out = method(backbone, data.ids, data.task, data.descriptor)
    assert out.shape == (16, 2)
    out.sum().backward()
    assert all(p.grad is not None for p in method.parameters() if p.requires_grad)


def test_hyper_adapters_differ_by_task_and_layer():
    torch.manual_seed(0)
    m = HyperAdapters(4, 16, 4, 2)
    a = m.adapters(torch.tensor([[1.0, 0, 0, 0], [0, 1, 0, 0]]))
    assert a[0]["0.weight"].shape == (2, 4, 16)
    assert not torch.allclose(a[0]["0.weight"][0], a[0]["0.weight"][1])
    assert not torch.allclose(a[0]["0.weight"][0], a[1]["0.weight"][0])
    with pytest.raises(ShapeError):
        m.adapters(torch.ones(4))


def test_errors_name_the_argument():
    tok = WordTokenizer()
    backbone = TinyEncoder(len(tok), d_model=16, num_heads=2)
    with pytest.raises(ShapeError, match="adapters"):
        backbone(torch.ones(2, 5, dtype=torch.long), [])
    data = make_task_data(tok, torch.eye(4)[:1], 4, torch.Generator().manual_seed(0))
    with pytest.raises(HypercoreError, match="lr"):
        train_method(SharedAdapter(4, 16, 4, 2), backbone, data, 1, lr=-1.0)
    with pytest.raises(HypercoreError, match="task"):
        SeparateAdapters(1, 16, 4, 2)(backbone, data.ids, data.task + 3, data.descriptor)
