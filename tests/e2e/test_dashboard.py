"""``python -m pytest_dnnbench publish``: a static site of a results store, built from a synthetic history (two
platforms, a step change, an accepted change, a failed gate, a busy point, a non-ASCII model name) and opened in
headless Chromium: no console error, every chart drawn with its traces, every link resolved, the change point
marked at its commit; screenshots of the index and of a model page kept as artifacts."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from browser import chromium, console_lines, needs_chromium, probe_result
from store_records import T0, record, run_with

from pytest_dnnbench.__main__ import main
from pytest_dnnbench.dashboard.pages import model_slug
from pytest_dnnbench.store.db import open_store
from pytest_dnnbench.store.urls import resolve_url

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
RUNS = 14
#: The run (0-based) from which resnet18 at batch 8 on the first platform is 40 % slower.
STEP_AT = 8
ODD = "réseau-ü"  # a model whose name is not ASCII


def commit(i: int) -> str:
    return hashlib.sha1(f"commit {i}".encode()).hexdigest()


def noise(i: int, salt: str) -> float:
    """A deterministic ±2 % wobble."""
    return 1.0 + (int(hashlib.sha1(f"{salt}{i}".encode()).hexdigest()[:4], 16) / 0xFFFF - 0.5) * 0.04


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """Two platforms ("Some CPU", "Other CPU") x 14 runs on 14 commits: resnet18 at batch 1 and 8 and a model
    named réseau-ü at batch 1; +40 % at run 8 for resnet18 bs8 on Some CPU (accepted); a failed gate at run 11 and
    a busy record at run 12 on Other CPU."""
    url = resolve_url(None, tmp_path / "proj")
    with open_store(url) as store:
        for i in range(RUNS):
            for k, device in enumerate(("Some CPU", "Other CPU")):
                scale = 1.0 + k  # the second platform is half as fast
                records = [
                    record("resnet18", 1, 5.0 * scale * noise(i, f"a{k}"), device_name=device),
                    record(
                        "resnet18",
                        8,
                        30.0 * scale * noise(i, f"b{k}") * (1.4 if k == 0 and i >= STEP_AT else 1.0),
                        device_name=device,
                        outcome="failed" if (k == 1 and i == 11) else "passed",
                    ),
                    record(ODD, 1, 2.0 * scale * noise(i, f"c{k}"), device_name=device, busy=(k == 1 and i == 12)),
                ]
                run_with(store, records, at=T0 + timedelta(hours=i, minutes=k), commit=commit(i))
        store.annotate(
            "the new backbone is 40 % slower, on purpose",
            selection={"model": "resnet18", "batch_size": 8, "device": "cpu"},
            commit=commit(STEP_AT),
        )
    return url


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.ids: list[str] = []
        self.loads: list[str] = []  # what the page loads: scripts, style sheets, images

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        for key in ("href", "src"):
            if a.get(key):
                self.hrefs.append(str(a[key]))
        if tag in ("script", "link", "img") and (a.get("src") or a.get("href")):
            self.loads.append(str(a.get("src") or a.get("href")))
        if a.get("id"):
            self.ids.append(str(a["id"]))


def parse(path: Path) -> Links:
    p = Links()
    p.feed(path.read_text(encoding="utf-8"))
    return p


def publish(url: str, out: Path, *extra: str) -> int:
    return main(["publish", "--store", url, "--out", str(out), *extra])


def test_publish_writes_every_page_and_every_link_resolves(store_url: str, tmp_path: Path) -> None:
    site = tmp_path / "site"
    assert publish(store_url, site, "--reference", "cpu-some-cpu-2t-fp32-eager") == 0
    assert (site / "index.html").is_file() and (site / "platforms.html").is_file()
    assert (site / "assets" / "plotly.min.js").stat().st_size > 1_000_000  # the library itself, not a link to it
    assert sorted(p.name for p in (site / "models").iterdir()) == sorted([f"{model_slug(ODD)}.html", "resnet18.html"])
    assert model_slug(ODD) != ODD and model_slug(ODD).isascii()
    assert len(list((site / "runs").glob("*.html"))) == 2 * RUNS
    pages = list(site.rglob("*.html"))
    for page in pages:
        links = parse(page)
        for href in links.hrefs:
            if href.startswith(("http://", "https://", "data:")):
                continue
            target, _, anchor = href.partition("#")
            resolved = (page.parent / target).resolve()
            assert resolved.is_file(), f"{page.relative_to(site)}: {href} does not resolve"
            if anchor and resolved.suffix == ".html":
                assert anchor in parse(resolved).ids, f"{page.relative_to(site)}: no #{anchor} in {target}"
        assert len(links.ids) == len(set(links.ids)), f"{page}: duplicate ids"
        assert not [u for u in links.loads if "//" in u and not u.startswith("data:")], (
            f"{page}: loads something from the network"
        )
    index = (site / "index.html").read_text(encoding="utf-8")
    assert index.count("<tr data-model=") == 6  # 3 histories x 2 platforms
    assert ODD in index  # the name as it is, escaped only where HTML needs it
    # The regression is listed first, with its commit; the accepted change says so.
    regressions = index.split("Regressions (slower)")[1].split("</table>")[0]
    assert (
        commit(STEP_AT)[:7] in regressions
        and re.search(r"\+(39|4[0-2])\.\d %", regressions)
        and "accepted" in regressions
    )
    # The model's data: its change point is at the step's commit, the accepted change at that run.
    data = (site / "data" / "resnet18.js").read_text(encoding="utf-8")
    model = json.loads(data.removeprefix("window.DNN_MODEL = ").rstrip().rstrip(";"))
    stepped = [s for s in model["series"] if s["changes"]]
    assert len(stepped) == 1 and stepped[0]["batch"] == 8 and "some-cpu" in stepped[0]["platform"]
    (change,) = stepped[0]["changes"]
    assert change["commit"] == commit(STEP_AT)[:7] and change["worse"] and change["accepted"]
    assert stepped[0]["accepted"] and stepped[0]["accepted"][0]["commit"] == commit(STEP_AT)[:7]
    failed = [s for s in model["series"] if any(s["failed"])]
    assert len(failed) == 1 and failed[0]["failed"].index(True) == 11
    odd = json.loads((site / "data" / f"{model_slug(ODD)}.js").read_text(encoding="utf-8")[19:].rstrip()[:-1])
    busy = {s["platform"]: sum(s["busy"]) for s in odd["series"]}
    assert odd["model"] == ODD and busy == {"cpu-other-cpu-2t-fp32-eager": 1, "cpu-some-cpu-2t-fp32-eager": 0}
    # The platforms side by side: both platforms, the ratio, the paper's columns and its figures.
    platforms = (site / "platforms.html").read_text(encoding="utf-8")
    assert "cpu-some-cpu-2t-fp32-eager (reference)" in platforms and "TITAN Xp (paper" in platforms
    assert re.search(r"<small>(1\.9\d|2\.0\d)×</small>", platforms)  # the other CPU is half as fast
    assert len(list((site / "platforms").glob("fig*.png"))) >= 4


def test_a_second_publish_replaces_the_site_and_nothing_else(store_url: str, tmp_path: Path) -> None:
    site = tmp_path / "site"
    assert publish(store_url, site, "--no-figures") == 0
    (site / "runs" / "stale.html").write_text("from before", encoding="utf-8")
    assert publish(store_url, site, "--no-figures") == 0
    assert not (site / "runs" / "stale.html").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".site.")]  # no temporary folder left


@pytest.mark.parametrize("case", ["file", "foreign", "unwritable"])
def test_an_out_that_cannot_be_a_site_is_refused_and_kept(
    store_url: str, tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if case == "file":
        out = tmp_path / "site.html"
        out.write_text("mine", encoding="utf-8")
        expected = "exists and is not a directory"
    elif case == "foreign":
        out = tmp_path / "docs"
        out.mkdir()
        (out / "notes.md").write_text("mine", encoding="utf-8")
        expected = "not a site published before"
    else:
        out = Path("/proc/dnnbench-site")  # not even root may make a folder here
        expected = "cannot be written"
    assert publish(store_url, out, "--no-figures") == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err
    assert err.startswith("error: --out ")
    if case == "file":
        assert out.read_text(encoding="utf-8") == "mine"
    if case == "foreign":
        assert [p.name for p in out.iterdir()] == ["notes.md"]


def test_an_empty_store_one_run_and_one_point(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = resolve_url(None, tmp_path / "proj")
    with open_store(url):
        pass  # a new store: no run yet
    assert publish(url, tmp_path / "empty") == 0
    assert "Nothing yet" in (tmp_path / "empty" / "index.html").read_text(encoding="utf-8")
    assert "Nothing yet" in (tmp_path / "empty" / "platforms.html").read_text(encoding="utf-8")
    with open_store(url) as store:
        run_with(store, [record("resnet18", 1, 5.0)], commit=commit(0))
    assert publish(url, tmp_path / "one") == 0
    index = (tmp_path / "one" / "index.html").read_text(encoding="utf-8")
    assert index.count("<tr data-model=") == 1 and 'class="spark"' in index
    assert (tmp_path / "one" / "runs" / "1.html").is_file()
    # A store that is not there: a usage error naming it, nothing made.
    missing = f"sqlite:///{tmp_path / 'nowhere' / 'history.sqlite'}"
    assert publish(missing, tmp_path / "never") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "nowhere" in err and "Traceback" not in err
    assert not (tmp_path / "never").exists()


PROBE = """<script>
window.__errs = [];
window.addEventListener("error", function (e) {
  window.__errs.push("error: " + (e.message || (e.target && (e.target.src || e.target.href)) || "?"));
}, true);
console.error = function () { window.__errs.push("console: " + [].join.call(arguments, " ")); };
function __report() {
  if (document.body.getAttribute("data-ready") !== "1") { setTimeout(__report, 50); return; }
  var charts = [].slice.call(document.querySelectorAll("div.chart")).map(function (d) {
    return {id: d.id, expected: Number(d.getAttribute("data-traces")),
            drawn: d.querySelectorAll(".scatterlayer .trace").length,
            annotations: [].slice.call(d.querySelectorAll(".annotation-text")).map(
              function (t) { return t.textContent; })};
  });
  var res = {errors: window.__errs, charts: charts, drawn_ms: Number(document.body.getAttribute("data-drawn-ms")),
             rows: document.querySelectorAll("#histories tbody tr").length,
             sparks: document.querySelectorAll("svg.spark").length,
             rings: document.querySelectorAll("svg.spark circle.cp").length,
             crosses: document.querySelectorAll("svg.spark path.fail").length};
  var model = document.getElementById("f-model");
  if (model) {  // the index: filter by a glob, then by platform; sort by latency, twice
    var visible = function () {
      return [].slice.call(document.querySelectorAll("#histories tbody tr")).filter(function (r) { return !r.hidden; });
    };
    model.value = "*SEAU*"; model.dispatchEvent(new Event("input"));
    res.glob = visible().map(function (r) { return r.getAttribute("data-model"); });
    var platform = document.getElementById("f-platform");
    platform.value = platform.options[1].value; platform.dispatchEvent(new Event("change"));
    res.glob_platform = visible().length;
    model.value = ""; model.dispatchEvent(new Event("input"));
    platform.value = ""; platform.dispatchEvent(new Event("change"));
    var th = document.querySelectorAll("#histories thead th")[5];
    th.click();
    res.ascending = visible().map(function (r) { return Number(r.cells[5].getAttribute("data-v")); });
    th.click();
    res.descending = visible().map(function (r) { return Number(r.cells[5].getAttribute("data-v")); });
    res.count = document.getElementById("f-count").textContent;
  }
  var pre = document.createElement("pre");
  pre.textContent = "@@" + "probe" + JSON.stringify(res) + "@@" + "end";
  document.body.appendChild(pre);
}
window.addEventListener("load", function () { setTimeout(__report, 0); });
</script>"""


def artifacts() -> Path:
    """Where the screenshots go: $DNNBENCH_TEST_ARTIFACTS, else .test-artifacts/ at the top of the checkout."""
    root = os.environ.get("DNNBENCH_TEST_ARTIFACTS") or str(Path(__file__).resolve().parents[2] / ".test-artifacts")
    path = Path(root) / "dashboard"
    path.mkdir(parents=True, exist_ok=True)
    return path


def open_page(page: Path, tmp_path: Path) -> dict[str, Any]:
    probed = page.with_name(f"probed-{page.name}")
    probed.write_text(page.read_text(encoding="utf-8").replace("<head>", "<head>" + PROBE, 1), encoding="utf-8")
    run = chromium(["--virtual-time-budget=20000", "--window-size=1280,800", "--dump-dom", probed.as_uri()], tmp_path)
    probed.unlink()
    assert run.returncode == 0, run.stderr[-2000:]
    assert console_lines(run.stderr) == []
    return probe_result(run.stdout)


@needs_chromium
def test_the_site_in_chromium(store_url: str, tmp_path: Path) -> None:
    site = tmp_path / "site"
    assert publish(store_url, site, "--no-figures") == 0
    index = open_page(site / "index.html", tmp_path)
    assert index["errors"] == []
    assert index["rows"] == index["sparks"] == 6
    assert index["rings"] == 1 and index["crosses"] == 1  # the change point, the failed gate
    assert index["glob"] == [ODD, ODD] and index["glob_platform"] == 1  # "*SEAU*": réseau-ü only, any case
    assert index["ascending"] == sorted(index["ascending"]) and len(index["ascending"]) == 6
    assert index["descending"] == sorted(index["ascending"], reverse=True)
    assert index["count"] == "6 of 6 histories"
    model = open_page(site / "models" / "resnet18.html", tmp_path)
    assert model["errors"] == []
    charts = {c["id"]: c for c in model["charts"]}
    assert sorted(charts) == ["latency-1", "latency-8", "memory-1", "memory-8"]
    # Two platforms per chart, and the change points' own trace where there is one.
    assert charts["latency-8"]["expected"] == charts["latency-8"]["drawn"] == 3
    assert charts["latency-1"]["expected"] == charts["latency-1"]["drawn"] == 2
    assert charts["memory-8"]["expected"] == charts["memory-8"]["drawn"] == 2
    step = commit(STEP_AT)[:7]
    assert any(a.startswith(step) and re.search(r"\+(39|4[0-2])\.\d %", a) for a in charts["latency-8"]["annotations"])
    assert any(a.startswith("accepted:") for a in charts["latency-8"]["annotations"])
    assert not any(step in a for a in charts["latency-1"]["annotations"])
    odd = open_page(site / "models" / f"{model_slug(ODD)}.html", tmp_path)
    assert odd["errors"] == [] and all(c["expected"] == c["drawn"] for c in odd["charts"])
    # Screenshots, kept as artifacts of the test run (docs/dashboard.md shows them).
    out = artifacts()
    shots = (("index.png", site / "index.html", 800), ("model.png", site / "models" / "resnet18.html", 1900))
    for name, page, height in shots:  # 1280 wide; the model page tall enough for its batch-8 chart
        shot = tmp_path / name
        run = chromium(
            [f"--screenshot={shot}", f"--window-size=1280,{height}", "--virtual-time-budget=20000", page.as_uri()],
            tmp_path,
        )
        assert run.returncode == 0 and shot.read_bytes().startswith(PNG_MAGIC)
        assert console_lines(run.stderr) == []
        shutil.copyfile(shot, out / name)


def test_publish_is_listed_and_needs_out(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["publish"])
    assert stop.value.code == 2
    assert re.search(r"--out", capsys.readouterr().err)
