"""The regression results store: one SQLite file (default ``runs/results.db``).

Tables: ``runs`` (one per ``mxdv regress``: suite, seed base, git commit, versions, times),
``jobs`` (unit variant, strategy, test, seed, simulator, RTL hash, status, wall time,
transactions, coverage), ``bin_hits`` (per job and coverage bin) and ``failures`` (per failed
job: bucket signature, message, replay command, wave file). Mutation campaigns
(``mxdv mutate``) go to ``mutate_campaigns`` (one row per campaign: unit, settings, counts),
``mutate_scores`` (per campaign and strategy: mutants killed of those simulated) and
``mutants`` (per campaign and mutant: where, class, fate, Yosys verdict, which strategies
killed it).

Every finished job is written in its own transaction as soon as it completes, so an
interrupted or crashed regression keeps every job that finished. A file that is not a
results database raises :class:`ResultsDBError` naming the file and what to do.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import time
from pathlib import Path

from mxdv import REPO_ROOT

DEFAULT_DB = Path("runs") / "results.db"
SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    started TEXT NOT NULL,          -- UTC, ISO 8601
    finished TEXT,                  -- NULL while running or when interrupted
    suite TEXT NOT NULL,
    seed_base INTEGER NOT NULL,
    git_commit TEXT,
    versions TEXT,                  -- JSON: python packages and simulators
    out_dir TEXT,
    status TEXT NOT NULL DEFAULT 'running'   -- running | finished | interrupted
);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    name TEXT NOT NULL,
    unit TEXT NOT NULL,             -- unit variant, e.g. systolic_array:C=8,R=8
    strategy TEXT NOT NULL,
    test TEXT NOT NULL,
    seed INTEGER NOT NULL,
    sim TEXT NOT NULL,
    budget INTEGER,
    rtl_hash TEXT,                  -- hash of the unit's RTL sources (flake detection)
    status TEXT NOT NULL,           -- pass | fail | error | timeout
    wall_s REAL,
    transactions INTEGER,
    coverage_percent REAL,
    closure_txns INTEGER,
    run_dir TEXT,
    finished TEXT
);
CREATE INDEX IF NOT EXISTS jobs_unit ON jobs(unit);
CREATE TABLE IF NOT EXISTS bin_hits (
    job_id INTEGER NOT NULL REFERENCES jobs(id),
    bin TEXT NOT NULL,
    hits INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS bin_hits_job ON bin_hits(job_id);
CREATE TABLE IF NOT EXISTS failures (
    job_id INTEGER NOT NULL REFERENCES jobs(id),
    signature TEXT NOT NULL,
    message TEXT,
    replay TEXT,
    waves TEXT
);
CREATE TABLE IF NOT EXISTS mutate_campaigns (
    id INTEGER PRIMARY KEY,
    recorded TEXT NOT NULL,         -- UTC, ISO 8601
    unit TEXT NOT NULL,             -- unit variant
    git_commit TEXT,
    sim TEXT,
    seed INTEGER,
    budget_scale REAL,
    strategies TEXT,                -- JSON list
    settings TEXT,                  -- JSON: the campaign's settings
    generated INTEGER, sampled INTEGER, stillborn INTEGER, equivalent INTEGER, unknown INTEGER,
    simulated INTEGER, killed INTEGER, survived INTEGER, errors INTEGER,
    kill_percent REAL,
    partial TEXT,                   -- NULL, or how far an interrupted campaign got
    out_dir TEXT
);
CREATE TABLE IF NOT EXISTS mutate_scores (
    campaign_id INTEGER NOT NULL REFERENCES mutate_campaigns(id),
    strategy TEXT NOT NULL,
    killed INTEGER NOT NULL,
    simulated INTEGER NOT NULL,
    score REAL,
    budget INTEGER,
    txns_to_kill_median REAL
);
CREATE TABLE IF NOT EXISTS mutants (
    campaign_id INTEGER NOT NULL REFERENCES mutate_campaigns(id),
    mutant TEXT NOT NULL,           -- mutant id (as in report.md)
    file TEXT, line INTEGER, class TEXT,
    status TEXT NOT NULL,           -- stillborn | equivalent | killed | survived | error
    equivalence TEXT,               -- Yosys verdict, NULL when not checked
    killed_by TEXT                  -- JSON: {strategy: outcome} of the strategies that killed it
);
CREATE INDEX IF NOT EXISTS mutants_campaign ON mutants(campaign_id);
"""


class ResultsDBError(RuntimeError):
    """The results database cannot be used (not SQLite, corrupt, unwritable)."""


def rtl_hash(source_paths) -> str:
    h = hashlib.sha256()
    for p in source_paths:
        p = Path(p)
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class ResultsDB:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(str(self.path), timeout=30)
            self.conn.row_factory = sqlite3.Row
            with self.conn:
                self.conn.executescript(SCHEMA)
                self.conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            check = self.conn.execute("PRAGMA quick_check").fetchone()[0]
        except (sqlite3.DatabaseError, OSError) as exc:
            raise ResultsDBError(
                f"--db {self.path}: not a usable results database ({exc}); move the file away "
                f"(nothing in it is changed) or point --db at another file") from exc
        if check != "ok":
            raise ResultsDBError(f"--db {self.path}: database is corrupt (quick_check: {check}); "
                                 f"move it away or point --db at another file")

    def close(self) -> None:
        self.conn.close()

    # -- writing --------------------------------------------------------------------------
    def start_run(self, suite: str, seed_base: int, out_dir: str, versions: dict) -> int:
        with self.conn:
            cur = self.conn.execute(
                "INSERT INTO runs (started, suite, seed_base, git_commit, versions, out_dir) VALUES (?,?,?,?,?,?)",
                (_now(), suite, seed_base, git_commit(), json.dumps(versions), out_dir))
        return int(cur.lastrowid)

    def finish_run(self, run_id: int, status: str = "finished") -> None:
        with self.conn:
            self.conn.execute("UPDATE runs SET finished=?, status=? WHERE id=?", (_now(), status, run_id))

    def add_job(self, run_id: int, result: dict, status: str, rtl: str | None,
                hits: dict[str, int] | None = None, failure: dict | None = None) -> int:
        """One finished job, its bin hits and its failure, in one transaction."""
        job = result["job"]
        name = f"{job['unit']}.{job['strategy']}.{job['test']}.s{job['seed']}"
        with self.conn:
            cur = self.conn.execute(
                "INSERT INTO jobs (run_id, name, unit, strategy, test, seed, sim, budget, rtl_hash, status, wall_s,"
                " transactions, coverage_percent, closure_txns, run_dir, finished) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (run_id, name, job["unit"], job["strategy"], job["test"], job["seed"], job["sim"], job.get("budget"),
                 rtl, status, result.get("job_wall_s"), result.get("transactions"), result.get("coverage_percent"),
                 result.get("closure_txns"), result.get("run_dir"), _now()))
            job_id = int(cur.lastrowid)
            if hits:
                self.conn.executemany("INSERT INTO bin_hits VALUES (?,?,?)",
                                      [(job_id, b, int(n)) for b, n in hits.items()])
            if failure:
                self.conn.execute("INSERT INTO failures VALUES (?,?,?,?,?)",
                                  (job_id, failure["signature"], failure.get("message"), failure.get("replay"),
                                   failure.get("waves")))
        return job_id

    def set_waves(self, job_id: int, waves: str) -> None:
        with self.conn:
            self.conn.execute("UPDATE failures SET waves=? WHERE job_id=?", (waves, job_id))

    def add_mutation_campaign(self, summary: dict, campaign: dict) -> int:
        """One finished (or interrupted) ``mxdv mutate`` campaign: its counts
        (``mxdv.mutate.report.summarize``), per-strategy scores and every mutant's fate, in
        one transaction. Returns the campaign's id."""
        st = campaign["settings"]
        with self.conn:
            cur = self.conn.execute(
                "INSERT INTO mutate_campaigns (recorded, unit, git_commit, sim, seed, budget_scale, strategies,"
                " settings, generated, sampled, stillborn, equivalent, unknown, simulated, killed, survived,"
                " errors, kill_percent, partial, out_dir) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (_now(), summary["unit"], git_commit(), st.get("sim"), st.get("seed"), st.get("budget_scale"),
                 json.dumps(list(st.get("strategies", []))), json.dumps(st, default=str),
                 summary["generated"], summary["sampled"], summary["stillborn"], summary["equivalent"],
                 summary["unknown"], summary["simulated"], summary["killed"], summary["survived"],
                 summary["errors"], summary["kill_percent"], campaign.get("partial"), st.get("out")))
            cid = int(cur.lastrowid)
            self.conn.executemany(
                "INSERT INTO mutate_scores VALUES (?,?,?,?,?,?,?)",
                [(cid, name, sc["killed"], sc["of"], sc["score"], sc.get("budget"), sc.get("txns_to_kill_median"))
                 for name, sc in summary["per_strategy"].items()])
            rows = []
            for r in campaign["records"]:
                m = r["mutant"]
                killers = {k: v["outcome"] for k, v in r.get("jobs", {}).items() if v["outcome"] != "survived"}
                rows.append((cid, m["id"], m.get("file"), m.get("line"), m.get("cls"), r["status"],
                             r.get("equivalence", {}).get("status"), json.dumps(killers)))
            self.conn.executemany("INSERT INTO mutants VALUES (?,?,?,?,?,?,?,?)", rows)
        return cid

    # -- reading --------------------------------------------------------------------------
    def mutation_campaigns(self, unit: str | None = None) -> list[dict]:
        """Recorded mutation campaigns (oldest first), each with its ``scores`` per strategy."""
        sql, args = "SELECT * FROM mutate_campaigns", ()
        if unit:
            sql, args = sql + " WHERE unit=? OR unit LIKE ?", (unit, unit + ":%")
        out = []
        for row in self.conn.execute(sql + " ORDER BY id", args).fetchall():
            c = dict(row)
            c["scores"] = {r["strategy"]: dict(r) for r in self.conn.execute(
                "SELECT * FROM mutate_scores WHERE campaign_id=? ORDER BY rowid", (c["id"],))}
            out.append(c)
        return out

    def mutants(self, campaign_id: int, status: str | None = None) -> list[dict]:
        sql, args = "SELECT * FROM mutants WHERE campaign_id=?", [campaign_id]
        if status:
            sql += " AND status=?"
            args.append(status)
        return [dict(r) for r in self.conn.execute(sql + " ORDER BY rowid", args)]

    def runs(self, unit: str | None = None, limit: int | None = None) -> list[dict]:
        sql = "SELECT * FROM runs"
        args: tuple = ()
        if unit:
            sql += " WHERE id IN (SELECT run_id FROM jobs WHERE unit=? OR unit LIKE ?)"
            args = (unit, unit + ":%")
        sql += " ORDER BY id DESC" + (f" LIMIT {int(limit)}" if limit else "")
        return [dict(r) for r in self.conn.execute(sql, args)][::-1]

    def jobs(self, run_id: int | None = None, unit: str | None = None) -> list[dict]:
        sql, where, args = "SELECT * FROM jobs", [], []
        if run_id is not None:
            where.append("run_id=?")
            args.append(run_id)
        if unit:
            where.append("(unit=? OR unit LIKE ?)")
            args += [unit, unit + ":%"]
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [dict(r) for r in self.conn.execute(sql + " ORDER BY id", args)]

    def accumulated_hits(self, variant: str, up_to_run: int | None = None) -> dict[str, int]:
        """Bin hits of one unit variant summed over every job of every run (up to a run)."""
        sql = ("SELECT b.bin, SUM(b.hits) FROM bin_hits b JOIN jobs j ON j.id=b.job_id WHERE j.unit=?"
               + (" AND j.run_id<=?" if up_to_run is not None else "") + " GROUP BY b.bin")
        args = (variant,) if up_to_run is None else (variant, up_to_run)
        return {b: int(n) for b, n in self.conn.execute(sql, args)}

    def run_hits(self, variant: str, run_id: int) -> dict[str, int]:
        sql = ("SELECT b.bin, SUM(b.hits) FROM bin_hits b JOIN jobs j ON j.id=b.job_id "
               "WHERE j.unit=? AND j.run_id=? GROUP BY b.bin")
        return {b: int(n) for b, n in self.conn.execute(sql, (variant, run_id))}

    def failures(self, run_id: int | None = None, unit: str | None = None) -> list[dict]:
        sql = ("SELECT f.*, j.name, j.unit, j.seed, j.run_id, j.strategy, j.status FROM failures f "
               "JOIN jobs j ON j.id=f.job_id")
        where, args = [], []
        if run_id is not None:
            where.append("j.run_id=?")
            args.append(run_id)
        if unit:
            where.append("(j.unit=? OR j.unit LIKE ?)")
            args += [unit, unit + ":%"]
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [dict(r) for r in self.conn.execute(sql + " ORDER BY j.id", args)]

    def flakes(self, unit: str | None = None) -> list[dict]:
        """Seeds that both passed and failed on the same RTL (same unit variant, strategy, test,
        simulator, seed and RTL hash): flaky, not a real pass or a real failure."""
        sql = ("SELECT unit, strategy, test, sim, seed, rtl_hash, SUM(status='pass') AS passes, "
               "SUM(status!='pass') AS fails, GROUP_CONCAT(DISTINCT run_id) AS runs FROM jobs "
               + ("WHERE unit=? OR unit LIKE ? " if unit else "")
               + "GROUP BY unit, strategy, test, sim, seed, rtl_hash HAVING passes>0 AND fails>0 ORDER BY unit, seed")
        args = (unit, unit + ":%") if unit else ()
        return [dict(r) for r in self.conn.execute(sql, args)]

    def run_by_date(self, date: str) -> dict | None:
        """The last run started on a UTC date (``YYYY-MM-DD``) or with an exact id."""
        if date.isdigit():
            row = self.conn.execute("SELECT * FROM runs WHERE id=?", (int(date),)).fetchone()
        else:
            row = self.conn.execute("SELECT * FROM runs WHERE started LIKE ? ORDER BY id DESC LIMIT 1",
                                    (date + "%",)).fetchone()
        return dict(row) if row else None
