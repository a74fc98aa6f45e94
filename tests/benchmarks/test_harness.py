"""The benchmark harness measures what it says: the largest process's peak RSS, including a process orphaned by
its parent, and the whole tree's PSS with a forked child's inherited pages counted once."""

import pathlib
import sys
import textwrap

import pytest

from benchmarks.harness import measure

MIB = 1024 * 1024


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def test_the_tree_is_summed_and_the_largest_process_is_the_rss_peak():
    # The parent holds 120 MiB, forks, and the child adds 160 MiB of its own while both hold on: the tree's PSS is
    # about 280 MiB (the inherited 120 once), the largest process (the child) about 280 MiB resident.
    figures = measure(
        _python(
            """
            import os, time
            held = bytearray(os.urandom(1024 * 1024)) * 120
            pid = os.fork()
            if pid == 0:
                own = bytearray(160 * 1024 * 1024)
                own[:: 4096] = b"x" * len(own[:: 4096])
                time.sleep(1.5)
                os._exit(0)
            time.sleep(1.5)
            os.waitpid(pid, 0)
            print("done")
            """
        )
    )
    assert figures["stdout"].strip() == "done"
    assert 270 <= figures["peak_rss_mb"] <= 340, figures
    assert 270 <= figures["peak_tree_pss_mb"] <= 360, figures
    assert figures["seconds"] >= 1.5


def test_a_process_orphaned_by_its_parent_is_still_measured():
    # The parent exits at once; its child goes on to hold 200 MiB. As the tree's subreaper, the measuring process
    # inherits the orphan, waits for it, and its peak counts.
    figures = measure(
        _python(
            """
            import os, time
            if os.fork() == 0:
                time.sleep(0.3)
                own = bytearray(200 * 1024 * 1024)
                own[:: 4096] = b"x" * len(own[:: 4096])
                time.sleep(1.0)
                os._exit(0)
            """
        )
    )
    assert figures["peak_rss_mb"] >= 200, figures
    assert figures["peak_tree_pss_mb"] >= 180, figures


def test_a_failed_command_is_one_line_that_names_the_file_with_its_stderr():
    with pytest.raises(RuntimeError) as caught:
        measure([sys.executable, "-c", "import sys; sys.stderr.write('the cause\\n'); sys.exit(3)"])
    message = str(caught.value)
    assert "\n" not in message and message.startswith("benchmark command failed (3; its stderr: ")
    log = message.split("its stderr: ", 1)[1].split(")", 1)[0]
    assert pathlib.Path(log).read_text() == "the cause\n"
