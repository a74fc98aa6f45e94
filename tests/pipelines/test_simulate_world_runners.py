"""The simulator on other runners: Beam's portable path (what Flink uses) and a Dataflow job graph, offline."""

import pytest

from tests.conftest import DATAFLOW_DRY_RUN, simulate
from tests.pipelines.test_simulate_world import _digest


@pytest.mark.slow
def test_portable_runner_gives_the_same_logs_as_in_process(tmp_path):
    args = ("--n_days=2", "--n_users=600")
    simulate(str(tmp_path / "local"), *args)
    simulate(
        str(tmp_path / "portable"),
        *args,
        "--runner=PortableRunner",
        "--job_endpoint=embed",
        "--environment_type=LOOPBACK",
    )
    assert _digest(str(tmp_path / "portable")) == _digest(str(tmp_path / "local"))


@pytest.mark.slow
def test_dataflow_job_graph_builds_offline(tmp_path, monkeypatch):
    from podtarget.pipelines.simulate_world import run

    monkeypatch.chdir(tmp_path.parent)  # setup.py is found by path below; staging must not litter the checkout
    summary = run(
        [
            f"--data_root={tmp_path / 'data'}",
            "--world=tiny",
            "--job_name=simulate-dry-run",
            *DATAFLOW_DRY_RUN,
        ]
    )
    assert summary["dry_run"] is True
    assert summary["state"] == "DONE"
