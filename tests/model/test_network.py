"""Encoders of the network: PLE's task-specific experts and copying a head with them; the fast paths of a training
step (the embedding gather's backward, the row-sparse Adam) give bitwise what the plain torch operations give."""

import copy
import dataclasses
import math

import pytest
import torch

from podtarget.model.data import BatchStream, Encoder, ExampleTable, fit_statistics, plan_sampling
from podtarget.model.data.encoding import Batch
from podtarget.model.losses import masked_bce, row_mask
from podtarget.model.network import (
    PLE,
    CrossNetwork,
    DotInteraction,
    FusedEmbedding,
    InputLayout,
    MultiTaskNetwork,
    RowSparseAdam,
)
from podtarget.model.spec import load_spec


@pytest.mark.parametrize("architecture", ["mmoe", "ple"])
def test_a_copied_head_predicts_like_its_source(podcast_toy, architecture):
    examples, spec_path = podcast_toy
    spec = load_spec(spec_path).with_changes(architecture=architecture)
    table = ExampleTable.open(examples)
    encoder = Encoder(spec, fit_statistics(spec, table, table.days[:1]))
    batch = encoder.encode(table.read(table.units(table.days[:1])[0], encoder.columns))
    layout = InputLayout(encoder.table_rows, len(encoder.single), len(encoder.bags), encoder.num_width)
    torch.manual_seed(0)
    network = MultiTaskNetwork(spec.model, layout, spec.task_names)
    network.add_task("AdStreamCopy", copy_from="AdStream")
    probs = network.predict(batch)
    torch.testing.assert_close(probs["AdStreamCopy"], probs["AdStream"])
    assert not torch.allclose(probs["AdStream"], probs["PromotionStream"])
    if architecture == "ple":
        ple = network.encoder
        assert isinstance(ple, PLE) and len(ple.own) == len(ple.gates) == len(network.tasks)
        # Each task mixes its own experts and the shared ones.
        assert ple.gates[0].out_features == spec.model.experts + spec.model.task_experts


def test_priors_start_a_head_at_its_base_rate(podcast_toy):
    examples, spec_path = podcast_toy
    spec = load_spec(spec_path)
    table = ExampleTable.open(examples)
    encoder = Encoder(spec, fit_statistics(spec, table, table.days[:1]))
    layout = InputLayout(encoder.table_rows, len(encoder.single), len(encoder.bags), encoder.num_width)
    network = MultiTaskNetwork(spec.model, layout, spec.task_names)
    before = network.towers["AdStream"][-1].bias.clone()
    network.set_priors({"Click": 0.014, "Like": None})
    assert network.towers["Click"][-1].bias.item() == pytest.approx(math.log(0.014 / 0.986))
    assert torch.equal(network.towers["AdStream"][-1].bias, before)  # not named: unchanged
    network.set_priors({"Follow": 0.0})  # clipped, not -inf
    assert math.isfinite(network.towers["Follow"][-1].bias.item())
    with pytest.raises(ValueError, match=r"unknown task\(s\) \['Nope'\]"):
        network.set_priors({"Nope": 0.1})
    with pytest.raises(ValueError, match="prior of task 'Click': expected a rate in \\[0, 1\\], found 1.5"):
        network.set_priors({"Click": 1.5})


def _toy_training_batches(podcast_toy, count: int):
    examples, spec_path = podcast_toy
    spec = load_spec(spec_path)
    table = ExampleTable.open(examples)
    days = table.days[:3]
    encoder = Encoder(spec, fit_statistics(spec, table, days))
    rows = {s: 2000 for s in spec.sources}
    plan = plan_sampling(spec, rows, 256, 0.5)
    batches = []
    for batch in BatchStream(table, table.units(days), encoder, plan, {}, seed=1, epoch=0):
        batches.append(batch)
        if len(batches) == count:
            break
    return spec, encoder, batches


def _network(spec, encoder) -> MultiTaskNetwork:
    layout = InputLayout(encoder.table_rows, len(encoder.single), len(encoder.bags), encoder.num_width)
    torch.manual_seed(3)
    return MultiTaskNetwork(spec.model, layout, spec.task_names)


def test_the_gather_matrix_gives_the_gradients_of_index_add(podcast_toy):
    spec, encoder, batches = _toy_training_batches(podcast_toy, 2)
    network = _network(spec, encoder)
    matrix = encoder.train_mask_matrix()

    def gradients(batch):
        network.zero_grad(set_to_none=True)
        losses, _ = masked_bce(network(batch), batch.y, row_mask(batch.obs, batch.source, matrix))
        losses.sum().backward()
        return {n: p.grad.to_dense() if p.grad.is_sparse else p.grad.clone() for n, p in network.named_parameters()}

    for batch in batches:
        assert batch.gather is not None and batch.gather.shape == (batch.rows.numel(), batch.positions.numel())
        fast, plain = gradients(batch), gradients(dataclasses.replace(batch, gather=None))
        assert fast.keys() == plain.keys()
        for name in plain:
            assert torch.equal(fast[name], plain[name]), name
    # Evaluation and scoring batches carry no gather matrix.
    table = ExampleTable.open(podcast_toy[0])
    assert encoder.encode(table.read(table.units(table.days[:1])[0], encoder.columns)).gather is None


def test_row_sparse_adam_equals_sparse_adam_bitwise(podcast_toy):
    spec, encoder, batches = _toy_training_batches(podcast_toy, 4)
    nets = [_network(spec, encoder), _network(spec, encoder)]
    opts = [
        torch.optim.SparseAdam([nets[0].embedding.weight], lr=0.01),
        RowSparseAdam([nets[1].embedding.weight], lr=0.01),
    ]
    matrix = encoder.train_mask_matrix()
    for batch in batches:
        for net, opt in zip(nets, opts, strict=True):
            opt.zero_grad(set_to_none=True)
            losses, _ = masked_bce(net(batch), batch.y, row_mask(batch.obs, batch.source, matrix))
            losses.sum().backward()
            assert net.embedding.coalesced_grad() is not None
            opt.step()
    assert torch.equal(nets[0].embedding.weight, nets[1].embedding.weight)
    assert not torch.equal(nets[0].embedding.weight, _network(spec, encoder).embedding.weight)  # it did train
    plain, fast = (o.state_dict() for o in opts)
    assert plain["state"][0]["step"] == fast["state"][0]["step"] == len(batches)
    for key in ("exp_avg", "exp_avg_sq"):
        assert torch.equal(plain["state"][0][key], fast["state"][0][key])
    # Checkpoints are interchangeable.
    opts[1].load_state_dict(plain)
    with pytest.raises(RuntimeError, match="dense gradients"):
        nets[1].embedding.weight.grad = torch.zeros_like(nets[1].embedding.weight)
        opts[1].step()


def test_dot_interaction_is_every_pair_of_field_embeddings():
    torch.manual_seed(0)
    single, bags = torch.randn(5, 3 * 4), torch.randn(5, 2 * 4)
    dots = DotInteraction(fields=5, dim=4)([single, bags])
    fields = torch.cat([single, bags], dim=1).view(5, 5, 4)
    expected = torch.stack([(fields[:, i] * fields[:, j]).sum(1) for i in range(5) for j in range(i + 1, 5)], dim=1)
    torch.testing.assert_close(dots, expected)


def test_cross_layers_cross_the_input_with_itself():
    torch.manual_seed(0)
    for rank in (0, 3):
        cross = CrossNetwork(width=6, layers=2, rank=rank)
        x = torch.randn(4, 6)
        expected = x
        for layer in cross.layers:
            expected = x * layer(expected) + expected
        torch.testing.assert_close(cross(x), expected)
    zero = CrossNetwork(width=6, layers=1)
    torch.nn.init.zeros_(zero.layers[0].weight)
    torch.testing.assert_close(zero(x), x)  # no crossing learnt yet: the input itself


@pytest.mark.parametrize("architecture", ["shared_bottom", "mmoe", "ple"])
def test_interactions_train_with_every_architecture(podcast_toy, architecture):
    spec, encoder, batches = _toy_training_batches(podcast_toy, 3)
    model = dataclasses.replace(spec.model, architecture=architecture, interaction="dot", cross_layers=1, cross_rank=4)
    layout = InputLayout(encoder.table_rows, len(encoder.single), len(encoder.bags), encoder.num_width)
    torch.manual_seed(0)
    network = MultiTaskNetwork(model, layout, spec.task_names)
    fields = len(encoder.single) + len(encoder.bags)
    assert network.interaction is not None and network.interaction.width == fields * (fields - 1) // 2
    cross = network.cross
    pairs = fields * (fields - 1) // 2
    assert cross is not None and cross.width == fields * model.embedding_dim + encoder.num_width + pairs
    assert set(map(id, cross.parameters())) <= set(map(id, network.encoder_parameters()))
    opt = torch.optim.Adam([p for n, p in network.named_parameters() if n != "embedding.weight"], lr=0.01)
    before = copy.deepcopy(network.state_dict())
    for batch in batches:
        opt.zero_grad()
        losses, _ = masked_bce(network(batch), batch.y, row_mask(batch.obs, batch.source, encoder.train_mask_matrix()))
        losses.sum().backward()
        opt.step()
    assert not torch.equal(before["cross.layers.0.1.weight"], network.state_dict()["cross.layers.0.1.weight"])
    probs = network.predict(batches[0])
    assert set(probs) == set(spec.task_names) and all(torch.isfinite(p).all() for p in probs.values())


def test_row_sparse_adam_decays_only_the_rows_a_step_touches(podcast_toy):
    spec, encoder, batches = _toy_training_batches(podcast_toy, 1)
    nets = [_network(spec, encoder), _network(spec, encoder)]
    plain = RowSparseAdam([nets[0].embedding.weight], lr=0.01)
    decayed = RowSparseAdam([nets[1].embedding.weight], lr=0.01, weight_decay=5.0)
    start = nets[1].embedding.weight.detach().clone()
    for net, opt in zip(nets, (plain, decayed), strict=True):
        mask = row_mask(batches[0].obs, batches[0].source, encoder.train_mask_matrix())
        losses, _ = masked_bce(net(batches[0]), batches[0].y, mask)
        losses.sum().backward()
        net.embedding.coalesced_grad()
        opt.step()
    touched = batches[0].rows
    untouched = torch.ones(start.shape[0], dtype=torch.bool)
    untouched[touched] = False
    assert torch.equal(nets[1].embedding.weight[untouched], start[untouched])
    # AdamW's rule on the touched rows: the decayed row, then the same Adam update as without decay.
    update = nets[0].embedding.weight[touched] - start[touched]
    torch.testing.assert_close(nets[1].embedding.weight[touched], start[touched] * (1 - 0.01 * 5.0) + update)
    assert decayed.state_dict()["param_groups"][0]["weight_decay"] == 5.0


def test_a_narrower_field_reads_only_the_first_columns_of_its_rows():
    embedding = FusedEmbedding(rows=10, dim=4, field_dims=[4, 2, 1])  # two single fields, then one bag
    weight = embedding.weight
    batch = Batch(
        rows=torch.tensor([1, 2, 3, 5]),
        cat=torch.tensor([[0, 1], [2, 1]]),
        bag_pos=torch.tensor([3, 2]),
        positions=torch.tensor([0, 1, 2, 1, 3, 2]),
        bag_seg=torch.tensor([0, 1]),
        bag_scale=torch.tensor([[1.0], [1.0]]),
        num=torch.zeros(2, 0),
        y=torch.zeros(2, 1),
        obs=torch.zeros(2, 1),
        source=torch.zeros(2, dtype=torch.int64),
        slice=torch.zeros(2, dtype=torch.int64),
    )
    single, bags = embedding(batch)
    assert torch.equal(single[0, :4], weight[1]) and torch.equal(single[1, :4], weight[3])  # the full-width field
    assert torch.equal(single[0, 4:6], weight[2, :2]) and (single[:, 6:8] == 0).all()  # the 2-wide field
    assert torch.equal(bags[:, 0], weight[[5, 3], 0]) and (bags[:, 1:] == 0).all()  # the 1-wide bag
    (single.sum() + bags.sum()).backward()
    assert (weight.grad.to_dense()[2, 2:] == 0).all() and (weight.grad.to_dense()[2, :2] != 0).all()
    assert "mask" not in embedding.state_dict()  # derived from the spec, not saved with the weights
