"""The test command's own machinery: what `make test` relies on to stay within its time."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap


def test_tests_of_one_xdist_group_run_on_one_worker(tmp_path):
    """`make test` runs --dist loadgroup so that the container tests share one worker, and one image build;
    a pytest or pytest-xdist that stops honouring the group would have each worker build its own."""
    (tmp_path / "test_grouped.py").write_text(textwrap.dedent("""
        import os, time, pytest
        pytestmark = pytest.mark.xdist_group("together")

        @pytest.mark.parametrize("n", range(4))
        def test_grouped(n):
            time.sleep(0.2)
            print("worker", os.environ["PYTEST_XDIST_WORKER"])
        """))
    (tmp_path / "test_spread.py").write_text("import time\n\ndef test_spread():\n    time.sleep(0.2)\n")
    result = subprocess.run([sys.executable, "-m", "pytest", "-n", "3", "--dist", "loadgroup", "-v", "-s",
                             "-p", "no:cacheprovider", "-c", "/dev/null", str(tmp_path)],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:]
    workers = set(re.findall(r"\[(gw\d+)\] .*PASSED .*test_grouped", result.stdout))
    assert len(workers) == 1, result.stdout[-2000:]
