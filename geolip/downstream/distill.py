"""Distillation into a sphere-solver (OMEGA §5a), and the linear probe that judges it.

The student is a sphere-solver (by default the shipped ``pretrained:h2-gaussian``), trained on
the train images at one resolution with

    loss = MSE(recon, x) + w · (1 − cos(head(pool(M)), t)),

where pool(M) is the patch mean of each row's outer product M_pv M_pvᵀ (V · D(D+1)/2 numbers,
sign-invariant like a codebook, and of the same shape at every image size), ``head`` a linear
map trained with it, and t the teacher's features of the same image reduced to ``target_dim``
principal components (fitted on the train images) and unit-normalised. ``w = 0`` gives the
control: the same fine-tuning by reconstruction alone.

:func:`probe_accuracy` fits a logistic-regression probe on train features and scores held-out
ones, so student and teacher can be compared at the training resolution and at another.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.nn.functional import cosine_similarity, mse_loss

from geolip.data.dataset import ImageDataset
from geolip.downstream.crossmodal import pca_basis
from geolip.errors import IncompatibleInputError


class DistillConfig(BaseModel):
    """How the student is trained (module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    steps: int = Field(300, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(3e-4, gt=0)
    match_weight: float = Field(1.0, ge=0)
    target_dim: int = Field(32, ge=1)
    seed: int = 0


def row_moments(m: torch.Tensor) -> torch.Tensor:
    """(B, P, V, D) unit rows → (B, V · D(D+1)/2): patch mean of the upper triangle of each
    row's outer product; unchanged when any row changes sign."""
    d = m.shape[-1]
    iu = torch.triu_indices(d, d)
    outer = m.unsqueeze(-1) * m.unsqueeze(-2)  # (B, P, V, D, D)
    return outer[..., iu[0], iu[1]].mean(dim=1).flatten(1)


@dataclass
class DistillResult:
    student: nn.Module
    head: nn.Linear
    losses: list[tuple[float, float]]
    """(reconstruction MSE, 1 − cos) per step."""


def distill(
    student: nn.Module,
    images: torch.Tensor,
    teacher_features: torch.Tensor,
    config: DistillConfig | None = None,
    *,
    progress: Callable[[int], object] | None = None,
) -> DistillResult:
    """Train ``student`` (a sphere-solver, changed in place) on ``images`` (N, C, H, W) towards
    ``teacher_features`` (N, F) of the same images; returns it in eval mode with its head."""
    cfg = config or DistillConfig()
    if images.shape[0] != teacher_features.shape[0]:
        raise IncompatibleInputError(
            f"{images.shape[0]} images but {teacher_features.shape[0]} teacher rows "
            "(mismatched pair counts)"
        )
    mean, basis = pca_basis(teacher_features, min(cfg.target_dim, images.shape[0] - 1))
    target = ((teacher_features.double() - mean) @ basis).float()
    target = target / target.norm(dim=1, keepdim=True).clamp(min=1e-12)
    with torch.no_grad():
        width = row_moments(student(images[:1])["M"]).shape[1]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        head = nn.Linear(width, target.shape[1])
    params = [*student.parameters(), *head.parameters()]
    optimizer = torch.optim.Adam(params, lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    student.train()
    losses = []
    for step in range(cfg.steps):
        rows = torch.randint(images.shape[0], (cfg.batch_size,), generator=gen)
        x = images[rows]
        out = student(x)
        recon = mse_loss(out["recon"], x)
        match = 1 - cosine_similarity(head(row_moments(out["M"])), target[rows], dim=1).mean()
        loss = recon + cfg.match_weight * match
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append((recon.item(), match.item()))
        if progress is not None:
            progress(step)
    student.eval()
    return DistillResult(student=student, head=head.eval(), losses=losses)


@torch.no_grad()
def student_features(
    student: nn.Module, dataset: ImageDataset, batch_size: int = 32
) -> torch.Tensor:
    """(N, V · D(D+1)/2) row moments of every image of ``dataset`` (any size)."""
    return torch.cat([row_moments(student(x)["M"]) for x in dataset.batches(batch_size)])


def probe_accuracy(
    train: torch.Tensor, train_labels: torch.Tensor, test: torch.Tensor, test_labels: torch.Tensor
) -> float:
    """Held-out accuracy of a standardised multinomial logistic-regression probe."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    probe.fit(train.double().numpy(), train_labels.numpy())
    return float(probe.score(test.double().numpy(), test_labels.numpy()))
