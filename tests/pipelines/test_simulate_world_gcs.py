"""The simulator writes to gs:// through Beam's GCS filesystem, against a local emulator on 127.0.0.1."""

import pytest
from apache_beam.io.filesystems import FileSystems

from podtarget.schemas import layout, load_schema
from podtarget.simulator import World
from tests.conftest import simulate


@pytest.mark.slow
def test_simulate_to_gcs(gcs_emulator):
    root = f"{gcs_emulator}/worlds/tiny"
    summary = simulate(root, "--n_days=2", "--n_users=600", "--dirty_rate=0.01")
    day = summary["rows"]["stream"]
    assert len(day) == 2
    matches = FileSystems.match([f"{root}/raw/stream/dt=*/part-*.avro"])[0].metadata_list
    assert len(matches) == 2 * 2  # 2 days x 2 shards of 500 users
    first_day = sorted(day)[0]
    import datetime

    paths = FileSystems.match([layout.raw_glob(root, "click", datetime.date.fromisoformat(first_day))])[0]
    rows = 0
    for meta in paths.metadata_list:
        with FileSystems.open(meta.path) as handle:
            rows += sum(1 for _ in load_schema("click").read(handle))
    assert rows == summary["rows"]["click"][first_day]
    world = World.load(layout.world_dir(root))
    assert world.config.n_users == 600
    assert FileSystems.exists(layout.join(root, "world", "summary.json"))
