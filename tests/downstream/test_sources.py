"""Dataset specs and noise datasets: parsing, options, batching-independent noise."""

from __future__ import annotations

import pytest
import torch

from geolip.downstream.sources import noise_dataset, open_dataset, parse_spec
from geolip.errors import DatasetError


def test_parse_spec() -> None:
    assert parse_spec("shapes") == ("shapes", {})
    assert parse_spec("noise: kind=pink , n=4") == ("noise", {"kind": "pink", "n": "4"})
    with pytest.raises(DatasetError, match="key=value"):
        parse_spec("shapes:n")


def test_specs_build_the_datasets_they_name() -> None:
    shapes = open_dataset("shapes:n=6,size=24,seed=2")
    assert shapes.size == (24, 24) and len(shapes) == 6
    digits = open_dataset("digits:n=5,size=16,channels=3,standardize=1")
    assert digits.images.shape == (5, 3, 16, 16)
    assert torch.allclose(digits.images.mean(dim=(1, 2, 3)), torch.zeros(5), atol=1e-5)
    ood = open_dataset("ood:kind=rings,n=3,size=8")
    assert ood.images.shape == (3, 3, 8, 8) and ood.classes == ("rings",)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("cifar10", "unknown dataset"),
        ("shapes:colour=red", "does not take"),
        ("shapes:n=many", "must be an integer"),
        ("noise:n=4", "kind=NAME"),
        ("noise:kind=rings", "unknown training noise"),
    ],
)
def test_bad_specs_are_refused(spec: str, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        open_dataset(spec)


def test_noise_images_do_not_depend_on_batching() -> None:
    ds = noise_dataset("gaussian", 40, 8, seed=1)
    whole = ds.images
    assert torch.equal(torch.cat(list(ds.batches(7))), whole)
    assert torch.equal(ds.batch([33, 2]), whole[[33, 2]])
    assert not torch.equal(whole[:16], whole[16:32])  # chunks differ
    assert not torch.equal(noise_dataset("gaussian", 40, 8, seed=2).images, whole)
