"""The model a worker process serves, kept in step with the reloads recorded in the audit store.

``POST /v1/admin/reload`` reaches one worker process: it loads the champion, records the reload (``model_reloads``,
numbered by generation, with the bundle's digest) and swaps it in. Every request of every worker reads the latest
reload's generation with its key check (``audit.AuditStore.generations``: the same single SELECT); a worker whose model
came from an earlier reload loads the recorded version (``models:/<name>/<version>``, the registry's digest-checked
load: never a pickle), checks that its bundle has the recorded digest, and swaps it in before it answers. One load
at a time per worker (a lock); a load that fails or is refused leaves the old model serving, is logged as a security
event (ids and versions only), and is tried again by a request ``RETRY_S`` seconds later.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Final

from audit import AuditStore, ModelReload, StoreError
from models import RiskModel
from models.registry import ModelRefusedError, ModelUnavailableError, load_model_uri
from serving.security import security_event

__all__ = ["RETRY_S", "ModelHolder", "bundle_digest", "load_reloaded"]

log = logging.getLogger("case_closure_risk.serving")
RETRY_S: Final = 30.0  # a reload this worker could not load is tried again after this long (by a later request)


def bundle_digest(model: RiskModel) -> str:
    """SHA-256 (hex) of what a bundle scores with: the booster's text, then its calibration, bands, reference
    distributions and feature specification as canonical JSON (its metadata, which loading fills in, left out). The
    same bundle gives the same digest in every process."""
    parts = {
        "calibrator": model.calibrator.to_dict(),
        "bands": model.bands.to_dict(),
        "reference": model.reference.to_dict(),
        "feature_spec": model.feature_spec,
    }
    digest = hashlib.sha256(model.booster.model_to_string().encode("utf-8"))
    digest.update(b"\0" + json.dumps(parts, sort_keys=True, separators=(",", ":")).encode("utf-8"))
    return digest.hexdigest()


def load_reloaded(reload: ModelReload, *, model_uri: str) -> RiskModel:
    """The very model a recorded reload swapped in: its registered version (a local bundle: the service's own
    folder), refused (``ModelRefusedError``) unless its version and bundle digest are the ones recorded."""
    uri = f"models:/{reload.model_name}/{reload.model_version}" if reload.model_version.isdigit() else model_uri
    model = load_model_uri(uri)
    if model.version != reload.model_version:
        raise ModelRefusedError(f"version {model.version} was found where the reload recorded {reload.model_version}")
    if bundle_digest(model) != reload.bundle_digest:
        raise ModelRefusedError(f"version {model.version}'s bundle differs from the one the reload recorded (SHA-256)")
    return model


class ModelHolder:
    """The model being served and the reload generation it came from. A swap replaces the reference in one
    assignment: a request keeps the model it got."""

    def __init__(
        self, model: RiskModel, *, generation: int = 0, on_swap: Callable[[RiskModel], None] | None = None
    ) -> None:
        model.explainer  # noqa: B018 (built now, at start-up, rather than in the first request)
        self._model = model
        self._digest = bundle_digest(model)
        self.generation = generation  # the latest reload this worker's model stands for (0: none recorded)
        self._on_swap = on_swap
        self._lock = threading.Lock()  # one load at a time in this worker: a reload or a follow
        self._failed: tuple[int, float] | None = None  # the reload that could not be loaded, and when

    @property
    def model(self) -> RiskModel:
        return self._model

    def behind(self, generation: int) -> bool:
        """Whether a reload newer than this worker's model was recorded (``generation``: the latest one seen)."""
        return generation > self.generation

    @contextmanager
    def loading(self) -> Iterator[None]:
        """Held while a reload loads and swaps: a follow in this worker waits for it rather than load again."""
        with self._lock:
            yield

    def swap(self, model: RiskModel, *, generation: int | None = None, digest: str | None = None) -> RiskModel:
        """Serve ``model`` from now on (and record the reload generation it stands for); the previous model."""
        model.explainer  # noqa: B018 (built before the swap: requests keep being served meanwhile)
        digest = digest or bundle_digest(model)
        previous, self._model, self._digest = self._model, model, digest
        if generation is not None:
            self.generation = max(self.generation, generation)
            self._failed = None
        if self._on_swap is not None:
            self._on_swap(model)
        return previous

    def follow(self, generation: int, store: AuditStore, *, model_uri: str) -> RiskModel:
        """The model to answer with once reload ``generation`` (or a later one) is followed: loaded and swapped in
        here, or the old model when the load fails (logged; tried again after ``RETRY_S``)."""
        if not self.behind(generation):
            return self._model
        with self._lock:
            if not self.behind(generation) or self._waiting(generation):
                return self._model
            try:
                reload = store.latest_reload()
            except StoreError:  # the request itself meets the store next, and says so
                return self._model
            if reload is None or reload.generation <= self.generation:
                return self._model
            if (reload.model_name, reload.model_version, reload.bundle_digest) == (
                self._model.name, self._model.version, self._digest,
            ):  # fmt: skip
                self.generation = reload.generation  # this very bundle is served already
                return self._model
            try:
                model = load_reloaded(reload, model_uri=model_uri)
            except (ModelUnavailableError, OSError):
                self._failed = (reload.generation, time.monotonic())
                security_event("model_follow_failed", generation=str(reload.generation), version=reload.model_version,
                               serving=self._model.version)  # fmt: skip
                return self._model
            except ValueError:  # ModelRefusedError among them: the bundle is not the one recorded
                self._failed = (reload.generation, time.monotonic())
                security_event("model_follow_refused", generation=str(reload.generation),
                               version=reload.model_version, serving=self._model.version)  # fmt: skip
                return self._model
            previous = self.swap(model, generation=reload.generation, digest=reload.bundle_digest)
            security_event("model_reload_followed", generation=str(reload.generation), version=model.version,
                           previous_version=previous.version, by=reload.reloaded_by)  # fmt: skip
            log.info("serving model %s version %s (reload %d)", model.name, model.version, reload.generation)
            return model

    def _waiting(self, generation: int) -> bool:
        """Whether the latest reload failed to load here a moment ago (a later request tries it again)."""
        failed = self._failed
        return failed is not None and generation <= failed[0] and time.monotonic() - failed[1] < RETRY_S
