"""Typed settings, read from `VIGIL_*` environment variables.

An unset infrastructure URL means "start the embedded one" (`vigil demo`, tests). Secrets have no
defaults: outside demo mode a service that needs one refuses to start without it.
"""

from __future__ import annotations

import secrets
from functools import lru_cache
from typing import Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from vigil.errors import ConfigurationError

# Secrets that people paste from examples; refused even when set explicitly.
_KNOWN_WEAK_SECRETS = frozenset({"changeme", "change-me", "secret", "password", "admin", "test", "vigil"})
_MIN_SECRET_LENGTH = 16
# The issuing authority printed on the demo's documents; a real bureau sets VIGIL_BUREAU_NAME.
DEMO_BUREAU_NAME = "示例市市场监督管理局"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VIGIL_", extra="ignore")

    mode: Literal["production", "demo"] = "production"
    # The bureau's zone: every date a person reads (dashboard, notices, exports) is shown in it,
    # 24-hour. Stored times stay UTC.
    timezone: str = Field(default="Asia/Shanghai", description="IANA zone of the bureau, e.g. Asia/Shanghai")

    kafka_bootstrap: str | None = Field(default=None, description="host:port[,host:port]; unset = embedded")
    mqtt_url: str | None = Field(default=None, description="mqtt://[user:pass@]host:port; unset = embedded")
    database_url: str | None = Field(default=None, description="postgresql://...; unset = embedded")

    # An optional operator bearer token, besides the API keys in the database (`vigil keys create`).
    # Unset outside demo mode means: keys only.
    api_token: SecretStr | None = Field(default=None, description="operator bearer token for the API")
    # MQTT passwords are HMAC-SHA256(this key, username) (`vigil mqtt acl --passwd`, `vigil mqtt
    # password`): nothing per device is stored, and rotating the key rotates every credential.
    mqtt_credential_key: SecretStr | None = None
    # MQTT notices are signed with a secret per enterprise derived from this key
    # (`alerts.notices.notice_secret`, `vigil mqtt notice-secret <enterprise>`); the notifier needs it.
    notice_signing_key: SecretStr | None = None
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    # Browser sessions exchange an API key for a token that lives this long: a shift's screen
    # re-authenticates hourly, and a leaked token is worthless by the next shift.
    api_session_ttl_s: float = Field(default=3600.0, ge=60, le=86_400)
    # A JSON request body larger than this is refused (413) while it is read, before the credential
    # is checked: no JSON this API takes comes near 1 MiB. Uploads have their own documented limit.
    api_max_json_bytes: int = Field(default=1024 * 1024, ge=1024)
    # Rectification photos: at most this many pixels, read from the image header before anything
    # is decoded (a decoder allocates width x height x 3 bytes up front: 24 MP is a 6000x4000 phone
    # photo and 72 MB decoded; an 8000x8000 PNG of 187 KB would be 192 MB).
    api_upload_max_pixels: int = Field(default=24_000_000, ge=1_000_000, le=64_000_000)
    # Photos decoded at once across all requests of one API process: bounds the memory that decodes
    # take together (slots x the pixel cap x 3 bytes) however many enterprises upload at the same time.
    api_upload_decode_slots: int = Field(default=2, ge=1, le=16)
    # Refused credentials per client address per minute before it is answered 429 (api/throttle.py):
    # a person who mistypes a key a few times is never held up; a script guessing keys is.
    api_auth_failures_per_minute: int = Field(default=20, ge=1)
    # The public kitchen window (api/public.py): requests per client address per minute (page loads
    # and stream opens; beyond, 429), and public viewer streams open at once on one API process
    # (each costs a connection and a wait; the frames are made once per camera, not per viewer).
    public_window_requests_per_minute: int = Field(default=30, ge=1)
    public_window_max_viewers: int = Field(default=200, ge=1)
    # Password accounts (vigil/accounts.py). After this many wrong passwords in a row an account is
    # locked for account_lockout_s, doubled with each further failure up to account_lockout_max_s,
    # whatever address the guesses come from; a right password resets the count.
    account_lockout_failures: int = Field(default=5, ge=1, le=100)
    account_lockout_s: float = Field(default=60.0, ge=1, le=86_400)
    account_lockout_max_s: float = Field(default=3600.0, ge=1, le=86_400)
    # argon2id cost (RFC 9106's second recommendation, argon2-cffi's default). Changing these is
    # safe: each stored hash is rehashed with the new ones at its owner's next sign-in.
    account_argon2_time_cost: int = Field(default=3, ge=1, le=20)
    account_argon2_memory_kib: int = Field(default=65_536, ge=8_192, le=1_048_576)
    account_argon2_parallelism: int = Field(default=4, ge=1, le=16)
    # Password hashes computed at once by one API process: each takes the memory above, so a burst
    # of sign-ins queues instead of taking memory_kib times the burst.
    account_hash_slots: int = Field(default=2, ge=1, le=16)
    # Optional single sign-on with the bureau's OpenID provider (api/oidc.py); unset issuer: off, and
    # the sign-in page offers no button. The claim oidc_username_claim of the verified id_token must
    # name an existing, enabled bureau password account by its username or its staff id (oidc_match):
    # nobody gets in by the provider alone. A confidential client: the secret has no default.
    oidc_issuer: str | None = Field(default=None, pattern=r"^https?://[^\s]+$")
    oidc_client_id: str | None = Field(default=None, min_length=1, max_length=200)
    oidc_client_secret: SecretStr | None = None
    oidc_username_claim: str = Field(default="preferred_username", min_length=1, max_length=100)
    oidc_match: Literal["username", "staff_id"] = "username"
    oidc_scopes: str = Field(default="openid profile", pattern=r"(^|\s)openid(\s|$)")

    # A telemetry message is a handful of numbers; 64 KiB leaves room for large event payloads
    # while refusing anything that could only be abuse or a misrouted file.
    ingest_max_payload_bytes: int = Field(default=64 * 1024, ge=256)
    # Bound on messages between the MQTT network thread and the Kafka producer. When it is full
    # the MQTT thread blocks, TCP pushes back to the broker, and memory stays flat.
    ingest_queue_size: int = Field(default=10_000, ge=1)
    # Readings stamped further than this into the future are rejected (clock-skewed devices).
    ingest_max_clock_skew_s: float = Field(default=300.0, ge=0)
    # Shared-subscription group so N ingest instances split the MQTT stream (MQTT 5 / 3.1.1 brokers
    # that support `$share`); empty = plain subscription (a single ingest instance).
    ingest_shared_group: str = ""
    # MQTT client id of this ingest instance; its persistent session (messages queued while it was
    # down) is found again only under the same id. Empty = `vigil-ingest-<hostname>`, which is
    # stable on a host but not across re-created containers: set it there.
    ingest_client_id: str = Field(default="", pattern=r"^[A-Za-z0-9_-]{0,64}$")
    # ThingsBoard devices (their SDK publishes `v1/devices/me/...` with its access token as the MQTT
    # username) connect to ingest itself on this port, not to the broker: only the endpoint that
    # accepted the connection knows which device a `v1/devices/me/telemetry` message came from.
    # 0 = off. See README, "ThingsBoard devices".
    ingest_thingsboard_host: str = "127.0.0.1"
    ingest_thingsboard_port: int = Field(default=0, ge=0, le=65535)

    # The telemetry detector keeps rule state in memory and rebuilds it, when it is given a
    # partition, by re-reading this much of the partition's recent past: it must cover the longest
    # rule duration (15 min by default) with room for an excursion already under way.
    detector_replay_window_s: float = Field(default=3600.0, ge=0)

    # The embedded Kafka (Tansu) cannot do idempotent producers through aiokafka.
    kafka_idempotent_producer: bool = False
    # How long a produce request waits for the broker before aiokafka retries it; ingest's stop
    # waits at most this long for a batch it must not abandon (abandoned, it could land after the
    # readings were redelivered, twice). aiokafka's own default.
    kafka_request_timeout_ms: int = Field(default=40_000, ge=1_000, le=300_000)
    # A real cluster's TLS and SASL (vigil/kafka.py `client_security`): SSL or SASL_SSL encrypt, with
    # the cluster's CA (unset: the system's trust store) and, for mutual TLS, this client's
    # certificate and key; SASL_* authenticate with the mechanism, user and password below.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_ssl_cafile: str | None = None
    kafka_ssl_certfile: str | None = None
    kafka_ssl_keyfile: str | None = None
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None

    # The telemetry detector also scores freezers, chillers, boilers and pressure vessels with the
    # early-warning model and raises DEVICE_RISK_WARNING before a limit rule fires.
    early_warning: bool = True

    # How often the notifier polls the outbox when no NOTIFY arrives (crash recovery path).
    outbox_poll_interval_s: float = Field(default=2.0, gt=0)

    # Prometheus exposition of this process's metrics (vigil/metrics.py); 0 = not served. The host
    # is loopback by default: in a container set it to 0.0.0.0 so Prometheus can reach it.
    metrics_port: int = Field(default=0, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"

    # --- alert lifecycle and notices ---
    # A same-code offence by the same enterprise closed within this many days makes a new alert a
    # repeat (flagged for a penalty case) rather than a first offence (a warning). Two years is the
    # look-back of the first-offence-no-penalty rules.
    leniency_lookback_days: float = Field(default=730.0, gt=0)
    # How often each alerts service scans the database for deadlines that have passed. Deadlines
    # are hours long; seconds of lateness do not matter, a scan costs one indexed query.
    timer_interval_s: float = Field(default=5.0, gt=0)
    # After a penalty case closes, an inspector revisits the site this many days later.
    follow_up_after_days: float = Field(default=30.0, gt=0)
    # A failed notice delivery waits base * 2^attempts seconds, capped, before the next try.
    notice_retry_base_s: float = Field(default=1.0, gt=0)
    notice_retry_max_s: float = Field(default=3600.0, gt=0)
    # A webhook that failed this many times is marked dead (about five hours of retries with the
    # defaults) and an operator is needed; MQTT and Kafka are ours and are retried for ever.
    webhook_max_attempts: int = Field(default=16, ge=1)
    # A receiver that has not answered in this time counts as down for this attempt.
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    # Base URL the enterprise can reach the API at: notices link to evidence under it.
    public_url: str = Field(default="http://127.0.0.1:8000", pattern=r"^https?://[^\s]+$")

    # --- cameras (ingest side) ---
    # Frames on Kafka stay under the broker's default 1 MiB message limit (headers included).
    frame_max_bytes: int = Field(default=900 * 1024, ge=16 * 1024)
    # Pulled frames are re-encoded at this JPEG quality: 85 keeps faces and small objects sharp
    # for the detector at about a third of the bytes of quality 95.
    camera_jpeg_quality: int = Field(default=85, ge=30, le=100)
    # Frames wider than this are scaled down before they are sent: detectors letterbox to 320-640
    # px, so a 4K frame only costs bandwidth and decode time downstream.
    camera_max_width: int = Field(default=1280, ge=160)
    # A static camera still sends one frame this often, so the detector sees slow changes and the
    # dashboard a current picture.
    camera_keyframe_interval_s: float = Field(default=10.0, gt=0)
    # A camera that delivers no frame for this long is offline (CAMERA_OFFLINE): long enough to
    # ride out a reconnect, short enough that an unplugged camera is noticed within a minute.
    camera_offline_after_s: float = Field(default=30.0, gt=0)
    # Tamper conditions must hold this long before CAMERA_TAMPERED is raised, and the view must be
    # normal this long before it clears: a hand passing the lens raises nothing.
    camera_tamper_hold_s: float = Field(default=10.0, ge=0)
    # Frames waiting to be sent to Kafka, across all cameras of one ingest; beyond it new frames
    # are dropped and counted (frames are sheddable, telemetry never is).
    camera_send_queue: int = Field(default=256, ge=1)
    # Edge boxes pushing JPEG frames authenticate with this bearer token.
    camera_push_token: SecretStr | None = None
    # The camera ingest's HTTP port: frame push from edge boxes, per-camera counters.
    ingest_http_host: str = "127.0.0.1"
    ingest_http_port: int = Field(default=8001, ge=0, le=65535)
    # The per-camera counters (`/v1/cameras/stats`, `/metrics` on the port above) list every
    # tenant's cameras and their tamper state: outside demo mode they need this bearer token, and
    # without it they are not served at all (403). Prometheus sends it with `authorization:`.
    camera_metrics_token: SecretStr | None = None
    # Event clips (ingest/camera/clips.py): a clip runs from clip_before_s before the first
    # confirming frame of a camera finding to clip_after_s after it; 5 s each side shows how the
    # behaviour started and that it went on, in about 20 frames at the default 2 fps.
    clip_before_s: float = Field(default=5.0, ge=0, le=30)
    clip_after_s: float = Field(default=5.0, ge=0, le=30)
    # Each camera's ring of its recent past holds at most this many seconds, frames and bytes,
    # whichever bound is reached first. 20 s covers a 10 s clip plus up to 10 s between the frame
    # and the clip request (the detector drops frames older than vision_max_lag_s = 5 s). A pushed
    # camera's ring holds its JPEGs: 200 frames is 20 s at 10 fps; 8 MiB is about 100 frames of a
    # 1280x720 kitchen at quality 85 (about 80 KiB each). A pulled camera's ring holds its stream's
    # packets, bounded by clip_stream_max_bytes: 32 MiB is 20 s of an 8 Mbit/s main stream plus a
    # 10 s group of pictures (a 1-2 Mbit/s substream, what monitoring usually pulls, uses 3-5 MiB).
    # 0 s turns clips off (nothing is buffered).
    clip_buffer_s: float = Field(default=20.0, ge=0, le=120)
    clip_buffer_max_frames: int = Field(default=200, ge=1, le=3600)
    clip_buffer_max_bytes: int = Field(default=8 * 1024 * 1024, ge=64 * 1024)
    clip_stream_max_bytes: int = Field(default=32 * 1024 * 1024, ge=256 * 1024)

    # --- vision detector ---
    # A model name from the `models` package, or a path to a manifest (.toml). `kitchen` is trained
    # on real photos (models/kitchen.md); `kitchen-int8` is its faster int8 variant; `sim-markers`
    # understands only the camera simulator's cartoon scenes.
    vision_model: str = "kitchen"
    # onnxruntime execution providers, in order of preference.
    vision_providers: str = "CPUExecutionProvider"
    # Threads per onnxruntime session; 0 = onnxruntime's default (one per core).
    vision_threads: int = Field(default=0, ge=0)
    # Frames per inference run. Batching across cameras amortises per-run overhead; beyond about
    # 8 on a CPU it adds latency without adding throughput.
    vision_max_batch: int = Field(default=8, ge=1, le=64)
    # Frames older than this when the detector reaches them are dropped and counted: a detector
    # that falls behind catches up with real time instead of reporting the past ever later.
    vision_max_lag_s: float = Field(default=5.0, gt=0)
    # Temporal confirmation: a violation needs detections in k of a camera's last n frames, so one
    # noisy frame raises nothing.
    vision_confirm_k: int = Field(default=2, ge=1)
    vision_confirm_n: int = Field(default=3, ge=1)
    # After a camera raised a code, the same code from that camera is quiet this long: one
    # worker without a mask for an hour is one finding every 5 minutes, not 7,200.
    vision_cooldown_s: float = Field(default=300.0, ge=0)
    # Where evidence snapshots are kept (content-addressed by SHA-256). Unset: a directory under
    # the embedded infrastructure's data in demo mode; required otherwise.
    evidence_dir: str | None = None

    # --- retention (ingest/retention.py; `vigil retention`, and hourly in the telemetry store) ---
    # Daily telemetry partitions older than this are dropped, except the readings an alert still
    # needs (open, or ended within this period). 90 days covers a quarter's compliance report and
    # any alert's trace (at most 7 days) long after it. 0 keeps telemetry for ever.
    telemetry_retention_days: float = Field(default=90.0, ge=0)
    # Evidence files (snapshots, frames, rectification photos) older than this are deleted unless
    # an alert that is open, or ended within this period, refers to them. Two years, the leniency
    # look-back: the proof of an earlier offence must exist while it can make a new one a repeat.
    # 0 keeps evidence for ever.
    evidence_retention_days: float = Field(default=730.0, ge=0)

    # --- printed documents (api/documents.py) ---
    # The issuing authority printed on rectification notices and monthly reports. Empty outside
    # demo mode until the bureau sets it: a notice must never name an authority by accident, so the
    # document routes answer 503 saying this is unset (the rest of the API is unaffected). Demo mode
    # prints DEMO_BUREAU_NAME instead.
    bureau_name: str = Field(default="", max_length=100)
    # A CJK font file (TrueType/OpenType, or a .ttc collection) embedded in the PDFs. Unset: found
    # by fc-match and then known Debian paths (fonts-noto-cjk, fonts-wqy-zenhei, fonts-arphic-uming).
    pdf_font_path: str | None = None

    # --- the dashboard's site map (api/map.py) ---
    # The base layer: the bureau's own district boundaries, a GeoJSON FeatureCollection of Polygon
    # or MultiPolygon features, each with a `name` property. Government networks are closed, so
    # the map needs no internet. Checked when the API starts (a bad file stops it, naming the file
    # and the fault). Unset: the illustrative sample district in demo mode, none otherwise.
    map_geojson: str | None = None
    # Optional raster tiles under the districts, from a tile server the bureau runs, e.g.
    # `https://tiles.bureau.example/{z}/{x}/{y}.png` or a path on this origin `/tiles/{z}/{x}/{y}.png`.
    # Unset: no tiles (the districts alone).
    map_tile_url: str | None = Field(default=None, max_length=500)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone such as Asia/Shanghai") from None
        return value

    @field_validator("map_tile_url")
    @classmethod
    def _check_tile_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        # A path must be one on this origin: "//host/…" would be another host without a scheme.
        on_origin = value.startswith("/") and not value.startswith("//")
        placeholders = all(p in value for p in ("{z}", "{x}", "{y}"))
        if not ((on_origin or value.startswith(("https://", "http://"))) and placeholders):
            raise ValueError(
                "VIGIL_MAP_TILE_URL must be an http(s) URL or a path on this server with {z}, {x} and {y},"
                " e.g. https://tiles.bureau.example/{z}/{x}/{y}.png"
            )
        return value

    @field_validator("mqtt_url")
    @classmethod
    def _check_mqtt_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("mqtt", "mqtts", "tcp") or not parts.hostname:
            raise ValueError("VIGIL_MQTT_URL must look like mqtt://[user:pass@]host:port")
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if urlsplit(value).scheme not in ("postgresql", "postgres"):
            raise ValueError("VIGIL_DATABASE_URL must be a postgresql:// URL")
        return value

    @model_validator(mode="after")
    def _check_confirmation(self) -> Settings:
        if self.vision_confirm_k > self.vision_confirm_n:
            raise ValueError("VIGIL_VISION_CONFIRM_K must not exceed VIGIL_VISION_CONFIRM_N")
        return self

    @model_validator(mode="after")
    def _check_single_sign_on(self) -> Settings:
        if self.oidc_issuer is None:
            return self
        if self.oidc_client_id is None or self.oidc_client_secret is None:
            raise ValueError("VIGIL_OIDC_ISSUER needs VIGIL_OIDC_CLIENT_ID and VIGIL_OIDC_CLIENT_SECRET")
        # Plain HTTP would let anyone on the path read the codes and forge the discovery document:
        # only a provider on this very machine (a test, a sidecar) may go without TLS.
        issuer = urlsplit(self.oidc_issuer)
        if issuer.scheme != "https" and issuer.hostname not in ("localhost", "127.0.0.1", "::1"):
            raise ValueError("VIGIL_OIDC_ISSUER must be https:// (http only for localhost)")
        # The flow's cookie is sealed under a key derived from the secret, and anyone can start a
        # flow and see its state: a short secret could be guessed offline against that cookie.
        if len(self.oidc_client_secret.get_secret_value()) < 16:
            raise ValueError("VIGIL_OIDC_CLIENT_SECRET must be at least 16 characters")
        # The callback address and the cookies' Secure flag come from the public URL: over plain
        # HTTP the sealed session would cross the network readable (demo mode excepted).
        if not self.demo and urlsplit(self.public_url).scheme != "https":
            raise ValueError("single sign-on needs VIGIL_PUBLIC_URL to be https:// outside demo mode")
        return self

    @property
    def demo(self) -> bool:
        return self.mode == "demo"

    def issuing_bureau(self) -> str | None:
        """The bureau named on printed documents: the setting, the demo's sample name in demo mode,
        else None (the documents cannot be issued)."""
        name = self.bureau_name.strip()
        return name or (DEMO_BUREAU_NAME if self.demo else None)

    def require_secret(self, name: str) -> str:
        """Return the secret setting `name`, or refuse to go on without a strong one.

        In demo mode a missing secret is generated (and printed by the demo), never defaulted.
        """
        value: SecretStr | None = getattr(self, name)
        if value is None:
            if self.demo:
                generated = secrets.token_urlsafe(24)
                setattr(self, name, SecretStr(generated))
                return generated
            raise ConfigurationError(f"VIGIL_{name.upper()} must be set outside demo mode")
        plain = value.get_secret_value()
        if plain.lower() in _KNOWN_WEAK_SECRETS or len(plain) < _MIN_SECRET_LENGTH:
            raise ConfigurationError(
                f"VIGIL_{name.upper()} is too weak: use at least {_MIN_SECRET_LENGTH} random characters"
            )
        return plain


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
