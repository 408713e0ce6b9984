"""The nightly regression end to end on Icarus (fast builds): two nights with fresh seeds,
history and accumulated coverage, a reproduced night, JUnit properties, a planted bug as one
bucket with waves and an exact replay, the per-job wall-clock limit, a killed Dask worker,
an unreachable scheduler, Ctrl-C."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from mxdv.bugs import apply_bug, bugs_of
from mxdv.waves import check_fst

pytestmark = pytest.mark.xdist_group("nightly")


def mxdv(*args, env=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "mxdv.cli", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


QUICK = ["regress", "--suite", "quick", "--units", "quantizer", "--sim", "icarus",
         "--strategies", "constrained,random", "--budget-scale", "0.5"]


@pytest.fixture(scope="module")
def nights(tmp_path_factory):
    root = tmp_path_factory.mktemp("nights")
    db = root / "results.db"
    runs = []
    for i, extra in enumerate([[], [], ["--seeds-from", "1", "--jobs", "1"]], 1):
        r = mxdv(*QUICK, "--db", str(db), "--out", str(root / f"n{i}"), *extra)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        runs.append((root / f"n{i}", r.stdout))
    return db, runs


def _summary(out: Path) -> dict:
    return {r["job"]["strategy"]: r for r in json.loads((out / "summary.json").read_text())}


def test_two_nights_have_fresh_seeds_history_and_accumulated_coverage(nights):
    db, runs = nights
    conn = sqlite3.connect(db)
    bases = [b for (b,) in conn.execute("SELECT seed_base FROM runs ORDER BY id")]
    assert len(bases) == 3 and bases[0] != bases[1], "each night draws fresh seeds"
    seeds = [sorted(s for (s,) in conn.execute("SELECT seed FROM jobs WHERE run_id=?", (i,))) for i in (1, 2)]
    assert seeds[0] == [bases[0]] * 2 and seeds[1] == [bases[1]] * 2
    h = mxdv("history", "--unit", "quantizer", "--db", str(db))
    assert h.returncode == 0, h.stderr
    rows = [ln for ln in h.stdout.splitlines() if ln.startswith("| ") and " quick " in ln]
    assert len(rows) == 3 and str(bases[0]) in rows[0] and str(bases[1]) in rows[1]
    night = [float(r.split("|")[10].strip(" %")) for r in rows]
    acc = [float(r.split("|")[11].strip(" %")) for r in rows]
    assert acc[0] == night[0] and acc[1] >= max(night[:2]) and acc[2] >= acc[1]
    assert "Coverage accumulated over nights" in (runs[1][0] / "closure.md").read_text()


def test_seeds_from_reproduces_a_night_on_one_worker(nights):
    _, runs = nights
    first, again = _summary(runs[0][0]), _summary(runs[2][0])
    for s in ("constrained", "random"):
        for key in ("transactions", "checked", "dropped", "mismatches", "coverage_percent", "holes", "history"):
            assert first[s][key] == again[s][key], (s, key)
    assert "LocalCluster, 2 worker" in runs[0][1] and "LocalCluster, 1 worker" in runs[2][1]


def test_junit_carries_seed_coverage_and_replay(nights):
    _, runs = nights
    cases = ET.parse(runs[0][0] / "junit.xml").getroot().findall("testcase")
    assert len(cases) == 2
    summary = {f"{r['job']['unit']}.{r['job']['strategy']}.{r['job']['test']}.s{r['job']['seed']}": r
               for r in json.loads((runs[0][0] / "summary.json").read_text())}
    for case in cases:
        props = {p.get("name"): p.get("value") for p in case.find("properties")}
        r = summary[case.get("name")]
        assert int(props["seed"]) == r["job"]["seed"] and props["replay"] == f"mxdv replay {r['run_dir']}"
        assert float(props["coverage_percent"]) == r["coverage_percent"] and props["status"] == "pass"


def test_progress_lines_show_done_total_failures_and_eta(nights):
    _, runs = nights
    lines = [ln for ln in runs[0][1].splitlines() if ln.strip().startswith("[")]
    assert [ln.split("]")[0].strip() for ln in lines] == ["[  1/2", "[  2/2"]
    assert all("failures 0" in ln and "ETA" in ln for ln in lines)


def test_planted_bug_is_one_bucket_with_waves_and_an_exact_replay(tmp_path):
    bug = next(b for b in bugs_of("quantizer") if b.name == "int4_sat_edge_8")
    rtl = apply_bug("quantizer", bug, tmp_path / "rtl")
    env = dict(os.environ, MXDV_RTL_ROOT=str(rtl), MXDV_BUILD_DIR=str(tmp_path / "build"))
    r = mxdv("regress", "--suite", "quick", "--units", "quantizer", "--sim", "icarus", "--strategies", "constrained",
             "--seeds", "2", "--stop-on-mismatch", "--db", str(tmp_path / "r.db"), "--out", str(tmp_path / "out"), env=env)
    assert r.returncode == 1, r.stdout[-3000:] + r.stderr[-2000:]
    buckets = [ln for ln in r.stdout.splitlines() if ln.startswith("  BUCKET ")]
    assert len(buckets) == 1 and "quantizer | mismatch | elems | value: 2 job(s)" in buckets[0]
    wave = tmp_path / "out" / "waves" / "bucket1" / "waves.fst"
    ok, note = check_fst(wave)
    assert ok, note
    conn = sqlite3.connect(tmp_path / "r.db")
    assert conn.execute("SELECT COUNT(*), COUNT(DISTINCT signature) FROM failures").fetchone() == (2, 1)
    assert conn.execute("SELECT waves FROM failures WHERE waves IS NOT NULL").fetchone()[0] == str(wave)
    replay = buckets[0].split("replay: ")[1].split(";")[0].split()
    assert replay[:2] == ["mxdv", "replay"]
    rep = mxdv("replay", replay[2], "--out", str(tmp_path / "replay"), env=dict(os.environ))
    assert rep.returncode == 1 and "reproduced   yes" in rep.stdout, rep.stdout + rep.stderr
    fixed = mxdv("replay", replay[2], "--rtl-root", "rtl", "--out", str(tmp_path / "fixed"))
    assert "status       pass" in fixed.stdout and "reproduced   NO" in fixed.stdout, fixed.stdout + fixed.stderr


def _spec(tmp_path, budget, timeout=None):
    return {"job": {"unit": "quantizer", "strategy": "random", "seed": 5, "budget": budget, "sim": "icarus",
                    "test": "StrategyRun", "options": {}, "stop_on_mismatch": False},
            "out": str(tmp_path), "plugins": [], "env": {}, "timeout_s": timeout, "stop_at_closure": False}


def _processes_mentioning(text: str) -> list[int]:
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and int(d.name) != os.getpid():
            try:
                if text in (d / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(d.name))
            except OSError:
                pass
    return pids


def test_a_job_past_its_wall_clock_limit_is_a_timeout_and_leaves_nothing_running(tmp_path):
    from mxdv.job_exec import execute_job

    t0 = time.monotonic()
    r = execute_job(_spec(tmp_path, 1_000_000, timeout=4))
    assert r["status"] == "timeout" and "wall-clock limit of 4s" in r["error"]
    assert time.monotonic() - t0 < 30
    assert _processes_mentioning(str(tmp_path)) == []


def test_a_killed_worker_reports_its_job_failed_and_the_others_finish(tmp_path):
    from mxdv.executors import DaskExecutor
    from mxdv.regress import _execute

    long, short = _spec(tmp_path / "long", 1_000_000), _spec(tmp_path / "short", 30)
    short["job"]["seed"] = 6
    with DaskExecutor(2) as ex:
        pids = ex.client.run(os.getpid)
        stream = _execute(ex, [long, short], 2)
        results = [next(stream)]  # the short job; the long one is still running
        assert results[0]["job"]["seed"] == 6 and results[0]["status"] == "pass"
        victim = [a for a, keys in ex.client.processing().items() if keys]
        assert len(victim) == 1
        os.kill(pids[victim[0]], signal.SIGKILL)
        results.append(next(stream))
    assert results[1]["job"]["seed"] == 5 and results[1]["status"] == "error"
    assert results[1]["error"].startswith("WorkerDied: KilledWorker")
    deadline = time.monotonic() + 10
    while _processes_mentioning(str(tmp_path / "long")) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _processes_mentioning(str(tmp_path / "long")) == [], "the job of the dead worker was ended too"


def test_unreachable_scheduler_is_named_and_nothing_is_recorded(tmp_path):
    r = mxdv(*QUICK, "--scheduler", "tcp://127.0.0.1:9", "--db", str(tmp_path / "r.db"), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "--scheduler tcp://127.0.0.1:9: cannot connect" in r.stderr, r.stderr[-2000:]
    assert sqlite3.connect(tmp_path / "r.db").execute("SELECT COUNT(*) FROM runs").fetchone() == (0,)


def test_ctrl_c_keeps_finished_jobs(tmp_path):
    db = tmp_path / "r.db"
    cmd = [sys.executable, "-m", "mxdv.cli", "regress", "--suite", "quick", "--units", "quantizer", "--sim", "icarus",
           "--strategies", "constrained,random", "--seeds", "3", "--jobs", "1", "--db", str(db), "--out", str(tmp_path / "o")]
    log = tmp_path / "regress.log"  # a file, not a pipe: nothing waits on the workers' copies of it
    # under pytest-xdist the worker ignores SIGINT and a child inherits that (Python then installs
    # no KeyboardInterrupt handler); a shell in a terminal gives the default disposition
    proc = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 300
    n = 0
    while time.monotonic() < deadline and n == 0:
        time.sleep(1)
        if db.exists():
            try:
                n = sqlite3.connect(db).execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
            except sqlite3.Error:
                pass
    assert n >= 1, "no job finished"
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole process group
    try:
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    out = log.read_text()
    assert proc.returncode == 130, out[-3000:]
    assert "interrupted: keeping the" in out
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT status FROM runs").fetchone() == ("interrupted",)
    kept = conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
    assert 1 <= kept < 6 and len(json.loads((tmp_path / "o" / "summary.json").read_text())) == kept


def _chromium(*args, timeout=120):
    import shutil

    exe = shutil.which("chromium")
    assert exe, "Debian's chromium is missing: make install (scripts/install_system.sh) installs it"
    return subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args],
                          capture_output=True, text=True, timeout=timeout)


def test_report_renders_in_headless_chromium(nights, tmp_path):
    import matplotlib.image
    import numpy as np

    _, runs = nights
    report = runs[1][0] / "report.html"
    text = report.read_text()
    assert "<svg" in text and "http://" not in text.split("<svg")[0], "self-contained: inline SVG, no fetched assets"
    shot = tmp_path / "shot.png"
    r = _chromium("--window-size=1280,2000", f"--screenshot={shot}", report.as_uri())
    assert shot.exists(), r.stderr[-2000:]
    img = matplotlib.image.imread(shot)[:, :, :3]
    assert img.shape[:2] == (2000, 1280)
    assert (img.min(axis=2) < 0.9).mean() > 0.02, "the page is not blank"

    def has_color(rgb, tol=0.1):  # only the closure curves use these colors on the page
        return int((np.abs(img - np.array(rgb) / 255).max(axis=2) < tol).sum())

    assert has_color((31, 119, 180)) > 50, "the constrained closure curve (blue) is drawn"
    assert has_color((214, 39, 40)) > 50, "the random closure curve (red) is drawn"
    dom = _chromium("--dump-dom", report.as_uri()).stdout
    for needle in ("mxdv regression report: suite quick", "Closure curves per strategy", "Coverage plan:",
                   "Failure buckets (0)", "Trend over nights", "RTL code coverage", "exp.clamped_low"):
        assert needle in dom, needle
    conn = sqlite3.connect(nights[0])
    bases = [str(b) for (b,) in conn.execute("SELECT seed_base FROM runs ORDER BY id LIMIT 2")]
    assert all(b in dom for b in bases), "the trend table lists both nights"
