import pytest
from pydantic import ValidationError

from deployments.serve_env import INGRESS_ENV, SERVE_ENV
from serve_app.app import _autoscaled, _fixed, build_app, synthesizer_gpus
from voicegraph.core.settings import Settings, SynthesizerSettings


def test_defaults_are_the_embedded_laptop_setup():
    settings = Settings()
    assert settings.engine == "piper" and settings.piper.voices_dir is None
    assert settings.max_text_chars == 13_000
    assert str(settings.storage_root) == "data"
    assert settings.synthesizer.max_ongoing_requests > 5


def test_environment_overrides_defaults_and_args_override_environment(monkeypatch):
    monkeypatch.setenv("VG_MAX_TEXT_CHARS", "500")
    monkeypatch.setenv("VG_SYNTHESIZER__MAX_REPLICAS", "8")
    monkeypatch.setenv("VG_PAUSE_MS", "90")
    settings = Settings(pause_ms=40, synthesizer={"min_replicas": 2})
    assert settings.max_text_chars == 500
    assert settings.pause_ms == 40
    assert (settings.synthesizer.min_replicas, settings.synthesizer.max_replicas) == (2, 8)


@pytest.mark.parametrize(
    "args, message",
    [
        ({"engine": "nope"}, "engine"),
        ({"max_text_chars": 0}, "max_text_chars"),
        ({"min_speed": 2.0, "max_speed": 1.0}, "max_speed must be >= min_speed"),
        ({"synthesizer": {"min_replicas": 4, "max_replicas": 2}}, "max_replicas"),
        ({"synthesizer": {"gpus_per_replica": "half"}}, "gpus_per_replica"),
        ({"typo_setting": 1}, "typo_setting"),
    ],
)
def test_bad_settings_are_refused_with_the_field_named(args, message):
    with pytest.raises(ValidationError, match=message):
        Settings(**args)


def test_explicit_gpu_fraction_always_wins():
    assert synthesizer_gpus(SynthesizerSettings(gpus_per_replica=0.5)) == 0.5
    assert synthesizer_gpus(SynthesizerSettings(gpus_per_replica=0)) == 0.0


def test_auto_gpus_without_a_gpu_cluster_asks_for_none():
    # Ray is not running in unit tests: no cluster, so no GPU to share.
    assert synthesizer_gpus(SynthesizerSettings()) == 0.0


def test_synthesizer_autoscaling_options_come_from_settings():
    options = _autoscaled(SynthesizerSettings(min_replicas=2, max_replicas=6, gpus_per_replica=0.25), Settings())
    assert options["autoscaling_config"]["min_replicas"] == 2
    assert options["autoscaling_config"]["max_replicas"] == 6
    assert options["ray_actor_options"]["num_gpus"] == 0.25
    assert options["max_ongoing_requests"] == 8


def test_serves_own_autoscaling_knobs_are_settings_serve_accepts():
    from ray.serve.config import AutoscalingConfig

    unset = _autoscaled(SynthesizerSettings(), Settings())["autoscaling_config"]
    assert {"look_back_period_s", "upscaling_factor", "downscaling_factor"}.isdisjoint(unset)
    knobs = {"look_back_period_s": 20.0, "upscaling_factor": 2.0, "downscaling_factor": 0.5}
    config = AutoscalingConfig.model_validate(_autoscaled(SynthesizerSettings(**knobs), Settings())["autoscaling_config"])
    assert (config.look_back_period_s, config.upscaling_factor, config.downscaling_factor) == (20.0, 2.0, 0.5)


def test_every_deployment_gets_bounded_queues_graceful_shutdown_and_the_log_encoding_serve_accepts():
    from ray.serve.config import RequestRouterConfig
    from ray.serve.schema import DeploymentSchema

    settings = Settings(log_encoding="JSON", overload_retry_after_s=3, router_max_backoff_s=0.07)
    shapes = {
        "Ingress": _fixed(settings.ingress, settings),
        "Stitcher": _fixed(settings.stitcher, settings),
        "Synthesizer": _autoscaled(settings.synthesizer, settings),
    }
    for name, options in shapes.items():
        schema = DeploymentSchema.model_validate({"name": name, **options})
        assert schema.logging_config.encoding == "JSON"
        assert schema.backpressure_config.status_code == 503 and schema.backpressure_config.retry_after_s == 3
        # A caller looks again for a free replica within 0.07 s, not Serve's 0.5 s.
        assert RequestRouterConfig.model_validate(schema.request_router_config).max_backoff_s == 0.07
    # The two queues a flood fills are bounded by default; a stopping ingress
    # finishes requests as long as the longest may take.
    assert shapes["Ingress"]["max_queued_requests"] == settings.ingress.max_queued_requests > 0
    assert shapes["Synthesizer"]["max_queued_requests"] == settings.synthesizer.max_queued_requests > 0
    assert shapes["Ingress"]["graceful_shutdown_timeout_s"] >= settings.request_timeout_s
    assert shapes["Synthesizer"]["graceful_shutdown_timeout_s"] == settings.synthesizer.graceful_shutdown_timeout_s


def test_the_ingress_replica_carries_the_grpc_message_limit_its_handles_need():
    # Wherever the app runs, not only where Ray was started under SERVE_ENV.
    ingress = build_app(Settings(engine="espeak"))._bound_deployment
    assert ingress.ray_actor_options["runtime_env"]["env_vars"] == INGRESS_ENV
    assert INGRESS_ENV.items() <= SERVE_ENV.items()


def test_a_bad_outbound_allow_entry_fails_at_load():
    with pytest.raises(ValidationError, match="10.0.0.0/33"):
        Settings(outbound={"allow": ["127.0.0.1:8080", "10.0.0.0/33"]})
    assert Settings(outbound={"allow": ["127.0.0.1:8080", "[::1]:9000"]}).outbound.allow[1] == "[::1]:9000"


DIGEST = "a" * 64


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        ({"enabled": True}, "at least one key"),
        ({"enabled": True, "keys": [{"name": "a", "sha256": DIGEST, "revoked": True}]}, "at least one key"),
        ({"keys": [{"name": "a", "sha256": "not-hex"}]}, "sha256"),
        ({"keys": [{"name": "a b", "sha256": DIGEST}]}, "name"),
        ({"keys": [{"name": "a", "sha256": DIGEST}, {"name": "a", "sha256": "b" * 64}]}, "repeated: a"),
        ({"limits": {"chars_per_min": 5000}}, r"auth.limits: chars_per_min \(5000\) is below max_text_chars"),
        ({"keys": [{"name": "a", "sha256": DIGEST, "limits": {"chars_per_min": 10}}]}, "key 'a': chars_per_min"),
    ],
)
def test_bad_auth_settings_are_refused_at_load(auth, message):
    with pytest.raises(ValidationError, match=message):
        Settings(auth=auth)


def test_keys_come_from_the_environment_as_json(monkeypatch):
    monkeypatch.setenv("VG_AUTH__ENABLED", "true")
    monkeypatch.setenv("VG_AUTH__KEYS", f'[{{"name": "app", "sha256": "{DIGEST}", "limits": {{"request_burst": 3}}}}]')
    auth = Settings().auth
    assert auth.enabled and auth.limits_for(auth.keys[0]).request_burst == 3
    assert auth.keys[0].limits.chars_per_min == auth.limits.chars_per_min


def test_old_migration_variables_still_set_serverless_with_a_warning(monkeypatch):
    monkeypatch.setenv("VG_MIGRATION__RUNSYNC_WAIT_S", "5")
    with pytest.warns(DeprecationWarning, match="VG_MIGRATION__RUNSYNC_WAIT_S is deprecated; use VG_SERVERLESS__RUNSYNC_WAIT_S"):
        settings = Settings()
    assert settings.serverless.runsync_wait_s == 5


def test_an_old_migration_key_in_the_builder_args_still_sets_serverless_with_a_warning():
    with pytest.warns(DeprecationWarning, match="'migration' is deprecated; use 'serverless'"):
        settings = Settings(**{"migration": {"endpoint_id": "old-endpoint", "max_sections": 7}})
    assert (settings.serverless.endpoint_id, settings.serverless.max_sections) == ("old-endpoint", 7)


def test_new_serverless_names_win_over_the_old_ones(monkeypatch):
    monkeypatch.setenv("VG_MIGRATION__MAX_SECTIONS", "3")
    monkeypatch.setenv("VG_SERVERLESS__MAX_SECTIONS", "4")
    monkeypatch.setenv("VG_MIGRATION__DELIVERY", "url")
    with pytest.warns(DeprecationWarning):
        settings = Settings(migration={"endpoint_id": "old", "runsync_wait_s": 9}, serverless={"endpoint_id": "new"})
    assert settings.serverless.max_sections == 4  # new variable over old variable
    assert settings.serverless.endpoint_id == "new"  # new key over old key
    assert settings.serverless.delivery == "url" and settings.serverless.runsync_wait_s == 9  # old names alone still count


def test_the_new_names_alone_warn_of_nothing(monkeypatch, recwarn):
    monkeypatch.setenv("VG_SERVERLESS__MAX_SECTIONS", "4")
    assert Settings(serverless={"delivery": "url"}).serverless.max_sections == 4
    assert not [warning for warning in recwarn if issubclass(warning.category, DeprecationWarning)]


@pytest.mark.parametrize(
    "given, engines, default",
    [
        ({}, ["piper", "espeak"], "piper"),
        ({"engine": "xtts"}, ["xtts"], "xtts"),  # as before engines existed: that one alone
        ({"engines": ["espeak", "piper"]}, ["espeak", "piper"], "espeak"),
        ({"engines": "piper, xtts"}, ["piper", "xtts"], "piper"),  # VG_ENGINES=piper,xtts
        ({"engines": ["piper", "xtts"], "engine": "xtts"}, ["piper", "xtts"], "xtts"),
    ],
)
def test_engines_served_and_the_default_one(given, engines, default):
    settings = Settings(**given)
    assert (settings.engines, settings.engine) == (engines, default)


@pytest.mark.parametrize(
    "given, words",
    [
        ({"engines": ["piper"], "engine": "xtts"}, "must be one of engines"),
        ({"engines": ["piper", "piper"]}, "each engine once"),
        ({"engines": []}, "at least one"),
        ({"engines": ["piper"], "synthesizers": {"xtts": {"num_cpus": 1}}}, "not among engines"),
        ({"engines": ["piper", "xtts"], "synthesizers": {"xtts": {"min_replicas": 3, "max_replicas": 2}}},
         "synthesizers.xtts"),
        ({"engines": ["kokoro"]}, "kokoro"),
    ],
)
def test_engine_settings_that_cannot_work_are_refused(given, words):
    with pytest.raises(ValueError, match=words):
        Settings(**given)


def test_each_engine_gets_its_own_synthesizer_deployment_and_resources():
    settings = Settings(
        engines=["piper", "xtts"],
        synthesizer={"max_replicas": 6},
        synthesizers={"xtts": {"gpus_per_replica": 0.25, "num_cpus": 1}, "piper": {"gpus_per_replica": 0}},
    )
    app = build_app(settings)
    synthesizers = {
        engine: handle._bound_deployment for engine, handle in app._bound_deployment.init_args[2].items()
    }
    assert {engine: d.name for engine, d in synthesizers.items()} == {
        "piper": "Synthesizer-piper", "xtts": "Synthesizer-xtts"
    }
    assert synthesizers["xtts"].ray_actor_options == {"num_cpus": 1, "num_gpus": 0.25}
    assert synthesizers["piper"].ray_actor_options == {"num_cpus": 0.25, "num_gpus": 0.0}
    for deployment in synthesizers.values():
        assert deployment._deployment_config.autoscaling_config.max_replicas == 6  # from `synthesizer`
