"""Encoders of the network: PLE's task-specific experts and copying a head with them."""

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
