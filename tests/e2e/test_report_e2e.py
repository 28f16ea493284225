"""Reports end to end: ``--dnn-report`` on a small CPU matrix, the ``report`` command, a real browser."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from browser import chromium, needs_chromium
from helpers import FAST, load_json
from report_synthetic import mode_records, platform_records, write_results

from pytest_dnnbench.__main__ import main
from pytest_dnnbench.report.inputs import InputError, load_platform, records_from_baseline
from pytest_dnnbench.results import SCHEMA, load_results

# Imported here, before any pytester run: an in-process run restores sys.modules afterwards.
pytest.importorskip("matplotlib")
import matplotlib.backends.backend_agg  # noqa: E402,F401
import matplotlib.figure  # noqa: E402,F401

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIGURES = (
    "fig1_top1_vs_gflops.png",
    "fig2_accuracy_density.png",
    "fig3_top1_vs_fps.png",
    "fig4_memory_vs_model_size.png",
)


def check_report_dir(out: Path) -> str:
    """Every file exists and parses; the HTML embeds and names every PNG. Returns the HTML."""
    for name in FIGURES:
        assert (out / name).read_bytes().startswith(PNG_MAGIC), name
    html = (out / "report.html").read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and 'name="viewport"' in html
    for name in FIGURES:
        assert f'data-file="{name}"' in html, name
    assert html.count('src="data:image/png;base64,') == len(FIGURES)
    assert not re.search(r'(src|href)="(?!data:|#)', html), "the HTML must not load anything from outside"
    md = (out / "report.md").read_text(encoding="utf-8")
    for name in FIGURES:
        assert f"]({name})" in md
    return html


def test_dnn_report_writes_every_file(tiny_project: pytest.Pytester) -> None:
    out = tiny_project.path / "rep"
    result = tiny_project.runpytest(
        *FAST, "--dnn-models=tiny,tiny_wide,broken", "--dnn-batch-sizes=1,2", "--dnn-report=rep"
    )
    result.assert_outcomes(passed=4, errors=2)
    data = load_results(out / "results.json")
    assert data["schema"] == SCHEMA and len(data["records"]) == 4
    assert {(r["model"], r["batch_size"]) for r in data["records"]} == {
        ("tiny", 1),
        ("tiny", 2),
        ("tiny_wide", 1),
        ("tiny_wide", 2),
    }
    assert {(m["model"], m["batch_size"], m["outcome"]) for m in data["missing"]} == {
        ("broken", 1, "failed"),
        ("broken", 2, "failed"),
    }
    rows = list(csv.DictReader(io.StringIO((out / "results.csv").read_text(encoding="utf-8"))))
    assert len(rows) == len(data["records"])
    assert [r["model"] for r in rows] == [r["model"] for r in data["records"]]
    html = check_report_dir(out)
    assert "this model cannot be built" in html  # the missing cells' note
    stdout = result.stdout.str()
    assert "dnnbench: model 1/3 tiny, batch sizes 1,2 (6 of 6 tests left), time left: unknown" in stdout
    assert "Table 1: inference time per image (ms) by batch size" in stdout
    assert f"report: {out} (" in stdout


def test_dnn_report_ini_and_bad_value(tiny_project: pytest.Pytester) -> None:
    tiny_project.makeini("[pytest]\ndnn_report = from_ini\n")
    result = tiny_project.runpytest(*FAST, "--dnn-models=tiny", "--dnn-batch-sizes=1")
    result.assert_outcomes(passed=1)
    assert (tiny_project.path / "from_ini" / "report.html").is_file()
    (tiny_project.path / "afile").write_text("x")
    result = tiny_project.runpytest(*FAST, "--dnn-models=tiny", "--dnn-report=afile")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--dnn-report=afile: * is not a directory*"])


def two_results(tmp_path: Path) -> tuple[Path, Path]:
    a = write_results(tmp_path / "a.json", platform_records(), "Alpha CPU")
    b = write_results(
        tmp_path / "b.json",
        platform_records(scale=3.0, device_name="Beta CPU"),
        "Beta CPU",
        missing=[{"model": "fast_net", "batch_size": 2, "outcome": "failed", "reason": "RuntimeError: out of memory"}],
    )
    return a, b


def test_report_command_side_by_side(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    a, b = two_results(tmp_path)
    out = tmp_path / "cmp"
    assert main(["report", str(a), str(b), "--out", str(out)]) == 0
    html = check_report_dir(out)
    assert "cpu Beta CPU (fp32) ÷ cpu Alpha CPU (fp32)" in html
    assert "3.00×" in html  # Beta is three times slower per image
    assert "Table 3: cpu Alpha CPU (fp32)" in html and "Table 3: cpu Beta CPU (fp32)" in html
    assert "out of memory" in html
    rows = list(csv.DictReader(io.StringIO((out / "results.csv").read_text(encoding="utf-8"))))
    assert len(rows) == 2 * len(platform_records())
    assert {r["platform"] for r in rows} == {"cpu Alpha CPU (fp32)", "cpu Beta CPU (fp32)"}
    assert load_json(out / "results-2.json")["missing"][0]["reason"] == "RuntimeError: out of memory"
    assert str(out / "report.html") in capsys.readouterr().out


def test_report_command_one_file_and_labels(tmp_path: Path) -> None:
    a, b = two_results(tmp_path)
    assert main(["report", str(a), "--out", str(tmp_path / "one")]) == 0
    check_report_dir(tmp_path / "one")
    assert len(load_results(tmp_path / "one" / "results.json")["records"]) == len(platform_records())
    assert (
        main(["report", str(a), str(b), "--out", str(tmp_path / "lab"), "--label", "laptop", "--label", "server"]) == 0
    )
    assert "server ÷ laptop" in (tmp_path / "lab" / "report.md").read_text(encoding="utf-8")


def test_report_command_rejects_other_files(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema": "something/1"}))
    assert main(["report", str(bad), "--out", str(tmp_path / "x")]) == 2
    assert "neither a results file" in capsys.readouterr().err
    with pytest.raises(InputError, match="not valid JSON"):
        (tmp_path / "nojson.json").write_text("{")
        load_platform(tmp_path / "nojson.json")


def test_baseline_adapter() -> None:
    baseline = SimpleNamespace(
        platform={"key": "paper-titan-xp", "device_name": "NVIDIA TITAN Xp", "precision": "fp32", "mode": "eager"},
        entries={
            ("resnet18", 1): {
                "per_image_ms": 1.79,
                "fps": 558.7,
                "memory_bytes": {"total": 700 * 2**20},
                "accuracy": {"top1": 69.64, "status": "reference"},
            },
            ("resnet18", 2): {"per_image_ms": 1.01, "memory_bytes": {"total": None}},
        },
    )
    p = records_from_baseline(baseline, source="paper.json")
    assert p.label == "paper-titan-xp (fp32)" and p.kind == "baseline"
    r1, r2 = p.records
    assert (r1["model"], r1["paper_name"], r1["batch_size"], r1["fps"]) == ("resnet18", "ResNet-18", 1, 558.7)
    # A version-1 entry's flat reference figure: the reference, never measured; its source is the file.
    assert r1["accuracy"] == {"measured": None, "reference": {"top1": 69.64, "top5": None, "source": "paper.json"}}
    assert r2["accuracy"] == {"measured": None, "reference": None} and r2["fps"] == pytest.approx(1000 / 1.01)
    assert r2["memory_bytes"]["total"] is None


# -- a real browser ------------------------------------------------------------------------------

PROBE = """<script>
window.__errs = [];
window.addEventListener("error", function (e) {
  window.__errs.push("error: " + (e.message || (e.target && e.target.tagName) || "?"));
}, true);
var __ce = console.error;
console.error = function () { window.__errs.push("console: " + [].join.call(arguments, " ")); };
window.addEventListener("load", function () {
  document.querySelectorAll("details").forEach(function (d) { d.open = true; });
  var imgs = [].slice.call(document.images);
  var tables = [].slice.call(document.querySelectorAll("table"));
  var res = {
    images: imgs.length,
    images_ok: imgs.filter(function (i) { return i.complete && i.naturalWidth > 100; }).length,
    tables: tables.length,
    tables_shown: tables.filter(function (t) { return t.getBoundingClientRect().height > 10; }).length,
    cells: document.querySelectorAll("td").length,
    errors: window.__errs
  };
  var pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = "@@" + "probe" + JSON.stringify(res) + "@@" + "end";
  document.body.appendChild(pre);
});
</script>"""


@needs_chromium
@pytest.mark.parametrize("inputs", [1, 2, "modes"], ids=["one-platform", "side-by-side", "two-modes"])
def test_html_report_renders_in_chromium(tmp_path: Path, inputs: int | str) -> None:
    a, b = two_results(tmp_path)
    out = tmp_path / "rep"
    figures = len(FIGURES)
    if inputs == "modes":  # one file of two modes: two platforms side by side, a Fig. 3 per mode
        paths = [write_results(tmp_path / "modes.json", mode_records({"eager": 1.0, "onnxruntime": 0.5}))]
        figures += 1
    else:
        paths = [a, b][: int(inputs)]
    assert main(["report", *[str(p) for p in paths], "--out", str(out)]) == 0
    html = (out / "report.html").read_text(encoding="utf-8")
    probed = out / "probed.html"
    probed.write_text(html.replace("<head>", "<head>" + PROBE, 1), encoding="utf-8")
    run = chromium(["--virtual-time-budget=5000", "--window-size=420,900", "--dump-dom", probed.as_uri()], tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    m = re.search(r"@@probe(.*?)@@end", run.stdout, re.S)
    assert m, run.stdout[-2000:]
    res = json.loads(m.group(1))
    assert res["errors"] == []
    assert res["images"] == res["images_ok"] == figures
    assert res["tables"] == html.count("<table>") and res["tables_shown"] == res["tables"]
    assert res["cells"] > 20
    console = [ln for ln in run.stderr.splitlines() if "CONSOLE" in ln or "Uncaught" in ln]
    assert console == []
    # The page as it is (no probe): no console output either, and a screenshot is taken.
    shot = tmp_path / "shot.png"
    run = chromium([f"--screenshot={shot}", "--window-size=1100,2000", (out / "report.html").as_uri()], tmp_path)
    assert run.returncode == 0 and shot.read_bytes().startswith(PNG_MAGIC)
    assert [ln for ln in run.stderr.splitlines() if "CONSOLE" in ln or "Uncaught" in ln] == []


PAPER_DIR = Path(__file__).resolve().parents[2] / "baselines" / "paper"
PAPER_FILES = [PAPER_DIR / "bianco2018-titan-xp.json", PAPER_DIR / "bianco2018-jetson-tx1.json"]


def _have_paper_baselines() -> bool:
    import importlib.util

    return (
        all(p.is_file() for p in PAPER_FILES) and importlib.util.find_spec("pytest_dnnbench.baseline_store") is not None
    )


@pytest.mark.skipif(not _have_paper_baselines(), reason="the paper's baseline files are not in this checkout")
def test_report_of_the_papers_baselines_reproduces_fig3(tmp_path: Path) -> None:
    """From the paper's own Titan Xp and Jetson TX1 figures, Fig. 3's bounds are the paper's."""
    assert main(["report", *map(str, PAPER_FILES), "--out", str(tmp_path / "paper")]) == 0
    from pytest_dnnbench.report.build import build

    platforms = [load_platform(p) for p in PAPER_FILES]
    assert [p.label for p in platforms] == ["NVIDIA TITAN Xp (paper, fp32)", "NVIDIA Jetson TX1 (paper, fp32)"]
    bounds = build(platforms).fits["upper_bound"]
    titan, jetson = (bounds[p.label] for p in platforms)
    assert (round(titan.intercept, 1), round(titan.slope, 4)) == (83.3, -0.0244)
    assert (round(jetson.intercept, 1), round(jetson.slope, 4)) == (83.0, -0.2025)
    md = (tmp_path / "paper" / "report.md").read_text(encoding="utf-8")
    assert "NVIDIA Jetson TX1 (paper, fp32) ÷ NVIDIA TITAN Xp (paper, fp32)" in md
