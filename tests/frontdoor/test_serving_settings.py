"""Serving settings (flags and FINESERVE_SERVE_* env), the deployment they shape, and the metrics built from the
replicas' statistics -- without Ray running."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from fineserve.v1 import training_pb2
from service.config import ServingConfig, parse_settings
from service.metrics import ServingCollector
from service.ray_serving import RayBackend
from worker.serving_stats import ServingStats


def test_flags_env_and_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_settings([]).serving == ServingConfig()
    assert parse_settings([]).metrics_port is None
    monkeypatch.setenv("FINESERVE_SERVE_MAX_BATCH_SIZE", "8")
    monkeypatch.setenv("FINESERVE_SERVE_REPLICA_GPUS", "0.25")
    monkeypatch.setenv("FINESERVE_METRICS_PORT", "9100")
    s = parse_settings(["--serve-batch-wait-s", "0.02", "--serve-max-replicas", "4"])
    assert (s.serving.max_batch_size, s.serving.replica_gpus, s.serving.batch_wait_s, s.serving.max_replicas) == \
        (8, 0.25, 0.02, 4)
    assert s.metrics_port == 9100


@pytest.mark.parametrize("argv", [["--serve-max-batch-size", "0"], ["--serve-max-queued-requests", "0"],
                                  ["--serve-min-replicas", "3", "--serve-max-replicas", "2"],
                                  ["--serve-replica-gpus", "-1"], ["--serve-precision", "int8"]])
def test_bad_serving_settings_stop_the_start(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        parse_settings(argv)


def test_the_deployment_follows_the_settings() -> None:
    fixed = RayBackend(parse_settings(["--serve-min-replicas", "2", "--serve-max-replicas", "2",
                                       "--serve-replica-cpus", "2", "--serve-max-queued-requests", "7"]))
    cfg = fixed.serving_app()._bound_deployment
    assert cfg.num_replicas == 2 and cfg.max_queued_requests == 7
    assert cfg.ray_actor_options["num_cpus"] == 2 and cfg.ray_actor_options["num_gpus"] == 0
    assert cfg._deployment_config.logging_config["enable_access_log"] is False  # no log line per request
    scaled = RayBackend(parse_settings(["--serve-max-replicas", "3", "--serve-target-ongoing-requests", "4",
                                        "--serve-replica-gpus", "0.5"])).serving_app()._bound_deployment
    auto = scaled._deployment_config.autoscaling_config
    assert (auto.min_replicas, auto.max_replicas, auto.target_ongoing_requests) == (1, 3, 4)
    assert scaled.ray_actor_options["num_gpus"] == 0.5


def test_metrics_from_the_replicas_stats_and_the_jobs() -> None:
    stats = ServingStats()
    stats.replica("r1", ["default/a/1", "default/b/2"], held_max=2, max_models=2)
    stats.replica("r2", ["default/a/1"], held_max=1, max_models=2)
    stats.forward_passes([("classify", 1), ("classify", 3)])
    stats.forward_passes([("classify", 32), ("classify", 40)])
    jobs = [training_pb2.Job(state=training_pb2.RUNNING), training_pb2.Job(state=training_pb2.QUEUED),
            training_pb2.Job(state=training_pb2.QUEUED)]
    registry = CollectorRegistry()
    registry.register(ServingCollector(stats.snapshot, lambda: jobs))
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(generate_latest(registry).decode()) for s in f.samples}
    assert samples[("fineserve_jobs", (("state", "QUEUED"),))] == 2
    assert samples[("fineserve_model_replicas", (("model", "default/a/1"),))] == 2
    assert samples[("fineserve_models_loaded", (("replica", "r1"),))] == 2
    assert samples[("fineserve_models_loaded_max", (("replica", "r2"),))] == 1
    assert samples[("fineserve_forward_passes_total", (("method", "classify"),))] == 4
    assert samples[("fineserve_batch_images_sum", (("method", "classify"),))] == 76
    assert samples[("fineserve_batch_images_bucket", (("le", "4.0"), ("method", "classify")))] == 2
    assert samples[("fineserve_batch_images_bucket", (("le", "32.0"), ("method", "classify")))] == 3
    assert samples[("fineserve_batch_images_bucket", (("le", "+Inf"), ("method", "classify")))] == 4
