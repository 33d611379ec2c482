"""The service subcommands: serve the API (training first on a fresh clone), API keys, the audit trail.

They reach the audit store as its owner (``CCR_OWNER_DATABASE_URL``, else ``CCR_DATABASE_URL``): they migrate it and,
on PostgreSQL, grant the service's role (the user of ``CCR_DATABASE_URL``) INSERT and SELECT only."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from cli.common import CLI, EXIT_INPUT, EXIT_USAGE, date, role
from cli.progress import Progress, estimate_seconds, quiet_libraries

DEFAULT_DATA = Path("data/synthetic")
DEFAULT_COHORT: dict[str, Any] = {"children": 40_000, "seed": 20250331, "start": 2016, "end": 2025}


def _ensure_champion(data: Path, *, quiet: bool = False) -> None:
    """On a fresh clone: generate the default synthetic authority if absent, then train, if no champion exists.

    Where the store is a local SQLite file not made yet, there is certainly no champion: generation then starts at
    once in its own process, and this one imports the training stack and creates the store meanwhile, single-threaded
    work that would otherwise leave a core idle."""
    from training.settings import get_settings as training_settings

    settings = training_settings()
    generating = not (data / "manifest.json").exists()
    early = _start_generating(data) if generating and _store_is_new(settings.tracking_uri) else None
    if early is None:
        from training.pipeline import champion_or_none

        if champion_or_none(settings) is not None:
            return
    quiet_libraries()
    children = DEFAULT_COHORT["children"]
    estimates = ([estimate_seconds("generate", children)] if generating else []) + [estimate_seconds("train", children)]
    progress = Progress("serve", stages=len(estimates), quiet=quiet)
    print(
        f"closure-risk serve: first run: no champion model yet, so it "
        f"{'generates the synthetic authority (' + format(children, ',') + ' children) and ' if generating else ''}"
        f"trains one before serving: about {round(sum(estimates) / 60 + 0.5)} min on this machine now.",
        file=sys.stderr,
    )
    if generating:
        with progress.stage(f"generating {data} ({children:,} children)", estimate_s=estimates[0]) as done:
            if early is not None:
                from models import compile_explainer
                from training.pipeline import champion_or_none

                try:
                    champion_or_none(settings)  # creates the store while the cohort is generated
                    compile_explainer()  # ... and compiles the explainer, which the new model's logging would wait for
                except BaseException:  # never leave the generation running on its own
                    early.kill()
                    early.wait()
                    raise
                made = _generated(early)
            else:
                from synthetic import generate_cohort

                summary = generate_cohort(out=data, **DEFAULT_COHORT)
                made = {"children": summary.children, "episodes": summary.episodes}
            done(f"{made['children']:,} children, {made['episodes']:,} episodes")
    from training.pipeline import train

    with progress.stage("training, evaluating and registering a model", estimate_s=estimates[-1]) as done:
        report = train(data, settings)
        done(f"version {report.version}, {'promoted to champion' if report.promoted else 'not promoted'}")
    print(json.dumps({"trained": report.version, "promoted": report.promoted, "test": report.test}))
    if not report.promoted:
        raise SystemExit("closure-risk serve: the trained model did not pass the promotion gate; see its reasons")


def _store_is_new(tracking_uri: str) -> bool:
    """The tracking store is a local SQLite file that does not exist yet (so it holds no champion); any other store
    is asked."""
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix):
        return False
    path = tracking_uri.removeprefix(prefix).split("?", 1)[0]
    return bool(path) and path != ":memory:" and not Path(path).exists()


def _start_generating(data: Path) -> subprocess.Popen[str]:
    """``closure-risk generate`` of the default cohort into ``data``, started in its own process."""
    arguments = [f"--{name}={value}" for name, value in DEFAULT_COHORT.items()]
    return subprocess.Popen(
        [sys.executable, "-m", "closure_risk", "--quiet", "generate", *arguments, f"--out={data}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _generated(process: subprocess.Popen[str]) -> dict[str, Any]:
    """Wait for the generation started by ``_start_generating``: its summary, or the end of the command with its
    error."""
    out, err = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"closure-risk serve: generating the synthetic authority failed: {err.strip()[-2000:]}")
    summary: dict[str, Any] = json.loads(out)
    return summary


def owner_store(*, inputs: bool = False) -> Any:
    """The audit store as its owner, migrated, the service's role granted (PostgreSQL, when the two URLs differ)."""
    from sqlalchemy.engine import make_url

    from audit import AuditStore, create_private_sqlite, load_inputs_cipher
    from serving.settings import get_settings

    settings = get_settings()
    cipher = load_inputs_cipher(settings.inputs_key_path) if inputs else None
    store = AuditStore(settings.migrating_url, inputs=cipher)
    create_private_sqlite(settings.database_url)
    service, owner = make_url(settings.database_url).username, make_url(settings.migrating_url).username
    store.migrate(service_role=service if service and service != owner else None)
    return store


def _serve(args: argparse.Namespace) -> int:
    from serving.settings import get_settings

    settings = get_settings()
    if settings.model_uri == "models:/case-closure-risk@champion":
        _ensure_champion(args.data, quiet=args.quiet)
    from audit import ALL_TEAMS
    from features import Role
    from serving.server import run

    store = owner_store()
    base = f"http://{args.host}:{args.port}"
    if not store.list_keys():
        print("Development keys, shown once (keep them; `closure-risk keys create` makes more):")
        for role in Role:
            plaintext, _ = store.create_key(name=f"development-{role}", role=role, created_by=CLI, team=ALL_TEAMS)
            print(f"  {role:8s} {plaintext}")
        print(f"Sign in at {base}/v1/ui/login with the manager key; score with the system key (see {base}/docs).")
    store.close()
    print(f"Serving on {base}: the manager's pages at {base}/v1/ui/login, the API description at {base}/docs",
          flush=True)  # fmt: skip
    run(host=args.host, port=args.port, workers=args.workers)  # uvicorn, with the service's timeouts
    return 0


def _keys(args: argparse.Namespace) -> int:
    from audit import rotate_inputs_key
    from serving.settings import get_settings

    if args.keys_command == "rotate-inputs":
        old, new = rotate_inputs_key(get_settings().inputs_key_path)
        print(json.dumps({"retired": old, "current": new}))
        return 0
    store = owner_store()
    try:
        if args.keys_command == "create":
            try:
                plaintext, key = store.create_key(name=args.name, role=args.role, created_by=CLI, team=args.team)
            except ValueError as exc:
                print(f"closure-risk keys create: {exc}", file=sys.stderr)
                return EXIT_USAGE
            print(json.dumps({"id": key.id, "name": key.name, "role": key.role, "team": key.team, "key": plaintext}))
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
    from audit import StoreError
    from audit.trail import run_audit_command
    from serving.settings import get_settings

    if args.action in ("migrate", "reads"):
        try:
            store = owner_store()
        except StoreError as exc:
            print(f"closure-risk audit {args.action}: {exc}", file=sys.stderr)
            return EXIT_INPUT
        try:
            if args.action == "reads":
                since = dt.datetime.combine(args.since, dt.time(), dt.UTC) if args.since else None
                for read in store.reads(score_id=args.score, key_id=args.key, since=since, limit=args.limit):
                    print(json.dumps({"id": read.id, "key_id": read.key_id, "what": read.what,
                                      "score_id": read.score_id, "read_at": read.read_at.isoformat()}))  # fmt: skip
        finally:
            store.close()
        return 0
    return run_audit_command(args.action, get_settings().migrating_url, out=args.out)


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
    create.add_argument(
        "--team", required=True, help="the team whose cases the key serves, or '*' for all teams (a lead's key)"
    )
    keys_commands.add_parser("list", help="list keys (never the keys themselves)")
    keys_commands.add_parser(
        "rotate-inputs",
        help="retire the key that seals stored score inputs (kept to open older rows) and create a new one",
    )
    revoke = keys_commands.add_parser("revoke", help="revoke a key")
    revoke.add_argument("id")
    keys.set_defaults(handler=_keys)

    trail = commands.add_parser(
        "audit", help="verify the audit trail's hash chain, export its head, migrate the store, list reads"
    )
    trail.add_argument(
        "action",
        choices=["verify", "head", "migrate", "reads"],
        help="verify every row; write the chain's head; migrate the store as its owner (granting the service's "
        "PostgreSQL role INSERT and SELECT only); list recorded reads of scores and reports, newest first",
    )
    trail.add_argument("--out", type=Path, default=Path("audit-head.json"), help="head: the file to write")
    trail.add_argument("--score", help="reads: of this score only")
    trail.add_argument("--key", help="reads: by this key (id) only")
    trail.add_argument("--since", type=date, help="reads: on or after this day (UTC)")
    trail.add_argument("--limit", type=int, default=1000, help="reads: at most this many")
    trail.set_defaults(handler=_audit)
