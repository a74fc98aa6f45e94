"""The masked loss: per-task means, zero (not NaN) without valid rows, and the directional mask in gradients."""

import numpy as np
import pyarrow.compute as pc
import pytest
import torch

from podtarget.model.data import Encoder, ExampleTable, fit_statistics
from podtarget.model.learner import batch_loss
from podtarget.model.losses import LossWeighting, masked_bce, pcgrad_backward, project_conflicting, row_mask
from podtarget.model.network import InputLayout, MultiTaskNetwork
from podtarget.model.spec import load_spec

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
    with pytest.raises(ValueError, match="expected one of fixed, uncertainty, pcgrad, found 'gradnorm'"):
        LossWeighting(["a"], "gradnorm")
    with pytest.raises(ValueError, match=r"unknown task\(s\) \['c'\]"):
        LossWeighting(["a"], weights={"c": 1.0})


def test_row_mask_combines_observation_and_the_source_matrix():
    obs = torch.ones(3, 2)
    matrix = torch.tensor([[1.0, 0.0], [1.0, 1.0]])  # source 0 trains task 0 only
    mask = row_mask(obs, torch.tensor([0, 1, -1]), matrix)
    assert mask.tolist() == [[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]


@pytest.mark.parametrize("architecture", ["shared_bottom", "mmoe", "ple"])
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
        if name.startswith(("gates.", "own.")):  # MMoE, PLE: each task's own gate (and experts) go with its tower
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


# ------------------------------------------------------------------------------------------------ PCGrad


def test_pcgrad_projects_conflicting_gradients_onto_each_others_normal_plane():
    g = torch.tensor([[1.0, 0.0, 2.0], [-2.0, 1.0, -1.0]])  # g0 . g1 = -4: they conflict
    out = project_conflicting(g)
    # With two tasks, each projected gradient is orthogonal to the other's original one (no longer conflicting)...
    assert abs(float(out[0] @ g[1])) < 1e-6 and abs(float(out[1] @ g[0])) < 1e-6
    # ...and the projected ones do not conflict with each other either.
    assert float(out[0] @ out[1]) >= 0
    torch.testing.assert_close(out[0], g[0] + (4 / 6) * g[1])
    torch.testing.assert_close(out[1], g[1] + (4 / 5) * g[0])


def test_pcgrad_leaves_agreeing_and_absent_tasks_alone():
    g = torch.tensor([[1.0, 1.0], [2.0, 0.5], [0.0, 0.0]])  # agree; the third task had no rows
    torch.testing.assert_close(project_conflicting(g), g)
    with pytest.raises(ValueError, match=r"expected a \[tasks, params\] matrix, found shape \(3,\)"):
        project_conflicting(torch.ones(3))


def test_pcgrad_with_many_tasks_never_worsens_a_conflict():
    gen = torch.Generator().manual_seed(0)
    g = torch.randn(5, 40, generator=gen)
    out = project_conflicting(g, torch.Generator().manual_seed(1))
    dots_before = g @ g.T
    for i in range(5):
        for j in range(5):
            if i != j and dots_before[i, j] < 0:
                # Projection removes the conflict with the last task projected onto, and never makes one worse.
                assert float(out[i] @ g[j]) >= float(dots_before[i, j]) - 1e-5


def _two_task_model():
    """A shared embedding (sparse gradient, as in the network) and a shared linear layer, then two heads."""
    torch.manual_seed(0)
    emb = torch.nn.Parameter(torch.randn(10, 3))
    shared = torch.nn.Linear(3, 4)
    heads = torch.nn.ModuleList([torch.nn.Linear(4, 1), torch.nn.Linear(4, 1)])
    return emb, shared, heads


def _terms(emb, shared, heads, sign: float) -> torch.Tensor:
    from podtarget.model.network import _GatherRows

    rows = torch.tensor([1, 4, 7])
    z = shared(_GatherRows.apply(emb, rows))
    # Task 1 wants the opposite of task 0 when sign = -1 (a direct conflict on the shared layers).
    return torch.stack([heads[0](z).sum(), sign * heads[0](z).sum() + 0.1 * heads[1](z).sum()])


@pytest.mark.parametrize("sign", [1.0, -1.0], ids=["agreeing", "conflicting"])
def test_pcgrad_backward_sets_the_projected_sum_on_shared_parameters(sign):
    emb, shared, heads = _two_task_model()
    shared_params = [emb, *shared.parameters()]
    per_task = [torch.autograd.grad(t, shared_params, retain_graph=True) for t in _terms(emb, shared, heads, sign)]

    def flat(grads):
        return torch.cat([(g.coalesce().values() if g.is_sparse else g).reshape(-1) for g in grads])

    stacked = torch.stack([flat(g) for g in per_task])
    expected = project_conflicting(stacked).sum(0)

    total = pcgrad_backward(_terms(emb, shared, heads, sign), shared_params, list(heads.parameters()))
    assert emb.grad.is_sparse and emb.grad.is_coalesced()
    torch.testing.assert_close(flat([p.grad for p in shared_params]), expected)
    if sign > 0:  # no conflict: exactly the plain gradient of the sum
        torch.testing.assert_close(expected, stacked.sum(0))
    else:
        assert float(stacked[0] @ stacked[1]) < 0 and not torch.allclose(expected, stacked.sum(0))
    # The heads get the plain gradient of the sum, untouched by the projection.
    plain = torch.autograd.grad(_terms(emb, shared, heads, sign).sum(), list(heads.parameters()))
    for p, g in zip(heads.parameters(), plain, strict=True):
        torch.testing.assert_close(p.grad, g)
    assert torch.isfinite(total)
