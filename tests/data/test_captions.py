import pytest
import torch

from geolip.data import load_digits, load_shapes
from geolip.data.captions import (
    DIGIT_WORDS,
    default_relevance,
    digit_captions,
    held_out_split,
    relevance_groups,
    with_captions,
)
from geolip.errors import DatasetError


def test_digit_captions_name_the_digit_in_several_templates():
    labels = torch.arange(10).repeat(6)
    captions = digit_captions(labels, seed=0)
    assert captions == digit_captions(labels, seed=0)
    assert captions != digit_captions(labels, seed=1)
    for label, caption in zip(labels.tolist(), captions, strict=True):
        assert DIGIT_WORDS[label] in caption or str(label) in caption.split()
    assert len({c.split(" ")[1] for c in captions}) > 2  # more than one template used
    with pytest.raises(DatasetError, match=r"0\.\.9"):
        digit_captions(torch.tensor([10]))


def test_with_captions_keeps_shapes_and_templates_digits():
    shapes = load_shapes(12, 16, seed=0)
    assert with_captions(shapes) is shapes
    digits = with_captions(load_digits(20))
    assert digits.captions is not None and len(digits.captions) == 20
    assert digits.fingerprint == load_digits(20).fingerprint  # images unchanged
    assert default_relevance(digits) == "label" and default_relevance(shapes) == "caption"


def test_with_captions_refuses_datasets_it_cannot_caption():
    from geolip.data.dataset import ImageDataset

    bare = ImageDataset.from_tensors("blobs", torch.zeros(3, 1, 2, 2), torch.zeros(3), ["blob"])
    with pytest.raises(DatasetError, match="no captions"):
        with_captions(bare)


def test_relevance_groups_by_caption_text_or_label():
    digits = with_captions(load_digits(30))
    by_label = relevance_groups(digits, "label")
    assert torch.equal(by_label, digits.labels)
    by_caption = relevance_groups(digits, "caption")
    for i in range(30):
        for j in range(30):
            same = digits.captions[i] == digits.captions[j]
            assert (by_caption[i] == by_caption[j]).item() == same


def test_held_out_split_is_disjoint_complete_and_seeded():
    train, test = held_out_split(100, 0.25, seed=3)
    assert len(test) == 25 and len(train) == 75
    assert sorted(torch.cat([train, test]).tolist()) == list(range(100))
    assert torch.equal(test, held_out_split(100, 0.25, seed=3)[1])
    assert not torch.equal(test, held_out_split(100, 0.25, seed=4)[1])
    with pytest.raises(DatasetError, match="test_fraction"):
        held_out_split(100, 1.0)
    with pytest.raises(DatasetError, match="cannot be split"):
        held_out_split(2, 0.1)
