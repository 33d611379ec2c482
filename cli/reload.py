"""``closure-risk reload``: tell a running service to load the current champion (after ``closure-risk train``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request

from cli.common import EXIT_INPUT, EXIT_USAGE

DEFAULT_URL = "http://127.0.0.1:8000"
KEY_VARIABLE = "CCR_ADMIN_KEY"


def _reload(args: argparse.Namespace) -> int:
    key = args.key or os.environ.get(KEY_VARIABLE, "")
    if not key:
        print(f"closure-risk reload: an admin key is needed: --key or {KEY_VARIABLE}", file=sys.stderr)
        return EXIT_USAGE
    request = urllib.request.Request(
        f"{args.url.rstrip('/')}/v1/admin/reload",
        method="POST",
        headers={"Authorization": f"Bearer {key}", "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=args.timeout) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")[:300]
        print(f"closure-risk reload: the service answered {exc.code}: {detail}", file=sys.stderr)
        return EXIT_INPUT
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        print(f"closure-risk reload: no service at {args.url} ({reason}); is it running?", file=sys.stderr)
        return EXIT_INPUT
    print(json.dumps(answer, sort_keys=True))
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    reload = commands.add_parser(
        "reload",
        help="make a running service load the current champion (after training)",
        description="POST /v1/admin/reload on a running service: it loads the model the 'champion' alias points "
        "at and records the reload in the audit store, every worker process serves that version from its next "
        "request, and requests in flight finish on the old one. Prints the version now served and the one before. "
        "Needs an admin key.",
    )
    reload.add_argument("--url", default=DEFAULT_URL, help=f"the service (default {DEFAULT_URL})")
    reload.add_argument("--key", help=f"an admin API key (default: the {KEY_VARIABLE} environment variable)")
    reload.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the service")
    reload.set_defaults(handler=_reload)
