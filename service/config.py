"""Server settings from command-line flags, falling back to FINESERVE_* environment variables."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

from control.store import check_job_store
from service.remote_datasets import check_prefix


@dataclass(frozen=True)
class Limits:
    """Bounds on what callers may send; each refusal names the limit it hit."""

    max_upload_bytes: int = 2 << 30
    max_extracted_bytes: int = 8 << 30
    max_archive_files: int = 200_000
    """Entries (files and directories) of an uploaded archive."""
    max_archive_ratio: float = 200.0
    """Zip bombs: an entry's (or the whole archive's) expanded size over its compressed size; checked on the
    declared sizes before extraction and on the bytes actually written, past the first MiB."""
    max_images_per_request: int = 64
    max_message_bytes: int = 64 << 20
    max_image_pixels: int = 50_000_000
    """Decompression bombs: width * height of one image, read from its header before any pixel is decoded."""
    max_text_chars: int = 100_000
    """Texts (PredictText and other text inputs): characters per text and texts per request."""
    max_texts_per_request: int = 256
    max_concurrent_jobs_per_tenant: int = 8
    """Jobs of one tenant that may be QUEUED or RUNNING at once (CreateFineTuneJob + FindLearningRate)."""
    max_fetches: int = 8
    """RegisterDataset fetches (object storage, https) one front door runs at once, each on a thread of its own."""
    max_fetches_per_tenant: int = 2
    max_fetch_seconds: float = 3600.0
    """How long one fetch's download may take before it is stopped."""


@dataclass(frozen=True)
class ServingConfig:
    """How the Ray Serve deployment of the inference replicas is shaped (see README: Serving at scale)."""

    max_batch_size: int = 32
    """Images one forward pass may hold, merged across callers; a request with more is split into passes."""
    batch_wait_s: float = 0.0
    """How long a replica waits for more callers to fill a batch once the first arrived; 0 still batches the calls
    that queue while a pass runs (worker/pass_merging.py)."""
    max_ongoing_requests: int = 64
    """Requests one replica works on at once (batches form from these); more wait in the caller's queue."""
    max_queued_requests: int = 256
    """Requests the front door queues for the replicas; past it calls fail fast with RESOURCE_EXHAUSTED."""
    min_replicas: int = 1
    """Replica count: fixed when min == max, else Ray Serve's autoscaler keeps about target_ongoing_requests in
    flight per replica."""
    max_replicas: int = 1
    target_ongoing_requests: float = 16.0
    replica_cpus: float = 0.0
    """What one replica asks Ray for: CPUs and (fractional) GPUs; 0 CPUs lets it share a node with jobs."""
    replica_gpus: float = 0.0
    precision: str = "fp32"
    """Inference precision: fp32 | bf16 | fp16 (GPU) | auto, as for training."""


@dataclass(frozen=True)
class Settings:
    port: int = 50051
    host: str = "0.0.0.0"
    data_dir: Path = Path("fineserve-data")
    ray_address: str = ""
    """Empty: start a local Ray instance (the embedded default); otherwise e.g. "ray://head:10001" or "auto"."""
    allowed_roots: tuple[Path, ...] = ()
    """Directories RegisterDataset and weights_file may point into; never the data directory or a folder above it,
    and inside the data directory only under its imports/ folder (check_roots_apart)."""
    allowed_url_prefixes: tuple[str, ...] = ()
    """URL prefixes (s3://, gs://, https://) RegisterDataset may fetch from; "{tenant}" in one stands for the
    caller's tenant (s3://bucket/{tenant}/ confines each tenant to its own folder). Empty: no URLs."""
    url_ca_file: Path | None = None
    """A CA bundle (PEM) trusted for https:// data set URLs besides the system's (a private CA)."""
    job_cpus: float = 0.0
    """CPUs a job asks Ray for when the request does not say; 0 = every CPU of a local Ray."""
    local_ray_cpus: int = 0
    """CPUs for a local Ray instance; 0 = all of this machine's."""
    max_running_jobs: int = 0
    """Jobs handed to Ray at once, in all and per tenant (0 = no cap: Ray's resources alone decide); the rest wait
    in QUEUED, in order, with their queue position visible."""
    max_running_jobs_per_tenant: int = 4
    job_lease_seconds: float = 120.0
    """A running job whose worker sends nothing (workers send heartbeats) for this long is treated as lost: its
    worker is killed and the job resumes from its last checkpoint."""
    models_per_replica: int = 4
    """Models each serving replica keeps loaded (LRU)."""
    serving: ServingConfig = field(default_factory=ServingConfig)
    metrics_port: int | None = None
    """Prometheus metrics port of the front door: None = off, 0 = pick a free one (logged)."""
    grace_seconds: float = 20.0
    max_connection_age_s: float = 300.0
    """A client connection older than this is asked to close (HTTP/2 GOAWAY) once it has been open this long; the
    client reconnects, so a Kubernetes Service spreads clients over front doors added since (gRPC keeps one
    connection per client, and a Service balances connections, not calls). Calls in flight on it, long WatchJob
    streams included, run to their end. 0 = never."""
    limits: Limits = field(default_factory=Limits)
    api_keys_file: Path | None = None
    """JSON/YAML file of tenant -> sha256 key hashes (service/auth.py); None = open mode, tenant "default"."""
    tls_cert: Path | None = None
    """TLS: server certificate chain and key (PEM); with tls_client_ca, clients must present a certificate signed
    by that CA (mutual TLS)."""
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    audit_log: str = "-"
    """Audit log destination: "-" = stderr, else a file (appended)."""
    job_store: str = field(default="", repr=False)
    """Where the coordinator keeps jobs, data sets and the model index: "" = SQLite in the data directory (one
    machine, a local disk); a postgresql:// URL = PostgreSQL (clusters). It may hold a password: never logged."""


def _env(name: str, default: str) -> str:
    return os.environ.get(f"FINESERVE_{name}", default)


def parse_settings(argv: list[str] | None = None) -> Settings:
    d = Settings()
    p = argparse.ArgumentParser(prog="fineserve-server", description="fineserve gRPC front door")
    p.add_argument("--host", default=_env("HOST", d.host))
    p.add_argument("--port", type=int, default=int(_env("PORT", str(d.port))), help="0 = pick a free port")
    p.add_argument("--data-dir", type=Path, default=Path(_env("DATA_DIR", str(d.data_dir))))
    p.add_argument("--ray-address", default=_env("RAY_ADDRESS", d.ray_address),
                   help="Ray cluster to use; empty starts a local Ray (embedded default)")
    p.add_argument("--allowed-root", action="append", type=Path, default=None,
                   help="directory RegisterDataset may point into (repeatable; env: colon-separated)")
    p.add_argument("--allowed-url-prefix", action="append", default=None,
                   help="URL prefix RegisterDataset may fetch from, e.g. s3://bucket/{tenant}/ (repeatable; env: "
                        "space-separated)")
    p.add_argument("--url-ca-file", type=Path, default=_path_env("URL_CA_FILE"),
                   help="extra CA bundle (PEM) for https:// data set URLs")
    p.add_argument("--job-cpus", type=float, default=float(_env("JOB_CPUS", str(d.job_cpus))))
    p.add_argument("--local-ray-cpus", type=int, default=int(_env("LOCAL_RAY_CPUS", str(d.local_ray_cpus))))
    p.add_argument("--max-running-jobs", type=int, default=int(_env("MAX_RUNNING_JOBS", str(d.max_running_jobs))),
                   help="jobs running at once (0 = as many as Ray's resources allow)")
    p.add_argument("--max-running-jobs-per-tenant", type=int,
                   default=int(_env("MAX_RUNNING_JOBS_PER_TENANT", str(d.max_running_jobs_per_tenant))),
                   help="one tenant's jobs running at once (0 = no cap); the rest wait in QUEUED")
    p.add_argument("--job-lease-seconds", type=float,
                   default=float(_env("JOB_LEASE_SECONDS", str(d.job_lease_seconds))),
                   help="a running job silent this long (no event, no heartbeat) is resumed elsewhere")
    p.add_argument("--models-per-replica", type=int,
                   default=int(_env("MODELS_PER_REPLICA", str(d.models_per_replica))))
    _serving_flags(p)
    p.add_argument("--metrics-port", type=int, default=_int_or_none(_env("METRICS_PORT", "")),
                   help="Prometheus metrics on this port (0 = a free one); unset = no metrics endpoint")
    p.add_argument("--grace-seconds", type=float, default=float(_env("GRACE_SECONDS", str(d.grace_seconds))))
    p.add_argument("--max-connection-age-s", type=float,
                   default=float(_env("MAX_CONNECTION_AGE_S", str(d.max_connection_age_s))),
                   help="ask clients to reconnect after this long, so new front doors get their share (0 = never)")
    _limit_flags(p)
    p.add_argument("--api-keys-file", type=Path, default=_path_env("API_KEYS_FILE"),
                   help="tenant -> API key hashes (python -m service.keys add); unset = open, tenant 'default'")
    p.add_argument("--tls-cert", type=Path, default=_path_env("TLS_CERT"), help="server certificate chain (PEM)")
    p.add_argument("--tls-key", type=Path, default=_path_env("TLS_KEY"), help="server private key (PEM)")
    p.add_argument("--tls-client-ca", type=Path, default=_path_env("TLS_CLIENT_CA"),
                   help="CA bundle (PEM) for client certificates: mutual TLS, clients without one are refused")
    p.add_argument("--audit-log", default=_env("AUDIT_LOG", d.audit_log),
                   help="audit log (one JSON line per mutating call): '-' = stderr (default) or a file")
    p.add_argument("--job-store", default=_env("JOB_STORE", d.job_store),
                   help="job store: empty = SQLite in the data directory; postgresql://user:pw@host/db = PostgreSQL")
    a = p.parse_args(argv)
    if (a.tls_cert is None) != (a.tls_key is None):
        p.error("--tls-cert and --tls-key go together")
    if a.tls_client_ca is not None and a.tls_cert is None:
        p.error("--tls-client-ca (mutual TLS) needs --tls-cert and --tls-key")
    limits = _limits(p, a)
    if problem := check_job_store(a.job_store):
        p.error(problem)
    if a.max_running_jobs < 0 or a.max_running_jobs_per_tenant < 0:
        p.error("--max-running-jobs and --max-running-jobs-per-tenant must be >= 0 (0 = no cap)")
    if not a.job_lease_seconds >= 1:
        p.error("--job-lease-seconds must be at least 1")
    if not (a.max_connection_age_s == 0 or a.max_connection_age_s >= 1):
        p.error("--max-connection-age-s must be 0 (never) or at least 1")
    serving = _serving_config(p, a)
    roots = a.allowed_root
    if roots is None:
        roots = [Path(r) for r in _env("ALLOWED_ROOTS", "").split(":") if r]
    # Symbolic links resolved first: the check and every later path check compare real paths.
    data_dir = a.data_dir.resolve()
    allowed_roots = tuple(Path(r).resolve() for r in roots)
    if problem := check_roots_apart(data_dir, allowed_roots):
        p.error(problem)
    prefixes = a.allowed_url_prefix
    if prefixes is None:
        prefixes = _env("ALLOWED_URL_PREFIXES", "").split()
    try:
        allowed_url_prefixes = tuple(check_prefix(u) for u in prefixes)
    except ValueError as e:
        p.error(str(e))
    return Settings(
        port=a.port,
        host=a.host,
        data_dir=data_dir,
        ray_address=a.ray_address,
        allowed_roots=allowed_roots,
        allowed_url_prefixes=allowed_url_prefixes,
        url_ca_file=_resolved(a.url_ca_file),
        job_cpus=a.job_cpus,
        local_ray_cpus=a.local_ray_cpus,
        max_running_jobs=a.max_running_jobs,
        max_running_jobs_per_tenant=a.max_running_jobs_per_tenant,
        job_lease_seconds=a.job_lease_seconds,
        models_per_replica=a.models_per_replica,
        serving=serving,
        metrics_port=a.metrics_port,
        grace_seconds=a.grace_seconds,
        max_connection_age_s=a.max_connection_age_s,
        limits=limits,
        api_keys_file=_resolved(a.api_keys_file),
        tls_cert=_resolved(a.tls_cert),
        tls_key=_resolved(a.tls_key),
        tls_client_ca=_resolved(a.tls_client_ca),
        audit_log=a.audit_log,
        job_store=a.job_store,
    )


IMPORTS = "imports"
"""The one folder of the data directory that allowed roots may lie in: the service never writes there."""


def check_roots_apart(data_dir: Path, roots: tuple[Path, ...]) -> str:
    """Why these (resolved) allowed roots overlap the service's own files, or "" when they do not.

    The data directory holds every tenant's uploads, models and job files; a root that contains it, or one
    inside it among those files, would let any tenant register another's uploads or load another's weights
    (RegisterDataset, base.weights_file). A root under data_dir/imports/ (the Kubernetes layout, where imports
    share the data volume) is kept apart from them."""
    imports = data_dir / IMPORTS
    for root in roots:
        if root == data_dir or root in data_dir.parents:
            return (f"--allowed-root {root} contains the data directory {data_dir}: every tenant could register "
                    "or read the others' uploads and models through it; choose a root outside the data directory")
        if data_dir in root.parents and not (root == imports or imports in root.parents):
            return (f"--allowed-root {root} lies inside the data directory {data_dir}, among the service's own "
                    f"files (uploads, models, jobs); choose a root outside it, or under {imports}")
    return ""


_SERVING_FLAGS = {  # field -> (type, help)
    "max_batch_size": (int, "images per forward pass on a replica, merged across callers"),
    "batch_wait_s": (float, "seconds a replica waits to fill a batch"),
    "max_ongoing_requests": (int, "requests one replica works on at once"),
    "max_queued_requests": (int, "requests queued for the replicas before RESOURCE_EXHAUSTED"),
    "min_replicas": (int, "serving replicas at least"),
    "max_replicas": (int, "serving replicas at most (autoscaling when above min)"),
    "target_ongoing_requests": (float, "autoscaling target: requests in flight per replica"),
    "replica_cpus": (float, "CPUs each serving replica asks Ray for"),
    "replica_gpus": (float, "GPUs (fractions allowed) each serving replica asks Ray for"),
    "precision": (str, "inference precision: fp32, bf16, fp16 (GPU) or auto"),
}


def _serving_flags(p: argparse.ArgumentParser) -> None:
    """--serve-* flags, env FINESERVE_SERVE_*, for every ServingConfig field."""
    d = ServingConfig()
    for name, (kind, text) in _SERVING_FLAGS.items():
        p.add_argument(f"--serve-{name.replace('_', '-')}", dest=f"serve_{name}", type=kind,
                       default=kind(_env(f"SERVE_{name.upper()}", str(getattr(d, name)))), help=text)


def _serving_config(p: argparse.ArgumentParser, a: argparse.Namespace) -> ServingConfig:
    c = ServingConfig(**{name: getattr(a, f"serve_{name}") for name in _SERVING_FLAGS})
    for name in ("max_batch_size", "max_ongoing_requests", "max_queued_requests", "min_replicas"):
        if getattr(c, name) < 1:
            p.error(f"--serve-{name.replace('_', '-')} must be at least 1")
    if c.max_replicas < c.min_replicas:
        p.error("--serve-max-replicas must be at least --serve-min-replicas")
    if not (c.batch_wait_s >= 0 and c.target_ongoing_requests > 0 and c.replica_cpus >= 0 and c.replica_gpus >= 0):
        p.error("--serve-batch-wait-s, --serve-replica-cpus and --serve-replica-gpus must be >= 0 and "
                "--serve-target-ongoing-requests > 0")
    if c.precision not in ("fp32", "bf16", "fp16", "auto"):
        p.error("--serve-precision must be fp32, bf16, fp16 or auto")
    return c


def _limit_flags(p: argparse.ArgumentParser) -> None:
    """--max-* flags, env FINESERVE_MAX_*, for every Limits field (each named max_*)."""
    d = Limits()
    for f in fields(Limits):
        kind = type(getattr(d, f.name))
        p.add_argument(f"--{f.name.replace('_', '-')}", type=kind,
                       default=kind(_env(f.name.upper(), str(getattr(d, f.name)))))


def _limits(p: argparse.ArgumentParser, a: argparse.Namespace) -> Limits:
    limits = Limits(**{f.name: getattr(a, f.name) for f in fields(Limits)})
    for f in fields(Limits):
        if not getattr(limits, f.name) >= 1:
            p.error(f"--{f.name.replace('_', '-')} must be at least 1")
    return limits


def _int_or_none(value: str) -> int | None:
    return int(value) if value else None


def _path_env(name: str) -> Path | None:
    value = _env(name, "")
    return Path(value) if value else None


def _resolved(path: Path | None) -> Path | None:
    return path.resolve() if path is not None else None
