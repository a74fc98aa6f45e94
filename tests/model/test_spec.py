"""Spec parsing, validation against a table's schema, the directional mask, and ablation variants."""

import json
import subprocess
import sys

import pyarrow as pa
import pytest

from podtarget.model.spec import Spec, load_spec
from podtarget.model.spec_types import DEFAULT_SPEC, SpecError
from podtarget.schemas.derived import EXAMPLES


def spec_dict(**changes) -> dict:
    raw = load_spec().to_dict()
    raw.update(changes)
    return raw


def test_default_spec_fits_the_examples_contract():
    spec = load_spec(DEFAULT_SPEC)
    spec.validate(EXAMPLES)
    assert spec.task_names == ("PromotionStream", "AdStream", "Click", "Like", "Follow")
    assert {t.name: (t.label, t.source) for t in spec.tasks}["Click"] == ("label_click", "ad")
    assert set(spec.groups) >= {"user", "content", "context", "promotion", "ad"}
    # Every example column is a feature except the row's own id and time, and those the spec's comments say it
    # leaves out on purpose (a user's own id, and their conversion counts).
    unused = set(EXAMPLES.names) - set(spec.columns)
    assert unused == {"impression_id", "event_ts", "user_id", "user_ad_conversions_28d", "user_promo_conversions_28d"}
    comments = DEFAULT_SPEC.read_text()
    assert all(name in comments for name in unused - {"impression_id", "event_ts"})


def test_default_directional_mask_is_the_papers():
    spec = load_spec()
    assert spec.trains["ad"] == ("AdStream", "Click")
    assert spec.trains["promo"] == spec.task_names
    assert not spec.trains_row("ad", "PromotionStream") and spec.trains_row("promo", "AdStream")


def test_explicit_mask_matrix_and_mask_off():
    raw = spec_dict()
    raw["mask"] = {"trains": {"ad": ["AdStream"], "promo": ["PromotionStream", "Click"]}}
    spec = Spec.from_dict(raw)
    assert spec.trains == {"ad": ("AdStream",), "promo": ("PromotionStream", "Click")}
    off = load_spec().with_changes(directional_mask=False)
    assert all(off.trains[s] == off.task_names for s in off.sources)
    assert Spec.from_dict(off.to_dict()) == off  # round trip


def test_ablation_variants():
    spec = load_spec()
    two = spec.with_changes(tasks=["PromotionStream", "AdStream"], disabled_groups=["ad"], architecture="mmoe")
    assert two.task_names == ("PromotionStream", "AdStream")
    assert not any(f.group == "ad" for f in two.active_features)
    assert "creative_id" not in two.columns and two.model.architecture == "mmoe"
    promo_only = spec.with_changes(sources=["promo"])
    assert promo_only.training_sources == ("promo",) and promo_only.sources == ("ad", "promo")
    assert Spec.from_dict(promo_only.to_dict()) == promo_only
    with pytest.raises(SpecError, match=r"--tasks: unknown task\(s\) \['Stream'\]"):
        spec.with_changes(tasks=["Stream"])
    with pytest.raises(SpecError, match=r"--disable_groups: unknown group\(s\) \['users'\]"):
        spec.with_changes(disabled_groups=["users"])


def test_missing_column_names_the_feature_and_suggests():
    schema = pa.schema([f for f in EXAMPLES if f.name != "user_country"] + [pa.field("user_countri", pa.string())])
    with pytest.raises(SpecError) as err:
        load_spec().validate(schema)
    assert "feature 'user_country' in group 'user': column not in the table; did you mean 'user_countri'" in str(
        err.value
    )


def test_wrong_types_say_what_was_expected():
    fields = {f.name: f for f in EXAMPLES}
    fields["surface"] = pa.field("surface", pa.float64())
    fields["podcast_genres"] = pa.field("podcast_genres", pa.string())
    fields["label_click"] = pa.field("label_click", pa.float32())
    with pytest.raises(SpecError) as err:
        load_spec().validate(pa.schema(list(fields.values())))
    text = str(err.value)
    assert "feature 'surface' in group 'context': expected a string, integer, boolean or dictionary column, " in text
    assert "found double" in text
    assert "feature 'podcast_genres' in group 'content': expected a list of strings or integers column" in text
    assert "task 'Click' label 'label_click': expected an integer or boolean column, found float" in text


def test_dictionary_encoded_strings_are_accepted():
    fields = [
        pa.field(f.name, pa.dictionary(pa.int32(), pa.string())) if f.type == pa.string() else f for f in EXAMPLES
    ]
    load_spec().validate(pa.schema(fields))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"model": {"embeding_dim": 8}}, "[model]: unknown key 'embeding_dim' (did you mean 'embedding_dim'?)"),
        (
            {"model": {"architecture": "x"}},
            "The 'architecture' parameter of [model] must be a str among ['shared_bottom', 'mmoe', 'ple']. "
            "Got 'x' instead.",
        ),
        (
            {"model": {"task_experts": 0}},
            "The 'task_experts' parameter of [model] must be an int in the range [1, inf)",
        ),
        ({"model": {"bottom": [128, -1]}}, "The 'bottom' parameter of [model] must be a list of positive ints"),
        ({"model": {"dropout": 1}}, "The 'dropout' parameter of [model] must be a float in the range [0, 1). Got 1 "),
        (
            {"tasks": [{"name": "X", "label": "label_click", "source": "web"}]},
            "The 'source' parameter of task 'X' must be a str among ['ad', 'promo']. Got 'web' instead.",
        ),
        ({"tasks": [{"name": "X", "label": "label_click"}]}, "task #1: missing required key 'source'"),
        (
            {"labels": {"max_unobserved_share": 2}},
            "The 'max_unobserved_share' parameter of [labels] must be a float in the range (0, 1]. Got 2 instead.",
        ),
        (
            {"mask": {"trains": {"ad": ["AdStrem"]}}},
            "The 'ad' parameter of [mask.trains] must be a list of task names among ['PromotionStream', 'AdStream',",
        ),
        ({"mask": {"trains": {"ad": ["AdStrem"]}}}, "Got ['AdStrem'] instead."),
    ],
)
def test_parse_errors(change, message):
    with pytest.raises(SpecError) as err:
        Spec.from_dict(spec_dict(**change))
    assert message in str(err.value)


def test_feature_errors():
    raw = spec_dict()
    raw["groups"]["context"]["categorical"]["user_country"] = 16
    with pytest.raises(SpecError, match="feature 'user_country' is listed twice: in group 'user' and 'context'"):
        Spec.from_dict(raw)
    raw = spec_dict()
    raw["groups"]["context"]["categorical"]["hour"] = {"buckets": 1}
    expected = r"The 'buckets' parameter of feature 'hour' in group 'context' must be an int in the range \[2, inf\)"
    with pytest.raises(SpecError, match=expected):
        Spec.from_dict(raw)
    raw = spec_dict()
    raw["groups"]["context"]["numeric"] = {"label_click": {}}
    with pytest.raises(SpecError, match="label or the source column cannot also be a feature"):
        Spec.from_dict(raw)


def test_unreadable_spec_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[source\ncolumn = 1")
    with pytest.raises(SpecError, match="is not valid TOML"):
        load_spec(bad)
    with pytest.raises(SpecError, match="cannot read spec file"):
        load_spec(tmp_path / "absent.toml")


def test_json_spec_round_trip(tmp_path):
    spec = load_spec()
    spec.save(tmp_path / "spec.json")
    again = load_spec(tmp_path / "spec.json")
    assert again == spec and again.fingerprint() == spec.fingerprint()


def test_model_package_knows_nothing_of_beam_or_the_pipelines():
    # The model may use podtarget.common and podtarget.schemas (the layout's marker names), nothing above them.
    code = (
        "import sys, podtarget.model.train, podtarget.model.artifacts, podtarget.model.metrics; "
        "forbidden = ('apache_beam', 'podtarget.transforms', 'podtarget.pipelines', 'podtarget.simulator', "
        "'podtarget.evaluation'); "
        "print(sorted({m.split('.')[0] if m.startswith('apache_beam') else '.'.join(m.split('.')[:2]) "
        "for m in sys.modules if m.startswith(forbidden)}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_ple_settings_round_trip_and_earlier_fingerprints_stay():
    spec = load_spec()
    # Specs saved before PLE existed have no task_experts: their canonical form (and fingerprint) is unchanged.
    assert "task_experts" not in spec.to_dict()["model"]
    raw = spec.to_dict()
    raw["model"].update(architecture="ple", task_experts=2)
    ple = type(spec).from_dict(raw)
    assert ple.model.architecture == "ple" and ple.model.task_experts == 2
    assert type(spec).from_dict(ple.to_dict()) == ple and ple.fingerprint() != spec.fingerprint()


def _with_features(**options) -> dict:
    """The default spec's dict with some user features' options replaced."""
    raw = spec_dict()
    raw["groups"]["user"]["multi_categorical"].update(options)
    return raw


def test_a_feature_shares_another_features_rows():
    raw = _with_features(
        user_recent_podcasts_28d={"share": "podcast_id"}, user_top_genres_28d={"share": "podcast_genres"}
    )
    spec = Spec.from_dict(raw)
    spec.validate(EXAMPLES)
    recent = {f.name: f for f in spec.features}["user_recent_podcasts_28d"]
    owner = {f.name: f for f in spec.features}["podcast_id"]
    assert (recent.table, recent.buckets, recent.min_count) == ("podcast_id", owner.buckets, owner.min_count)
    assert Spec.from_dict(spec.to_dict()) == spec  # round trip keeps the share, not the copied buckets
    assert spec.to_dict()["groups"]["user"]["multi_categorical"]["user_recent_podcasts_28d"] == {"share": "podcast_id"}
    # Options left at their defaults stay out of the dict, so specs written before they existed keep their
    # fingerprints (and the runs trained on them still load).
    plain = spec_dict()
    for name, options in plain["groups"]["user"]["multi_categorical"].items():
        if "share" in options:
            plain["groups"]["user"]["multi_categorical"][name] = 1024
    plain["model"] = {k: v for k, v in plain["model"].items() if k not in ("interaction", "cross_layers", "cross_rank")}
    assert '"share"' not in json.dumps(Spec.from_dict(plain).to_dict())


@pytest.mark.parametrize(
    "share, message",
    [
        ("podcast_idd", r"'share' parameter of feature 'user_recent_podcasts_28d'.*\(did you mean 'podcast_id'\?\)"),
        ("user_streams_28d", "another categorical feature with rows of its own"),
        ("user_recent_podcasts_28d", "another categorical feature with rows of its own"),
    ],
)
def test_a_share_must_name_a_categorical_owner(share, message):
    with pytest.raises(SpecError, match=message):
        Spec.from_dict(_with_features(user_recent_podcasts_28d={"share": share}))


def test_shared_rows_need_values_that_hash_alike():
    raw = _with_features(user_recent_podcasts_28d={"share": "podcast_language"})
    expected = "shares the rows of 'podcast_language': expected string values like it, found integer"
    with pytest.raises(SpecError, match=expected):
        Spec.from_dict(raw).validate(EXAMPLES)
    with pytest.raises(SpecError, match="unknown key 'buckets'"):
        Spec.from_dict(_with_features(user_recent_podcasts_28d={"share": "podcast_id", "buckets": 8}))


def test_interaction_settings():
    raw = spec_dict()
    raw["model"] = {**raw["model"], "interaction": "dot", "cross_layers": 2, "cross_rank": 16}
    spec = Spec.from_dict(raw)
    assert (spec.model.interaction, spec.model.cross_layers, spec.model.cross_rank) == ("dot", 2, 16)
    assert Spec.from_dict(spec.to_dict()) == spec
    raw["model"]["interaction"] = "attention"
    with pytest.raises(SpecError, match=r"The 'interaction' parameter of \[model\] must be a str among"):
        Spec.from_dict(raw)
    raw["model"] = {k: v for k, v in raw["model"].items() if k not in ("interaction", "cross_layers", "cross_rank")}
    assert not {"interaction", "cross_layers", "cross_rank"} & set(Spec.from_dict(raw).to_dict()["model"])


# A table without channels (no source column), two tasks: the shape of public tabular benchmarks.
ONE_SOURCE = {
    "groups": {"row": {"categorical": {"device": 8}, "numeric": {"age": {}}}},
    "tasks": [{"name": "Click", "label": "click"}, {"name": "Purchase", "label": "purchase"}],
}
ONE_SOURCE_SCHEMA = pa.schema(
    [("device", pa.string()), ("age", pa.int16()), ("click", pa.int8()), ("purchase", pa.int8())]
)


def test_a_spec_without_source_has_one_implicit_source_that_trains_and_evaluates_every_task():
    spec = Spec.from_dict(ONE_SOURCE)
    assert spec.source_column is None and spec.sources == ("all",)
    assert [t.source for t in spec.tasks] == ["all", "all"] and spec.trains == {"all": ("Click", "Purchase")}
    assert all(t.eval_sources == ("all",) for t in spec.tasks)
    assert spec.columns == ("device", "age", "click", "purchase")
    spec.validate(ONE_SOURCE_SCHEMA)  # no source column needed
    assert "source" not in spec.to_dict() and Spec.from_dict(spec.to_dict()) == spec
    assert spec.with_changes(sources=["all"], tasks=["Purchase"]).task_names == ("Purchase",)
    with pytest.raises(SpecError, match="--sources: expected some of all"):
        spec.with_changes(sources=["ad"])


def test_tasks_need_a_source_only_where_there_are_several():
    # Tasks that name sources without a [source] table mean the podcast channels, as before the source was optional.
    old = Spec.from_dict({**ONE_SOURCE, "tasks": [{"name": "Click", "label": "click", "source": "ad"}]})
    assert (old.source_column, old.sources) == ("source", ("ad", "promo"))
    one = Spec.from_dict({**ONE_SOURCE, "source": {"column": "site", "values": ["web"]}})
    assert one.task("Purchase").source == "web" and one.columns[0] == "site"
    two = {**ONE_SOURCE, "source": {"column": "site", "values": ["web", "app"]}}
    with pytest.raises(SpecError, match="task #1: missing required key 'source'"):
        Spec.from_dict(two)


def test_the_selection_metric_and_tasks():
    spec = Spec.from_dict({**ONE_SOURCE, "evaluation": {"selection_metric": "auc"}})
    assert (spec.selection_metric, spec.selection_tasks) == ("auc", ("Click", "Purchase"))  # no tasks named: all
    assert Spec.from_dict(spec.to_dict()) == spec
    named = Spec.from_dict({**ONE_SOURCE, "evaluation": {"early_stopping_tasks": ["Purchase"]}})
    assert (named.selection_metric, named.selection_tasks) == ("ap", ("Purchase",))
    # At its default the key stays out of the spec's dict: the podcast spec's fingerprint is unchanged.
    assert "selection_metric" not in load_spec().to_dict()["evaluation"]
    with pytest.raises(SpecError) as err:
        Spec.from_dict({**ONE_SOURCE, "evaluation": {"selection_metric": "roc"}})
    assert str(err.value) == (
        "The 'selection_metric' parameter of [evaluation] must be a str among ['ap', 'auc', 'log_loss']. "
        "Got 'roc' instead."
    )
    with pytest.raises(SpecError, match=r"\[evaluation\]: unknown key 'selection_metrics' \(did you mean"):
        Spec.from_dict({**ONE_SOURCE, "evaluation": {"selection_metrics": "ap"}})


def _one_source(**row) -> dict:
    """ONE_SOURCE with the 'row' group's tables replaced."""
    return {**ONE_SOURCE, "groups": {"row": row}}


def test_numeric_buckets_clipping_and_float_codes():
    raw = _one_source(
        numeric={"age": {"buckets": 20, "clip": [0, 100]}, "income": {"log1p": True}},
        categorical={"device": 8, "region": {"buckets": 64, "floats": True}},
    )
    spec = Spec.from_dict(raw)
    f = {x.name: x for x in spec.features}
    assert (f["age"].buckets, f["age"].clip, f["age"].embedded, f["age"].rows) == (20, (0.0, 100.0), True, 21)
    assert (f["income"].buckets, f["income"].clip, f["income"].embedded) == (0, None, False)
    assert f["region"].floats and f["region"].rows == 64
    assert Spec.from_dict(spec.to_dict()) == spec
    options = spec.to_dict()["groups"]["row"]
    assert options["numeric"]["income"] == {"log1p": True, "missing": False}  # new keys only when set
    assert options["categorical"]["device"] == {"buckets": 8, "min_count": 1}
    schema = pa.schema(
        [
            ("age", pa.float64()),
            ("income", pa.int64()),
            ("device", pa.string()),
            ("region", pa.float64()),
            ("click", pa.int8()),
            ("purchase", pa.int8()),
        ]
    )
    spec.validate(schema)
    raw["groups"]["row"]["categorical"]["region"] = 64
    with pytest.raises(SpecError) as err:
        Spec.from_dict(raw).validate(schema)
    assert (
        "feature 'region' in group 'row': expected a string, integer, boolean or dictionary column, found double; "
        "a float column of codes or ids is taken with {floats = true}"
    ) in str(err.value)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"buckets": 1}, "The 'buckets' parameter of feature 'age' in group 'row' must be an int in the range [2, "),
        ({"buckets": 8.0}, "The 'buckets' parameter of feature 'age' in group 'row' must be an int"),
        ({"clip": [5, 1]}, "The 'clip' parameter of feature 'age' in group 'row' must be a list [low, high] of two "),
        ({"clip": [0, "inf"]}, "two finite numbers, low < high. Got [0, 'inf'] instead."),
        ({"clips": [0, 1]}, "feature 'age' in group 'row': unknown key 'clips' (did you mean 'clip'?)"),
        ({"floats": True}, "feature 'age' in group 'row': unknown key 'floats'"),
    ],
)
def test_numeric_option_errors(options, message):
    with pytest.raises(SpecError) as err:
        Spec.from_dict(_one_source(numeric={"age": options}))
    assert message in str(err.value)


def test_floats_are_an_option_of_single_categoricals_only():
    with pytest.raises(SpecError, match="unknown key 'floats'"):
        Spec.from_dict(_one_source(multi_categorical={"tags": {"buckets": 8, "floats": True}}))
    with pytest.raises(SpecError, match="The 'floats' parameter of feature 'region' in group 'row' must be true or"):
        Spec.from_dict(_one_source(categorical={"region": {"buckets": 8, "floats": 1}}))


def test_the_training_table_carries_the_trainers_settings():
    training = {"epochs": 25, "batch_size": 512, "lr": 0.0003, "lr_schedule": "cosine", "patience": 3}
    spec = Spec.from_dict({**ONE_SOURCE, "training": {**training, "weight_decay": 1e-5}})
    assert spec.training == {**training, "weight_decay": 1e-5}
    assert Spec.from_dict(spec.to_dict()) == spec
    assert "training" not in load_spec().to_dict()  # absent when empty: the podcast fingerprint is unchanged


@pytest.mark.parametrize(
    "training, message",
    [
        ({"epoch": 3}, "[training]: unknown key 'epoch' (did you mean 'epochs'?)"),
        ({"batch_size": 0}, "The 'batch_size' parameter of [training] must be an int in the range [1, inf)"),
        ({"lr": 0}, "The 'lr' parameter of [training] must be a float in the range (0, inf)"),
        ({"lr_schedule": "step"}, "must be a str among ['constant', 'cosine', 'linear']. Got 'step' instead."),
        ({"weight_decay": -1}, "The 'weight_decay' parameter of [training] must be a float in the range [0, inf)"),
        ({"patience": 1.5}, "The 'patience' parameter of [training] must be an int in the range [0, inf)"),
    ],
)
def test_training_errors(training, message):
    with pytest.raises(SpecError) as err:
        Spec.from_dict({**ONE_SOURCE, "training": training})
    assert message in str(err.value)


def test_features_may_have_embeddings_of_their_own_widths():
    raw = _one_source(
        categorical={"device": {"buckets": 8, "embedding_dim": 2}, "brand": {"buckets": 64, "embedding_dim": 16}},
        multi_categorical={"recent_brands": {"share": "brand"}},
        numeric={"age": {"buckets": 10, "embedding_dim": 4}},
    )
    spec = Spec.from_dict(raw)
    dims = {f.name: f.embedding_dim for f in spec.features}
    assert dims == {"device": 2, "brand": 16, "recent_brands": 16, "age": 4}  # a sharer has its owner's width
    assert Spec.from_dict(spec.to_dict()) == spec
    assert spec.to_dict()["groups"]["row"]["multi_categorical"]["recent_brands"] == {"share": "brand"}
    with pytest.raises(SpecError, match="feature 'age' in group 'row': embedding_dim needs buckets"):
        Spec.from_dict(_one_source(numeric={"age": {"embedding_dim": 4}}))
    with pytest.raises(SpecError, match="The 'embedding_dim' parameter of feature 'device' in group 'row' must be"):
        Spec.from_dict(_one_source(categorical={"device": {"buckets": 8, "embedding_dim": 0}}))
