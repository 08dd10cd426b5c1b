"""A producer's pretrained folder, in the huggingface_hub ModelHubMixin convention.

    config.json         {"model_class": NAME, ...}: the pydantic config as JSON
    model.safetensors   the state dict

A SphereSolver writes ``{"model_class": "SphereSolver", "model": config, "preset": name}``, the
keys a training checkpoint's ``config.json`` has, so ``SphereSolver.from_folder`` reads a
pretrained folder and a training checkpoint alike; a BatteryArray writes
``{"model_class": "BatteryArray", **config}``. Every class reads its folder through
:func:`read_pretrained` and :func:`load_weights`. Nothing is pickled.
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
from geolip._safetensors import load_tensors, not_safetensors
from geolip.errors import CheckpointError, CheckpointNotFoundError

if TYPE_CHECKING:
    from geolip.hub import PublishedCommit

CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"
M = TypeVar("M", bound="PretrainedModule")
C = TypeVar("C")


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


def read_pretrained(
    folder: str | Path, model_class: str, default_class: str | None = None
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(config document without ``model_class``, state dict) of a folder of ``model_class``.

    Args:
        default_class: the class assumed when ``config.json`` names none (older checkpoints).

    Raises:
        CheckpointNotFoundError: a file is missing. CheckpointError: ``config.json`` is not a
            JSON object or names another class, or the weights are not safetensors; the error
            names the file.
    """
    config_path, weights_path = Path(folder) / CONFIG_FILE, Path(folder) / WEIGHTS_FILE
    for path in (config_path, weights_path):
        if not path.is_file():
            raise CheckpointNotFoundError(f"missing: not a saved {model_class}", path)
    try:
        doc = json.loads(config_path.read_text())
        if not isinstance(doc, dict):
            raise ValueError(f"a JSON {type(doc).__name__}, not an object")
    except ValueError as err:  # JSON and UTF-8 errors are ValueErrors
        raise CheckpointError(f"not a {model_class} config ({err})", config_path) from err
    kind = doc.pop("model_class", default_class)
    if kind != model_class:
        raise CheckpointError(f"model_class is {kind!r}, not {model_class!r}", config_path)
    state, _ = load_tensors(weights_path, not_safetensors)
    return doc, state


def parse_config(factory: type[C], fields: Any, folder: str | Path) -> C:
    """``factory(**fields)`` (a pydantic config), its refusal raised as a CheckpointError
    naming the folder's ``config.json``."""
    try:
        return factory(**fields)
    except (TypeError, ValueError) as err:  # pydantic's ValidationError is a ValueError
        path = Path(folder) / CONFIG_FILE
        raise CheckpointError(f"not a {factory.__name__} ({err})", path) from err


def load_weights(
    model: M, state: Mapping[str, torch.Tensor], folder: str | Path, keep_dtype: bool = False
) -> M:
    """Load ``state`` into ``model`` strictly (every tensor present, floating-point, of the
    model's shape) and return it in eval mode. ``keep_dtype`` takes the saved tensors as they
    are (dtype as saved); otherwise they are copied into the model's own dtype."""
    expected = {k: v.shape for k, v in model.state_dict().items()}
    found = {k: v.shape for k, v in state.items() if v.is_floating_point()}
    misfits = sorted(k for k in expected.keys() | found.keys() if expected.get(k) != found.get(k))
    if misfits:
        raise CheckpointError(
            f"weights do not fit the config: {len(misfits)} tensors missing, unexpected, "
            f"not floating-point or of another shape, first {misfits[0]!r}",
            Path(folder) / WEIGHTS_FILE,
        )
    model.load_state_dict(state, assign=keep_dtype)
    return model.eval()


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
        *,
        endpoint: str | None = None,
        token: str | None = None,
        timeout: float | None = None,
        **options: Any,
    ) -> M:
        """A model from a local pretrained (or training checkpoint) folder, or else from the Hub
        repo of that id at ``revision`` (branch, tag or commit sha): both files checked against
        the Hub's hashes and loaded before anything is cached; works from the cache under
        HF_HUB_OFFLINE=1. ``timeout``: seconds per request (default 10). Options
        (``cache_dir``, ``local_files_only``): see :func:`geolip.hub.fetch_pretrained`."""
        path = Path(pretrained_model_name_or_path)
        if path.is_dir():
            return cls.from_folder(path)
        from geolip.hub import DEFAULT_TIMEOUT, HubTarget, fetch_pretrained

        seconds = DEFAULT_TIMEOUT if timeout is None else timeout
        target = HubTarget(str(pretrained_model_name_or_path), revision, endpoint, token, seconds)
        return fetch_pretrained(target, cls.from_folder, **options).model

    def push_to_hub(
        self,
        repo_id: str,
        *,
        revision: str | None = None,
        private: bool = False,
        token: str | None = None,
        endpoint: str | None = None,
        timeout: float | None = None,
        **options: Any,
    ) -> PublishedCommit:
        """Publish ``config.json``, ``model.safetensors`` and a generated ``README.md`` card in
        one commit on branch ``revision`` (default main); ``timeout``: seconds per request
        (default 10). See :func:`geolip.hub.push_pretrained` for the options."""
        from geolip.hub import DEFAULT_TIMEOUT, HubTarget, push_pretrained

        seconds = DEFAULT_TIMEOUT if timeout is None else timeout
        target = HubTarget(repo_id, revision, endpoint, token, seconds)
        return push_pretrained(self, target, private=private, **options)
