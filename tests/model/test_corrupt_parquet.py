"""A corrupt Parquet file names itself, its day and what to do: in training, and wherever the pipelines read
derived Parquet (features, examples)."""

import pathlib
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from podtarget.model.data import DataError, ExampleTable
from podtarget.transforms.runtime.storage import read_parquet_files


def _corrupt(path: pathlib.Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # a truncated copy: the footer and its magic bytes are gone


def test_training_names_the_corrupt_example_file_and_its_day(podcast_toy, tmp_path):
    examples, _ = podcast_toy
    table_root = tmp_path / "examples"
    shutil.copytree(examples, table_root)
    day_folder = sorted(table_root.glob("dt=*"))[2]
    part = sorted(day_folder.glob("*.parquet"))[0]
    _corrupt(part)
    table = ExampleTable.open(str(table_root))
    day = day_folder.name.removeprefix("dt=")
    with pytest.raises(DataError, match=rf"example file .*{part.name} \(day {day}\) is not readable Parquet") as error:
        table.units(table.days)
    assert f"make backfill START={day} END={day} FORCE=1" in str(error.value)


def test_pipelines_name_the_corrupt_partition_file_and_its_day(tmp_path):
    folder = tmp_path / "features" / "podcast" / "dt=2026-03-05"
    folder.mkdir(parents=True)
    good, bad = folder / "part-00000.parquet", folder / "part-00001.parquet"
    pq.write_table(pa.table({"podcast_id": [1, 2]}), good)
    pq.write_table(pa.table({"podcast_id": [3]}), bad)
    assert read_parquet_files([str(good), str(bad)]).num_rows == 3
    _corrupt(bad)
    with pytest.raises(ValueError) as error:
        read_parquet_files([str(good), str(bad)])
    assert str(error.value) == (
        f"{bad} (day 2026-03-05) is not readable Parquet (Parquet magic bytes not found in footer); rebuild that "
        "day: make features DATE=2026-03-05"
    )
