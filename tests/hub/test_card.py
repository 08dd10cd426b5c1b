"""The model card: front matter the Hub client parses back to the lineage; the quality body."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard
from hypothesis import given
from hypothesis import strategies as st

from geolip import Codebook
from geolip.codebook.schema import Lineage
from geolip.hub.cards import RELATIONS, card_metadata, codebook_card, front_matter

HUB_DOC = Path(__file__).parents[2] / "docs" / "hub.md"
AXES = torch.randn(12, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
hex_ids = st.text("0123456789abcdef", min_size=64, max_size=64)
repo_ids = st.from_regex(r"[a-z][a-z0-9-]{0,8}/[a-z][a-z0-9._-]{0,12}", fullmatch=True)
scalars = st.one_of(
    st.integers(-(10**9), 10**9),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.booleans(),
    st.none(),
)
parameters = st.dictionaries(
    st.text("abcdefghij_", min_size=1, max_size=8),
    st.one_of(scalars, st.lists(scalars, max_size=3)),
    max_size=4,
)


@given(
    operation=st.sampled_from(sorted(RELATIONS)),
    parents=st.lists(hex_ids, min_size=1, max_size=3),
    params=parameters,
    bases=st.lists(repo_ids, min_size=1, max_size=3, unique=True),
    name=st.text(min_size=1, max_size=20),
)
def test_front_matter_parses_back_to_the_lineage(
    operation: str, parents: list[str], params: dict, bases: list[str], name: str
) -> None:
    lineage = Lineage(operation=operation, parents=parents, parameters=params)  # type: ignore[arg-type]
    cb = Codebook.from_axes(AXES, name=name, lineage=lineage)
    data = ModelCard(front_matter(card_metadata(cb, bases))).data.to_dict()
    assert data["library_name"] == "geolip" and data["license"] == "apache-2.0"
    assert data["base_model"] == bases and data["base_model_relation"] == RELATIONS[operation]
    block = data["geolip"]
    assert block["lineage"] == lineage.model_dump(mode="json")
    assert (block["codebook_id"], block["dim"], block["size"], block["name"]) == (
        cb.id,
        3,
        12,
        name,
    )
    assert f"lineage-{operation}" in data["tags"]


def test_relations_follow_the_lineage_and_parentless_codebooks_have_no_base() -> None:
    assert dict(RELATIONS) == {
        "merge": "merge",
        "extract": "adapter",
        "extend": "finetune",
        "align": "finetune",
        "rotate": "finetune",
        "diff": "finetune",
    }
    rnd = Codebook.random(8, 3, seed=0)
    assert "base_model" not in card_metadata(rnd)
    with pytest.raises(ValueError, match="no parent"):
        card_metadata(rnd, ["alice/parent"])


def test_card_body_reports_quality_beside_the_null() -> None:
    cb = Codebook.random(16, 4, seed=2)
    q = cb.assess(null_trials=20, seed=5)
    card = codebook_card(cb, repo_id="alice/rnd", quality=q, quality_source="stored")
    assert f"| deviation from uniform (rad) | {q.deviation:+.4f} |" in card
    assert f"{q.null.n_trials} draws of the i.i.d. null" in card
    assert f"percentile {q.null.percentile:.1f}" in card
    assert f"`{cb.id}`" in card and 'Codebook.from_hub("alice/rnd")' in card
    assert card == codebook_card(cb, repo_id="alice/rnd", quality=q, quality_source="stored")
    single = Codebook.from_axes(torch.eye(3)[:1])
    assert "No quality report" in codebook_card(
        single, repo_id="a/b", quality=None, quality_source=""
    )


def test_the_card_in_docs_is_that_of_the_codebook_it_names() -> None:
    text = HUB_DOC.read_text().split("````markdown\n", 1)[1].split("\n````", 1)[0]
    data = ModelCard(text).data.to_dict()
    cb = Codebook.random(32, 4, seed=0)
    assert data["geolip"]["codebook_id"] == cb.id
    assert data["geolip"]["lineage"] == cb.meta.lineage.model_dump(mode="json")
    assert f'assert cb.id == "{cb.id}"' in text
