"""A local server that behaves like the iCasework REST API, for rehearsals, demos and tests.

    from loader.sandbox import Sandbox, SandboxConfig

    with Sandbox(SandboxConfig(account="demo", drop_rate=0.1, seed=7)) as sb:
        sb.url      # "http://127.0.0.1:PORT/?db=demo"  (the `loader run --target` form)
        sb.base     # "http://127.0.0.1:PORT"
        sb.store    # the SQLite store: case_count(), cases_by_external_id(), requests(), ...

Modules: `config` (settings), `server` (uvicorn in a thread), `app` (routing, token
endpoint, auth, faults, request log), `writes` / `uploads` / `reads` (the endpoints),
`answers` (answer encoding and error codes), `faults` (token bucket, seeded dice),
`store` (SQLite), `tenant` (case types, value lists, reports). README.md shows a session.
"""

from loader.sandbox.config import SandboxConfig
from loader.sandbox.server import Sandbox
from loader.sandbox.store import Store
from loader.sandbox.tenant import Report, Tenant, load_tenant

__all__ = ["Report", "Sandbox", "SandboxConfig", "Store", "Tenant", "load_tenant"]
