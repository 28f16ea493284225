"""The paper's figures as baselines: held cell by cell against the transcript; compare end to end."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pytest_dnnbench import paperdata
from pytest_dnnbench.baseline_save import document_text
from pytest_dnnbench.baseline_store import (
    baseline_from_document,
    load_baseline,
    paper_baseline_files,
    paper_benchmark_files,
)
from pytest_dnnbench.models.catalog import PAPER_MODELS
from pytest_dnnbench.paperdata import paper_baseline

TRANSCRIPT = Path(__file__).resolve().parents[2] / ".." / "shared" / "paper" / "bianco2018-transcript.txt"
_CANDIDATES = [TRANSCRIPT, Path("/work/shared/paper/bianco2018-transcript.txt")]


def _transcript() -> list[str]:
    for p in _CANDIDATES:
        if p.is_file():
            return p.read_text(encoding="utf-8").splitlines()
    pytest.skip("the paper transcript (shared/paper/bianco2018-transcript.txt) is not available here")


def parse_table1() -> dict[str, dict[str, list[str]]]:
    """Table 1 as the transcript has it: platform -> row name -> the cells it kept (strings)."""
    line = next(t for t in _transcript() if "TABLE 1: Inference time vs. batch size" in t)
    header = "DNN 1 2 4 8 16 32 64"
    a = line.index(header)
    b = line.index(header, a + 1)
    end = line.index("(a) (b) FPS")
    names = sorted(paperdata.PAPER_TO_NAME, key=len, reverse=True)
    pattern = "(" + "|".join(re.escape(n) for n in names) + ")"
    tables = {}
    for platform, segment in (("titan_xp", line[a + len(header) : b]), ("jetson_tx1", line[b + len(header) : end])):
        parts = re.split(pattern, segment)
        assert not parts[0].strip()
        rows = {parts[i]: parts[i + 1].split() for i in range(1, len(parts), 2)}
        assert len(rows) == 44, (platform, len(rows))
        tables[platform] = rows
    return tables


TABLES = None


def tables() -> dict:
    global TABLES
    if TABLES is None:
        TABLES = parse_table1()
    return TABLES


@pytest.mark.parametrize("platform", ["titan_xp", "jetson_tx1"])
def test_every_kept_cell_matches_the_transcript(platform: str) -> None:
    data = paperdata.table(platform)
    rows = tables()[platform]
    assert set(data) == set(rows)
    complete = 0
    for name, cells in rows.items():
        stored = data[name]
        assert len(stored) == 7
        assert stored[0] == float(cells[0])  # batch 1 is always the first cell
        if len(cells) == 7 and all("." in c for c in cells):
            complete += 1
            assert list(stored) == [float(c) for c in cells], name
        elif platform == "jetson_tx1":
            # Short rows lost their last columns (out of memory); a lone integer is a truncated cell.
            for bs, cell, value in zip(paperdata.BATCH_SIZES, cells, stored, strict=False):
                if "." in cell:
                    assert value == float(cell), (name, bs)
                else:
                    assert value is None and f"only '{cell}' survives" in paperdata.NULL_REASONS[(platform, name, bs)]
            for bs, value in list(zip(paperdata.BATCH_SIZES, stored, strict=False))[len(cells) :]:
                assert value is None and "system memory" in paperdata.NULL_REASONS[(platform, name, bs)], (name, bs)
        else:
            # Titan Xp: cells lost at unknown positions; only batch 1 can be placed.
            assert all(v is None for v in stored[1:]), name
            assert name in ("BN-Inception", "MobileNet-v2", "ResNet-34", "SqueezeNet-v1.1")
    assert complete == {"titan_xp": 40, "jetson_tx1": 15}[platform]


def test_the_issues_example_cells() -> None:
    assert paperdata.TITAN_XP_MS["ResNet-50"][0] == 5.10
    assert paper_baseline("titan_xp").entry("resnet50", 1)["per_image_ms"] == 5.10
    assert paper_baseline("titan_xp").entry("resnet50", 1)["latency_ms"]["median"] == 5.10
    assert paper_baseline("titan_xp").entry("resnet18", 64)["latency_ms"]["median"] == pytest.approx(0.38 * 64)
    jetson = paper_baseline("jetson_tx1")
    assert jetson.entry("resnet50", 1)["per_image_ms"] == 53.09
    assert jetson.entry("resnet50", 1)["fps"] == pytest.approx(18.83, abs=0.01)  # the text's "18,83 FPS"
    assert jetson.entry("senet154", 2)["per_image_ms"] is None
    assert "'24'" in jetson.entry("senet154", 2)["missing"]["per_image_ms"]
    assert jetson.entry("resnet50", 64)["per_image_ms"] is None
    assert "system memory" in jetson.entry("resnet50", 64)["missing"]["per_image_ms"]
    titan = paper_baseline("titan_xp")
    assert titan.entry("mobilenet_v2", 1)["per_image_ms"] == 3.34
    assert titan.entry("mobilenet_v2", 2)["per_image_ms"] is None
    assert "cannot be placed" in titan.entry("mobilenet_v2", 2)["missing"]["per_image_ms"]
    # The text's FPS figures follow from the table: NASNet-A-Large 30.96 FPS on the Titan Xp.
    assert titan.entry("nasnetalarge", 1)["fps"] == pytest.approx(30.96, abs=0.01)


def test_memory_only_where_attributable() -> None:
    line = next(t for t in _transcript() if "F. MEMORY USAGE VS MODEL COMPLEXITY" in t)
    m = re.search(r"have a (\d+)MB and (\d+)MB memory footprint.*?equal to (\d+)MB and (\d+)MB", line)
    assert m, "the transcript's §V-F sentence changed"
    expected = dict(
        zip(["squeezenet1_0", "squeezenet1_1", "mobilenet_v1", "mobilenet_v2"], map(int, m.groups()), strict=True)
    )
    assert expected == {"squeezenet1_0": 943, "squeezenet1_1": 921, "mobilenet_v1": 650, "mobilenet_v2": 648}
    titan = paper_baseline("titan_xp")
    for (model, bs), e in titan.entries.items():
        total = e["memory_bytes"]["total"]
        if bs == 1 and model in expected:
            assert total == expected[model] * 2**20  # the paper's MB are MiB (nvidia-smi)
        else:
            assert total is None and "Table 2 lost its row order" in e["missing"]["memory_bytes.total"]
    assert all(e["memory_bytes"]["total"] is None for e in paper_baseline("jetson_tx1").entries.values())


def test_top1_comes_from_the_registry() -> None:
    top1 = {s.name: s.paper_top1 for s in PAPER_MODELS}
    for platform in ("titan_xp", "jetson_tx1"):
        for (model, _), e in paper_baseline(platform).entries.items():
            # Published figures: the reference, never measured.
            assert e["accuracy"]["measured"] is None
            if top1[model] is None:
                assert e["accuracy"]["reference"] is None and e["missing"]["accuracy.reference.top1"]
            else:
                assert e["accuracy"]["reference"] == {"top1": top1[model], "top5": None, "source": "Bianco et al. 2018"}
    assert paper_baseline("titan_xp").entry("dpn68", 1)["accuracy"]["reference"]["top1"] == 75.95


def test_shipped_files_are_what_the_module_generates_and_they_load() -> None:
    files = paper_baseline_files()
    bench = paper_benchmark_files()
    if not all(p.is_file() for p in [*files.values(), *bench.values()]):
        pytest.skip("baselines/paper is not part of this installation")
    for platform in ("titan_xp", "jetson_tx1"):
        assert files[platform].read_text(encoding="utf-8") == document_text(paperdata.baseline_document(platform))
        assert json.loads(bench[platform].read_text(encoding="utf-8")) == paperdata.benchmark_document(platform)
        b = load_baseline(files[platform])
        assert len(b.entries) == 44 * 7
        assert b.platform["source"] == "paper" and "arXiv:1810.00736" in b.platform["provenance"]
        assert b.key.startswith("paper-cuda-nvidia-")
    assert (
        baseline_from_document(paperdata.baseline_document("titan_xp")).key == "paper-cuda-nvidia-titan-xp-fp32-eager"
    )


def test_benchmark_runs_leave_null_cells_out_and_use_seconds_per_call() -> None:
    doc = paperdata.benchmark_document("titan_xp")
    by_name = {b["fullname"]: b for b in doc["benchmarks"]}
    assert len(by_name) == 40 * 7 + 4  # four rows keep batch 1 only
    b = by_name["pytest_dnnbench/suite/bench_models.py::test_dnn[resnet50-bs8]"]
    assert b["stats"]["median"] == pytest.approx(1.65 * 8 / 1000) == b["stats"]["min"] == b["stats"]["max"]
    assert b["stats"]["rounds"] == 10 and b["group"] == "resnet50" and b["param"] == "resnet50-bs8"
    assert "pytest_dnnbench/suite/bench_models.py::test_dnn[mobilenet_v2-bs2]" not in by_name
    jetson = {b["name"] for b in paperdata.benchmark_document("jetson_tx1")["benchmarks"]}
    assert "test_dnn[senet154-bs2]" not in jetson and "test_dnn[senet154-bs4]" in jetson


def test_compare_with_the_paper_end_to_end(pytester: pytest.Pytester) -> None:
    """``--benchmark-compare`` against the Titan Xp run: the paper's row next to this machine's."""
    pytest.importorskip("torch")
    storage = pytester.mkdir("storage")
    # The shipped file (held equal to this by test_shipped_files_...), copied into a storage inside the cwd.
    (storage / "0001_bianco2018-titan-xp.json").write_text(json.dumps(paperdata.benchmark_document("titan_xp")))
    result = pytester.runpytest(
        "--dnn-device=cpu",
        "--dnn-models=squeezenet1_1",
        "--dnn-batch-sizes=1",
        "--dnn-max-time=0.3",
        "--dnn-min-samples=3",
        "--dnn-threads=1",
        "--dnn-baseline=none",
        f"--benchmark-storage={storage}",
        "--benchmark-compare=0001",
        "--benchmark-columns=min,median,rounds",
        "-p",
        "no:cacheprovider",
    )
    result.assert_outcomes(passed=1)
    out = result.stdout.str()
    paper = re.search(r"test_dnn\[squeezenet1_1-bs1\] \(0001_bianco2\S*\)\s+([\d.]+)", out)
    assert paper, out
    assert float(paper.group(1)) == pytest.approx(1.60, abs=1e-3)  # ms per call = 1.60 ms/image x batch 1
    assert re.search(r"test_dnn\[squeezenet1_1-bs1\] \(NOW\)", out), out
