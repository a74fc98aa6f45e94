import datetime

import pytest

from podtarget.schemas import layout

DAY = datetime.date(2026, 3, 2)


@pytest.mark.parametrize("root", ["./data", "/tmp/x/", "gs://bucket/prefix"])
def test_partition_paths(root):
    base = root.rstrip("/")
    assert layout.raw_partition(root, "stream", DAY) == f"{base}/raw/stream/dt=2026-03-02"
    assert layout.part_file(layout.raw_partition(root, "stream", DAY), 3).endswith("dt=2026-03-02/part-00003.avro")
    assert layout.raw_glob(root, "click", DAY) == f"{base}/raw/click/dt=2026-03-02/part-*.avro"
    assert layout.world_dir(root) == f"{base}/world"


def test_parse_dt():
    assert layout.parse_dt("gs://b/raw/click/dt=2026-03-02/part-00000.avro") == DAY
    with pytest.raises(ValueError, match="has no dt=YYYY-MM-DD"):
        layout.parse_dt("/tmp/raw/click/part-0.avro")
