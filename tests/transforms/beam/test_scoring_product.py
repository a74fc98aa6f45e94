"""model/product.py: the model inputs of a product of sides are exactly those of the materialised pair rows, and
the factorised forward pass gives the network's own probabilities (shared bottom and MMoE), or refuses to; networks
with interactions or cross layers are scored by their own forward pass."""

import dataclasses

import numpy as np
import pyarrow as pa
import pytest
import torch

from podtarget.model.artifacts import TrainedModel
from podtarget.model.data import Encoder, FeatureStats
from podtarget.model.network import InputLayout, MultiTaskNetwork
from podtarget.model.product import ProductError, ProductScorer, encode_product
from podtarget.model.spec import Spec, load_spec
from podtarget.schemas.derived import EXAMPLES
from podtarget.transforms.arrow.candidates import CAMPAIGN_COLUMNS, PAIR_COLUMNS, USER_COLUMNS


def _values(field: pa.Field, n: int, rng: np.random.Generator) -> pa.Array:
    """Random values of an EXAMPLES column, about 10% null."""
    typ = field.type
    null = rng.random(n) < 0.1
    if pa.types.is_list(typ):
        pool = ["a", "b", "c", "d", "e"] if pa.types.is_string(typ.value_type) else list(range(50))
        lists = [list(rng.choice(pool, rng.integers(0, 6))) for _ in range(n)]
        return pa.array(
            [
                None if z else [v.item() if hasattr(v, "item") else v for v in x]
                for x, z in zip(lists, null, strict=True)
            ],
            typ,
        )
    if field.name == "source":
        return pa.array(rng.choice(["ad", "promo"], n).tolist(), typ)
    if pa.types.is_string(typ):
        return pa.array([None if z else v for v, z in zip(rng.choice(["a", "b", "c", "d"], n), null, strict=True)], typ)
    if pa.types.is_boolean(typ):
        return pa.array(rng.random(n) < 0.5, mask=null)
    if pa.types.is_floating(typ):
        return pa.array(rng.gamma(2.0, 3.0, n).astype(np.float32), mask=null)
    if pa.types.is_integer(typ):
        return pa.array(rng.integers(0, 100, n), mask=null).cast(typ)
    return pa.array(np.zeros(n, np.int64)).cast(typ)


def _side(columns, n, rng) -> pa.Table:
    return pa.table({c: _values(EXAMPLES.field(c), n, rng) for c in columns})


def _bucketed_spec(architecture: str) -> Spec:
    """The default spec with every numeric feature also bucketed (8 quantile buckets), half of them clipped, and
    embeddings of their own widths: wider than the model's for the show (so the table is wider) and narrower for
    the hour and some buckets."""
    raw = load_spec().with_changes(architecture=architecture).to_dict()
    for group in raw["groups"].values():
        for i, options in enumerate(group.get("numeric", {}).values()):
            options["buckets"] = 8
            if i % 2:
                options["clip"] = [0, 40]
                options["embedding_dim"] = 3
    raw["groups"]["content"]["categorical"]["podcast_id"]["embedding_dim"] = 12
    raw["groups"]["context"]["categorical"]["hour"]["embedding_dim"] = 2
    return Spec.from_dict(raw)


def _model(architecture: str, seed: int = 0, bucketed: bool = False, **model_options) -> TrainedModel:
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    spec = _bucketed_spec(architecture) if bucketed else load_spec().with_changes(architecture=architecture)
    spec = dataclasses.replace(spec, model=dataclasses.replace(spec.model, **model_options))
    stats = FeatureStats(
        numeric={
            f.name: {
                "mean": float(rng.normal()),
                "std": float(rng.uniform(0.5, 3)),
                "count": 1,
                **({"edges": np.unique(rng.gamma(1.0, 2.0, 7)).tolist()} if f.buckets else {}),
            }
            for f in spec.features_of("numeric")
        },
        known={f.name: rng.random(f.buckets) < 0.8 for f in spec.active_features if f.kind != "numeric"},
        rows=1,
    )
    encoder = Encoder(spec, stats)
    layout = InputLayout(
        encoder.table_rows, len(encoder.single), len(encoder.bags), encoder.num_width, encoder.field_dims()
    )
    network = MultiTaskNetwork(spec.model, layout, spec.task_names)
    with torch.no_grad():
        network.embedding.weight.normal_(0, 0.5)
        for module in network.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.normal_(0, 0.2)
                module.running_var.uniform_(0.5, 2)
    return TrainedModel("memory", {}, spec, encoder, network)


@pytest.fixture(scope="module")
def product():
    rng = np.random.default_rng(1)
    sides = {
        "user": _side(USER_COLUMNS, 30, rng),
        "campaign": _side(CAMPAIGN_COLUMNS, 9, rng),
        "pair": _side(PAIR_COLUMNS, 12, rng),
    }
    n = 500
    index = {s: rng.integers(0, t.num_rows, n) for s, t in sides.items()}
    materialised = pa.table({c: t.column(c).take(index[s]) for s, t in sides.items() for c in t.column_names}).select(
        [c for c in EXAMPLES.names if c in {*USER_COLUMNS, *CAMPAIGN_COLUMNS, *PAIR_COLUMNS}]
    )
    return sides, index, materialised


@pytest.mark.parametrize("bucketed", [False, True], ids=["plain", "bucketed_numerics"])
def test_encode_product_equals_encoding_the_materialised_rows(product, bucketed):
    sides, index, materialised = product
    encoder = _model("shared_bottom", bucketed=bucketed).encoder
    got, want = encode_product(encoder, sides, index), encoder.encode(materialised)
    assert got.differences(want) == []
    if bucketed:  # the numerics' bucket rows are among the looked-up rows, null or not
        assert len(encoder.single) == len(load_spec().features_of("categorical")) + len(encoder.numeric)
        assert max(encoder.field_dims()) == 12 and min(encoder.field_dims()) == 2


def test_every_column_must_come_from_exactly_one_side(product):
    sides, index, _ = product
    encoder = _model("shared_bottom").encoder
    both = {**sides, "pair": sides["pair"].append_column("device", sides["pair"].column("language_match"))}
    with pytest.raises(ProductError, match=r"column 'device' is in several sides \(user, pair\)"):
        encode_product(encoder, both, index)
    with pytest.raises(ProductError, match="column 'language_match' is in no side"):
        encode_product(encoder, {s: t for s, t in sides.items() if s != "pair"}, index)
    with pytest.raises(ProductError, match="points outside"):
        encode_product(encoder, sides, {**index, "pair": index["pair"] + 12})
    with pytest.raises(ProductError, match="differ in length"):
        encode_product(encoder, sides, {**index, "user": index["user"][:10]})


@pytest.mark.parametrize("bucketed", [False, True], ids=["plain", "bucketed_numerics"])
@pytest.mark.parametrize("architecture", ["shared_bottom", "mmoe"])
def test_factorised_scores_are_the_networks_own(product, architecture, bucketed):
    sides, index, materialised = product
    model = _model(architecture, seed=3, bucketed=bucketed)
    heads = ["Click", "PromotionStream", "Follow"]
    head_of_pair = np.random.default_rng(4).integers(0, 3, len(index["user"]))
    want = model.predict(model.encode(materialised))
    want = np.stack([want[h].numpy() for h in heads], axis=1)[np.arange(len(head_of_pair)), head_of_pair]
    for factorised in (True, False):
        scorer = ProductScorer(model, chunk_rows=64, factorised=factorised)
        assert scorer.factorised is factorised
        product_layout = scorer.layout({s: t.schema for s, t in sides.items()})
        prepared = {s: scorer.prepare(product_layout, s, t) for s, t in sides.items()}
        got = scorer.score(product_layout, prepared, index, head_of_pair, heads)
        np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)


@pytest.mark.parametrize("architecture", ["shared_bottom", "mmoe", "ple"])
def test_interactions_and_cross_layers_are_scored_exactly_by_the_plain_forward_pass(product, architecture):
    sides, index, materialised = product
    model = _model(architecture, seed=6, interaction="dot", cross_layers=1, cross_rank=4)
    head_of_pair = np.zeros(len(index["user"]), np.int64)
    want = model.predict(model.encode(materialised))["AdStream"].numpy()
    scorer = ProductScorer(model, chunk_rows=64)
    assert scorer.factorised is False  # their inputs mix the sides' columns: nothing to factorise
    product_layout = scorer.layout({s: t.schema for s, t in sides.items()})
    prepared = {s: scorer.prepare(product_layout, s, t) for s, t in sides.items()}
    got = scorer.score(product_layout, prepared, index, head_of_pair, ["AdStream"])
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)


def test_a_stale_factorisation_is_refused(product):
    sides, index, _ = product
    model = _model("shared_bottom", seed=5)
    scorer = ProductScorer(model)
    product_layout = scorer.layout({s: t.schema for s, t in sides.items()})
    prepared = {s: scorer.prepare(product_layout, s, t) for s, t in sides.items()}
    with torch.no_grad():
        model.network.encoder.body[0].weight.mul_(1.5)  # the network changed after the sides were prepared
    with pytest.raises(ProductError, match="differs from the network's own"):
        scorer.score(product_layout, prepared, index, np.zeros(len(index["user"]), np.int64), ["AdStream"])
    with pytest.raises(ProductError, match=r"unknown head\(s\) \['Listen'\]"):
        scorer.score(product_layout, prepared, index, np.zeros(len(index["user"]), np.int64), ["Listen"])
