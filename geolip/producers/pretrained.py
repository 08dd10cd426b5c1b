"""A producer's pretrained folder, in the huggingface_hub ModelHubMixin convention.

    config.json         {"model_class": NAME, ...}: the pydantic config as JSON
    model.safetensors   the state dict

A SphereSolver writes ``{"model_class": "SphereSolver", "model": config, "preset": name}``, the
keys a training checkpoint's ``config.json`` has, so ``loading.load_checkpoint_model`` reads a
pretrained folder and a training checkpoint alike; a BatteryArray writes
``{"model_class": "BatteryArray", **config}``. Nothing is pickled.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import torch
from safetensors.torch import save
from torch import nn

from geolip._files import Verify, write_folder
from geolip.errors import CheckpointError

if TYPE_CHECKING:
    from geolip.codebook.hub_files import PublishedCommit

CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"
M = TypeVar("M", bound="PretrainedModule")


def pretrained_files(
    config: Mapping[str, Any], state: Mapping[str, torch.Tensor]
) -> dict[str, bytes]:
    """The bytes of ``config.json`` (sorted keys, indent 2) and ``model.safetensors`` (tensors
    moved to the CPU, made contiguous); the same model always gives the same bytes."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    text = json.dumps(dict(config), indent=2, sort_keys=True) + "\n"
    return {CONFIG_FILE: text.encode(), WEIGHTS_FILE: save(tensors)}


def write_pretrained(
    folder: str | Path, files: Mapping[str, bytes], verify: Verify | None = None
) -> Path:
    """Write ``files`` (name → bytes) as the folder ``folder`` atomically, ``verify`` reading
    the temporary folder back first (see :func:`geolip._files.write_folder`). A non-empty
    folder without a ``config.json`` is refused (CheckpointError) rather than replaced.
    Returns the folder."""
    target = Path(folder)
    occupied = target.is_file() or (target.is_dir() and any(target.iterdir()))
    if occupied and not (target / CONFIG_FILE).is_file():
        raise CheckpointError("exists and is not a saved model; not overwriting", target)
    return write_folder(target, files, verify=verify)


class PretrainedModule(nn.Module):
    """An ``nn.Module`` with ``save_pretrained`` / ``from_pretrained`` / ``push_to_hub``.

    A subclass says what its ``config.json`` holds (:meth:`pretrained_config`) and how to read a
    folder back (:meth:`from_folder`, which must refuse foreign or inconsistent folders with a
    CheckpointError naming the file).
    """

    def pretrained_config(self) -> dict[str, Any]:
        """The ``config.json`` document: ``model_class`` and the config, JSON-safe."""
        raise NotImplementedError

    @classmethod
    def from_folder(cls: type[M], folder: Path) -> M:
        """Read a pretrained folder (in eval mode)."""
        raise NotImplementedError

    def save_pretrained(self, save_directory: str | Path) -> Path:
        """Write ``config.json`` + ``model.safetensors`` into ``save_directory`` atomically
        (see :func:`write_pretrained`); the folder is read back through :meth:`from_folder`
        and must give the same tensors before it replaces anything. Returns the folder."""
        files = pretrained_files(self.pretrained_config(), self.state_dict())
        return write_pretrained(save_directory, files, verify=self._expect_same_weights)

    def _expect_same_weights(self, folder: Path) -> None:
        mine = self.state_dict()
        theirs = type(self).from_folder(folder).state_dict()
        differ = [k for k in mine if k not in theirs or not torch.equal(mine[k].cpu(), theirs[k])]
        if differ or theirs.keys() != mine.keys():
            raise CheckpointError(f"read back other weights than written ({differ[:3]})", folder)

    @classmethod
    def from_pretrained(
        cls: type[M],
        pretrained_model_name_or_path: str | Path,
        revision: str | None = None,
        **options: Any,
    ) -> M:
        """A model from a local pretrained (or training checkpoint) folder, or else from the Hub
        repo of that id at ``revision`` (branch, tag or commit sha): both files checked against
        the Hub's hashes and loaded before anything is cached; works from the cache under
        HF_HUB_OFFLINE=1. Options (``endpoint``, ``token``, ``cache_dir``,
        ``local_files_only``, ``timeout``): see :func:`geolip.producers.hub.fetch_pretrained`."""
        path = Path(pretrained_model_name_or_path)
        if path.is_dir():
            return cls.from_folder(path)
        from geolip.producers import hub

        return hub.fetch_pretrained(
            str(pretrained_model_name_or_path), cls.from_folder, revision, **options
        ).model

    def push_to_hub(
        self,
        repo_id: str,
        *,
        revision: str | None = None,
        private: bool = False,
        token: str | None = None,
        endpoint: str | None = None,
        **options: Any,
    ) -> PublishedCommit:
        """Publish ``config.json``, ``model.safetensors`` and a generated ``README.md`` card in
        one commit on branch ``revision`` (default main); see
        :func:`geolip.producers.hub.push_pretrained` for the options."""
        from geolip.producers import hub

        return hub.push_pretrained(
            self,
            repo_id,
            revision=revision,
            private=private,
            token=token,
            endpoint=endpoint,
            **options,
        )
