"""What sealing a score's inputs and recording reads cost, against named baselines in the same run.

- **seal**: ``audit.crypto.seal_score`` of a realistic row (every feature, every reason, what-ifs) against the JSON
  encoding of the same personal fields, which the insert did before they were sealed (baseline ``encode``);
- **open**: ``open_score`` against decoding that JSON (baseline ``decode``);
- **store**: ``AuditStore.save_scores`` of one sealed row (a transaction, the chain's append, the flush) on SQLite;
- **read**: ``AuditStore.record_read`` (a chained row per read of a score or report) against ``get_score`` (the read
  it records);
- **auth**: the key check every authenticated request makes (``serving.auth.authenticate``: the cached key and the
  store's key generation, one SELECT) against verifying the key in the store each time (baseline); and a keyless
  15 MB upload refused by ``AuthGate`` before its body is read, against parsing such a body as JSON (what a request
  cost before the key was checked first).

Each figure is the mean and worst of ``--repeats`` runs, in microseconds per row; the machine's load is printed.

    .venv/bin/python -m benchmarks.bench_audit_store --repeats 7
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, MutableMapping
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from audit import AuditStore, InputsCipher, ReadKind, ScoreRow
from audit.crypto import SEALED_FIELDS, open_score, seal_score
from features import FEATURE_NAMES, Band, Role


def _row() -> ScoreRow:
    features: dict[str, float | str | None] = {name: 1.0 + i / 7 for i, name in enumerate(FEATURE_NAMES)}
    reasons: list[dict[str, object]] = [
        {"feature": name, "label": name.replace("_", " "), "value": features[name], "contribution": 0.01 * i,
         "direction": "raises"} for i, name in enumerate(FEATURE_NAMES)
    ]  # fmt: skip
    what_ifs: list[dict[str, object]] = [
        {"change": f"change {i}", "addresses": [FEATURE_NAMES[i]], "probability": 0.2, "difference": -0.05}
        for i in range(3)
    ]
    return ScoreRow(
        id=uuid.uuid4().hex, created_at=datetime.now(UTC), caller="bench", request_id="r", model_name="m",
        model_version="1", case_id="case_" + "0" * 32, as_of=date(2025, 3, 31), probability=0.3, band=Band.MEDIUM,
        raw_score=-0.8, base_value=-1.2, in_scope=True, out_of_distribution=[], features=features, reasons=reasons,
        what_ifs=what_ifs, warnings=["a warning"], ethnic_group="WBRI", team="North",
    )  # fmt: skip


def _per_call_us(work: Callable[[], object], *, calls: int, repeats: int) -> tuple[float, float]:
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(calls):
            work()
        runs.append((time.perf_counter() - started) / calls * 1e6)
    return statistics.mean(runs), max(runs)


def _auth_figures(store: AuditStore, args: argparse.Namespace) -> dict[str, tuple[float, float]]:
    """The key check and the gate, on the store being measured."""
    from types import SimpleNamespace

    from serving.auth import AuthGate, FailureLimiter, KeyCache, authenticate

    plaintext, _ = store.create_key(name="bench-system", role=Role.SYSTEM)
    keys, limiter = KeyCache(lambda: store), FailureLimiter(limit=10**9, window_s=1.0)
    scope: dict[str, Any] = {"type": "http", "method": "POST", "path": "/v1/score", "client": ("127.0.0.1", 1),
                             "headers": [(b"authorization", f"Bearer {plaintext}".encode())]}  # fmt: skip
    calls = max(args.calls // 10, 10)
    figures = {
        "key check, cached": _per_call_us(
            lambda: authenticate(scope, keys, limiter), calls=calls, repeats=args.repeats
        ),
        "key check in the store (baseline)": _per_call_us(
            lambda: store.verify_key(plaintext), calls=calls, repeats=args.repeats
        ),
    }
    body = json.dumps({"record": {"la_child_id": "x" * 14_999_950}}).encode()

    async def never_read() -> dict[str, Any]:
        raise AssertionError("the gate read the body of a keyless request")

    async def sent(message: MutableMapping[str, Any]) -> None:
        return None

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("a keyless request reached the route")

    gate = AuthGate(inner)
    app = SimpleNamespace(state=SimpleNamespace(keys=keys, failures=FailureLimiter(limit=10**9, window_s=1.0)))
    keyless = {**scope, "headers": [(b"content-length", str(len(body)).encode())], "app": app}
    loop = asyncio.new_event_loop()
    figures["keyless 15 MB refused"] = _per_call_us(
        lambda: loop.run_until_complete(gate(keyless, never_read, sent)), calls=calls, repeats=args.repeats
    )
    loop.close()
    figures["15 MB body parsed (baseline)"] = _per_call_us(lambda: json.loads(body), calls=3, repeats=args.repeats)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--calls", type=int, default=500)
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()}")
    cipher, row = InputsCipher(secrets.token_bytes(32)), _row()
    personal = {name: getattr(row, name) for name in SEALED_FIELDS}
    encoded, sealed = json.dumps(personal), seal_score(row, cipher)
    figures = {
        "encode (baseline)": _per_call_us(lambda: json.dumps(personal), calls=args.calls, repeats=args.repeats),
        "seal": _per_call_us(lambda: seal_score(row, cipher), calls=args.calls, repeats=args.repeats),
        "decode (baseline)": _per_call_us(lambda: json.loads(encoded), calls=args.calls, repeats=args.repeats),
        "open": _per_call_us(lambda: open_score(sealed, cipher), calls=args.calls, repeats=args.repeats),
    }
    with tempfile.TemporaryDirectory(prefix="ccr-bench-audit-") as folder:
        store = AuditStore(f"sqlite:///{Path(folder) / 'audit.db'}", inputs=cipher)
        store.migrate()
        key = store.create_key(name="bench", role=Role.MANAGER)[1]
        store.save_scores([row])
        calls = max(args.calls // 10, 10)
        figures["store one score"] = _per_call_us(
            lambda: store.save_scores([replace(row, id=uuid.uuid4().hex)]), calls=calls, repeats=args.repeats
        )
        figures["get_score (baseline)"] = _per_call_us(
            lambda: store.get_score(row.id), calls=calls, repeats=args.repeats
        )
        figures["record a read"] = _per_call_us(
            lambda: store.record_read(key_id=key.id, what=ReadKind.REPORT, score_id=row.id),
            calls=calls,
            repeats=args.repeats,
        )
        figures.update(_auth_figures(store, args))
        store.close()
    for name, (mean, worst) in figures.items():
        print(f"{name:34s} mean {mean:9.1f} us   worst {worst:9.1f} us")
    for name, baseline in (("seal", "encode (baseline)"), ("open", "decode (baseline)"),
                           ("record a read", "get_score (baseline)"),
                           ("key check, cached", "key check in the store (baseline)"),
                           ("keyless 15 MB refused", "15 MB body parsed (baseline)")):  # fmt: skip
        print(f"{name} / {baseline}: {figures[name][0] / figures[baseline][0]:.4f}x (mean)")
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
