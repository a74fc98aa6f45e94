"""The masked loss: per-task means, zero (not NaN) without valid rows, and the directional mask in gradients."""

import numpy as np
import pyarrow.compute as pc
import pytest
import torch

from model.data import Encoder, ExampleTable, fit_statistics
from model.losses import LossWeighting, masked_bce, row_mask
from model.network import InputLayout, MultiTaskNetwork
from model.spec import load_spec
from model.train import batch_loss

PROMO_TASKS = ("PromotionStream", "Like", "Follow")
AD_TASKS = ("AdStream", "Click")


def test_each_task_is_averaged_over_its_own_rows():
    logits = torch.zeros(4, 2)
    labels = torch.tensor([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    mask = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0], [0.0, 1.0]])
    losses, counts = masked_bce(logits, labels, mask)
    assert counts.tolist() == [2, 1]
    torch.testing.assert_close(losses, torch.full((2,), float(np.log(2))))


def test_a_task_without_valid_rows_gives_zero_not_nan():
    logits = torch.tensor([[float("inf"), 0.3], [float("nan"), -0.2]], requires_grad=True)
    labels = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    mask = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    losses, counts = masked_bce(logits, labels, mask)
    assert losses[0].item() == 0.0 and counts[0].item() == 0
    total = LossWeighting(["a", "b"], "uncertainty")(losses, counts)
    total.backward()
    assert torch.isfinite(total) and torch.isfinite(logits.grad).all()
    assert logits.grad[:, 0].abs().sum() == 0


def test_loss_weighting_validation_and_fixed_weights():
    losses, counts = torch.tensor([1.0, 2.0]), torch.tensor([3, 4])
    assert LossWeighting(["a", "b"], "fixed", {"b": 0.5})(losses, counts).item() == 2.0
    with pytest.raises(ValueError, match="expected one of fixed, uncertainty, found 'gradnorm'"):
        LossWeighting(["a"], "gradnorm")
    with pytest.raises(ValueError, match=r"unknown task\(s\) \['c'\]"):
        LossWeighting(["a"], weights={"c": 1.0})


def test_row_mask_combines_observation_and_the_source_matrix():
    obs = torch.ones(3, 2)
    matrix = torch.tensor([[1.0, 0.0], [1.0, 1.0]])  # source 0 trains task 0 only
    mask = row_mask(obs, torch.tensor([0, 1, -1]), matrix)
    assert mask.tolist() == [[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]


@pytest.mark.parametrize("architecture", ["shared_bottom", "mmoe"])
def test_ad_rows_leave_every_promotion_tower_gradient_exactly_zero(podcast_toy, architecture):
    examples, spec_path = podcast_toy
    spec = load_spec(spec_path).with_changes(architecture=architecture)
    table = ExampleTable.open(examples)
    encoder = Encoder(spec, fit_statistics(spec, table, table.days[:2]))
    data = table.read(table.units(table.days[:1])[0], encoder.columns)
    ads = data.filter(pc.equal(data.column("source"), "ad"))
    batch = encoder.encode(ads)
    # Every label of these rows is observed, with positives for every task: only the mask can zero a tower.
    assert bool(batch.obs.all()) and (batch.y.sum(0) > 0).all()
    layout = InputLayout(encoder.table_rows, len(encoder.single), len(encoder.bags), encoder.num_width)
    torch.manual_seed(0)
    network = MultiTaskNetwork(spec.model, layout, spec.task_names)
    total, losses = batch_loss(network, batch, encoder.train_mask_matrix(), LossWeighting(spec.task_names))
    total.backward()
    network.embedding.coalesced_grad()
    for task in PROMO_TASKS:
        assert losses[spec.task_names.index(task)].item() == 0.0
        for name, p in network.towers[task].named_parameters():
            assert p.grad is None or torch.count_nonzero(p.grad) == 0, (task, name)
    for task in AD_TASKS:
        assert all(torch.count_nonzero(p.grad) > 0 for p in network.towers[task].parameters()), task
    for name, p in network.encoder.named_parameters():
        if name.startswith("gates."):  # MMoE: each task's own gate belongs with its tower
            task = spec.task_names[int(name.split(".")[1])]
            assert (p.grad is None or torch.count_nonzero(p.grad) == 0) == (task in PROMO_TASKS), name
        else:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    grad = network.embedding.weight.grad
    assert grad.is_sparse and grad.is_coalesced() and grad._values().abs().sum() > 0
    # Only the rows the batch touched carry a gradient.
    assert grad._indices().ravel().tolist() == batch.rows.tolist()


def test_promotion_rows_train_every_tower(podcast_toy):
    examples, spec_path = podcast_toy
    spec = load_spec(spec_path)
    table = ExampleTable.open(examples)
    encoder = Encoder(spec, fit_statistics(spec, table, table.days[:2]))
    data = table.read(table.units(table.days[:1])[0], encoder.columns)
    batch = encoder.encode(data.filter(pc.equal(data.column("source"), "promo")))
    layout = InputLayout(encoder.table_rows, len(encoder.single), len(encoder.bags), encoder.num_width)
    network = MultiTaskNetwork(spec.model, layout, spec.task_names)
    total, _ = batch_loss(network, batch, encoder.train_mask_matrix(), LossWeighting(spec.task_names))
    total.backward()
    for task in spec.task_names:
        assert any(torch.count_nonzero(p.grad) > 0 for p in network.towers[task].parameters()), task
