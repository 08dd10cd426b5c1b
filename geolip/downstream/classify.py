"""Linear and small MLP heads on frozen features; train at one resolution, evaluate at any.

A head reads one pooled feature (``mean`` (B, V, K), ``hist`` (B, K) or ``map`` (B, K, gh, gw))
and standardises it with the training set's per-dimension mean and std (stored in the head).
``mean`` and ``hist`` have the same shape at every image size; ``map`` is average-pooled onto
a fixed ``pool_grid`` first. So a head trained on 64 × 64 features takes 512 × 512 features
without any change. The head records the producer and codebook it was trained on and refuses
features from any other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import (
    BaseModel,
    ConfigDict,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    ValidationError,
)
from safetensors.torch import save
from torch import nn
from torch.nn.functional import adaptive_avg_pool2d, cross_entropy

from geolip._files import atomic_write
from geolip._safetensors import load_tensors, not_safetensors
from geolip.downstream.features import FeatureKind, Features
from geolip.errors import CheckpointError, CheckpointNotFoundError, IncompatibleInputError
from geolip.solvers.intervals import Verdict, at_least, wilson_interval

HeadKind = Literal["linear", "mlp"]
HEAD_FORMAT = "geolip.head"
HEAD_VERSION = 1
STD_FLOOR = 1e-6


class HeadConfig(BaseModel):
    """How a head is built and fitted; the defaults work on pooled codebook features.

    Attributes:
        kind: ``linear``, or ``mlp`` (one hidden layer of ``hidden`` units, GELU).
        pool_grid: (h, w) onto which 3-D map features (K, gh, gw) are average-pooled.
        epochs, lr, weight_decay, batch_size: Adam on cross-entropy.
        seed: initialisation and batch order (the global RNG is untouched).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: HeadKind = "linear"
    hidden: PositiveInt = 64
    pool_grid: tuple[PositiveInt, PositiveInt] = (4, 4)
    epochs: PositiveInt = 100
    lr: PositiveFloat = 3e-3
    weight_decay: NonNegativeFloat = 1e-4
    batch_size: PositiveInt = 128
    seed: int = 0


def head_config(config: HeadConfig | None = None, **options: Any) -> HeadConfig:
    """``config`` (default: the defaults) with ``options`` replaced, validated."""
    return HeadConfig(**{**(config or HeadConfig()).model_dump(), **options})


class FeatureHead(nn.Module):
    """Standardise → flatten → Linear (``linear``) or Linear–GELU–Linear (``mlp``) → logits.

    Args:
        feature_shape: shape of one example, e.g. (V, K); for 3-D (K, gh, gw) map features
            the grid is first average-pooled to ``config.pool_grid``.
        n_classes: number of logits.
        config: kind, hidden width and pool grid (the fitting fields are not used here).
    """

    def __init__(
        self, feature_shape: tuple[int, ...], n_classes: int, config: HeadConfig | None = None
    ) -> None:
        super().__init__()
        config = config or HeadConfig()
        self.feature_shape = tuple(feature_shape)
        self.pool_grid = tuple(config.pool_grid)
        width = self._flat_width()
        self.register_buffer("mean", torch.zeros(width))
        self.register_buffer("std", torch.ones(width))
        if config.kind == "linear":
            self.net: nn.Module = nn.Linear(width, n_classes)
        else:
            hidden = config.hidden
            layers = (nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, n_classes))
            self.net = nn.Sequential(*layers)

    def _flat_width(self) -> int:
        if len(self.feature_shape) == 3:
            return self.feature_shape[0] * self.pool_grid[0] * self.pool_grid[1]
        return int(torch.Size(self.feature_shape).numel())

    def flatten(self, x: torch.Tensor) -> torch.Tensor:
        """(B, *feature_shape) → (B, F); map features pooled to ``pool_grid`` first."""
        if x.ndim == 4:
            x = adaptive_avg_pool2d(x, self.pool_grid)
        return x.flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, *feature_shape) features → (B, n_classes) logits."""
        return self.net((self.flatten(x) - self.mean) / self.std)

    def param_count(self) -> int:
        return sum(p.numel() for p in self.parameters())


class HeadInfo(BaseModel):
    """What a head was trained on and how; stored beside its weights."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    config: HeadConfig
    feature: str
    feature_shape: tuple[int, ...]
    n_classes: int
    classes: tuple[str, ...]
    producer_id: str | None
    codebook_id: str | None
    train_fingerprint: str | None
    train_size: tuple[int, int] | None
    n_train: int
    train_accuracy: float


@dataclass(frozen=True)
class AccuracyReport:
    """Accuracy beside what a constant guess scores, with a 95 % Wilson interval.

    Attributes:
        accuracy: ``correct / n``.
        interval: 95 % Wilson interval of the accuracy.
        chance: the accuracy of always answering the most frequent label of these ``n``
            (1 / classes on a balanced set).
        above_chance: ``holds`` when the whole interval lies above ``chance``, ``fails`` when
            it lies below, ``inconclusive`` when it contains it.
    """

    accuracy: float
    correct: int
    n: int
    interval: tuple[float, float]
    chance: float
    above_chance: Verdict

    @classmethod
    def of(cls, predictions: torch.Tensor, labels: torch.Tensor) -> AccuracyReport:
        """From predicted labels (N,) and true labels (N,), N ≥ 1."""
        if labels.numel() == 0:
            raise IncompatibleInputError("accuracy of an empty dataset")
        correct = int((predictions == labels).sum())
        n = labels.numel()
        interval = wilson_interval(correct, n)
        chance = float(torch.bincount(labels).max()) / n
        return cls(correct / n, correct, n, interval, chance, at_least(interval, chance))

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {
            "accuracy": self.accuracy,
            "correct": self.correct,
            "n": self.n,
            "ci95": list(self.interval),
            "chance": self.chance,
            "above_chance": self.above_chance,
        }


@dataclass(frozen=True)
class TrainedHead:
    """A fitted :class:`FeatureHead` (eval mode) and its :class:`HeadInfo`."""

    head: FeatureHead
    info: HeadInfo

    @torch.no_grad()
    def predict(self, features: Features) -> torch.Tensor:
        """Logits (N, n_classes) for features from the same producer and codebook."""
        return self.head(self._input(features))

    def accuracy(self, features: Features) -> float:
        """Fraction of ``features.labels`` predicted correctly."""
        return accuracy(self.head, self._input(features), features.labels)

    def evaluate(self, features: Features) -> AccuracyReport:
        """Accuracy with its interval and the chance level of these labels."""
        return AccuracyReport.of(self.predict(features).argmax(dim=1), features.labels)

    def _input(self, features: Features) -> torch.Tensor:
        i = self.info
        for name, ours, theirs in (
            ("producer", i.producer_id, features.producer_id),
            ("codebook", i.codebook_id, features.codebook_id),
        ):
            if ours is not None and ours != theirs:
                raise IncompatibleInputError(
                    f"head was trained on {name} {ours[:12]}, features come from {theirs[:12]}"
                )
        x = features[i.feature]
        shape = tuple(x.shape[1:])
        # map features of any grid fit: only K must agree, the grid is pooled
        fits = shape[:1] == i.feature_shape[:1] if len(shape) == 3 else shape == i.feature_shape
        if len(shape) != len(i.feature_shape) or not fits:
            raise IncompatibleInputError(
                f"head takes {i.feature!r} features of shape {i.feature_shape}, got {shape}"
            )
        return x


def fit_head(
    x: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    config: HeadConfig | None = None,
    **options: Any,
) -> FeatureHead:
    """Fit a head by Adam on cross-entropy over (N, *feature_shape) inputs and (N,) labels.

    ``options`` override fields of ``config`` (see :class:`HeadConfig`). Initialisation and
    batch order come from its seed only, so a fit is reproducible on a given machine. Returns
    the head in eval mode, on the CPU.
    """
    cfg = head_config(config, **options)
    if x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise IncompatibleInputError(f"{x.shape[0]} feature rows for {y.shape[0]} labels")
    x, y = x.float().cpu(), y.long().cpu()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        head = FeatureHead(tuple(x.shape[1:]), n_classes, cfg)
    flat = head.flatten(x)
    head.mean.copy_(flat.mean(dim=0))
    head.std.copy_(flat.std(dim=0, unbiased=False).clamp(min=STD_FLOOR))
    optimizer = torch.optim.Adam(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    fit_cross_entropy(
        head, x, y, optimizer, epochs=cfg.epochs, batch_size=cfg.batch_size, seed=cfg.seed
    )
    return head


def fit_cross_entropy(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    *,
    epochs: int,
    batch_size: int,
    seed: int,
) -> None:
    """Minibatch cross-entropy on inputs x (N, ...) and labels y (N,): each epoch visits the
    rows in an order drawn from ``seed`` (its own generator). Leaves ``model`` in eval mode."""
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(x.shape[0], generator=gen)
        for start in range(0, x.shape[0], batch_size):
            rows = order[start : start + batch_size]
            loss = cross_entropy(model(x[rows]), y[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    model.eval()


@torch.no_grad()
def accuracy(head: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> float:
    """Top-1 accuracy of ``head`` on inputs (N, ...) and labels (N,)."""
    correct = 0
    for start in range(0, x.shape[0], batch_size):
        logits = head(x[start : start + batch_size].float())
        correct += int((logits.argmax(dim=1) == y[start : start + batch_size]).sum())
    return correct / max(x.shape[0], 1)


def train_head(
    features: Features,
    feature: FeatureKind = "mean",
    *,
    classes: tuple[str, ...] | None = None,
    config: HeadConfig | None = None,
    **options: Any,
) -> TrainedHead:
    """Train a head on one kind of ``features`` (see :func:`fit_head`; ``options`` override
    ``config``). ``classes`` names the labels (default ``"0"``, ``"1"``, ...); their count
    fixes the logits.

    Raises:
        IncompatibleInputError: the training set holds fewer than two classes (a head would
            score 100 % by answering the one class), before any training.
    """
    cfg = head_config(config, **options)
    x, y = features[feature], features.labels
    present = torch.unique(y)
    if len(present) < 2:
        only = "no images" if len(y) == 0 else f"only class {int(present[0])} ({len(y)} images)"
        raise IncompatibleInputError(
            f"a classification head needs at least two classes to train on; got {only}"
        )
    names = classes or tuple(str(i) for i in range(int(y.max()) + 1))
    head = fit_head(x, y, len(names), cfg)
    info = HeadInfo(
        config=cfg,
        feature=feature,
        feature_shape=tuple(x.shape[1:]),
        n_classes=len(names),
        classes=names,
        producer_id=features.producer_id,
        codebook_id=features.codebook_id,
        train_fingerprint=features.dataset_fingerprint,
        train_size=features.size,
        n_train=len(features),
        train_accuracy=accuracy(head, x, y),
    )
    return TrainedHead(head, info)


def save_head(trained: TrainedHead, path: str | Path) -> Path:
    """Write one ``.safetensors`` file atomically: weights and buffers, the info as metadata;
    the file is read back through :func:`load_head` before it replaces anything."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in trained.head.state_dict().items()}
    metadata = {
        "format": HEAD_FORMAT,
        "version": str(HEAD_VERSION),
        "info": trained.info.model_dump_json(),
    }
    return atomic_write(target, save(state, metadata=metadata), verify=load_head)


def load_head(path: str | Path) -> TrainedHead:
    """Read a head written by :func:`save_head`.

    Raises:
        CheckpointNotFoundError: no such file.
        CheckpointError: not a geolip head, a version this library does not read, or weights
            that do not fit the recorded shapes.
    """
    target = Path(path)
    if not target.is_file():
        raise CheckpointNotFoundError("no head file here", target)
    state, meta = load_tensors(target, not_safetensors)
    if meta.get("format") != HEAD_FORMAT:
        raise CheckpointError("not a geolip classification head", target)
    if meta.get("version") != str(HEAD_VERSION):
        raise CheckpointError(f"head format version {meta.get('version')} is not 1", target)
    try:
        info = HeadInfo(**json.loads(meta["info"]))
    except (KeyError, json.JSONDecodeError, ValidationError) as err:
        raise CheckpointError(f"head info is malformed ({err})", target) from err
    head = FeatureHead(info.feature_shape, info.n_classes, info.config)
    try:
        head.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise CheckpointError(f"weights do not fit the head info ({first})", target) from err
    return TrainedHead(head.eval(), info)
