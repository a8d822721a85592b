"""``OUT/report.html`` (edgeq.report_html): every plot whose data is in the folder, text escaped,
byte-identical reruns, nothing fetched; and in a real headless Chromium every plot is drawn (not
blank) and the page makes no network request."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest

from edgeq import api
from edgeq.report_html import collect, render_html, write_html
from tests.helpers import run_cli, small_cnn

HOSTILE = '<script>alert("x")</script> & co'   # a node name from a user's model
HOSTILE_VALUE = "r<b>&amp;"                     # a value name (the SQNR rows are values)


class _Page(HTMLParser):
    """Start tags, and each plot's svg attributes with the fill of its background rect."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.plots: dict[str, dict[str, str]] = {}
        self.titles: dict[str, str] = {}
        self._svg: str | None = None
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        a = dict(attrs)
        if tag == "svg":
            self._svg = a["data-plot"]
            assert self._svg not in self.plots, f"two plots named {self._svg}"
            self.plots[self._svg] = dict(a)
        elif tag == "rect" and a.get("class") == "bg" and self._svg:
            self.plots[self._svg]["bg"] = a["fill"]
        elif tag == "title" and self._svg and self._svg not in self.titles:
            self._in_title = True

    def handle_data(self, data):
        if self._in_title and self._svg:
            self.titles[self._svg] = data

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False
        elif tag == "svg":
            self._svg = None


def parse(page: str) -> _Page:
    p = _Page()
    p.feed(page)
    p.close()
    return p


def assert_self_contained(page: str) -> None:
    low = page.lower()
    for bad in ("http://", "https://", "<script", "<link", "@import", "url(", "src="):
        assert bad not in low, f"{bad!r} in report.html"


# -- pure rendering on a hand-written report (unit) ------------------------------------------

def small_report(**over):
    report = {
        "model": "m & <model>", "calibration_samples": 6, "held_out_samples": 2,
        "integer_interpreter": {"sqnr_db_vs_float": 30.5},
        "quantization": {"layers": [
            {"name": HOSTILE_VALUE, "op": "QConv", "dtype": "int8", "sqnr_db": 31.2},
            {"name": "exact", "op": "Requantize", "dtype": "int16", "sqnr_db": math.inf},
            {"name": "bad", "op": "QGemm", "dtype": "int8", "sqnr_db": -3.0}],
            "output_sqnr_db": {"y": 30.5}, "top1_agreement": 0.5},
        "targets": {"c": {"artifact": "c", "size_bytes": 1234, "sqnr_db_vs_float": 30.5,
                          "latency_ms": 0.1, "memory": {"arena_bytes": 900},
                          "verification": {"calibration": {"max_abs_diff_lsb": 0},
                                           "held_out": {"max_abs_diff_lsb": 1}}},
                    "ethos-u": {"artifact": "x.tflite", "size_bytes": 10, "latency_ms": None,
                                "sqnr_db_vs_float": None, "verification": "not run"}},
        "refused_targets": {"tvm": [f"Op '{HOSTILE}': not supported"]},
    }
    report.update(over)
    return report


def small_extras():
    sim_layers = [
        {"name": HOSTILE, "op": "QConv", "kind": "conv", "cycles": 100.0, "macs": 6400,
         "bound": "compute", "mac_utilization": 0.5, "intensity_macs_per_offchip_byte": 64.0,
         "energy_pj": {"mac": 10.0, "sram": 20.0, "offchip": 30.0, "total": 60.0}},
        {"name": "flat", "op": "Reshape", "kind": "alias", "cycles": 0.0, "macs": 0,
         "intensity_macs_per_offchip_byte": None, "energy_pj": {}},
        {"name": "fc", "op": "QGemm", "kind": "matmul", "cycles": 50.0, "macs": 500,
         "bound": "memory:flash", "mac_utilization": 0.1,
         "intensity_macs_per_offchip_byte": 1.0,
         "energy_pj": {"mac": 1.0, "sram": 2.0, "offchip": 40.0, "total": 43.0}}]
    return {
        "memory": {"layer_by_layer": {"steps": [HOSTILE, "fc", "(outputs)"],
                                      "live_bytes": [800, 120, 16]}, "run": None},
        "profile": {"targets": {"c": {"unit": "cpu_ns", "source": "measured",
                                      "clock": "thread CPU time, ns", "total": {"runs": 3},
                                      "layers": [{"name": HOSTILE, "op": "QConv",
                                                  "median": 5000, "p90": 6000, "share": 0.8},
                                                 {"name": "fc", "op": "QGemm", "median": 900,
                                                  "p90": 950, "share": 0.2}]}}},
        "npu_sim": {"target": "npu", "layers": sim_layers, "peak_macs_per_cycle": 128.0,
                    "machine_balance_macs_per_offchip_byte": 128.0, "clock_hz": 5e8,
                    "energy_table": "t", "total": {"cycles": 150.0}},
    }


def test_every_plot_whose_data_is_given_and_only_those():
    page = parse(render_html(small_report(), small_extras()))
    assert list(page.plots) == ["sqnr", "memory", "latency-c", "npu-cycles", "npu-energy",
                                "roofline"]
    assert all(page.titles.get(p) for p in page.plots), page.titles
    bgs = [p["bg"] for p in page.plots.values()]
    assert len(set(bgs)) == len(bgs)  # each plot its own background: the screenshot test's key
    none = parse(render_html(small_report(quantization={}), {}))
    assert none.plots == {}
    only_sim = parse(render_html(small_report(), {"npu_sim": small_extras()["npu_sim"]}))
    assert list(only_sim.plots) == ["sqnr", "npu-cycles", "npu-energy", "roofline"]


def test_names_from_the_model_are_escaped_and_nothing_is_fetched():
    page = render_html(small_report(), small_extras())
    assert_self_contained(page)
    assert "<b>" not in page and "<model>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co" in page
    assert "r&lt;b&gt;&amp;amp;" in page  # a literal '&amp;' in a name stays literal
    p = parse(page)
    assert "script" not in p.tags and "b" not in p.tags


def test_rendering_is_pure_and_deterministic():
    a = render_html(small_report(), small_extras())
    assert a == render_html(json.loads(json.dumps(small_report())),
                            json.loads(json.dumps(small_extras())))
    assert "inf" in a  # the exact (infinite SQNR) layer is marked, not dropped


# -- on an exported model (compiles the C library: backend) -----------------------------------

@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    d = tmp_path_factory.mktemp("report_html")
    path, _ = small_cnn(d, stem=HOSTILE, stem_out=HOSTILE_VALUE)
    res = run_cli("export", path, "--calib", d / "cal.npy", "-o", d / "out", "--target",
                  "c,npu-sim", "--eval-samples", "2")
    assert res.returncode == 0, res.stderr
    out = d / "out"
    api.profile(out, ["c"], runs=3)
    return out


EXPECTED = ["sqnr", "memory", "latency-c", "npu-cycles", "npu-energy", "roofline"]


@pytest.mark.backend
def test_export_folder_gives_every_plot_escaped_and_byte_identical(exported):
    path = write_html(exported)
    assert path == str(exported / "report.html")
    page = open(path, encoding="utf-8").read()
    p = parse(page)
    assert [n for n in p.plots if n != "memory-run"] == EXPECTED
    assert_self_contained(page)
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co" in page
    assert "r&lt;b&gt;&amp;amp;" in page
    assert "script" not in p.tags and "b" not in p.tags
    # the memory plot has one bar per layer-by-layer step, as plan-memory --steps lists them
    steps = api.plan_memory(api.load_model(exported / "model.eqm")).layer_by_layer.steps
    report, extras = collect(exported)
    assert extras["memory"]["layer_by_layer"]["steps"] == steps
    assert render_html(report, extras) == page
    assert open(write_html(exported), encoding="utf-8").read() == page


# -- in a real browser ------------------------------------------------------------------------

def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        exe = shutil.which(name)
        if exe:
            return exe
    pytest.skip("no chromium on PATH (Debian: apt-get install chromium): the browser check "
                "of report.html is skipped")


def chromium(exe: str, url: str, tmp, tag: str):
    """Load ``url`` headless: (screenshot, the page's own network requests from the net log).
    DNS resolves nothing and the proxy is a closed port, so a request could not leave anyway;
    the net log says whether one was attempted. Chromium's own background fetches (component
    updates, sign-in) carry no page origin and are not the page's."""
    shot, netlog = tmp / f"{tag}.png", tmp / f"{tag}.netlog.json"
    cmd = [exe, "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars",
           "--force-device-scale-factor=1", "--force-color-profile=srgb",
           f"--user-data-dir={tmp / (tag + '.profile')}", "--no-first-run",
           "--disable-background-networking", "--disable-component-update",
           "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9",
           f"--log-net-log={netlog}", f"--screenshot={shot}", "--window-size=1200,3000", url]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert res.returncode == 0 and shot.exists(), res.stderr[-2000:]
    log = json.loads(netlog.read_text())
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    requests = [e["params"] for e in log["events"]
                if e["type"] == start and "url" in e.get("params", {})]
    by_page = [r["url"] for r in requests if r.get("initiator") != "not an origin"
               or "file://" in r.get("network_isolation_key", "")]
    return shot, by_page


def undrawn_plots(shot, plots: dict[str, dict[str, str]]) -> dict[str, str]:
    """Plot -> what is wrong with it on the screenshot: not there, not at its declared size,
    blank, or axes without data marks."""
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("RGB"))
    bad = {}
    for name, svg in plots.items():
        # each plot's background is its own color: its pixels give the plot's place on screen
        # (the rows and columns holding >= 20 of them: an antialiased edge elsewhere may blend
        # to the same color in a stray pixel; a plot's own edges are bare background)
        rgb = tuple(int(svg["bg"][i:i + 2], 16) for i in (1, 3, 5))
        key = (pixels == rgb).all(axis=2)
        rows, cols = np.nonzero(key.sum(axis=1) >= 20)[0], np.nonzero(key.sum(axis=0) >= 20)[0]
        if not len(rows) or not len(cols):
            bad[name] = f"not on the {pixels.shape[1]}x{pixels.shape[0]} screenshot"
            continue
        x0, x1, y0, y1 = cols.min(), cols.max() + 1, rows.min(), rows.max() + 1
        w, h = int(svg["width"]), int(svg["height"])
        if abs((x1 - x0) - w) > 2 or abs((y1 - y0) - h) > 2:
            bad[name] = f"drawn {x1 - x0}x{y1 - y0}, declared {w}x{h}"
            continue
        box = pixels[y0:y1, x0:x1]
        ink = (box != rgb).any(axis=2).mean()
        # data marks are colored, text, axes and grid grey; the legend is in the top 30 px
        area = box[30:].reshape(-1, 3).astype(int)
        marks = int((area.max(axis=1) - area.min(axis=1) > 60).sum())
        if ink < 0.02:
            bad[name] = f"blank ({ink:.1%} drawn)"
        elif marks < 50:
            bad[name] = f"axes but no data marks ({marks} colored pixels)"
    return bad


@pytest.mark.backend
def test_in_chromium_every_plot_is_drawn_and_nothing_is_fetched(exported, tmp_path):
    exe = find_chromium()
    page_path = write_html(exported)
    page = open(page_path, encoding="utf-8").read()
    plots = parse(page).plots
    # the checks see what they look for: the same page with the energy plot's bars taken out,
    # loading two remote files
    a, b = page.index('<svg data-plot="npu-energy"'), page.index('data-plot="roofline"')
    control = (page[:a] + re.sub(r"<g>.*?</g>", "", page[a:b]) + page[b:]).replace(
        "<body>", '<body><img src="http://example.invalid/a.png">'
        '<link rel="stylesheet" href="https://example.invalid/b.css">')
    (tmp_path / "control.html").write_text(control, encoding="utf-8")
    shot, fetched = chromium(exe, (tmp_path / "control.html").as_uri(), tmp_path, "control")
    assert sorted(fetched) == ["http://example.invalid/a.png", "https://example.invalid/b.css"]
    assert list(undrawn_plots(shot, plots)) == ["npu-energy"]

    shot, fetched = chromium(exe, f"file://{page_path}", tmp_path, "report")
    assert fetched == [], f"report.html requested {fetched}"
    assert undrawn_plots(shot, plots) == {}


def test_find_chromium_skips_with_a_reason(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(pytest.skip.Exception, match="no chromium"):
        find_chromium()


def test_page_without_folder_data_is_refused(tmp_path):
    from edgeq.ir.graph import EdgeqError

    with pytest.raises(EdgeqError, match="report.json"):
        write_html(tmp_path)
    assert re.search(r"No per-layer data", render_html({"model": "m"}, {}))
