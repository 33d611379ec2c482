"""Serving settings: one typed class, read from ``CCR_*`` environment variables (and ``.env``)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ServingSettings", "get_settings"]


def _default_tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")


class ServingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CCR_", env_file=".env", extra="ignore")

    model_uri: str = Field(
        default="models:/case-closure-risk@champion",
        description="model to serve: a registry URI (alias or version) or a local bundle folder",
    )
    tracking_uri: str = Field(default_factory=_default_tracking_uri, description="MLflow tracking and registry store")
    database_url: str = Field(
        default="sqlite:///audit.db",
        description="audit store (SQLite file or PostgreSQL URL); on PostgreSQL a role with INSERT and SELECT only",
    )
    owner_database_url: str = Field(
        default="",
        description="the audit store as the role that owns and migrates it (closure-risk commands only; empty: "
        "database_url migrates itself, as on SQLite)",
    )
    inputs_key_file: str = Field(
        default="",
        description="key that seals each score's personal inputs (the case reference among them) in the audit store "
        "(AES-256-GCM) and keys the reference's blind index; created with 0600 permissions if missing; retired keys "
        "in <file>.retired/; empty: inputs.key beside the pseudonym key",
    )
    pseudonym_key_file: str = Field(
        default="var/pseudonym.key",
        description="secret for pseudonymous case ids (HMAC-SHA256); created with 0600 permissions if missing",
    )
    batch_limit: int = Field(default=1000, ge=1, description="most cases in one batch request")
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024, description="largest request body accepted")
    key_failures_per_minute: int = Field(
        default=20, ge=1, description="refused API keys a client may send in a minute before it is answered 429"
    )
    header_timeout_s: float = Field(
        default=10, gt=0, description="a connection must send each request's headers within this many seconds"
    )
    body_timeout_s: float = Field(
        default=10, gt=0, description="most seconds between two parts of a request body before it is refused (408)"
    )
    idle_timeout_s: float = Field(default=5, ge=1, description="an idle keep-alive connection is closed after this")
    top_reasons: int = Field(default=5, ge=1, le=50, description="reasons returned unless ?reasons=all")
    session_hours: float = Field(default=8, gt=0, le=24 * 7, description="a signed-in page session lasts this long")
    session_idle_minutes: float = Field(
        default=30, gt=0, le=24 * 60, description="a page session unused this long ends (sign in again)"
    )
    cookie_secure: bool = Field(
        default=True,
        description="mark the session cookie Secure (browsers still keep it on http://127.0.0.1 and localhost)",
    )
    queue_limit: int = Field(default=50, ge=1, le=1000, description="cases on each page of the queue")
    chain_verify_minutes: float = Field(
        default=15, gt=0, description="the audit trail's hash chain is verified at start-up and this often"
    )
    cors_origins: str = Field(
        default="",
        description="comma-separated browser origins allowed to call the API; empty (the default) allows none",
    )

    @property
    def inputs_key_path(self) -> Path:
        """The inputs key's file: as set, else ``inputs.key`` beside the pseudonym key."""
        return (
            Path(self.inputs_key_file)
            if self.inputs_key_file
            else Path(self.pseudonym_key_file).with_name("inputs.key")
        )

    @property
    def migrating_url(self) -> str:
        """The URL the command line migrates with: the owner's, else the service's own."""
        return self.owner_database_url or self.database_url

    @property
    def cors_origin_list(self) -> list[str]:
        return [origin.strip() for origin in self.cors_origins.split(",") if origin.strip()]


@lru_cache
def get_settings() -> ServingSettings:
    return ServingSettings()
