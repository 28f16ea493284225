"""``pytest_dnnbench_record``: called once per finished record; may fail the test; keeps only ``extra``."""

from __future__ import annotations

import pytest
from helpers import FAST, TINY_CONFTEST, TINY_MODULE, load_json

HOOK = """
import json, os, pytest

def pytest_dnnbench_record(record, item):
    with open(os.environ["DNN_HOOK_LOG"], "a") as fh:
        fh.write(json.dumps({"test": item.nodeid, "checks": [c["kind"] for c in record["checks"]],
                             "accuracy": record["accuracy"]["reason"], "baseline": record.get("baseline")}) + "\\n")
    record.setdefault("extra", {})["mine"] = {"batch": record["batch_size"]}
    record["fps"] = -1.0  # ignored: the figures are what was measured
    if record["batch_size"] == 2:
        pytest.fail("the project refuses batch 2")
"""


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    pytester.makepyfile(tinymodels=TINY_MODULE)
    pytester.makeconftest(TINY_CONFTEST + HOOK)
    pytester.syspathinsert()
    monkeypatch.setenv("DNN_HOOK_LOG", str(pytester.path / "hook.log"))
    return pytester


def test_the_hook_sees_the_finished_record_once_and_may_fail_the_test(project: pytest.Pytester) -> None:
    import json

    out = project.path / "r.json"
    result = project.runpytest(
        *FAST, "--dnn-models=tiny", "--dnn-batch-sizes=1,2", "--dnn-max-memory=100GB", f"--dnn-json={out}"
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*the project refuses batch 2*"])
    calls = [json.loads(line) for line in (project.path / "hook.log").read_text().splitlines()]
    assert [c["test"].rsplit("[", 1)[1] for c in calls] == ["tiny-bs1]", "tiny-bs2]"]  # once per record
    assert all(c["checks"] == ["constraint"] and c["baseline"]["status"] == "no-file" for c in calls)
    assert all(c["accuracy"] for c in calls)  # accuracy already there (why it was not measured)
    records = load_json(out)["records"]
    assert [r["extra"] for r in records] == [{"mine": {"batch": 1}}, {"mine": {"batch": 2}}]
    assert all(r["fps"] > 0 for r in records)  # the change outside "extra" was ignored
    assert [r["outcome"] for r in records] == ["passed", "failed"]  # the failed test kept its record
