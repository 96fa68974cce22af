"""How does Kiln grow from one host to many, and where does it stop? What each job and each worker costs
the shared Redis and PostgreSQL, measured; docs/scaling.md reads these figures.

Five measurements, each on private servers (a redis-server on a free port, a scratch PostgreSQL database
`kiln_bench_scale` on 127.0.0.1:5432, dropped after):

  per job      Redis commands (INFO commandstats: by command name, with the server's own time), bytes in
               and out (INFO stats) and database rows (pg_stat_user_tables, pg_stat_database) per job,
               apart for the publisher (N probe jobs published through Kiln's app by a `manage.py shell`,
               no worker running) and for the worker (worker-default started as kiln.conf starts it on
               that backlog, stopped once the jobs are done). A worker started and stopped on an empty
               queue for the same time is the baseline taken away: what is left is the jobs' own cost.
               The probe job's own counting (INCR, SETNX, SET) and this script's polling are taken away
               too. Commands run inside a Lua script are counted under their own names as well as EVAL.
               The lease lasts 6 s instead of 30 there: each job's tag is looked up by the lease's scans
               and prune the same number of times whatever the lifetime, and a short run sees it all.
  idle worker  what one idle worker (its lease, its fetch waits, Celery's heartbeats) costs Redis per second
  queued job   Redis memory (INFO memory used_memory) per job waiting in a queue, from the same publish
  scan         the recovery scan (broker/recovery.py dead_workers_recover and unowned_jobs_restore, and the
               fetch lists' fetch_lists_recover, which the worker whose turn it is runs every
               KILN_WORKER_DEAD_AFTER / 3 = 10 s) over 10, 100 and 1,000 live leases, alone and among
               100,000 other keys: the median time of several scans, Redis commands and server time per
               scan, and what one turn every 10 s plus every lease asking for it adds up to
  history      job-history writes on PostgreSQL as fast as 1, 2 and 4 processes can make them, through the
               Recorder the workers use (jobs/history.py, the rollups of metrics/store.py included): each
               process records a batch of FLUSH_AT jobs published (one write, as the web writes it), then
               started and succeeded (one write, as a worker's writer thread writes a short job), in jobs per
               minute against the target of 10,000

Exit status 1 when the history's best is under 10,000 jobs per minute. Needs PostgreSQL for the database
figures and the history; without it they are skipped and said so.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from bench.databases import scratch_databases  # noqa: E402 - after the path
from tests.support.probe_tasks import COUNT_KEY  # noqa: E402
from tests.support.processes import (  # noqa: E402
    RedisServer,
    running_workers,
    stack_environment,
    start_redis,
    wait_for,
)
from tests.support.stack import run_manage  # noqa: E402

TARGET_JOBS_PER_MINUTE = 10_000
PG_DATABASE = "kiln_bench_scale"
# KILN_WORKER_DEAD_AFTER_SECONDS of the per-job runs (it ships as 30): per_job says why.
SHORT_LEASE = 6
# What a job and a worker cost is a dict of measures: "redis:<command>" (calls), "usec:<command>" (the
# server's time in it), "redis.in" / "redis.out" (bytes), "redis.cpu" (seconds), "redis.memory" (bytes),
# "pg:<table>:ins|upd|del" (rows), "pg.commits". Deltas and rates are the same dicts, subtracted and scaled.
Usage = dict[str, float]


# -- reading the servers' own counters ------------------------------------------------------------------


def commandstats_usage(info: dict[str, Any]) -> Usage:
    """Calls and server microseconds by command from redis-py's parsed `INFO commandstats`
    ({"cmdstat_get": {"calls": 3, "usec": 12, ...}}). Redis 7 names subcommands `cmdstat_client|list`."""
    usage: Usage = {}
    for name, stats in info.items():
        if not name.startswith("cmdstat_") or not isinstance(stats, dict):
            continue
        command = name.removeprefix("cmdstat_")
        usage[f"redis:{command}"] = float(stats.get("calls", 0))
        usage[f"usec:{command}"] = float(stats.get("usec", 0))
    return usage


def usage_minus(after: Usage, before: Usage) -> Usage:
    return {key: after.get(key, 0.0) - before.get(key, 0.0) for key in after.keys() | before.keys()}


def usage_scaled(usage: Usage, factor: float) -> Usage:
    return {key: value * factor for key, value in usage.items()}


def redis_usage(server: RedisServer) -> Usage:
    client = server.client()
    usage = commandstats_usage(client.info("commandstats"))
    stats, cpu, memory = client.info("stats"), client.info("cpu"), client.info("memory")
    usage["redis.in"] = float(stats["total_net_input_bytes"])
    usage["redis.out"] = float(stats["total_net_output_bytes"])
    usage["redis.cpu"] = float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])
    usage["redis.memory"] = float(memory["used_memory"])
    client.close()
    return usage


def postgres_usage(database: str | None) -> Usage:
    """Rows written per table and transactions committed, from PostgreSQL's statistics. A backend reports
    its counts when it exits at the latest: read once the processes measured are gone."""
    if database is None:
        return {}
    import psycopg

    time.sleep(1.0)  # PostgreSQL 15 flushes a backend's pending statistics at most every second
    with psycopg.connect(host="127.0.0.1", user="postgres", dbname=database, autocommit=True) as conn:
        usage: Usage = {}
        for table, inserted, updated, deleted in conn.execute(
            "SELECT relname, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables"
        ):
            usage[f"pg:{table}:ins"], usage[f"pg:{table}:upd"] = float(inserted), float(updated)
            usage[f"pg:{table}:del"] = float(deleted)
        (commits,) = conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", (database,)
        ).fetchone()
        usage["pg.commits"] = float(commits)
    return usage


class Meter:
    """Snapshots of both servers' counters, less what taking a snapshot costs (INFO's own replies, the
    statistics query's own transaction), measured by two snapshots in a row."""

    def __init__(self, server: RedisServer, database: str | None) -> None:
        self.server, self.database = server, database
        first = self._raw()
        self.own_cost = usage_minus(self._raw(), first)
        self.own_cost["redis.memory"] = 0.0
        self.own_cost["redis.cpu"] = 0.0
        # Redis's own housekeeping (its timer runs 10 times a second) with no client at all.
        before, began = self._raw(), time.monotonic()
        time.sleep(3.0)
        self.idle_cpu = (self._raw()["redis.cpu"] - before["redis.cpu"]) / (time.monotonic() - began)

    def _raw(self) -> Usage:
        return {**redis_usage(self.server), **postgres_usage(self.database)}

    def read(self) -> Usage:
        return self._raw()

    def between(self, before: Usage, after: Usage) -> Usage:
        return usage_minus(usage_minus(after, before), self.own_cost)


# -- per job: publisher, worker, idle worker, queued memory ------------------------------------------------


def publish(environ: dict[str, str], jobs: int) -> None:
    """Publish through Kiln's own app in a Kiln process, its job history written as the web writes it."""
    code = (
        "from config.celery import app\n"
        "from jobs.history import recorder\n"
        f"for _ in range({jobs}):\n"
        "    app.send_task('probe.count', args=[0.0], queue='default', ignore_result=True)\n"
        "recorder.flush()\n"
    )
    result = run_manage(environ, "shell", "-c", code, timeout=600)
    assert result.returncode == 0, result.stderr


def probe_calls(environ: dict[str, str], jobs: int) -> None:
    code = f"from tests.support.probe_tasks import count\nfor _ in range({jobs}):\n    count.run(0.0)\n"
    result = run_manage(environ, "shell", "-c", code, timeout=600)
    assert result.returncode == 0, result.stderr


def worker_run(
    server: RedisServer, environ: dict[str, str], meter: Meter, *, jobs: int, idle: float = 0.0
) -> tuple[Usage, float, Usage | None]:
    """worker-default from start to stop on the queue as it is: until `jobs` probe jobs are done, or for
    `idle` seconds. Returns its total usage, the seconds it ran, and (idle) its usage per second once settled."""
    client = server.client()
    polls = 0
    sessions = None  # PostgreSQL sessions open on the database, sampled at every poll
    peak_sessions = 0

    def done() -> bool:
        nonlocal polls, peak_sessions
        polls += 1
        if sessions is not None:
            (count,) = sessions.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (meter.database,),
            ).fetchone()
            peak_sessions = max(peak_sessions, count)
        return int(client.get(COUNT_KEY) or 0) >= jobs

    before = meter.read()
    began = time.monotonic()
    rate = None
    if meter.database and jobs:
        import psycopg

        sessions = psycopg.connect(host="127.0.0.1", user="postgres", dbname=meter.database, autocommit=True)
    with running_workers(("worker-default", environ)):
        if jobs:
            wait_for(done, timeout=600, interval=0.5, what=f"{jobs} probe jobs to finish")
            if sessions is not None:
                sessions.close()
        else:
            settle = 5.0  # its first lease renewal and scan, the start's own traffic, are over
            time.sleep(settle)
            settled = meter.read()
            time.sleep(idle)
            rate = usage_scaled(meter.between(settled, meter.read()), 1 / idle)
            rate["redis.cpu"] -= meter.idle_cpu
    seconds = time.monotonic() - began
    usage = meter.between(before, meter.read())
    usage["redis:get"] = usage.get("redis:get", 0.0) - polls
    if sessions is not None:
        usage["pg.commits"] -= polls  # each sample is a transaction of its own
        usage["pg.sessions"] = float(peak_sessions)
    client.close()
    return usage, seconds, rate


def per_job(server: RedisServer, environ: dict[str, str], meter: Meter, jobs: int, idle: float) -> dict:
    client = server.client()
    client.delete(COUNT_KEY, f"{COUNT_KEY}:first", f"{COUNT_KEY}:last")
    client.close()

    # The cost of a publishing process's start and end (Django, the app's connection), with no job.
    before = meter.read()
    publish(environ, 0)
    publish_fixed = meter.between(before, meter.read())

    before = meter.read()
    publish(environ, jobs)
    published = usage_minus(meter.between(before, meter.read()), publish_fixed)
    publisher = usage_scaled(published, 1 / jobs)

    # A job's delivery tag stays in its worker's owned set until the lease's next prune (every lease
    # lifetime), and each scan meanwhile (every third of one) looks it up again: the same lookups per job
    # whatever the lifetime, so a short one shows them in a short run.
    short_lease = {**environ, "KILN_WORKER_DEAD_AFTER_SECONDS": str(SHORT_LEASE)}
    busy, busy_seconds, _ = worker_run(server, short_lease, meter, jobs=jobs)
    # The baseline: the same worker on an empty queue for as long.
    baseline, _, _ = worker_run(server, short_lease, meter, jobs=0, idle=max(1.0, busy_seconds - 5.0))
    # What a worker costs while it waits, with the lease as it ships.
    _, _, idle_rate = worker_run(server, environ, meter, jobs=0, idle=idle)
    # The probe job's own work (a Redis connection of its own, its counting), measured by calling it in a
    # shell as often as the worker ran it, is not Kiln's.
    before = meter.read()
    probe_calls(environ, jobs)
    probe = usage_minus(meter.between(before, meter.read()), publish_fixed)
    worker = usage_minus(usage_minus(busy, baseline), probe)
    worker = usage_scaled(worker, 1 / jobs)
    return {
        "sessions": busy.get("pg.sessions"),
        "publisher": publisher,
        "worker": worker,
        "idle": idle_rate,
        "memory_per_job": published["redis.memory"] / jobs,
        "busy_seconds": busy_seconds,
    }


# -- the dead-worker scan ----------------------------------------------------------------------------------


def leases_seed(server: RedisServer, leases: int, other_keys: int) -> None:
    """`leases` live workers as the lease thread leaves them (a lease, an owned set holding the job it runs,
    its consumer's fetcher lease and fetch list), plus `other_keys` keys of other kinds."""
    from broker.recovery import ALIVE_PREFIX, OWNED_PREFIX
    from broker.transport import FETCH_LISTS, FETCHER_ALIVE_PREFIX, FETCHING_PREFIX

    client = server.client()
    client.flushall()
    pipe = client.pipeline(transaction=False)
    for index in range(leases):
        worker_id = f"default@kiln-{index}:{1000 + index}:{uuid.uuid4().hex[:8]}"
        fetcher_id = uuid.uuid4().hex
        pipe.set(ALIVE_PREFIX + worker_id, int(time.time()), ex=3600)
        pipe.sadd(OWNED_PREFIX + worker_id, str(uuid.uuid4()))
        pipe.set(FETCHER_ALIVE_PREFIX + fetcher_id, f"kiln-{index}:{1000 + index}", ex=3600)
        pipe.sadd(FETCH_LISTS, f"{FETCHING_PREFIX}{fetcher_id}:default")
    pipe.execute()
    for start in range(0, other_keys, 10_000):
        client.mset(
            {f"celery-task-meta-{uuid.uuid4()}": "{}" for _ in range(min(10_000, other_keys - start))}
        )
    client.close()


def scan_measure(
    server: RedisServer, meter: Meter, leases: int, other_keys: int, runs: int
) -> dict[str, float]:
    """The installation's scans, which one worker runs per scan interval (the one whose turn it is), and
    what every lease asking for the turn at each interval costs."""
    from broker.recovery import SCAN_TURN, dead_workers_recover, scan_turn_take, unowned_jobs_restore
    from broker.transport import fetch_lists_recover

    leases_seed(server, leases, other_keys)
    client = server.client()
    figures: dict[str, float] = {}
    client.set(SCAN_TURN, "another-worker", ex=3600)  # held: every request below is one that loses
    scans: dict[str, Callable[[], object]] = {
        # Every lease is alive and no job is unacknowledged: nothing to put back, so no app is needed.
        "dead": lambda: dead_workers_recover(None, client, scan_every=10, own_id=""),
        "fetch": lambda: fetch_lists_recover(client),
        "unowned": lambda: unowned_jobs_restore(None, client, older_than=90, scan_every=10),
        "turn": lambda: [scan_turn_take(client, holder="bench", scan_every=10) for _ in range(leases)],
    }
    for name, scan in scans.items():
        before = meter.read()
        scan()
        cost = meter.between(before, meter.read())
        times = []
        before = meter.read()
        for _ in range(runs):
            began = time.perf_counter()
            scan()
            times.append(time.perf_counter() - began)
        cpu = meter.between(before, meter.read())["redis.cpu"] - meter.idle_cpu * sum(times)
        figures[f"{name}.ms"] = statistics.median(times) * 1000
        figures[f"{name}.cpu_ms"] = max(cpu, 0.0) / runs * 1000
        figures[f"{name}.commands"] = sum(v for k, v in cost.items() if k.startswith("redis:"))
        figures[f"{name}.usec"] = sum(v for k, v in cost.items() if k.startswith("usec:"))
        figures[f"{name}.scan_calls"] = cost.get("redis:scan", 0.0)
    client.close()
    return figures


# -- history writes --------------------------------------------------------------------------------------


def writer_child(name: str, start_at: float, seconds: float) -> None:
    """In a fresh process whose DATABASE_URL names the database: record and write jobs until the window
    closes, as a publisher's and a worker's Recorder would; print how many jobs, in how long."""
    import django

    django.setup()
    from jobs.history import FLUSH_AT, JobEvent, Recorder, capped_arguments, now
    from jobs.models import Job

    recorder = Recorder()
    # The bench writes each batch itself when FLUSH_AT events are buffered, as the writer thread does when
    # it is woken by a full buffer; the thread's half-second flushes would only split the batches.
    recorder._ensure_thread = lambda: None  # type: ignore[method-assign]
    task, queue, worker = "thumbnails.tasks.rendition_generate", "high", f"high@{name}"
    time.sleep(max(0.0, start_at - time.time()))
    end = start_at + seconds
    jobs, number = 0, 0
    while time.time() < end:
        published = []
        for _ in range(FLUSH_AT):
            number += 1
            args, kwargs, truncated = capped_arguments([number], {})
            event = JobEvent(
                task_id=str(uuid.uuid4()),
                state=Job.State.QUEUED,
                attempt=1,
                task_name=task,
                queue=queue,
                args=args,
                kwargs=kwargs,
                args_truncated=truncated,
                published_at=now(),
            )
            recorder.record(event, counted="sent")
            published.append(event)
        recorder.flush()
        for sent in published:
            args, kwargs, truncated = capped_arguments(sent.args, {})
            fields = {"task_name": task, "queue": queue, "args": args, "kwargs": kwargs, "worker": worker}
            started = JobEvent(
                task_id=sent.task_id,
                state=Job.State.STARTED,
                attempt=1,
                published_at=sent.published_at,
                started_at=now(),
                **fields,
            )
            recorder.count("received", started)
            recorder.record(started, counted="started")
            recorder.record(
                JobEvent(
                    task_id=sent.task_id,
                    state=Job.State.SUCCEEDED,
                    attempt=1,
                    published_at=sent.published_at,
                    finished_at=now(),
                    **fields,
                ),
                counted="succeeded",
            )
        recorder.flush()
        if time.time() <= end:
            jobs += FLUSH_AT
    print(json.dumps({"jobs": jobs, "seconds": seconds}))


def writers_run(url: str, var_dir: Path, processes: int, seconds: float) -> float:
    """Jobs per minute written by `processes` writer children started together."""
    environ = {**os.environ, "DATABASE_URL": url, "DEBUG": "true", "KILN_VAR_DIR": str(var_dir)}
    start_at = time.time() + 8  # every child has set Django up by then
    children = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--child",
                f"writer-{index}",
                "--start-at",
                str(start_at),
                "--seconds",
                str(seconds),
            ],
            env=environ,
            stdout=subprocess.PIPE,
            text=True,
        )
        for index in range(processes)
    ]
    total = 0
    for child in children:
        out, _ = child.communicate(timeout=seconds + 120)
        assert child.returncode == 0, f"writer exited with {child.returncode}"
        total += json.loads(out.strip().splitlines()[-1])["jobs"]
    return total / seconds * 60


# -- printing ------------------------------------------------------------------------------------------


def commands_table(publisher: Usage, worker: Usage) -> None:
    commands = sorted(
        {key.removeprefix("redis:") for key in (*publisher, *worker) if key.startswith("redis:")},
        key=lambda command: -(publisher.get(f"redis:{command}", 0) + worker.get(f"redis:{command}", 0)),
    )
    print("(a script's inner commands are counted again under their names; server µs: inside the command)")
    print(f"{'command':<18}{'publisher':>11}{'worker':>9}{'total':>9}{'server µs':>11}")
    for command in commands:
        if command == "info":
            continue
        calls_p, calls_w = publisher.get(f"redis:{command}", 0), worker.get(f"redis:{command}", 0)
        if abs(calls_p) + abs(calls_w) < 0.05:
            continue
        usec = publisher.get(f"usec:{command}", 0) + worker.get(f"usec:{command}", 0)
        print(f"{command:<18}{calls_p:>11.2f}{calls_w:>9.2f}{calls_p + calls_w:>9.2f}{usec:>11.1f}")

    def total(usage: Usage, prefix: str) -> float:
        return sum(value for key, value in usage.items() if key.startswith(prefix) and key != f"{prefix}info")

    rows = (
        ("all commands", total(publisher, "redis:"), total(worker, "redis:"), "{:.1f}"),
        ("Redis CPU µs", publisher["redis.cpu"] * 1e6, worker["redis.cpu"] * 1e6, "{:.0f}"),
        ("bytes in", publisher["redis.in"], worker["redis.in"], "{:,.0f}"),
        ("bytes out", publisher["redis.out"], worker["redis.out"], "{:,.0f}"),
    )
    for label, p, w, style in rows:
        print(f"{label:<18}{style.format(p):>11}{style.format(w):>9}{style.format(p + w):>9}")


def database_table(publisher: Usage, worker: Usage) -> None:
    keys = sorted(
        {key for key in (*publisher, *worker) if key.startswith("pg")},
        key=lambda key: (key != "pg.commits", key),
    )
    keys = [key for key in keys if key != "pg.sessions"]
    print(f"{'rows or commits':<30}{'publisher':>11}{'worker':>9}{'total':>9}")
    for key in keys:
        p, w = publisher.get(key, 0), worker.get(key, 0)
        if abs(p) + abs(w) < 0.01:
            continue
        label = "transactions committed" if key == "pg.commits" else key.removeprefix("pg:").replace(":", " ")
        print(f"{label:<30}{p:>11.3f}{w:>9.3f}{p + w:>9.3f}")


PARTS = ("jobs", "scan", "history")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--parts",
        default=",".join(PARTS),
        help="which measurements to run, comma-separated: jobs (per job, idle worker, queued job), scan, history",
    )
    parser.add_argument("--jobs", type=int, default=3000, help="probe jobs for the per-job figures")
    parser.add_argument("--idle", type=float, default=20.0, help="seconds an idle worker is watched")
    parser.add_argument("--leases", default="10,100,1000", help="live worker leases for the scan")
    parser.add_argument("--other-keys", type=int, default=100_000, help="other keys beside the leases")
    parser.add_argument("--scan-runs", type=int, default=7)
    parser.add_argument("--writers", default="1,2,4", help="history writer processes, one run each")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each history run")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        writer_child(args.child, args.start_at, args.seconds)
        return 0
    parts = set(args.parts.split(","))
    if not parts <= set(PARTS):
        parser.error(f"--parts: choose among {', '.join(PARTS)}")

    status = 0
    jobs: dict = {}
    scans: dict[tuple[int, int], dict[str, float]] = {}
    writers: dict[int, float] = {}
    with (
        tempfile.TemporaryDirectory(prefix="kiln-bench-scale-") as tmp,
        scratch_databases(PG_DATABASE, Path(tmp)) as urls,
    ):
        workdir = Path(tmp)
        postgres = next((url for url in urls if url.startswith("postgres")), None)
        environ = {}
        if parts & {"jobs", "scan"}:
            server = start_redis(workdir / "redis")
            try:
                if "jobs" in parts:
                    environ = stack_environment(workdir / "var", server.url, DATABASE_URL=postgres or urls[0])
                    migrated = run_manage(environ, "migrate", "--verbosity=0", timeout=300)
                    assert migrated.returncode == 0, migrated.stderr
                    meter = Meter(server, PG_DATABASE if postgres else None)
                    print(f"per job: {args.jobs} probe jobs through worker-default ...", flush=True)
                    jobs = per_job(server, environ, meter, args.jobs, args.idle)
                if "scan" in parts:
                    scan_meter = Meter(server, None)
                    for leases in (int(n) for n in args.leases.split(",")):
                        for other in sorted({0, args.other_keys}):
                            print(f"scan: {leases} leases, {other} other keys ...", flush=True)
                            scans[(leases, other)] = scan_measure(
                                server, scan_meter, leases, other, args.scan_runs
                            )
            finally:
                server.stop()
        if postgres and "history" in parts:
            for processes in (int(n) for n in args.writers.split(",")):
                print(f"history: {processes} writer process(es) for {args.seconds:.0f} s ...", flush=True)
                writers[processes] = writers_run(postgres, workdir / "var", processes, args.seconds)

    if jobs:
        jobs_tables(jobs, environ, args, postgres is not None)
    if scans:
        print()
        scan_table(scans, args.scan_runs)
    if "history" in parts:
        print()
        status = history_table(writers, args.seconds)
    return status


def jobs_tables(jobs: dict, environ: dict[str, str], args: argparse.Namespace, postgres: bool) -> None:
    concurrency = environ["KILN_DEFAULT_CONCURRENCY"]
    print()
    print(
        f"== Redis per job: {args.jobs} probe jobs, publisher (one manage.py shell) and worker-default "
        f"({concurrency} processes, history on), net of a baseline worker; worker ran {jobs['busy_seconds']:.1f} s"
    )
    commands_table(jobs["publisher"], jobs["worker"])
    print()
    if postgres:
        print("== PostgreSQL per job (pg_stat_user_tables, pg_stat_database)")
        database_table(jobs["publisher"], jobs["worker"])
        print(
            f"PostgreSQL sessions open at once while worker-default ({concurrency} processes) ran: "
            f"{jobs['sessions']:.0f} at most"
        )
    else:
        print("== PostgreSQL per job: skipped, no PostgreSQL on 127.0.0.1:5432")
    print()
    idle = jobs["idle"]
    idle_commands = sum(v for k, v in idle.items() if k.startswith("redis:") and k != "redis:info")
    top = sorted(
        ((k.removeprefix("redis:"), v) for k, v in idle.items() if k.startswith("redis:") and v >= 0.05),
        key=lambda item: -item[1],
    )
    print(f"== One idle worker-default ({concurrency} processes), per second over {args.idle:.0f} s")
    print(
        f"{idle_commands:.1f} commands/s ({', '.join(f'{name} {value:.1f}' for name, value in top[:8])}), "
        f"{idle['redis.in']:,.0f} B/s in, {idle['redis.out']:,.0f} B/s out, Redis CPU {idle['redis.cpu'] * 1e6:,.0f} µs/s"
    )
    print()
    memory = jobs["memory_per_job"]
    print(
        f"== Redis memory per queued job (used_memory after publishing {args.jobs} with no worker): "
        f"{memory:,.0f} bytes, {1e9 / memory:,.0f} queued jobs per GB"
    )


def scan_table(scans: dict[tuple[int, int], dict[str, float]], scan_runs: int) -> None:
    print(
        f"== Recovery scan: one turn's scans (median of {scan_runs}), and the installation per 10 s: one turn "
        "plus every lease asking for it"
    )
    print(
        f"{'':>19}{'dead_workers_recover':^30}{'fetch_lists_recover':^22}{'unowned':^8}{'turn asked':^14}"
        f"{'installation, every 10 s':^24}"
    )
    print(
        f"{'leases':>7}{'other keys':>12}{'ms':>8}{'cmds':>7}{'SCANs':>7}{'CPU ms':>8}"
        f"{'ms':>8}{'cmds':>6}{'CPU ms':>8}{'cmds':>8}{'cmds':>6}{'CPU ms':>8}{'cmds/s':>12}{'Redis CPU':>12}"
    )
    for (leases, other), f in scans.items():
        every_interval = ("dead", "fetch", "unowned", "turn")
        commands = sum(f[f"{name}.commands"] for name in every_interval)
        cpu_seconds = sum(f[f"{name}.cpu_ms"] for name in every_interval) / 1000
        print(
            f"{leases:>7,}{other:>12,}{f['dead.ms']:>8.1f}{f['dead.commands']:>7.0f}{f['dead.scan_calls']:>7.0f}"
            f"{f['dead.cpu_ms']:>8.2f}{f['fetch.ms']:>8.1f}{f['fetch.commands']:>6.0f}{f['fetch.cpu_ms']:>8.2f}"
            f"{f['unowned.commands']:>8.0f}{f['turn.commands']:>6.0f}{f['turn.cpu_ms']:>8.2f}"
            f"{commands / 10:>12,.1f}{cpu_seconds / 10:>12.2%}"
        )
    print(
        "(ms: one scan's median time seen by the scanning worker; CPU ms: Redis's CPU time per scan; unowned: "
        "the look for old unacknowledged jobs, none here; turn asked: the SET NX every lease sends every 10 s, "
        "all but one refused; Redis CPU: of one core, as Redis runs commands on one thread)"
    )


def history_table(writers: dict[int, float], seconds: float) -> int:
    status = 0
    if writers:
        print(
            f"== Job-history writes on PostgreSQL (Recorder + rollups, batches of 200, {seconds:.0f} s each)"
        )
        print(f"{'processes':>9}{'jobs/min':>12}{'/ 10,000':>10}")
        for processes, rate in writers.items():
            print(f"{processes:>9}{rate:>12,.0f}{rate / TARGET_JOBS_PER_MINUTE:>10.2f}")
        best = max(writers.values())
        met = best >= TARGET_JOBS_PER_MINUTE
        print(f"\n10,000 jobs/min target {'met' if met else 'MISSED'} (best {best:,.0f})")
        status = 0 if met else 1
    else:
        print("== Job-history writes: skipped, no PostgreSQL on 127.0.0.1:5432")
    return status


if __name__ == "__main__":
    sys.exit(main())
