"""Encoders of the network: PLE's task-specific experts and copying a head with them."""

import math

import pytest
import torch

from model.data import Encoder, ExampleTable, fit_statistics
from model.network import PLE, InputLayout, MultiTaskNetwork
from model.spec import load_spec


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
