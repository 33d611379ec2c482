"""The API fuzzed with schemathesis against its own OpenAPI schema, with a valid key of every role each route admits.

Schema-valid (positive) and schema-breaking (negative) requests to every operation: no 5xx, every response
matches the schema (status, content type, body), schema-breaking data is refused, and every 4xx says what was
wrong in a ``detail``. A case record can be schema-valid and still break a census rule (dates out of order, say):
that gets a 422 naming the rule, so schemathesis' "valid data is accepted" check does not apply here (EXCLUDED).

Bounded for ``make test`` (``CCR_FUZZ_EXAMPLES`` cases per operation, role and mode; default 10); ``make fuzz``
runs it longer and prints the count of cases sent.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import Case as SchemathesisCase
from schemathesis import GenerationMode
from schemathesis.core.parameters import ParameterLocation
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import ignored_auth, positive_data_acceptance

from features import ChildRecord, Role
from serving.app import create_app
from serving.deps import RoleCheck
from serving.settings import ServingSettings
from tests.serving.test_security import AS_OF, ROLES, _roles_required
from tests.strategies import child_records

Case = SchemathesisCase[Any]
EXAMPLES = int(os.environ.get("CCR_FUZZ_EXAMPLES", "10"))
# A reload reads the model from disk: a few of them show it is safe, many only slow the run.
FEW = {"POST /v1/admin/reload": 3}
RECORD_BODIES = frozenset({"POST /v1/score", "POST /v1/score/batch"})
# positive_data_acceptance: a schema-valid record may break a census rule (422 naming it). ignored_auth: the key is
# put in after schemathesis builds the case, so it takes the valid key for a generated one; keys are tested on every
# route by tests/serving/test_security.py (missing, wrong, revoked, wrong role).
EXCLUDED = [positive_data_acceptance, ignored_auth]


@pytest.fixture(scope="module")
def fuzz_client(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    folder = tmp_path_factory.mktemp("fuzz")
    settings_ = ServingSettings(
        model_uri=str(bundle),
        database_url=f"sqlite:///{folder}/audit.db",
        pseudonym_key_file=str(folder / "pseudonym.key"),
        batch_limit=20,
        max_body_bytes=2_000_000,
    )
    with TestClient(create_app(settings_)) as client:
        yield client


def _allowed_roles(client: TestClient) -> dict[str, tuple[str, ...]]:
    """``METHOD /path`` -> the roles whose keys the route admits (every role where it checks none)."""
    allowed: dict[str, tuple[str, ...]] = {}
    for context in iter_route_contexts(client.app.routes):  # type: ignore[attr-defined]
        route = context.original_route
        if isinstance(route, APIRoute):
            roles = _roles_required(route.dependant) or ROLES
            for method in route.methods or ():
                allowed[f"{method} {context.path or route.path}"] = roles
    return allowed


def useful_detail(ctx: Any, response: Any, case: Case) -> bool | None:
    """Every 4xx carries a ``detail`` that says something (a sentence, or a list of errors each with a message)."""
    if 400 <= response.status_code < 500:
        if str(response.headers.get("content-type", [""])[0]).startswith("text/html"):
            assert response.content.strip(), f"{response.status_code}: an empty page"  # an HTML page says why
            return None
        body = json.loads(response.content)
        detail = body.get("detail") if isinstance(body, dict) else None
        if isinstance(detail, str):
            assert len(detail.split()) >= 3, f"{response.status_code} with a terse detail: {detail!r}"
        else:
            assert isinstance(detail, list), f"{response.status_code} without a detail: {body!r}"
            assert detail, f"{response.status_code} with an empty list of errors"
            for error in detail:
                assert error.get("msg"), f"{response.status_code}: an error says nothing: {error}"
                assert error.get("loc"), f"{response.status_code}: an error does not say where: {error}"
    return None


def _send(client: TestClient, case: Case, key: str) -> Any:
    """The case with the role's key, unless the case breaks the Authorization header itself: then as generated."""
    sent = case.as_transport_kwargs(base_url="http://testserver")
    headers = dict(sent.get("headers") or {})
    if case.meta is None or not case.meta.is_negative_at(ParameterLocation.HEADER):
        headers["Authorization"] = f"Bearer {key}"
    if sent.get("cookies"):  # a header: httpx deprecates per-request cookies
        headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in sent["cookies"].items())
    data = sent.get("data")
    form = data if isinstance(data, dict) else None  # a form body (the pages' forms): encoded as a form
    content = None if form is not None else data
    return client.request(
        sent["method"],
        sent["url"],
        headers=headers,
        params=sent.get("params"),
        json=sent.get("json") if data is None else None,
        content=content,
        data=form,
    )


def _path_values(client: TestClient, records: list[ChildRecord], keys: dict[str, str]) -> dict[str, list[str]]:
    """Real ids for path parameters, so some cases reach a stored score instead of a 404."""
    body = {"record": json.loads(records[0].model_dump_json(exclude_none=True)), "as_of": AS_OF.isoformat()}
    response = client.post("/v1/score", json=body, headers={"Authorization": f"Bearer {keys['system']}"})
    assert response.status_code == 200, response.text
    return {"score_id": [response.json()["score_id"]]}


def _fuzz(
    client: TestClient, cases: st.SearchStrategy[Case], *, key: str, label: str, examples: int, sent: Counter[str]
) -> None:
    @settings(
        max_examples=examples, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    @given(case=cases)
    def fuzz(case: Case) -> None:
        response = _send(client, case, key)
        sent[f"{label} {response.status_code}"] += 1
        case.validate_response(response, excluded_checks=EXCLUDED, additional_checks=[useful_detail])

    with contextlib.suppress(Unsatisfiable):  # negative mode on an operation with nothing to break
        fuzz()


def _without_security(openapi: dict[str, Any]) -> dict[str, Any]:
    """The schema without its security requirements: every case carries a valid key of the role under test.

    Left in, schemathesis spends most schema-breaking cases on the Authorization header (a 401 each), which
    tests/serving/test_security.py already covers on every route; taken out, they go to the bodies and parameters.
    """
    stripped = copy.deepcopy(openapi)
    for operations in stripped.get("paths", {}).values():
        for operation in operations.values():
            operation.pop("security", None)
    return stripped


def _record_cases(operation: Any, label: str) -> st.SearchStrategy[Case]:
    """Cases carrying a census-valid record (generated by tests/strategies.py), so scoring itself is fuzzed too."""

    def with_record(record: ChildRecord) -> st.SearchStrategy[Case]:
        case = {"record": json.loads(record.model_dump_json(exclude_none=True)), "as_of": AS_OF.isoformat()}
        body: dict[str, Any] = {"cases": [case]} if label == "POST /v1/score/batch" else case
        strategy: st.SearchStrategy[Case] = operation.as_strategy(generation_mode=GenerationMode.POSITIVE, body=body)
        return strategy

    return child_records().flatmap(with_record)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["positive", "negative"])
def test_api_fuzzed_from_its_own_schema_with_every_role(
    fuzz_client: TestClient, open_records: list[ChildRecord], mode: GenerationMode
) -> None:
    client = fuzz_client
    store = client.app.state.store  # type: ignore[attr-defined]
    keys = {role: store.create_key(name=f"fuzz-{role}-{uuid.uuid4().hex[:8]}", role=role)[0] for role in ROLES}
    schema = schemathesis.openapi.from_dict(_without_security(client.app.openapi()))  # type: ignore[attr-defined]
    allowed = _allowed_roles(client)
    real = _path_values(client, open_records, keys)
    results = list(schema.get_all_operations())
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert len(operations) == len(results), "schemathesis could not read every operation of the schema"
    sent: Counter[str] = Counter()
    assert len(operations) >= 10
    for operation in operations:
        label = f"{operation.method.upper()} {operation.path}"
        names = re.findall(r"\{([^}]+)\}", operation.path)
        strategies = [operation.as_strategy(generation_mode=mode)]
        if names and all(name in real for name in names) and mode is GenerationMode.POSITIVE:
            for values in zip(*(real[name] for name in names), strict=True):
                fixed = dict(zip(names, values, strict=True))
                strategies.append(operation.as_strategy(generation_mode=mode, path_parameters=fixed))
        if label in RECORD_BODIES and mode is GenerationMode.POSITIVE:
            strategies.append(_record_cases(operation, label))
        for role in allowed[label]:
            examples = FEW.get(label, EXAMPLES)
            _fuzz(client, st.one_of(strategies), key=keys[role], label=label, examples=examples, sent=sent)
    print(f"\nfuzzed API cases ({mode.value}): {sum(sent.values())}; by operation and status:")
    for line, count in sorted(sent.items()):
        print(f"  {count:6d}  {line}")
    statuses: Counter[int] = Counter()
    for line, count in sent.items():
        statuses[int(line.rsplit(" ", 1)[1])] += count
    assert not [status for status in statuses if status >= 500]
    # Each refusal was checked case by case (negative_data_rejection); here: the run reached the code behind them.
    assert statuses[200] + statuses[201] if mode is GenerationMode.POSITIVE else statuses[422], statuses


def test_role_checks_are_found_on_the_guarded_routes(fuzz_client: TestClient) -> None:
    """The fuzzing above relies on reading each route's RoleCheck: it must see the ones the API declares."""
    allowed = _allowed_roles(fuzz_client)
    assert allowed["POST /v1/score"] == ("system",)
    assert allowed["POST /v1/scores/{score_id}/decision"] == ("manager",)
    assert allowed["DELETE /v1/admin/keys/{key_id}"] == ("admin",)
    assert allowed["GET /v1/model"] == ROLES
    assert isinstance(RoleCheck(Role.ADMIN), RoleCheck)
