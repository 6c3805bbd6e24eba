"""The shipped configs parse, and their args are valid settings."""

from pathlib import Path

import pytest
import yaml
from ray.serve.schema import ServeDeploySchema

from voicegraph.core.settings import Settings

REPO = Path(__file__).resolve().parents[3]


def cluster_settings(args: dict) -> Settings:
    # The cluster's key digests and database URL come from Secrets, as
    # VG_AUTH__KEYS and VG_JOBS__DATABASE_URL.
    auth = {**args.get("auth", {}), "keys": [{"name": "ops", "sha256": "a" * 64}]}
    jobs = {**args.get("jobs", {}), "database_url": "postgresql://voicegraph:pw@postgres:5432/voicegraph"}
    return Settings(**{**args, "auth": auth, "jobs": jobs})


def serve_configs():
    laptop = yaml.safe_load((REPO / "serve_config.yaml").read_text())
    cluster = yaml.safe_load(yaml.safe_load((REPO / "cluster/rayservice.yaml").read_text())["spec"]["serveConfigV2"])
    return {"serve_config.yaml": laptop, "cluster/rayservice.yaml": cluster}


@pytest.mark.parametrize("name", ["serve_config.yaml", "cluster/rayservice.yaml"])
def test_config_is_a_valid_serve_config_with_valid_args(name):
    config = ServeDeploySchema.model_validate(serve_configs()[name])
    (app,) = config.applications
    assert app.import_path == "serve_app.app:build_app"
    settings = cluster_settings(app.args)
    assert settings.synthesizer.max_ongoing_requests > 5


def test_keys_are_off_on_a_laptop_and_on_in_the_cluster_from_a_secret():
    configs = serve_configs()
    assert "auth" not in configs["serve_config.yaml"]["applications"][0]["args"]
    assert configs["cluster/rayservice.yaml"]["applications"][0]["args"]["auth"]["enabled"] is True
    cluster = yaml.safe_load((REPO / "cluster/rayservice.yaml").read_text())["spec"]["rayClusterConfig"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    for group in groups:
        (container,) = group["template"]["spec"]["containers"]
        assert {"name": "VG_AUTH__KEYS", "valueFrom": {"secretKeyRef": {"name": "voicegraph-api-keys", "key": "keys.json"}}} in container["env"]


def test_the_cluster_keeps_job_state_in_postgresql_from_a_secret_and_the_laptop_in_sqlite():
    configs = serve_configs()
    laptop = Settings(**configs["serve_config.yaml"]["applications"][0]["args"])
    assert laptop.jobs.database_url is None and laptop.storage.num_replicas == 1
    args = configs["cluster/rayservice.yaml"]["applications"][0]["args"]
    assert "database_url" not in args.get("jobs", {})  # never in the file
    assert cluster_settings(args).storage.num_replicas > 1 and args["storage_backend"] == "firebase"
    cluster = yaml.safe_load((REPO / "cluster/rayservice.yaml").read_text())["spec"]["rayClusterConfig"]
    for group in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]:
        (container,) = group["template"]["spec"]["containers"]
        secret = {"secretKeyRef": {"name": "voicegraph-postgres", "key": "url"}}
        assert {"name": "VG_JOBS__DATABASE_URL", "valueFrom": secret} in container["env"]
    with pytest.raises(ValueError, match="storage.num_replicas above 1 needs jobs.database_url"):
        Settings(**{**args, "auth": cluster_settings(args).auth.model_dump()})  # without the Secret's URL


def test_laptop_config_binds_loopback_and_cluster_config_pins_gpus():
    configs = serve_configs()
    assert configs["serve_config.yaml"]["http_options"]["host"] == "127.0.0.1"
    assert Settings(**configs["serve_config.yaml"]["applications"][0]["args"]).synthesizer.gpus_per_replica == "auto"
    assert cluster_settings(configs["cluster/rayservice.yaml"]["applications"][0]["args"]).synthesizer_for("xtts").gpus_per_replica == 0.25


def test_cluster_logs_are_json_for_serve_and_the_application():
    # Top-level: the controller and proxies; applications without their own inherit it.
    config = ServeDeploySchema.model_validate(serve_configs()["cluster/rayservice.yaml"])
    assert config.logging_config.encoding == "JSON"
    assert all(app.logging_config is None for app in config.applications)
    # The application sets each deployment's own logging_config from its settings.
    (app,) = config.applications
    assert cluster_settings(app.args).log_encoding == "JSON"
