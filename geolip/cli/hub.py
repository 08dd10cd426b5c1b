"""``geolip codebook push/pull`` and ``geolip model push/pull``: Hub repos, verified."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from geolip.cli import output

if TYPE_CHECKING:
    from geolip.codebook.hub_files import PublishedCommit, Snapshot

model_app = typer.Typer(
    help="Publish and fetch producers (models that emit codebooks) on the Hub.",
    no_args_is_help=True,
)

JSON = typer.Option(False, "--json", help="Print exactly one JSON document on stdout.")
REVISION = typer.Option(None, "--revision", help="Branch to push to (default main).")
PIN = typer.Option(None, "--revision", help="Branch, tag or commit sha (default main).")
PRIVATE = typer.Option(False, "--private", help="Create the repo private (new repos only).")
ENDPOINT = typer.Option(
    None, "--endpoint", help="Hub URL (default https://huggingface.co or HF_ENDPOINT)."
)
TOKEN = typer.Option(None, "--token", help="Access token (default: HF_TOKEN or the saved login).")
BASE_MODEL = typer.Option(
    None, "--base-model", help="Hub repo of a parent, named in the card (repeatable)."
)
LICENSE = typer.Option("apache-2.0", "--license", help="License id for the card.")
MESSAGE = typer.Option(None, "--message", help="Commit message.")
CACHE = typer.Option(
    None, "--cache-dir", help="geolip's verified store (default GEOLIP_HUB_CACHE)."
)


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

    cb = Codebook.load(path)
    with output.status(f"pushing {cb.id[:12]} to {repo_id}"):
        commit = cb.push_to_hub(
            repo_id,
            revision,
            private,
            token,
            endpoint,
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
        None, "--expect-id", help="Refuse unless the codebook has this id."
    ),
    cache_dir: Path | None = CACHE,
    json_out: bool = JSON,
) -> None:
    """Fetch a codebook, verify it (file hashes, then the id), write it to --out."""
    output.set_json_mode(json_out)
    from geolip.codebook import hub

    with output.status(f"fetching {repo_id}"):
        fetched = hub.fetch(
            repo_id,
            revision,
            endpoint,
            token=token,
            cache_dir=cache_dir,
            expected_id=expect_id,
        )
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
    from geolip.producers.extract import producer_info
    from geolip.producers.loading import load_model

    model = load_model(checkpoint)
    with output.status(f"pushing {type(model).__name__} to {repo_id}"):
        commit = model.push_to_hub(
            repo_id,
            revision=revision,
            private=private,
            token=token,
            endpoint=endpoint,
            base_model=base_model or (),
            license=license,
            commit_message=message,
        )
    output.log(f"pushed {type(model).__name__} to {commit.url}")
    doc = _pushed(
        commit,
        model_class=type(model).__name__,
        weights_sha256=producer_info(model).weights_sha256,
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
    json_out: bool = JSON,
) -> None:
    """Fetch a producer, verify it (file hashes, then a strict load), write it to --out."""
    output.set_json_mode(json_out)
    from geolip.producers.extract import producer_info
    from geolip.producers.hub import download_pretrained
    from geolip.producers.loading import load_pretrained_folder

    with output.status(f"fetching {repo_id}"):
        fetched = download_pretrained(
            repo_id,
            out,
            load_pretrained_folder,
            revision,
            endpoint=endpoint,
            token=token,
            cache_dir=cache_dir,
        )
    output.log(f"wrote {out}")
    doc = _pulled(
        fetched.snapshot,
        out,
        model_class=type(fetched.model).__name__,
        weights_sha256=producer_info(fetched.model).weights_sha256,
    )
    output.emit(doc, f"pulled {repo_id}")
