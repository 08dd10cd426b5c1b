"""The shipped GLFM, SVAE-transformer and CV-battery defaults through the fake Hub: pushed, pulled
by the one loader, and the same weights and outputs back."""

from __future__ import annotations

import pytest
import torch
from fake_hub import FakeHub
from shipped_defaults import FAMILY_DEFAULTS, family_outputs, images

from geolip.hub import HubTarget, fetch_pretrained
from geolip.producers.loading import load_folder, load_producer


@pytest.mark.parametrize("name", sorted(FAMILY_DEFAULTS))
def test_each_family_default_round_trips_through_the_hub(hub: FakeHub, name: str) -> None:
    model = load_producer(f"pretrained:{name}")
    repo = f"alice/{name}"
    pushed = model.push_to_hub(repo, endpoint=hub.endpoint)
    back = fetch_pretrained(HubTarget(repo, endpoint=hub.endpoint), load_folder).model
    assert type(back) is type(model) and back.config == model.config
    assert back.preset == model.preset and not back.training
    mine, theirs = model.state_dict(), back.state_dict()
    assert mine.keys() == theirs.keys()
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)
    assert back.producer_id == model.producer_id
    x = images(2, 32, seed=1)
    ours, pulled = family_outputs(model, x), family_outputs(back, x)
    assert all(torch.equal(ours[k], pulled[k]) for k in ours)
    pinned = HubTarget(repo, revision=pushed.commit, endpoint=hub.endpoint)
    assert fetch_pretrained(pinned, load_folder).model.producer_id == model.producer_id
