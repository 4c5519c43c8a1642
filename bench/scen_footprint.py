"""Scenarios about the product's footprint: the cold start of dist/cutelive and the widget's
weight as served. Each function takes the run's ``harness.Harness`` as ``bench``."""

from __future__ import annotations

import gzip
import http.client
import subprocess
import sys

from clients import UA
from harness import Harness
from infra import BENCH, ROOT, Proc, children, free_port, proc_stat

#: PyInstaller from this Python's environment (its script need not be on PATH).
PYINSTALLER = [sys.executable, "-m", "PyInstaller"]

# -- scenario: cold start and widget weight -----------------------------------------------


async def s_coldstart(bench: Harness) -> None:
    z = bench.z
    exe = ROOT / "dist" / "cutelive"
    sc = "cold start (dist/cutelive)"
    sources = [
        ROOT / "cutelive.py",
        ROOT / "build.spec",
        *(ROOT / "livesupport").rglob("*.py"),
        *(ROOT / "assets").rglob("*"),
    ]
    stale = exe.exists() and max(p.stat().st_mtime for p in sources) > exe.stat().st_mtime
    if not exe.exists() or stale:
        why = "older than the sources" if stale else "missing"
        if bench.mode == "smoke":
            bench.row(sc, "first HTTP 200", f"skipped: dist/cutelive {why} (smoke does not build)")
            return
        bench.log(f"  dist/cutelive is {why}: building it with pyinstaller")
        subprocess.run(
            [*PYINSTALLER, "--noconfirm", "--log-level", "WARN", "build.spec"],
            cwd=ROOT,
            check=True,
        )
    times, rsss = [], []
    d = bench.work / "cold"
    d.mkdir()
    for _ in range(z["cold_runs"]):
        port = free_port()
        p = Proc(
            "exe",
            [str(exe), "serve", "--port", str(port)],
            port,
            bench.work / "cold.log",
            "/api/status",
            cwd=d,
        )
        await p.start()
        times.append(p.ready_s)
        await bench.pause(2)
        rss = sum(proc_stat(q).get("VmRSS", 0) for q in [p.pid] + children(p.pid))
        rsss.append(rss)
        await p.stop()
    # baselines to their first 200: bare Tornado frozen the same way (bench/baseline.spec),
    # and under python3
    frozen = BENCH / "dist" / "baseline"
    sources = (BENCH / "baseline.py", BENCH / "baseline.spec")
    if not frozen.exists() or max(f.stat().st_mtime for f in sources) > frozen.stat().st_mtime:
        bench.log("  building the frozen baseline with pyinstaller")
        subprocess.run(
            [*PYINSTALLER, "--noconfirm", "--log-level", "WARN", "--distpath", "dist"]
            + ["--workpath", str(bench.work / "pyi"), "baseline.spec"],
            cwd=BENCH,
            check=True,
        )
    ftimes = []
    for _ in range(z["cold_runs"]):
        port = free_port()
        db = bench.work / "cold-baseline.db"
        cmd = [str(frozen), "--port", str(port), "--db", str(db)]
        fb = await Proc("frozen", cmd, port, bench.work / "cold.log", "/status", cwd=d).start()
        ftimes.append(fb.ready_s)
        await fb.stop()
    port = free_port()
    b = await bench.baseline(port=port).start()
    await bench.pause(2)
    brss = b.stat()["VmRSS"]
    await b.stop()
    ours = times[0] * 1000
    fbase = min(ftimes) * 1000
    bench.details["coldstart"] = dict(
        first_200_ms=[round(t * 1000) for t in times],
        rss_kb=rsss,
        frozen_baseline_ms=[round(t * 1000) for t in ftimes],
        python_baseline_ms=round(b.ready_s * 1000),
        baseline_rss_kb=brss,
    )
    bench.row(
        sc,
        "first HTTP 200, ms (empty dir)",
        round(ours),
        "≤ 2 × baseline; ≤ 500 where it is ≤ 250",
        ours <= 2 * fbase and (fbase > 250 or ours <= 500),
        round(fbase),
        round(ours / fbase, 2),
        None,
        None,
        "baseline: bench/baseline.py frozen as build.spec freezes cutelive (fastest of "
        + ", ".join(f"{t * 1000:.0f}" for t in ftimes)
        + f"); under python3 {b.ready_s * 1000:.0f}; ours, runs: "
        + ", ".join(f"{t * 1000:.0f}" for t in times),
    )
    mb = rsss[0] / 1024
    bench.row(
        sc,
        "idle RSS, MB (bootloader + Python)",
        round(mb, 1),
        "≤ 60",
        mb <= 60,
        round(brss / 1024, 1),
        round(mb / (brss / 1024), 2),
        None,
        None,
    )


async def s_widget(bench: Harness, port: int | None = None) -> None:
    sc = "widget weight (gzip, as served)"
    own = None
    if port is None:
        port = free_port()
        own = await bench.server(port=port).start()

    def get(path: str) -> tuple[int, bool]:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", path, headers={"Accept-Encoding": "gzip", "User-Agent": UA})
        r = c.getresponse()
        body = r.read()
        if r.status != 200:
            raise RuntimeError(f"GET {path}: HTTP {r.status}")
        gz = r.getheader("Content-Encoding") == "gzip"
        c.close()
        return (len(body) if gz else len(gzip.compress(body))), gz

    loader, lgz = get("/widget.js")
    # Everything the widget can load, as tests/test_widget_budget.py counts it: every
    # module beside the loader (chat.js loads files.js itself), the stylesheet, /chat.
    folder = ROOT / "assets" / "widget"
    parts = [f"/assets/widget/{p.name}" for p in sorted(folder.glob("*.js"))]
    parts = [p for p in parts if not p.endswith("/widget.js")]
    parts += ["/assets/widget/chat.css", "/chat"]
    sizes = {"/widget.js": loader}
    for path in parts:
        sizes[path] = get(path)[0]
    before = loader + get("/api/widget/config")[0] + get("/assets/img/offline.svg")[0]
    # Files the loader fetches once the page is idle, before any click (the realtime
    # connection for presence and invitations), as far as widget.js says so.
    idle = [p for p in parts if p.rsplit("/", 1)[1] in ("stream.js", "presence.js")]
    idle_bytes = sum(sizes[p] for p in idle)
    if own:
        await own.stop()
    total = sum(sizes.values())
    bench.details["widget"] = dict(sizes=sizes, served_gzip=lgz, before_click=before)
    bench.row(
        sc,
        "loader /widget.js, bytes",
        loader,
        "≤ 4,096",
        loader <= 4096,
        note=f"with the config and button image {before:,} B; plus "
        f"{' + '.join(p.rsplit('/', 1)[1] for p in idle)} loaded when the page is idle: "
        f"{before + idle_bytes:,} B before the click",
    )
    bench.row(
        sc,
        "whole widget, bytes",
        total,
        "≤ 30,720",
        total <= 30720,
        note=" + ".join(f"{p.rsplit('/', 1)[1]} {s:,}" for p, s in sizes.items()),
    )
