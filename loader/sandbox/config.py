"""`SandboxConfig`: every setting of a sandbox, checked once when it is made."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from loader.errors import LoaderError


@dataclass(frozen=True, slots=True, kw_only=True)
class SandboxConfig:
    """Settings of one sandbox server. The secret never shows in the repr.

    Faults: `latency_ms` ± `jitter_ms` delays every answer (the token endpoint too);
    `rate`/`burst` is a token bucket over every endpoint except `/token`; `fail_rate`
    answers `fail_status` before applying a write; `drop_rate` applies a write, then
    closes the connection without an answer. Fail and drop touch only the write
    endpoints, so look-ups and read-back stay reliable. `seed` makes the fail, drop and
    jitter decisions reproducible for a sequential client.
    """

    account: str = "demo"
    api_key: str = "sandbox-key"
    api_secret: str = field(default="sandbox-secret", repr=False)
    store: Path | None = None  # SQLite file; None → a temporary file removed at stop
    host: str = "127.0.0.1"
    port: int = 0  # 0 → a free port
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    rate: float | None = None  # tokens per second; None → no rate limit
    burst: float | None = None  # bucket size; None → max(1, rate)
    fail_rate: float = 0.0
    fail_status: int = 503
    drop_rate: float = 0.0
    token_ttl: int = 3600  # seconds an access token lives
    tenant: Path | None = None  # tenant YAML; None → the built-in default
    seed: int | None = None

    def __post_init__(self) -> None:
        problems = []
        for name in ("account", "api_key", "api_secret", "host"):
            if not getattr(self, name):
                problems.append(f"{name} must not be empty")
        if not 0 <= self.port <= 65535:
            problems.append(f"port must be 0 to 65535, got {self.port}")
        for name in ("latency_ms", "jitter_ms"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be 0 or more, got {getattr(self, name)}")
        for name in ("fail_rate", "drop_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name} must be between 0 and 1, got {getattr(self, name)}")
        if not 500 <= self.fail_status <= 599:
            problems.append(f"fail_status must be a 5xx status, got {self.fail_status}")
        if self.rate is not None and self.rate <= 0:
            problems.append(f"rate must be above 0, got {self.rate}")
        if self.burst is not None and (self.rate is None or self.burst < 1):
            problems.append("burst needs a rate, and must be 1 or more")
        if self.token_ttl < 1:
            problems.append(f"token_ttl must be 1 second or more, got {self.token_ttl}")
        if problems:
            raise LoaderError("sandbox settings are wrong: " + "; ".join(problems))

    @property
    def bucket_size(self) -> float:
        if self.burst is not None:
            return self.burst
        return max(1.0, self.rate or 1.0)
