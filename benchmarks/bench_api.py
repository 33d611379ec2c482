"""``POST /v1/score`` with explanations and audit writes, under load, against the issue's aim.

Starts the real service (uvicorn, ``--workers`` processes, 127.0.0.1, a model bundle trained on the default cohort
and a SQLite audit store in a temporary folder), then drives it with wrk (Debian's package) at 1, 8 and 32
concurrent clients for a fixed time each. Where wrk is not installed an asyncio HTTP client drives it instead; that
client costs a core of its own on this machine, so it understates the server. Prints requests per second, p50 and
p99 latency, and the ratio to the aim of issue 5 (500 requests/s with p99 under 20 ms at 8 clients). Traffic stays
on the loopback interface.
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
import time
from pathlib import Path

import httpx
import numpy as np

AIM_RPS = 500.0
AIM_P99_MS = 20.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _prepare(data: Path, folder: Path) -> tuple[Path, list[dict[str, object]]]:
    from features import current_episode, ingest
    from training import load_training_frame
    from training.pipeline import build_model
    from training.split import split_by_time

    built = load_training_frame(data)
    split = split_by_time(built.frame, data_end=dt.date.fromisoformat(str(built.summary["data_end"])))
    bundle = folder / "bundle"
    build_model(split, seed=1)[1].save(bundle)
    as_of = dt.date.fromisoformat(str(built.summary["data_end"]))
    records = ingest(sorted(data.glob("*.xml")), extension=data / "extension.jsonl").records
    bodies = [
        {"record": json.loads(r.model_dump_json(exclude_none=True)), "as_of": as_of.isoformat()}
        for r in records
        if current_episode(r, as_of) is not None
    ][:2000]
    return bundle, bodies


async def _drive(url: str, key: str, bodies: list[dict[str, object]], clients: int, seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {key}"}, limits=limits, timeout=30
    ) as client:

        async def worker(offset: int) -> None:
            nonlocal errors
            i = offset
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                response = await client.post("/v1/score", json=bodies[i % len(bodies)])
                latencies.append(time.perf_counter() - started)
                errors += response.status_code != 200
                i += clients

        started = time.perf_counter()
        await asyncio.gather(*(worker(n) for n in range(clients)))
        elapsed = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    return {
        "clients": clients,
        "requests": len(latencies),
        "errors": errors,
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
    }


def _wrk(url: str, key: str, body: dict[str, object], clients: int, seconds: float, folder: Path) -> dict[str, float]:
    """The same load from wrk (a C load generator): the Python client costs a core of its own on this machine."""
    (folder / "body.json").write_text(json.dumps(body), encoding="utf-8")
    script = folder / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f'local f = io.open("{folder / "body.json"}", "r"); wrk.body = f:read("*a"); f:close()\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {key}"\n'
        "done = function(summary, latency, requests)\n"
        '  io.write(string.format("RESULT %d %d %f %f\\n", summary.requests, summary.errors.status + '
        "summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, "
        "latency:percentile(50) / 1000, latency:percentile(99) / 1000))\n"
        "end\n",
        encoding="utf-8",
    )
    threads = min(2, clients)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{clients}", f"-d{int(seconds)}s", "-s", str(script), f"{url}/v1/score"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT"))
    _, requests, errors, p50, p99 = line.split()
    rps = float(next(x for x in out.splitlines() if x.startswith("Requests/sec")).split()[1])
    return {
        "clients": clients,
        "requests": int(requests),
        "errors": int(errors),
        "rps": rps,
        "p50_ms": round(float(p50), 2),
        "p99_ms": round(float(p99), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("data/synthetic"))
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes (one per core here)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ccr-bench-api-") as tmp:
        folder = Path(tmp)
        bundle, bodies = _prepare(args.data, folder)
        env = {
            **os.environ,
            "CCR_MODEL_URI": str(bundle),
            "CCR_DATABASE_URL": f"sqlite:///{folder}/audit.db",
            "CCR_PSEUDONYM_KEY_FILE": str(folder / "pseudonym.key"),
        }
        from serving.store import AuditStore

        store = AuditStore(env["CCR_DATABASE_URL"])
        store.migrate()
        key, _ = store.create_key(name="benchmark", role="system")
        store.close()
        port = _free_port()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "serving.app:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
                "--no-access-log",
                "--workers",
                str(args.workers),
            ],
            env=env,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(120):
                try:
                    if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.5)
            asyncio.run(_drive(url, key, bodies, 4, 2.0))  # warm-up
            generator = "wrk" if shutil.which("wrk") else "python-asyncio"
            if generator == "wrk":
                results = [_wrk(url, key, bodies[0], n, args.seconds, folder) for n in (1, 8, 32)]
            else:
                results = [asyncio.run(_drive(url, key, bodies, n, args.seconds)) for n in (1, 8, 32)]
        finally:
            server.terminate()
            server.wait(timeout=30)
    at8 = next(r for r in results if r["clients"] == 8)
    print(
        json.dumps(
            {
                "load_generator": generator,
                "workers": args.workers,
                "results": results,
                "aim_at_8_clients": {"rps": AIM_RPS, "p99_ms": AIM_P99_MS},
                "rps_ratio_to_aim": round(at8["rps"] / AIM_RPS, 2),
                "p99_ratio_to_aim": round(at8["p99_ms"] / AIM_P99_MS, 2),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
