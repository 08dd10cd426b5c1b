"""The decode path of the producer contract: ``decode_rows`` is the decoder half of forward."""

from __future__ import annotations

import pytest
import torch
from tiny_producer import tiny_producer

from geolip.producers.contract import Reconstructor


@pytest.mark.parametrize("readout", ["svd", "linear", "bypass"])
def test_decode_rows_of_encoded_rows_is_the_reconstruction(readout: str) -> None:
    model = tiny_producer(0, n_cross=1, readout=readout)
    assert isinstance(model, Reconstructor)
    x = torch.randn(2, 3, 12, 16, generator=torch.Generator().manual_seed(0))
    with model.frozen():
        recon = model(x)["recon"]
        decoded = model.decode_rows(model.encode_rows(x), (3, 4))
        scaled = model.decode_rows(3.0 * model.encode_rows(x), (3, 4))  # rows are normalised
    assert decoded.shape == (2, 3, 12, 16)
    assert torch.allclose(decoded, recon, atol=1e-5) and torch.allclose(scaled, recon, atol=1e-5)


def test_decode_rows_refuses_rows_that_do_not_fit_the_grid() -> None:
    model = tiny_producer(0)
    with pytest.raises(ValueError, match=r"expected rows \(B, 12, 8, 4\) for a 3×4 grid"):
        model.decode_rows(torch.randn(1, 11, 8, 4), (3, 4))
