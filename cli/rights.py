"""Data rights subcommands: a child's records for a subject access request, a score marked as based on wrong input,
and the retention schedule applied.

Nothing printed names a child: the export goes to files (mode 0600) and standard output gets counts and paths.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from cli.common import CLI, EXIT_INPUT, EXIT_USAGE, date
from cli.service import owner_store


def _private_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    path.chmod(0o600)  # an existing file keeps its mode on open: make it private too


def _subject(args: argparse.Namespace) -> int:
    from audit import Pseudonymiser, StoreError, load_or_create_key
    from audit.subject import export_subject
    from serving.settings import get_settings

    settings = get_settings()
    key_file = Path(settings.pseudonym_key_file)
    if not key_file.exists():  # a new key would find nothing: say so rather than make one
        print(f"closure-risk subject: no pseudonym key at {key_file} (CCR_PSEUDONYM_KEY_FILE)", file=sys.stderr)
        return EXIT_INPUT
    store = owner_store(inputs=True)  # migrated as the owner; sealed inputs opened
    try:
        export = export_subject(store, Pseudonymiser(load_or_create_key(key_file)), args.child,
                                birth_date=args.birth_date)  # fmt: skip
    except (StoreError, ValueError) as exc:
        print(f"closure-risk subject: {exc}", file=sys.stderr)
        return EXIT_INPUT
    finally:
        store.close()
    _private_write(args.out, (json.dumps(export.as_json(), indent=2, ensure_ascii=False) + "\n").encode())
    written = {"scores": len(export.scores), "json": str(args.out)}
    if args.pdf is not None:
        from serving.subject import subject_pdf

        _private_write(args.pdf, subject_pdf(export))
        written["pdf"] = str(args.pdf)
    print(json.dumps(written, sort_keys=True))
    return 0


def _annotate(args: argparse.Namespace) -> int:
    from audit import ScoreNotFound, StoreError

    store = owner_store(inputs=True)  # migrated as the owner; sealed inputs opened
    try:
        row = store.annotate_score(
            args.score, annotated_by=CLI, wrong_inputs=args.wrong_input, note=args.note, rescored_as=args.rescored_as
        )
    except ScoreNotFound as exc:
        print(f"closure-risk annotate: no score {exc}", file=sys.stderr)
        return EXIT_INPUT
    except ValueError as exc:
        print(f"closure-risk annotate: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except StoreError as exc:
        print(f"closure-risk annotate: {exc}", file=sys.stderr)
        return EXIT_INPUT
    finally:
        store.close()
    print(json.dumps({"annotation": row.id, "score": row.score_id, "rescored_as": row.rescored_as}))
    return 0


def _retention(args: argparse.Namespace) -> int:
    from audit import StoreError
    from audit.retention import DEFAULT_SCHEDULE, RetentionSchedule, apply_retention, plan_retention

    try:
        schedule = RetentionSchedule.load(args.schedule or DEFAULT_SCHEDULE)
    except (OSError, ValueError) as exc:
        print(f"closure-risk retention: {exc}", file=sys.stderr)
        return EXIT_USAGE
    store = owner_store(inputs=True)  # migrated as the owner; sealed inputs opened
    try:
        plan = plan_retention(store, schedule, today=args.today)
        summary: dict[str, object] = {**plan.summary(), "erased": None}
        if args.action == "apply" and args.confirm:
            summary["erased"] = apply_retention(store, plan, erased_by=CLI)
        elif args.action == "apply":
            summary["note"] = "dry run: nothing was erased; add --confirm to erase the scores due"
    except StoreError as exc:
        print(f"closure-risk retention: {exc}", file=sys.stderr)
        return EXIT_INPUT
    finally:
        store.close()
    print(json.dumps(summary, sort_keys=True))
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    subject = commands.add_parser(
        "subject",
        help="export every score about a child (subject access): JSON, and a readable PDF",
        description="Find every score about a child through the pseudonym key (CCR_PSEUDONYM_KEY_FILE) in the audit "
        "store (CCR_DATABASE_URL): its inputs, reasons, what-ifs, decisions with their reviews, and annotations. "
        "The files are written with mode 0600; standard output holds only counts and paths. Parents: the census "
        "and the case-management extension carry no parent identifier, so no record is kept or found by one.",
    )
    subject.add_argument("--child", required=True, help="the child's LAchildID")
    subject.add_argument("--birth-date", type=date, default=None, help="narrows the search (optional)")
    subject.add_argument("--out", type=Path, default=Path("subject-access.json"), help="the JSON export")
    subject.add_argument("--pdf", type=Path, default=None, help="also write the readable PDF here")
    subject.set_defaults(handler=_subject)

    annotate = commands.add_parser(
        "annotate",
        help="mark a score as based on wrong input (an appended row; the score is never changed)",
        description="Append an annotation to the audit chain saying which inputs of a score were wrong; name the "
        "score made from the corrected record with --rescored-as (score it through the API, or annotate through "
        "POST /v1/admin/scores/{score_id}/annotations with the corrected record, which scores it).",
    )
    annotate.add_argument("score", help="the score's id")
    annotate.add_argument("--wrong-input", action="append", required=True, help="an input that was wrong (repeat)")
    annotate.add_argument("--note", required=True, help="what was wrong, and how it was found")
    annotate.add_argument("--rescored-as", default=None, help="the score made from the corrected record")
    annotate.set_defaults(handler=_annotate)

    retention = commands.add_parser(
        "retention",
        help="the retention schedule: what is past it (plan), and erase it (apply --confirm)",
        description="Work out which scores (with their decisions, reviews and annotations) are past the retention "
        "schedule (default: audit/retention.toml, the case records of children in need: to the 25th birthday), "
        "and with apply --confirm erase them: each row leaves a tombstone in the audit chain, so `closure-risk "
        "audit verify` still passes. apply without --confirm is a dry run.",
    )
    retention.add_argument("action", choices=["plan", "apply"], help="plan: show what is due; apply: erase it")
    retention.add_argument("--confirm", action="store_true", help="apply: really erase (otherwise a dry run)")
    retention.add_argument("--schedule", type=Path, default=None, help="a retention schedule (TOML) to use instead")
    retention.add_argument("--today", type=date, default=None, help="judge as on this date (default: today)")
    retention.set_defaults(handler=_retention)
