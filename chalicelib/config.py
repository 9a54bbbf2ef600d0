"""Configuration: validated settings read from ``OCD_*`` environment variables.

Two objects, so that one side's typo cannot take the other down: ``ReadSettings`` holds what the
HTTP API uses (where the export lives, the API key, the manifest TTL, the stale threshold) and
``Settings`` extends it with every writer knob. The API loads ``load_read_settings()`` only, so
an invalid ``OCD_ANALYTICS`` (say) fails the writer's next run, while ``/health`` keeps answering.

Settings are read when a handler runs, never at import: Chalice's test client swaps
``os.environ`` during a call, so a module-level settings object would be wrong in tests. The
exceptions are read by ``app.py`` at import, because Chalice fixes them when it declares routes
and schedules: the schedule rates and ``OCD_CORS_ORIGIN``. Both loaders cache on the exact
``OCD_*`` values, so "validated once" holds per environment.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Mapping
from functools import cache, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from chalicelib.errors import ConfigError

if TYPE_CHECKING:  # imported when the writer first loads its settings (``_analytics_config``)
    from chalicelib.analytics.config import AnalyticsConfig

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ENV_PREFIX = "OCD_"
TICKER_PATTERN = r"^[A-Z][A-Z0-9.-]{0,9}$"
# "*" or scheme://host[:port], as a browser sends it in the Origin header
ORIGIN_PATTERN = r"^(\*|https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?)$"
# Where alerts are delivered (``chalicelib/write/delivery``): endpoints and topics.
URL_PATTERN = r"^https?://[^\s/?#]+[^\s]*$"
SNS_TOPIC_PATTERN = r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$"
DEFAULT_WATCHLIST = (
    "SPY",
    "QQQ",
    "AAPL",
    "MSFT",
    "NVDA",
    "TSLA",
    "AMD",
    "AMZN",
    "META",
    "GOOGL",
    "IWM",
    "JPM",
)


class ReadSettings(BaseModel):
    """What the HTTP API needs, and nothing else. The README's configuration table documents
    each field. A plain pydantic model: ``load_settings`` hands it the ``OCD_*`` variables of
    the environment it is given (pydantic-settings added nothing to that but ~100 ms to the
    API's cold start)."""

    # defer_build: a model is built when first used (the API never builds the writer's).
    model_config = ConfigDict(extra="ignore", frozen=True, validate_default=True, defer_build=True)

    data_dir: Path = Path("local_data")
    storage: Literal["local", "s3"] = "local"
    export_dir: Path | None = None
    bucket: str | None = None
    prefix: str = "exports/"
    export_interval_seconds: int = Field(default=300, ge=1, le=86_400)
    api_key: SecretStr | None = None
    # Lets a feed reader (which cannot send x-api-key) fetch /alerts/feed?token=…, and only that.
    feed_token: SecretStr | None = None
    cors_origin: str | None = Field(default=None, pattern=ORIGIN_PATTERN)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    manifest_ttl_seconds: float | None = Field(default=None, ge=0, le=3600)

    @field_validator("prefix")
    @classmethod
    def _normalise_prefix(cls, value: str) -> str:
        return _prefix(value)

    @field_validator("feed_token")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("use at least 16 characters (it goes in a URL: make it random)")
        return value

    @model_validator(mode="after")
    def _resolve_read_paths(self) -> ReadSettings:
        data_dir = _from_root(self.data_dir)
        object.__setattr__(self, "data_dir", data_dir)
        object.__setattr__(self, "export_dir", _from_root(self.export_dir or data_dir / "exports"))
        if self.manifest_ttl_seconds is None:  # a stat is free locally; a HEAD on S3 is not
            object.__setattr__(
                self, "manifest_ttl_seconds", 0.0 if self.storage == "local" else 1.0
            )
        if self.storage == "s3" and not self.bucket:
            raise ValueError("OCD_BUCKET is required when OCD_STORAGE=s3")
        return self

    @property
    def exports(self) -> Path:
        assert self.export_dir is not None
        return self.export_dir

    @property
    def stale_after_seconds(self) -> int:
        """Data older than three export intervals is reported as stale."""
        return 3 * self.export_interval_seconds


class Settings(ReadSettings):
    """Every knob of the service: the API's, and the writer's. The README's configuration
    table documents each field."""

    db_path: Path | None = None
    watchlist: tuple[str, ...] = DEFAULT_WATCHLIST
    provider: Literal["synthetic", "file", "yfinance"] = "synthetic"
    seed: int = 7
    collect_interval_seconds: int = Field(default=300, ge=1, le=86_400)
    archive_retention_days: float = Field(default=7, ge=0)
    flush_rows: int = Field(default=250_000, ge=1)
    risk_free_rate: float = Field(default=0.045, ge=-0.05, le=0.5)
    backfill_days: int = Field(default=300, ge=0, le=2000)
    min_alert_score: float = Field(default=40.0, ge=0, le=100)
    alert_cooldown_hours: float = Field(default=24.0, ge=0)
    alert_daily_cap: int = Field(default=50, ge=1)
    analytics: AnalyticsConfig = Field(default_factory=lambda: _analytics_config()())
    state_prefix: str = "state/"
    persist_db: bool | None = None
    intraday_retention_days: int = Field(default=2, ge=1, le=3650)
    eod_retention_days: int = Field(default=30, ge=1, le=3650)
    seal_intraday: bool = True
    # sealed intraday files of sessions more than this many before the current one are
    # deleted (history/intraday/ grows ~100 MB a session at 10-minute snapshots); 0: for ever
    sealed_intraday_retention_days: int = Field(default=0, ge=0, le=3650)
    compact_free_fraction: float = Field(default=0.5, ge=0, le=1)
    compact_min_free_mb: float = Field(default=32, ge=0)
    # ---- alert delivery (chalicelib/write/delivery); every sink is off unless configured ----
    public_url: str | None = Field(default=None, pattern=URL_PATTERN)
    alert_webhook_url: str | None = Field(default=None, pattern=URL_PATTERN)
    alert_webhook_secret: SecretStr | None = None
    alert_slack_webhook_url: SecretStr | None = None
    alert_sns_topic_arn: str | None = Field(default=None, pattern=SNS_TOPIC_PATTERN)
    alert_delivery_min_score: float | None = Field(default=None, ge=0, le=100)
    alert_delivery_max_attempts: int = Field(default=8, ge=1, le=100)
    alert_delivery_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    alert_delivery_budget_seconds: float = Field(default=20.0, gt=0, le=600)

    @field_validator("watchlist", mode="before")
    @classmethod
    def _split_watchlist(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [part.strip() for part in value.split(",") if part.strip()]
            foreign = [p for p in parts if not p.isascii()]
            if foreign:  # upper() would turn 'ß' into 'SS': refuse rather than invent a ticker
                raise ValueError(f"ticker(s) {foreign} are not ASCII; expected {TICKER_PATTERN}")
            value = [part.upper() for part in parts]
        return value

    @field_validator("watchlist")
    @classmethod
    def _check_tickers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("must name at least one ticker")
        bad = [t for t in value if not re.match(TICKER_PATTERN, t)]
        if bad:
            raise ValueError(f"invalid ticker(s) {bad}; expected {TICKER_PATTERN}")
        return tuple(dict.fromkeys(value))

    @field_validator("analytics", mode="before")
    @classmethod
    def _analytics_json(cls, value: object) -> object:
        # OCD_ANALYTICS='{"low_iv_percentile": 15}' overrides individual thresholds
        return json.loads(value) if isinstance(value, str) else value

    @field_validator("state_prefix")
    @classmethod
    def _normalise_state_prefix(cls, value: str) -> str:
        return _prefix(value)

    @field_validator("public_url")
    @classmethod
    def _no_trailing_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    @field_validator("alert_webhook_secret")
    @classmethod
    def _standard_webhooks_secret(cls, value: SecretStr | None) -> SecretStr | None:
        # The message never repeats the value: it is a secret.
        if value is not None and not _is_webhook_secret(value.get_secret_value()):
            raise ValueError("must be a Standard Webhooks secret: whsec_ followed by base64")
        return value

    @field_validator("alert_slack_webhook_url")
    @classmethod
    def _slack_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.match(URL_PATTERN, value.get_secret_value()):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _resolve_write_paths(self) -> Settings:
        assert self.data_dir.is_absolute()  # resolved by ReadSettings' validator, which ran first
        object.__setattr__(
            self, "db_path", _from_root(self.db_path or self.data_dir / "ocd.duckdb")
        )
        if self.persist_db is None:  # Lambda's /tmp is ephemeral: keep the database in S3
            object.__setattr__(self, "persist_db", self.storage == "s3")
        if self.alert_webhook_url and self.alert_webhook_secret is None:
            raise ValueError(
                "OCD_ALERT_WEBHOOK_SECRET is required when OCD_ALERT_WEBHOOK_URL is set"
            )
        if 0 < self.sealed_intraday_retention_days <= self.eod_retention_days:
            raise ValueError(
                "OCD_SEALED_INTRADAY_RETENTION_DAYS must be 0 (for ever) or more than "
                f"OCD_EOD_RETENTION_DAYS ({self.eod_retention_days}): a session's intraday file "
                "stays while its closing chain is in DuckDB"
            )
        return self

    @property
    def delivery_min_score(self) -> float:
        """Alerts scoring below this are not delivered (default: the alert threshold)."""
        if self.alert_delivery_min_score is None:
            return self.min_alert_score
        return self.alert_delivery_min_score

    @property
    def database(self) -> Path:
        assert self.db_path is not None
        return self.db_path


def _is_webhook_secret(value: str) -> bool:
    try:
        return value.startswith("whsec_") and len(base64.b64decode(value[6:], validate=True)) > 0
    except ValueError:
        return False


def _from_root(path: Path) -> Path:
    return path if path.is_absolute() else PROJECT_ROOT / path


def _prefix(value: str) -> str:
    value = value.strip("/")
    if ".." in value.split("/"):
        raise ValueError("must not contain '..'")
    return f"{value}/" if value else ""


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Every setting, validated, for this environment (the writer's); raises ConfigError
    naming the variable."""
    _analytics_config()
    return _load(Settings, _items(Settings, environ))


@cache
def _analytics_config() -> type[AnalyticsConfig]:
    """The model of ``Settings.analytics``, imported on the writer's first load and not at
    import: the API (which never loads ``Settings``) then neither imports nor builds it.
    ``load_settings`` completes ``Settings`` with it before building one (nothing else does)."""
    from chalicelib.analytics.config import AnalyticsConfig

    Settings.model_rebuild(_types_namespace={"AnalyticsConfig": AnalyticsConfig})
    return AnalyticsConfig


def load_read_settings(environ: Mapping[str, str] | None = None) -> ReadSettings:
    """The API's settings only: a writer variable that is wrong does not stop the API."""
    return _load(ReadSettings, _items(ReadSettings, environ))


@lru_cache(maxsize=4)
def _names(cls: type[ReadSettings]) -> tuple[str, ...]:
    return tuple(f"{ENV_PREFIX}{field.upper()}" for field in cls.model_fields)


def _items(
    cls: type[ReadSettings], environ: Mapping[str, str] | None
) -> tuple[tuple[str, str], ...]:
    """The values of ``cls``'s variables: looked up by name (a dozen lookups per request, not a
    walk over the whole environment); any other OCD_* variable is not this class's business."""
    env = os.environ if environ is None else environ
    return tuple((name, env[name]) for name in _names(cls) if name in env)


# Read where Chalice loads the app (schedule rates, CORS), not through a settings class.
IMPORT_TIME_VARIABLES = ("OCD_COLLECT_INTERVAL_SECONDS", "OCD_EXPORT_INTERVAL_SECONDS",
                         "OCD_CORS_ORIGIN")  # fmt: skip


def rate_minutes(env_name: str, default_seconds: int) -> int:
    """Schedule rates are fixed when Chalice loads the app, so ``app.py`` reads them then: whole
    minutes, at least one; a value that is not a number of seconds counts as the default."""
    try:
        seconds = int(os.environ.get(env_name, default_seconds))
    except ValueError:
        seconds = default_seconds
    return max(1, -(-seconds // 60))


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """``OCD_*`` variables no setting reads (a misspelt ``OCD_WATCHLST`` is otherwise silently
    ignored), each with the closest known name when there is one."""
    import difflib

    env = os.environ if environ is None else environ
    known = {*_names(Settings), *IMPORT_TIME_VARIABLES}
    out = []
    for name in sorted(k for k in env if k.startswith(ENV_PREFIX) and k not in known):
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.75)
        out.append(f"{name} (did you mean {close[0]}?)" if close else name)
    return out


def ensure_data_dir(settings: Settings) -> None:
    """The writer's data directory exists (it is created) and takes files; ConfigError naming
    ``OCD_DATA_DIR`` otherwise, before anything runs."""
    import tempfile

    path = settings.data_dir
    if path.exists() and not path.is_dir():
        raise ConfigError(f"OCD_DATA_DIR: {path} is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".tmp-probe-"):
            pass
    except OSError as exc:
        raise ConfigError(f"OCD_DATA_DIR: {path} is not writable ({exc.strerror})") from None


S = TypeVar("S", bound=ReadSettings)


@lru_cache(maxsize=64)
def _load(cls: type[S], items: tuple[tuple[str, str], ...]) -> S:
    values = {key[len(ENV_PREFIX) :].lower(): value for key, value in items}
    try:
        return cls(**values)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else ""
            name = f"{ENV_PREFIX}{field.upper()}" if field else "configuration"
            problems.append(f"{name}: {err['msg']}")
        raise ConfigError("; ".join(problems)) from None
