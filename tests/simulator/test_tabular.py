"""The generated tabular table: its split, columns and labels, the same bytes for the same seed, and its command."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from podtarget.simulator.tabular import TabularConfig, main, write_tabular


def test_the_table_has_its_splits_columns_and_related_labels(tmp_path):
    config = TabularConfig(train_rows=3000, valid_rows=1000, test_rows=1000, train_days=2)
    split = write_tabular(config, tmp_path / "a")
    assert split == {"train": ["2026-01-01", "2026-01-02"], "valid": ["2026-01-03"], "test": ["2026-01-04"]}
    days = [d for part in split.values() for d in part]
    rows = {d: pq.read_metadata(tmp_path / "a" / f"dt={d}" / "part-00000.parquet").num_rows for d in days}
    assert list(rows.values()) == [1500, 1500, 1000, 1000]
    t = pq.read_table(tmp_path / "a" / "dt=2026-01-01")
    assert "source" not in t.column_names and {"click", "purchase", "region", "brand", "score"} <= set(t.column_names)
    assert t.schema.field("region").type == pa.float64() and t.column("income").null_count > 0
    click, purchase = t.column("click").to_numpy(), t.column("purchase").to_numpy()
    assert 0.1 < click.mean() < 0.5 and 0.01 < purchase.mean() < click.mean()
    assert purchase[click == 1].mean() > 2 * purchase[click == 0].mean()  # related tasks
    write_tabular(config, tmp_path / "b")
    for day in rows:
        part = f"dt={day}/part-00000.parquet"
        assert (tmp_path / "a" / part).read_bytes() == (tmp_path / "b" / part).read_bytes()


def test_config_errors_and_the_command(tmp_path, capsys):
    with pytest.raises(ValueError, match="The 'train_rows' parameter of TabularConfig must be an int in the range"):
        TabularConfig(train_rows=10)
    assert main([f"--out={tmp_path}", "--train_rows=500", "--valid_rows=200", "--test_rows=200"]) == 0
    out = capsys.readouterr().out
    assert "--train_days=2026-01-01 --valid_days=2026-01-02 --test_days=2026-01-03" in out
    assert main(["--train_row=5"]) == 2
    assert "unknown option --train_row=5 (did you mean --train_rows?)" in capsys.readouterr().err
