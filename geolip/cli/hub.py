"""``geolip codebook push/pull`` and ``geolip model push/pull``: Hub repos, verified."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from geolip.cli import output
from geolip.cli.options import FORCE, JSON, command_group
from geolip.cli.out_path import claim_output

if TYPE_CHECKING:
    from geolip.hub import HubTarget, PublishedCommit, Snapshot

model_app = command_group("Publish and fetch producers (models that emit codebooks) on the Hub.")

REVISION = typer.Option(None, "--revision", help="Branch to push to.", show_default="main")
PIN = typer.Option(None, "--revision", help="Branch, tag or commit sha.", show_default="main")
PRIVATE = typer.Option(False, "--private", help="Create the repo private (new repos only).")
ENDPOINT = typer.Option(
    None, "--endpoint", help="Hub URL.", show_default="$HF_ENDPOINT, else https://huggingface.co"
)
TOKEN = typer.Option(
    None, "--token", help="Access token.", show_default="$HF_TOKEN, else the saved login"
)
BASE_MODEL = typer.Option(
    None,
    "--base-model",
    help="Hub repo of a parent, named in the card (repeatable).",
    show_default="none",
)
LICENSE = typer.Option("apache-2.0", "--license", help="License id for the card.")
MESSAGE = typer.Option(
    None, "--message", help="Commit message.", show_default="one naming the artifact"
)
CACHE = typer.Option(
    None,
    "--cache-dir",
    help="geolip's verified store.",
    show_default="$GEOLIP_HUB_CACHE, else $GEOLIP_CACHE_DIR/hub, else ~/.cache/geolip/hub",
)


def _target(
    repo_id: str, revision: str | None, endpoint: str | None, token: str | None
) -> HubTarget:
    """The one HubTarget a command's options name (the timeout is the default)."""
    from geolip.hub import HubTarget

    return HubTarget(repo_id, revision=revision, endpoint=endpoint, token=token)


def _pushed(commit: PublishedCommit, **extra: Any) -> dict[str, Any]:
    return {
        "repo_id": commit.repo_id,
        "revision": commit.commit,
        "branch": commit.branch,
        "url": commit.url,
        **extra,
    }


def _pulled(snapshot: Snapshot, out: Path, **extra: Any) -> dict[str, Any]:
    return {
        "repo_id": snapshot.repo_id,
        "revision": snapshot.commit,
        "requested_revision": snapshot.revision,
        "from_cache": snapshot.from_cache,
        "path": str(out),
        **extra,
    }


def codebook_push(
    path: Path = typer.Argument(..., help="Artifact folder or .safetensors file."),
    repo_id: str = typer.Argument(..., help="OWNER/NAME of the Hub repo."),
    revision: str | None = REVISION,
    private: bool = PRIVATE,
    endpoint: str | None = ENDPOINT,
    token: str | None = TOKEN,
    base_model: list[str] | None = BASE_MODEL,
    license: str = LICENSE,
    message: str | None = MESSAGE,
    json_out: bool = JSON,
) -> None:
    """Publish a codebook: codebook.safetensors, codebook.json and a generated README card."""
    output.set_json_mode(json_out)
    from geolip.codebook import Codebook
    from geolip.hub import push_codebook

    target = _target(repo_id, revision, endpoint, token)
    cb = Codebook.load(path)
    with output.status(f"pushing {cb.id[:12]} to {repo_id}"):
        commit = push_codebook(
            cb,
            target,
            private=private,
            base_model=base_model or (),
            license=license,
            commit_message=message,
        )
    output.log(f"pushed {cb.id[:12]} to {commit.url}")
    output.emit(_pushed(commit, codebook_id=cb.id), f"pushed {repo_id}")


def codebook_pull(
    repo_id: str = typer.Argument(..., help="OWNER/NAME of the Hub repo."),
    out: Path = typer.Option(..., "--out", help="Artifact folder to write."),
    revision: str | None = PIN,
    endpoint: str | None = ENDPOINT,
    token: str | None = TOKEN,
    expect_id: str | None = typer.Option(
        None, "--expect-id", help="Refuse unless the codebook has this id.", show_default="any"
    ),
    cache_dir: Path | None = CACHE,
    force: bool = FORCE,
    json_out: bool = JSON,
) -> None:
    """Fetch a codebook, verify it (file hashes, then the id), write it to --out."""
    output.set_json_mode(json_out)
    claim_output(out, kind="artifact", force=force)
    from geolip.hub import fetch_codebook

    target = _target(repo_id, revision, endpoint, token)
    with output.status(f"fetching {repo_id}"):
        fetched = fetch_codebook(target, cache_dir=cache_dir, expected_id=expect_id)
    cb = fetched.codebook
    cb.save(out)
    output.log(f"wrote {out}")
    output.emit(_pulled(fetched.snapshot, out, codebook_id=cb.id), f"pulled {cb.id[:12]}")


@model_app.command("push")
def model_push(
    checkpoint: str = typer.Argument(
        ..., help="Pretrained or checkpoint folder, pretrained:NAME or upstream file."
    ),
    repo_id: str = typer.Argument(..., help="OWNER/NAME of the Hub repo."),
    revision: str | None = REVISION,
    private: bool = PRIVATE,
    endpoint: str | None = ENDPOINT,
    token: str | None = TOKEN,
    base_model: list[str] | None = BASE_MODEL,
    license: str = LICENSE,
    message: str | None = MESSAGE,
    json_out: bool = JSON,
) -> None:
    """Publish a producer: config.json, model.safetensors and a generated README card."""
    output.set_json_mode(json_out)
    from geolip.hub import push_pretrained
    from geolip.producers.loading import load_producer

    target = _target(repo_id, revision, endpoint, token)
    model = load_producer(checkpoint)
    with output.status(f"pushing {type(model).__name__} to {repo_id}"):
        commit = push_pretrained(
            model,
            target,
            private=private,
            base_model=base_model or (),
            license=license,
            commit_message=message,
        )
    output.log(f"pushed {type(model).__name__} to {commit.url}")
    doc = _pushed(
        commit,
        model_class=type(model).__name__,
        weights_sha256=model.producer_info().weights_sha256,
    )
    output.emit(doc, f"pushed {repo_id}")


@model_app.command("pull")
def model_pull(
    repo_id: str = typer.Argument(..., help="OWNER/NAME of the Hub repo."),
    out: Path = typer.Option(..., "--out", help="Folder to write the verified files to."),
    revision: str | None = PIN,
    endpoint: str | None = ENDPOINT,
    token: str | None = TOKEN,
    cache_dir: Path | None = CACHE,
    force: bool = FORCE,
    json_out: bool = JSON,
) -> None:
    """Fetch a producer, verify it (file hashes, then a strict load), write it to --out."""
    output.set_json_mode(json_out)
    claim_output(out, kind="folder", force=force)
    from geolip.hub import download_pretrained
    from geolip.producers.loading import load_folder

    target = _target(repo_id, revision, endpoint, token)
    with output.status(f"fetching {repo_id}"):
        fetched = download_pretrained(target, out, load_folder, cache_dir=cache_dir)
    output.log(f"wrote {out}")
    doc = _pulled(
        fetched.snapshot,
        out,
        model_class=type(fetched.model).__name__,
        weights_sha256=fetched.model.producer_info().weights_sha256,
    )
    output.emit(doc, f"pulled {repo_id}")
