"""Shared fixtures: a GCS emulator on loopback, and small simulated worlds built once per session.

Google auth is pointed at a fake credentials file and away from the GCE metadata server *before* anything imports
google-auth: otherwise every process that touches gs:// waits ~35 s retrying default credentials, and probes a
non-loopback address.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("GOOGLE_APPLICATION_CREDENTIALS", str(Path(__file__).with_name("fake_adc.json")))
os.environ.setdefault("GOOGLE_CLOUD_PROJECT", "test-project")
os.environ["NO_GCE_CHECK"] = "True"
os.environ["GCE_METADATA_HOST"] = "127.0.0.1:9"
os.environ["GCE_METADATA_IP"] = "127.0.0.1:9"
# What make exports for every command (Makefile), here too when pytest runs without make: OpenMP threads that spin
# crawl on a busy 2-core machine. Set before any test module imports torch, which reads it once.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402

TEST_BUCKET = "podtarget-test"
TINY_DIRTY_RATE = 0.02


@pytest.fixture(scope="session")
def gcs_emulator():
    """An in-memory GCS emulator on 127.0.0.1 (free port) with bucket ``podtarget-test``; yields the bucket URL."""
    from gcp_storage_emulator.server import create_server

    server = create_server("127.0.0.1", 0, in_memory=True, default_bucket=TEST_BUCKET)
    server.start()
    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{server._api._httpd.server_port}"
    try:
        yield f"gs://{TEST_BUCKET}"
    finally:
        server.stop()
        if previous is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = previous


def simulate(data_root: str, *extra: str) -> dict:
    from podtarget.pipelines.simulate_world import run

    return run([f"--data_root={data_root}", "--world=tiny", "--runner=FnApiRunner", *extra])


@pytest.fixture(scope="session")
def dirty_tiny_world(tmp_path_factory) -> tuple[str, dict]:
    """The tiny preset simulated once with every kind of dirt; ``(data_root, summary)``."""
    root = str(tmp_path_factory.mktemp("tiny_dirty") / "data")
    return root, simulate(root, f"--dirty_rate={TINY_DIRTY_RATE}")


@pytest.fixture(scope="session")
def clean_tiny_world(tmp_path_factory) -> tuple[str, dict]:
    """The tiny preset simulated once without dirt; ``(data_root, summary)``."""
    root = str(tmp_path_factory.mktemp("tiny_clean") / "data")
    return root, simulate(root)


@pytest.fixture(scope="session")
def clean_small_world(tmp_path_factory) -> tuple[str, dict]:
    """The demo preset's 20,000 users over 6 days, without dirt: about 169k examples and 2,500 clicks, where
    Click has a signal a test can see (the tiny world's ~90 test clicks do not; ``tests/model/test_quality.py``);
    ``(data_root, summary)``. About 11 s to simulate here (plus about 20 s for its examples in that test)."""
    from podtarget.pipelines.simulate_world import run

    root = str(tmp_path_factory.mktemp("small_clean") / "data")
    return root, run([f"--data_root={root}", "--world=demo", "--n_days=6", "--runner=FnApiRunner"])


# A Dataflow job built offline (--dry_run): the whole DataflowRunner translation, no network. The project's
# setup.py ships the package, as in production.
DATAFLOW_DRY_RUN = (
    "--runner=DataflowRunner",
    "--project=my-project",
    "--region=europe-west1",
    "--temp_location=gs://my-bucket/tmp",
    f"--setup_file={os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'setup.py')}",
    "--dry_run=True",
)
