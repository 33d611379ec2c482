"""The service subcommands: serve the API (training first on a fresh clone), API keys, the audit trail."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from cli.common import CLI, EXIT_INPUT, EXIT_USAGE, role

DEFAULT_DATA = Path("data/synthetic")
DEFAULT_COHORT: dict[str, Any] = {"children": 40_000, "seed": 20250331, "start": 2016, "end": 2025}


def _ensure_champion(data: Path) -> None:
    """On a fresh clone: generate the default synthetic authority if absent, then train, if no champion exists."""
    from training.pipeline import champion_or_none, train
    from training.settings import get_settings as training_settings

    settings = training_settings()
    if champion_or_none(settings) is not None:
        return
    if not (data / "manifest.json").exists():
        from synthetic import generate_cohort

        print(f"closure-risk serve: no champion model and no data: generating {data} first", file=sys.stderr)
        generate_cohort(out=data, **DEFAULT_COHORT)
    print("closure-risk serve: no champion model: training one", file=sys.stderr)
    report = train(data, settings)
    print(json.dumps({"trained": report.version, "promoted": report.promoted, "test": report.test}))
    if not report.promoted:
        raise SystemExit("closure-risk serve: the trained model did not pass the promotion gate; see its reasons")


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from audit import AuditStore
    from features import Role
    from serving.settings import get_settings

    settings = get_settings()
    if settings.model_uri == "models:/case-closure-risk@champion":
        _ensure_champion(args.data)
    store = AuditStore(settings.database_url)
    store.migrate()
    if not store.list_keys():
        print("Development keys, shown once (keep them; `closure-risk keys create` makes more):")
        for role in Role:
            plaintext, _ = store.create_key(name=f"development-{role}", role=role, created_by=CLI)
            print(f"  {role:8s} {plaintext}")
    store.close()
    print(f"Serving on http://{args.host}:{args.port} (API description: /docs)", flush=True)
    uvicorn.run(
        "serving.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="info",
        access_log=False,
    )
    return 0


def _keys(args: argparse.Namespace) -> int:
    from audit import AuditStore
    from serving.settings import get_settings

    store = AuditStore(get_settings().database_url)
    store.migrate()
    try:
        if args.keys_command == "create":
            try:
                plaintext, key = store.create_key(name=args.name, role=args.role, created_by=CLI)
            except ValueError as exc:
                print(f"closure-risk keys create: {exc}", file=sys.stderr)
                return EXIT_USAGE
            print(json.dumps({"id": key.id, "name": key.name, "role": key.role, "key": plaintext}))
        elif args.keys_command == "list":
            for k in store.list_keys():
                print(json.dumps({n: v.isoformat() if isinstance(v, dt.datetime) else v for n, v in vars(k).items()}))
        elif not store.revoke_key(args.id, revoked_by=CLI):
            print(f"closure-risk keys revoke: no key {args.id}", file=sys.stderr)
            return EXIT_INPUT
    finally:
        store.close()
    return 0


def _audit(args: argparse.Namespace) -> int:
    from audit.trail import run_audit_command
    from serving.settings import get_settings

    return run_audit_command(args.action, get_settings().database_url, out=args.out)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser(
        "serve",
        help="run the scoring API (trains a model first on a fresh clone)",
        description="Run the FastAPI service (settings from CCR_* variables; see .env.example). With the default "
        "model URI and no champion yet, it first generates the synthetic authority (if absent) and trains. On an "
        "empty audit store it prints one development key per role, once.",
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    serve.add_argument("--data", type=Path, default=DEFAULT_DATA, help="data folder used to train on a fresh clone")
    serve.set_defaults(handler=_serve)

    keys = commands.add_parser("keys", help="create, list or revoke API keys", description="API keys of the service.")
    keys_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = keys_commands.add_parser("create", help="create a key and print it once")
    create.add_argument("--role", required=True, type=role, help="the key's role: system, manager or admin")
    create.add_argument("--name", required=True, help="who or what uses the key (shown in the audit)")
    keys_commands.add_parser("list", help="list keys (never the keys themselves)")
    revoke = keys_commands.add_parser("revoke", help="revoke a key")
    revoke.add_argument("id")
    keys.set_defaults(handler=_keys)

    trail = commands.add_parser("audit", help="verify the audit trail's hash chain, or export its head")
    trail.add_argument("action", choices=["verify", "head"], help="verify every row, or write the chain's head")
    trail.add_argument("--out", type=Path, default=Path("audit-head.json"), help="head: the file to write")
    trail.set_defaults(handler=_audit)
