"""handlers/drift_projection.py: principal components of the penultimate layer, and its capture."""

import pytest
import torch
from drift_projection import Penultimate, Projection, last_linear, pc_names, principal_components
from torch import nn


def rows(n=400, d=6, seed=0) -> torch.Tensor:
    """Correlated rows with variances far apart, so the components are well defined."""
    g = torch.Generator().manual_seed(seed)
    scales = torch.tensor([5.0, 3.0, 2.0, 1.0, 0.5, 0.1][:d], dtype=torch.float64)
    mixing = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))[0]
    return (torch.randn(n, d, generator=g, dtype=torch.float64) * scales) @ mixing.T + 3.0


def test_the_projection_has_k_columns_centred_uncorrelated_and_in_decreasing_variance():
    x = rows()
    projection = principal_components(x, k=3)
    pcs = projection.apply(x)
    assert pcs.shape == (400, 3) and pcs.dtype == torch.float64
    assert torch.allclose(pcs.mean(dim=0), torch.zeros(3, dtype=torch.float64), atol=1e-10)
    cov = torch.cov(pcs.T)
    assert torch.allclose(cov - torch.diag(torch.diag(cov)), torch.zeros(3, 3, dtype=torch.float64), atol=1e-9)
    variances = torch.diag(cov)
    assert variances[0] > variances[1] > variances[2]
    assert torch.allclose(projection.components @ projection.components.T, torch.eye(3, dtype=torch.float64))
    assert projection.names == ["pc1", "pc2", "pc3"] == pc_names(3)


def test_the_components_are_the_covariances_top_eigenvectors_with_the_largest_loading_positive():
    x = rows()
    projection = principal_components(x, k=2)
    values, vectors = torch.linalg.eigh(torch.cov(x.T))
    for i, column in enumerate((-1, -2)):
        top = vectors[:, column]
        top = top * torch.sign(top[top.abs().argmax()])
        assert torch.allclose(projection.components[i], top, atol=1e-8)
    total = float(values.sum())
    assert projection.explained == pytest.approx([float(values[-1]) / total, float(values[-2]) / total], rel=1e-9)


def test_the_same_rows_give_the_same_projection_and_it_survives_its_file():
    x = rows(seed=3)
    first, second = principal_components(x), principal_components(x.clone())
    # exact: the same function on a clone of the same contiguous tensor takes the same kernels
    assert torch.equal(first.components, second.components) and torch.equal(first.mean, second.mean)
    again = Projection.from_dict(first.to_dict())
    # exact: a float64 written as a Python float and read back is the same number (repr round-trips)
    assert torch.equal(again.components, first.components) and torch.equal(again.mean, first.mean)
    # not exact: the file's components are a new contiguous tensor, the original a view of eigh's
    # result, and the two layouts take different BLAS kernels (an AVX-512 EPYC differed in the last bits)
    assert torch.allclose(again.apply(x), first.apply(x), rtol=1e-12, atol=1e-12)


def test_a_projection_of_the_wrong_shape_is_refused():
    with pytest.raises(ValueError, match="components"):
        Projection.from_dict({"mean": [0.0, 1.0], "components": [[1.0, 0.0, 0.0]]})
    with pytest.raises(ValueError, match="k <="):
        principal_components(rows(n=4, d=3), k=5)


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 8), nn.ReLU())
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.body(x))


def test_the_penultimate_layer_is_the_input_of_the_last_linear_layer_of_each_pass():
    model = Classifier().double()
    assert last_linear(model) is model.head
    hook = Penultimate(model)
    x = torch.randn(5, 4, dtype=torch.float64)
    with torch.inference_mode():
        model(x[:2])  # a pass of an earlier, failed batch: dropped
        model(x[2:])
        model(x[:2])
    first, second = hook.take(2)
    # exact: the hook keeps the very tensor the body computed, and the body is called again on the same input
    assert torch.equal(first, model.body(x[2:]).detach()) and torch.equal(second, model.body(x[:2]).detach())
    assert hook.batches == []


def test_a_model_without_a_linear_layer_is_refused_with_a_message():
    with pytest.raises(ValueError, match="no nn.Linear"):
        last_linear(nn.Sequential(nn.ReLU()))
