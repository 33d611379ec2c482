"""HTTP serving side by side: this service against ``mlflow models serve`` of the same registered model, in one run.

Trains a model with the project's pipeline on a generated authority (default ``data/synthetic``) into a fresh MLflow
store in a temporary folder and registers it as ``case-closure-risk@champion``. Then, one server at a time, each on
127.0.0.1 with the same number of uvicorn worker processes and driven by the same load generator (wrk, Debian's
package; an asyncio client where wrk is missing) at 1, 8 and 32 concurrent clients for a fixed time each, cycling
through the same 1,000 open cases:

- **this service**: ``POST /v1/score`` with the full case record: validation, point-in-time features, score,
  exact TreeSHAP explanation (all features; the top 5 returned) and the audit write, committed before the answer
  (SQLite by default; also PostgreSQL when one is reachable);
- **mlflow models serve** ``-m models:/case-closure-risk@champion --env-manager local``: the equivalent feature rows
  (the model input values this service computed for the same cases), predictions only, no explanation, no audit;
- **no-op FastAPI endpoint** (defined here, not in the product): the same request bodies, answered without being
  read: the framework's ceiling on this machine.

Prints requests per second, p50 and p99 latency and the server's own CPU time per request (its processes' user and
system time over the run, divided by the requests: steadier than requests/s on a shared machine) for each, and the
ratios (this service / mlflow, this service / no-op) against the targets of the performance issue. Traffic stays
on the loopback interface.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from fastapi import FastAPI

TARGET_RPS = 1000.0  # with explanations and audit writes, at 8 clients
TARGET_P99_MS = 20.0
TARGET_VS_MLFLOW = 2.0
TARGET_VS_NOOP = 0.4
TARGET_CPU_MS = 0.6  # server CPU a request: score, exact explanation, what-ifs, audit commit and the answer
TARGET_HEALTHZ_MS = 50.0  # /healthz while keyless 15 MB bodies arrive
FLOOD_BYTES = 15_000_000
CLIENTS = (1, 8, 32)
POSTGRES_URL = os.environ.get("CCR_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def noop_app() -> FastAPI:
    """The framework's ceiling: a plain ``def`` endpoint (as the scoring routes are) that never reads the body."""
    app = FastAPI()

    @app.post("/v1/score")
    def score() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _prepare(data: Path, folder: Path, cases: int) -> tuple[str, list[str], list[str]]:
    """Train and register a champion in a fresh store; (tracking URI, service bodies, mlflow bodies).

    With a ``--workdir`` that already holds them, they are reused (for repeated runs)."""
    saved = folder / "prepared.json"
    if saved.exists():
        tracking_uri, ours, theirs = json.loads(saved.read_text(encoding="utf-8"))
        return str(tracking_uri), list(ours), list(theirs)
    from features import current_episode, ingest
    from models import assess
    from models.registry import load_model, use_store
    from training.pipeline import train
    from training.settings import TrainingSettings

    tracking_uri = f"sqlite:///{folder}/mlflow.db"
    started = time.perf_counter()
    report = train(data, TrainingSettings(tracking_uri=tracking_uri, artifact_location=f"{folder}/mlruns"))
    print(f"trained and registered version {report.version} in {time.perf_counter() - started:.0f} s", flush=True)
    use_store(tracking_uri)
    model = load_model("champion")
    records = ingest(sorted(data.glob("cin_*.xml")), extension=data / "extension.jsonl").records
    # The training summary never carried the data's end, so the cases are scored as of the latest referral.
    as_of = max(e.referral_date for r in records for e in r.episodes)
    open_records = [r for r in records if current_episode(r, as_of) is not None][:cases]
    scores = assess(model, open_records, as_of, what_ifs=False).assessments
    ours = [
        json.dumps({"record": json.loads(r.model_dump_json(exclude_none=True)), "as_of": as_of.isoformat()})
        for r in open_records
    ]
    theirs = [json.dumps({"inputs": [s.features]}) for s in scores]
    saved.write_text(json.dumps([tracking_uri, ours, theirs]), encoding="utf-8")
    return tracking_uri, ours, theirs


def _cpu_seconds(root: int) -> float:
    """User and system CPU seconds of a process and its descendants (Linux /proc; 0 elsewhere)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = entry.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.parent.name))
    total, stack = 0.0, [root]
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


@contextmanager
def _server(command: list[str], env: dict[str, str], ready: str, log: Path) -> Iterator[int]:
    with log.open("w") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 300
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"{command[:4]} exited: see {log}\n{log.read_text()[-3000:]}")
                try:
                    if httpx.get(ready, timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{command[:4]} not ready after 300 s")
                time.sleep(0.5)
            yield process.pid
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def _wrk(url: str, path: str, headers: dict[str, str], bodies: Path, clients: int, seconds: float,
         folder: Path) -> dict[str, Any]:  # fmt: skip
    """wrk (C, event loop) posting the bodies in turn; latency percentiles from its HdrHistogram."""
    script = folder / "cycle.lua"
    header_lines = "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in headers.items())
    script.write_text(
        'wrk.method = "POST"\n'
        + header_lines
        + f'local bodies = {{}}\nfor line in io.lines("{bodies}") do bodies[#bodies + 1] = line end\n'
        "local i = 0\n"
        "request = function()\n"
        "  i = i % #bodies + 1\n"
        f'  return wrk.format(nil, "{path}", nil, bodies[i])\n'
        "end\n"
        "done = function(summary, latency, requests)\n"
        '  io.write(string.format("RESULT %d %d %d %d %f %f %f\\n", summary.requests, summary.duration,\n'
        "    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write +\n"
        "    summary.errors.timeout, latency:percentile(50) / 1000, latency:percentile(99) / 1000,\n"
        "    latency.max / 1000))\n"
        "end\n",
        encoding="utf-8",
    )
    command = ["wrk", f"-t{min(2, clients)}", f"-c{clients}", f"-d{int(seconds)}s", "--timeout", "10s", "-s",
               str(script), url]  # fmt: skip
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    _, requests, duration_us, non_2xx, failed, p50, p99, worst = next(
        x for x in out.splitlines() if x.startswith("RESULT")
    ).split()
    return {
        "clients": clients,
        "requests": int(requests),
        "rps": round(int(requests) / (int(duration_us) / 1e6), 1),
        "p50_ms": round(float(p50), 2),
        "p99_ms": round(float(p99), 2),
        "max_ms": round(float(worst), 1),
        "non_2xx": int(non_2xx),
        "failed": int(failed),
    }


async def _asyncio_drive(url: str, path: str, headers: dict[str, str], bodies: list[str], clients: int,
                         seconds: float) -> dict[str, Any]:  # fmt: skip
    """The same load from Python where wrk is missing (it takes a core of its own: it understates the server)."""
    latencies: list[float] = []
    non_2xx = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=30) as client:

        async def worker(offset: int) -> None:
            nonlocal non_2xx
            i = offset
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                response = await client.post(path, content=bodies[i % len(bodies)])
                latencies.append(time.perf_counter() - started)
                non_2xx += not 200 <= response.status_code < 300
                i += clients

        started = time.perf_counter()
        await asyncio.gather(*(worker(n) for n in range(clients)))
        elapsed = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    return {
        "clients": clients,
        "requests": len(latencies),
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "max_ms": round(float(ms.max()), 1),
        "non_2xx": non_2xx,
        "failed": 0,
    }


def _load(url: str, path: str, headers: dict[str, str], bodies: list[str], seconds: float, folder: Path,
          server: int) -> list[dict[str, Any]]:  # fmt: skip
    body_file = folder / f"bodies-{secrets.token_hex(4)}.jsonl"
    body_file.write_text("\n".join(bodies) + "\n", encoding="utf-8")
    headers = {"Content-Type": "application/json", **headers}
    results = []
    if shutil.which("wrk"):
        _wrk(url + path, path, headers, body_file, 8, 3, folder)  # warm-up, discarded
    else:
        asyncio.run(_asyncio_drive(url, path, headers, bodies, 8, 3))
    for n in CLIENTS:
        cpu = _cpu_seconds(server)
        if shutil.which("wrk"):
            results.append(_wrk(url + path, path, headers, body_file, n, seconds, folder))
        else:
            results.append(asyncio.run(_asyncio_drive(url, path, headers, bodies, n, seconds)))
        # The server's own CPU per request: far steadier than requests/s on a machine shared with other work.
        results[-1]["server_cpu_ms"] = round((_cpu_seconds(server) - cpu) / max(results[-1]["requests"], 1) * 1e3, 3)
        print(f"  {url}{path} {json.dumps(results[-1])}", flush=True)
    return results


@contextmanager
def _postgres_database() -> Iterator[str | None]:
    """A throwaway PostgreSQL database for the audit store, or None when no server answers."""
    from sqlalchemy import create_engine, make_url
    from sqlalchemy.exc import OperationalError
    from sqlalchemy.pool import NullPool

    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool,
                          connect_args={"connect_timeout": 3})  # fmt: skip
    name = f"ccr_bench_{secrets.token_hex(6)}"
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except OperationalError:
        yield None
        return
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def _uvicorn(factory: str, port: int, workers: int) -> list[str]:
    return [sys.executable, "-m", "uvicorn", "--factory", factory, "--host", "127.0.0.1", "--port", str(port),
            "--log-level", "warning", "--no-access-log", "--workers", str(workers)]  # fmt: skip


def _ours(database_url: str, tracking_uri: str, bodies: list[str], args: argparse.Namespace, folder: Path,
          label: str) -> list[dict[str, Any]]:  # fmt: skip
    from audit import AuditStore
    from features import Role

    store = AuditStore(database_url)
    store.migrate()
    key, _ = store.create_key(name="benchmark", role=Role.SYSTEM)
    store.close()
    env = {
        **os.environ,
        "CCR_MODEL_URI": "models:/case-closure-risk@champion",
        "CCR_TRACKING_URI": tracking_uri,
        "CCR_DATABASE_URL": database_url,
        "CCR_PSEUDONYM_KEY_FILE": str(folder / "pseudonym.key"),
    }
    port = _free_port()
    command = [sys.executable, "-m", "serving.server", "--port", str(port), "--workers", str(args.workers)]
    url = f"http://127.0.0.1:{port}"
    with _server(command, env, f"{url}/readyz", folder / f"{label}.log") as pid:
        results = _load(url, "/v1/score", {"Authorization": f"Bearer {key}"}, bodies, args.seconds, folder, pid)
        if label == "sqlite":
            results.append(_keyless_flood(port, seconds=min(args.seconds, 10.0)))
        return results


def _keyless_upload(port: int, stop: threading.Event, refused: list[int]) -> None:
    """POST keyless 15 MB bodies in turn until ``stop``: each refused (401) or cut off by the server."""
    head = (f"POST /v1/score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {FLOOD_BYTES}\r\n\r\n").encode()  # fmt: skip
    chunk = b" " * 65536
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(head)
                sent = 0
                while sent < FLOOD_BYTES and not stop.is_set():
                    sock.sendall(chunk)
                    sent += len(chunk)
                answer = sock.recv(64)
                if answer.startswith(b"HTTP/1.1 "):
                    refused.append(int(answer[9:12]))
        except OSError:  # the server closed the connection after refusing it: the upload was not read
            refused.append(0)


def _keyless_flood(port: int, *, seconds: float, uploaders: int = 4) -> dict[str, Any]:
    """``/healthz`` latency while ``uploaders`` clients send keyless 15 MB bodies, against the same probe alone."""

    def probe(duration: float) -> list[float]:
        out: list[float] = []
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            end = time.monotonic() + duration
            while time.monotonic() < end:
                started = time.perf_counter()
                client.get("/healthz")
                out.append((time.perf_counter() - started) * 1000)
                time.sleep(0.02)
        return out

    quiet = probe(seconds / 2)
    stop, refused = threading.Event(), list[int]()
    threads = [threading.Thread(target=_keyless_upload, args=(port, stop, refused)) for _ in range(uploaders)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    flooded = probe(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    return {
        "clients": f"healthz+{uploaders}x15MB",
        "healthz_quiet_p99_ms": float(np.percentile(quiet, 99)),
        "healthz_p50_ms": float(np.percentile(flooded, 50)),
        "healthz_p99_ms": float(np.percentile(flooded, 99)),
        "healthz_max_ms": max(flooded),
        "uploads_answered": {str(code): refused.count(code) for code in sorted(set(refused))},
    }


def _mlflow(tracking_uri: str, bodies: list[str], args: argparse.Namespace, folder: Path) -> list[dict[str, Any]]:
    port = _free_port()
    mlflow = str(Path(sys.executable).with_name("mlflow"))
    command = [mlflow, "models", "serve", "-m", "models:/case-closure-risk@champion", "--env-manager", "local",
               "-h", "127.0.0.1", "-p", str(port), "-w", str(args.workers)]  # fmt: skip
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_REGISTRY_URI": tracking_uri,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}  # its uvicorn  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    with _server(command, env, f"{url}/ping", folder / "mlflow.log") as pid:
        probe = httpx.post(f"{url}/invocations", content=bodies[0], headers={"Content-Type": "application/json"})
        if probe.status_code != 200:
            raise RuntimeError(f"mlflow models serve refused the feature rows: {probe.text[:500]}")
        return _load(url, "/invocations", {}, bodies, args.seconds, folder, pid)


def _noop(bodies: list[str], args: argparse.Namespace, folder: Path) -> list[dict[str, Any]]:
    port = _free_port()
    command = _uvicorn("benchmarks.bench_api:noop_app", port, args.workers)
    url = f"http://127.0.0.1:{port}"
    with _server(command, dict(os.environ), f"{url}/healthz", folder / "noop.log") as pid:
        return _load(url, "/v1/score", {}, bodies, args.seconds, folder, pid)


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data/synthetic"))
    parser.add_argument("--seconds", type=float, default=10.0, help="per server and client count")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes, both sides (2 cores here)")
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--postgres", choices=["auto", "no"], default="auto",
                        help="also measure this service with a PostgreSQL audit store when one answers")  # fmt: skip
    parser.add_argument("--workdir", type=Path, default=None, help="keep (and reuse) the trained store here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ccr-bench-api-") as tmp:
        folder = Path(tmp)
        if args.workdir is not None:
            args.workdir.mkdir(parents=True, exist_ok=True)
            folder = args.workdir.resolve()
        tracking_uri, ours, theirs = _prepare(args.data, folder, args.cases)
        generator = "wrk" if shutil.which("wrk") else "python-asyncio"
        runs: dict[str, list[dict[str, Any]]] = {}
        print(f"load generator: {generator}; {args.workers} workers each; {args.seconds:g} s per point", flush=True)
        audit = folder / f"audit-{secrets.token_hex(4)}.db"
        runs["service_sqlite"] = _ours(f"sqlite:///{audit}", tracking_uri, ours, args, folder, "sqlite")
        if args.postgres == "auto":
            with _postgres_database() as postgres_url:
                if postgres_url is not None:
                    runs["service_postgresql"] = _ours(postgres_url, tracking_uri, ours, args, folder, "postgresql")
        runs["mlflow_serve"] = _mlflow(tracking_uri, theirs, args, folder)
        runs["noop_fastapi"] = _noop(ours, args, folder)
    print(f"\n{'server':<20} {'clients':>7} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} {'CPU ms/req':>10}")
    for name, results in runs.items():
        for r in results:
            if "healthz_p99_ms" in r:
                continue
            print(f"{name:<20} {r['clients']:>7} {r['rps']:>9.1f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} "
                  f"{r['non_2xx'] + r['failed']:>8} {r['server_cpu_ms']:>10.3f}")  # fmt: skip
    # The health probe under keyless uploads is a figure of its own: out of the table and the ratios.
    flood = next(r for r in runs["service_sqlite"] if "healthz_p99_ms" in r)
    runs["service_sqlite"].remove(flood)
    ratios: dict[str, dict[str, float | None]] = {}
    for name in (n for n in runs if n.startswith("service_")):
        ratios[name] = {}
        for mine, mlflow, noop in zip(runs[name], runs["mlflow_serve"], runs["noop_fastapi"], strict=True):
            n = mine["clients"]
            ratios[name][f"vs_mlflow_at_{n}"] = _ratio(mine["rps"], mlflow["rps"])
            ratios[name][f"vs_noop_at_{n}"] = _ratio(mine["rps"], noop["rps"])
    print(f"\n/healthz during keyless 15 MB uploads: p50 {flood['healthz_p50_ms']:.2f} ms, p99 "
          f"{flood['healthz_p99_ms']:.2f} ms, max {flood['healthz_max_ms']:.2f} ms (alone: p99 "
          f"{flood['healthz_quiet_p99_ms']:.2f} ms); uploads answered {flood['uploads_answered']}")  # fmt: skip
    at8 = next(r for r in runs["service_sqlite"] if r["clients"] == 8)
    summary = {
        "load_generator": generator,
        "workers": args.workers,
        "seconds": args.seconds,
        "cases": len(ours),
        "results": runs,
        "ratios": ratios,
        "targets_at_8_clients": {
            "rps": {"target": TARGET_RPS, "measured": at8["rps"], "met": at8["rps"] >= TARGET_RPS},
            "p99_ms": {"target": TARGET_P99_MS, "measured": at8["p99_ms"], "met": at8["p99_ms"] < TARGET_P99_MS},
            "vs_mlflow": {"target": TARGET_VS_MLFLOW, "measured": ratios["service_sqlite"]["vs_mlflow_at_8"]},
            "vs_noop": {"target": TARGET_VS_NOOP, "measured": ratios["service_sqlite"]["vs_noop_at_8"]},
            "server_cpu_ms": {
                "target": TARGET_CPU_MS,
                "measured": at8["server_cpu_ms"],
                "met": at8["server_cpu_ms"] <= TARGET_CPU_MS,
            },
        },
        "healthz_during_keyless_uploads": {
            **flood,
            "target_ms": TARGET_HEALTHZ_MS,
            "met": flood["healthz_max_ms"] < TARGET_HEALTHZ_MS,
        },
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
