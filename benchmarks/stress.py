"""``make stress``: steady load on the real service for minutes, a model reload in the middle, nothing lost.

Starts the real service (uvicorn, ``--workers`` processes on 127.0.0.1, the real audit store: a SQLite file in a
temporary folder, or ``--database-url``), scoring with explanations (``POST /v1/score``: validate the record, build
its features, score, exact TreeSHAP, commit to the audit store) from ``--clients`` concurrent connections for
``--minutes``. Halfway, the served bundle is replaced on disk by a second model and ``POST /v1/admin/reload`` is sent
once: every worker must then answer with the new model (the others follow the reload recorded in the audit store).
Drives the load with wrk where installed (a C load generator; ``apt-get install wrk``), else with an asyncio client
(which costs a core of its own).

Prints the server's resident memory at the start, every minute and at the end, requests, requests/s, p50 and p99
latency, errors, and the audit store's rows by model version. Exits 1 if any request was lost (an error status, a
socket error or a timeout) or the store holds fewer scores than were answered.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

VERSIONS = ("stress-a", "stress-b")
WARM_UP_S = 20


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _prepare(folder: Path, children: int) -> tuple[list[Path], list[str]]:
    """Two model bundles (versions stress-a and stress-b) and the open cases' request bodies, one JSON per line."""
    from features import current_episode, ingest
    from synthetic import generate_cohort
    from training import load_training_frame
    from training.fit import fit_bundle
    from training.settings import SearchSpace
    from training.split import split_by_time

    data = folder / "authority"
    generate_cohort(children=children, seed=20251130, start=2017, end=2025, out=data, workers=1)
    built = load_training_frame(data)
    data_end = dt.date.fromisoformat(str(built.summary["data_end"]))
    split = split_by_time(built.frame, data_end=data_end)
    bundles = []
    for seed, version in enumerate(VERSIONS, start=1):
        model = fit_bundle(split, seed=seed, search=SearchSpace()).model()
        model.metadata.version = version
        model.save(folder / version)
        bundles.append(folder / version)
    records = ingest(sorted(data.glob("*.xml")), extension=data / "extension.jsonl").records
    bodies = [
        json.dumps({"record": json.loads(r.model_dump_json(exclude_none=True)), "as_of": data_end.isoformat()})
        for r in records
        if current_episode(r, data_end) is not None
    ]
    return bundles, bodies[:1000]


def _tree(pid: int) -> list[int]:
    """The process and all its descendants (uvicorn's workers and multiprocessing's helpers)."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            todo += [int(child) for child in task.read_text().split()]
    return out


def _memory(pid: int) -> dict[str, float]:
    """Resident memory (MiB) of every process in the server's tree, by pid and the tail of its command line."""
    sizes: dict[str, float] = {}
    for each in _tree(pid):
        try:
            status = Path(f"/proc/{each}/status").read_text()
            command = Path(f"/proc/{each}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
        rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
        sizes[f"{each} {command[-40:]}"] = round(rss / 1024, 1)
    sizes["total"] = round(sum(sizes.values()), 1)
    return sizes


def _wrk(url: str, key: str, bodies: Path, clients: int, seconds: int, folder: Path) -> dict[str, Any]:
    script = folder / "score.lua"
    script.write_text(
        f'local bodies = {{}}\nfor line in io.lines("{bodies}") do bodies[#bodies + 1] = line end\n'
        "local i = math.random(#bodies)\n"
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {key}"\n'
        "request = function()\n  i = i % #bodies + 1\n"
        '  return wrk.format("POST", "/v1/score", nil, bodies[i])\nend\n'
        "done = function(summary, latency, requests)\n"
        '  io.write(string.format("RESULT %d %d %d %d %d %d %d %f %f %f\\n", summary.requests, summary.errors.status, '
        "summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout, "
        "summary.duration, latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))\n"
        "end\n",
        encoding="utf-8",
    )
    command = ["wrk", f"-t{min(2, clients)}", f"-c{clients}", f"-d{seconds}s", "--timeout", "30s", "-s", str(script)]
    out = subprocess.run([*command, f"{url}/v1/score"], check=True, capture_output=True, text=True).stdout
    fields = next(x for x in out.splitlines() if x.startswith("RESULT")).split()[1:]
    requests, status, connect, read, write, timeout, duration_us = (int(x) for x in fields[:7])
    p50, p99, worst = (float(x) for x in fields[7:])
    return {
        "requests": requests,
        "error_statuses": status,
        "socket_errors": connect + read + write,
        "timeouts": timeout,
        "seconds": round(duration_us / 1e6, 1),
        "p50_ms": round(p50, 2),
        "p99_ms": round(p99, 2),
        "max_ms": round(worst, 2),
    }


def _asyncio_load(url: str, key: str, bodies: list[str], clients: int, seconds: int) -> dict[str, Any]:
    latencies: list[float] = []
    statuses = errors = 0

    async def run() -> float:
        nonlocal statuses, errors
        deadline = time.perf_counter() + seconds
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=30) as client:

            async def worker(offset: int) -> None:
                nonlocal statuses, errors
                i = offset
                while time.perf_counter() < deadline:
                    started = time.perf_counter()
                    try:
                        response = await client.post("/v1/score", content=bodies[i % len(bodies)])
                        statuses += response.status_code != 200
                    except httpx.HTTPError:
                        errors += 1
                    latencies.append(time.perf_counter() - started)
                    i += clients

            started = time.perf_counter()
            await asyncio.gather(*(worker(n) for n in range(clients)))
            return time.perf_counter() - started

    elapsed = asyncio.run(run())
    ms = np.array(latencies) * 1000
    return {
        "requests": len(latencies),
        "error_statuses": statuses,
        "socket_errors": errors,
        "timeouts": 0,
        "seconds": round(elapsed, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "max_ms": round(float(ms.max()), 2),
    }


def _reload_every_worker(url: str, admin: str, workers: int, current: Path, new_bundle: Path) -> dict[str, Any]:
    """Point the served path at the new bundle and reload once: one worker takes the reload and records it in the
    audit store, and every other worker follows it before its next answer. Then ``GET /v1/model`` on fresh
    connections (the kernel hands each to any worker) must all answer the new version."""
    link = current.with_name("current.new")
    link.symlink_to(new_bundle)
    os.replace(link, current)  # atomic: a worker loading now sees the old bundle or the new one, never half
    started = time.perf_counter()
    auth = {"Authorization": f"Bearer {admin}"}
    response = httpx.post(f"{url}/v1/admin/reload", headers=auth, timeout=120)
    response.raise_for_status()
    seconds = round(time.perf_counter() - started, 1)
    asked = 10 * workers
    answers = [httpx.get(f"{url}/v1/model", headers={**auth, "Connection": "close"}, timeout=120).json()["version"]
               for _ in range(asked)]  # fmt: skip
    return {"reload_seconds": seconds, "model_answers": asked, "old_model_answers": answers.count(VERSIONS[0]),
            "reloaded_to": response.json()["version"]}  # fmt: skip


def _store_rows(database_url: str) -> dict[str, int]:
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT model_version, count(*) FROM scores GROUP BY model_version"))
            return {str(version): int(count) for version, count in rows}
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--children", type=int, default=3000, help="synthetic cohort behind the models and cases")
    parser.add_argument("--database-url", default=None, help="audit store (default: a SQLite file, WAL)")
    args = parser.parse_args()
    seconds = int(args.minutes * 60)
    with tempfile.TemporaryDirectory(prefix="ccr-stress-") as tmp:
        folder = Path(tmp)
        print(f"preparing: a {args.children}-child synthetic authority and two models", flush=True)
        bundles, bodies = _prepare(folder, args.children)
        (folder / "bodies.jsonl").write_text("\n".join(bodies) + "\n", encoding="utf-8")
        current = folder / "current"
        current.symlink_to(bundles[0])
        database_url = args.database_url or f"sqlite:///{folder}/audit.db"
        env = {
            **os.environ,
            "CCR_MODEL_URI": str(current),
            "CCR_DATABASE_URL": database_url,
            "CCR_PSEUDONYM_KEY_FILE": str(folder / "pseudonym.key"),
        }
        from audit import AuditStore
        from features import Role

        store = AuditStore(database_url)
        store.migrate()
        key, _ = store.create_key(name="stress-system", role=Role.SYSTEM)
        admin, _ = store.create_key(name="stress-admin", role=Role.ADMIN)
        store.close()
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "serving.app:create_app", "--host", "127.0.0.1",
             "--port", str(port), "--log-level", "warning", "--no-access-log", "--workers", str(args.workers)],
            env=env,
        )  # fmt: skip
        memory: list[dict[str, Any]] = []
        reload: dict[str, Any] = {}
        try:
            for _ in range(240):
                try:
                    if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.5)
            time.sleep(3)  # every worker up, not just the first to answer
            print(f"memory when ready (MiB): {json.dumps(_memory(server.pid))}", flush=True)
            generator = "wrk" if shutil.which("wrk") else "python-asyncio"
            # Warm-up: first requests fill caches and pools; "start" is measured after it, under the same load.
            if generator == "wrk":
                _wrk(url, key, folder / "bodies.jsonl", args.clients, WARM_UP_S, folder)
            else:
                _asyncio_load(url, key, bodies, args.clients, WARM_UP_S)
            before = sum(_store_rows(database_url).values())
            memory.append({"at_s": 0, **_memory(server.pid)})
            print(f"memory at start, after {WARM_UP_S} s warm-up (MiB): {json.dumps(memory[0])}", flush=True)
            print(
                f"load: {args.clients} clients for {seconds} s with {generator}, reload at {seconds // 2} s", flush=True
            )
            stop = threading.Event()
            started = time.perf_counter()

            def watch() -> None:
                reloaded = False
                while not stop.wait(5):
                    at = time.perf_counter() - started
                    if not reloaded and at >= seconds / 2:
                        reloaded = True
                        reload.update(
                            at_s=round(at), **_reload_every_worker(url, admin, args.workers, current, bundles[1])
                        )
                        print(f"reload: {json.dumps(reload)}", flush=True)
                    if at - memory[-1]["at_s"] >= 60:
                        memory.append({"at_s": round(at), **_memory(server.pid)})
                        print(f"memory at {round(at)} s (MiB): total {memory[-1]['total']}", flush=True)

            watcher = threading.Thread(target=watch)
            watcher.start()
            try:
                if generator == "wrk":
                    load = _wrk(url, key, folder / "bodies.jsonl", args.clients, seconds, folder)
                else:
                    load = _asyncio_load(url, key, bodies, args.clients, seconds)
            finally:
                stop.set()
                watcher.join()
            memory.append({"at_s": round(time.perf_counter() - started), **_memory(server.pid)})
            print(f"memory at end (MiB): {json.dumps(memory[-1])}", flush=True)
        finally:
            server.terminate()
            server.wait(timeout=60)
        stored = _store_rows(database_url)
    lost = load["error_statuses"] + load["socket_errors"] + load["timeouts"]
    answered = load["requests"] - lost
    stored_new = sum(stored.values()) - before
    summary = {
        "load_generator": generator,
        "workers": args.workers,
        "clients": args.clients,
        **load,
        "requests_per_s": round(load["requests"] / max(load["seconds"], 1e-9), 1),
        "requests_lost": lost,
        "scores_stored": stored_new,
        "stored_by_model_version": stored,
        "reload": reload,
        "memory_start_mib": memory[0]["total"],
        "memory_end_mib": memory[-1]["total"],
        "memory_by_minute_mib": [m["total"] for m in memory],
    }
    print(json.dumps(summary, indent=2))
    failures = []
    if lost:
        failures.append(f"{lost} requests lost")
    if stored_new < answered:
        failures.append(f"{answered} scores answered but only {stored_new} stored")
    if reload.get("reloaded_to") != VERSIONS[1] or reload.get("old_model_answers", 1):
        failures.append(f"after the reload {reload.get('old_model_answers')} answers still came from the old model")
    if failures:
        print("stress: FAILED: " + "; ".join(failures), file=sys.stderr)
        raise SystemExit(1)
    print("stress: passed (no request lost, every answered score stored, every worker reloaded)")


if __name__ == "__main__":
    main()
