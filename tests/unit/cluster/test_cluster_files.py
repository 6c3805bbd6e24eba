"""The image and cluster files in cluster/: parsed and checked, never built or launched."""

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
import ray.autoscaler
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from scripts.check_lock import read_pins
from voicegraph.core.settings import Settings

REPO = Path(__file__).resolve().parents[3]
LOCK_TEXT = (REPO / "requirements/lock.txt").read_text()
RAY_VERSION = str(read_pins(LOCK_TEXT)["ray"])
ROOT_USERS = {"root", "0"}


def locked_python_tag() -> str:
    """`py311` for a lock pip-compile made "with Python 3.11"."""
    major, minor = re.search(r"pip-compile with Python (\d+)\.(\d+)", LOCK_TEXT).groups()
    return f"py{major}{minor}"


# --- cluster/Dockerfile ---------------------------------------------------------------------------


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, its arguments) in order, comments dropped and continuation lines joined."""
    instructions, pending = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        instructions.append((keyword.upper(), " ".join(arguments.split())))
        pending = ""
    assert not pending, "the Dockerfile ends in a continuation line"
    return instructions


def key_values(arguments: str) -> dict[str, str | None]:
    """`A=1 B` (ARG, ENV, LABEL) as {"A": "1", "B": None}."""
    pairs = (word.partition("=") for word in shlex.split(arguments))
    return {key: value if sep else None for key, sep, value in pairs}


def expand(text: str, values: dict[str, str | None]) -> str:
    return re.sub(r"\$\{(\w+)\}", lambda match: values[match[1]] or "", text)


INSTRUCTIONS = dockerfile_instructions((REPO / "cluster/Dockerfile").read_text())
FROM_INDEX = max(i for i, (keyword, _) in enumerate(INSTRUCTIONS) if keyword == "FROM")
# Build args declared before the final FROM: what its image name may use.
GLOBAL_ARGS = {
    key: value
    for keyword, arguments in INSTRUCTIONS[:FROM_INDEX]
    if keyword == "ARG"
    for key, value in key_values(arguments).items()
}
FINAL_STAGE = INSTRUCTIONS[FROM_INDEX + 1 :]


def final_stage(keyword: str) -> list[str]:
    return [arguments for kw, arguments in FINAL_STAGE if kw == keyword]


FINAL_ARGS = key_values(" ".join(final_stage("ARG")))


def run_commands() -> list[str]:
    """Each command of the final stage's RUN instructions, `&&` chains split."""
    return [command.strip() for run in final_stage("RUN") for command in run.split("&&")]


def test_the_dockerfile_parser_joins_continuations_and_drops_comments():
    text = "# c\nARG A=1\nRUN a \\\n    # inside\n    && b\n\nUSER ray\n"
    assert dockerfile_instructions(text) == [("ARG", "A=1"), ("RUN", "a && b"), ("USER", "ray")]


@pytest.mark.parametrize("variant", ["cpu", "gpu"])
def test_image_is_rays_official_one_for_the_locks_ray_and_python_picked_by_a_build_arg(variant):
    assert GLOBAL_ARGS["RAY_VERSION"] == RAY_VERSION
    assert GLOBAL_ARGS["VARIANT"] == "cpu"
    image = expand(INSTRUCTIONS[FROM_INDEX][1], {**GLOBAL_ARGS, "VARIANT": variant})
    assert image == f"rayproject/ray:{RAY_VERSION}-{locked_python_tag()}-{variant}"


def test_torch_then_the_lock_with_hashes_then_the_project_without_dependencies():
    commands = run_commands()
    torch = next(i for i, c in enumerate(commands) if "-r requirements/torch.txt" in c)
    lock = next(i for i, c in enumerate(commands) if "-r requirements/lock.txt" in c)
    project = next(i for i, c in enumerate(commands) if c.endswith(" ."))
    assert torch < lock < project
    assert "--require-hashes" in commands[lock].split()
    assert {"--no-deps", "--no-build-isolation"} <= set(commands[project].split())
    # Only the CPU image takes torch from PyTorch's CPU index; the GPU one keeps PyPI's CUDA build.
    assert '"$VARIANT" = gpu ||' in commands[torch] and "download.pytorch.org/whl/cpu" in commands[torch]
    assert "VARIANT" in FINAL_ARGS
    assert any(c == "python scripts/cpu_torchaudio.py" for c in commands[lock:])


def test_version_info_comes_from_build_args():
    env = key_values(" ".join(final_stage("ENV")))
    for name in ("VG_GIT_SHA", "VG_BUILD_TIME"):
        assert name in FINAL_ARGS
        assert env[name] == f"${{{name}}}"


def test_every_ray_process_in_the_image_runs_under_serves_speed_flags():
    from deployments.serve_env import SERVE_ENV

    env = key_values(" ".join(final_stage("ENV")))
    assert {name: env.get(name) for name in SERVE_ENV} == SERVE_ENV


def test_runs_as_a_user_that_is_not_root():
    user = None
    starts = 0
    for keyword, arguments in FINAL_STAGE:
        if keyword == "USER":
            user = arguments.split(":")[0]
        elif keyword in ("CMD", "ENTRYPOINT"):
            starts += 1
            assert user is not None and user not in ROOT_USERS, f"{keyword} runs as {user or 'the base image user'}"
    assert starts
    # The last USER is the one a container runs as, even when it follows CMD.
    assert final_stage("USER")[-1].split(":")[0] not in ROOT_USERS


def copy_sources() -> list[str]:
    sources = []
    for arguments in final_stage("COPY"):
        words = [word for word in shlex.split(arguments) if not word.startswith("--")]
        sources.extend(words[:-1])
    return sources


def glob_regex(pattern: str) -> re.Pattern:
    """A .dockerignore pattern as Docker reads it: `*` and `?` stay within one path segment."""
    parts = re.split(r"(\*\*/|\*\*|\*|\?)", pattern.strip("/"))
    wildcards = {"**/": "(.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
    return re.compile("".join(wildcards.get(part, re.escape(part)) for part in parts))


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    segments = path.split("/")
    candidates = ["/".join(segments[:n]) for n in range(1, len(segments) + 1)]
    ignored = False
    for pattern in patterns:
        if any(glob_regex(pattern.removeprefix("!")).fullmatch(c) for c in candidates):
            ignored = not pattern.startswith("!")
    return ignored


DOCKERIGNORE = [
    line.strip()
    for line in (REPO / ".dockerignore").read_text().splitlines()
    if line.strip() and not line.startswith("#")
]


def test_the_dockerignore_matcher_follows_dockers_rules():
    patterns = ["*", "!src", "**/__pycache__"]
    assert dockerignored(".venv/bin/python", patterns)
    assert not dockerignored("src/a/b.py", patterns)
    assert dockerignored("src/a/__pycache__/b.pyc", patterns)


def test_every_file_the_image_copies_exists_and_reaches_the_build_context():
    sources = copy_sources()
    assert {"requirements/lock.txt", "requirements/torch.txt", "pyproject.toml", "serve_app"} <= set(sources)
    for source in sources:
        path = REPO / source
        assert path.exists(), source
        files = [path] if path.is_file() else [p for p in path.rglob("*.py") if "__pycache__" not in p.parts]
        assert files, source
        for file in files:
            relative = file.relative_to(REPO).as_posix()
            assert not dockerignored(relative, DOCKERIGNORE), f"{relative} is left out of the build context"


@pytest.mark.parametrize("path", [".venv/bin/python", ".git/HEAD", "data/jobs.sqlite", "tests/conftest.py",
                                  ".pytest_cache/v/cache", "voicegraph/__pycache__/x.pyc"])
def test_the_build_context_leaves_out_what_the_image_does_not_need(path):
    assert dockerignored(path, DOCKERIGNORE)


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_image_passes_the_build_args_the_dockerfile_declares():
    printed = subprocess.run(
        ["make", "--no-print-directory", "-n", "image", "IMAGE_VARIANT=gpu"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout
    assert "docker build -f cluster/Dockerfile" in printed
    passed = dict(re.findall(r"--build-arg (\w+)=(\S+)", printed))
    assert {"VARIANT", "VG_GIT_SHA", "VG_BUILD_TIME"} <= set(passed)
    assert passed["VARIANT"] == "gpu"
    assert set(passed) <= set(GLOBAL_ARGS | FINAL_ARGS)


# --- cluster/ray-cluster.yaml ---------------------------------------------------------------------

LAUNCHER = yaml.safe_load((REPO / "cluster/ray-cluster.yaml").read_text())


def test_launcher_file_is_valid_for_the_installed_rays_schema_and_checks():
    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(LAUNCHER, schema)
    # What `ray up` runs before it launches anything: the same schema after Ray's defaults
    # are merged in, and checks across fields (head type, worker counts, docker).
    validate_config(prepare_config(LAUNCHER))


def test_launcher_has_a_cpu_head_and_gpu_workers_that_scale_from_zero_and_idle_out():
    node_types = LAUNCHER["available_node_types"]
    head = node_types[LAUNCHER["head_node_type"]]
    assert not head["resources"].get("GPU")
    (gpu_name,) = [name for name, node_type in node_types.items() if node_type["resources"].get("GPU")]
    gpu = node_types[gpu_name]
    assert gpu["resources"]["GPU"] == 1
    assert gpu["min_workers"] == 0
    assert gpu["max_workers"] >= 1
    assert LAUNCHER["idle_timeout_minutes"] > 0
    docker = LAUNCHER["docker"]
    assert docker["head_image"].endswith(":cpu")
    assert gpu.get("docker", {}).get("worker_image", docker["worker_image"]).endswith(":gpu")


def test_launcher_exports_metrics_on_the_known_port_on_every_node():
    for commands in ("head_start_ray_commands", "worker_start_ray_commands"):
        start = next(c for c in LAUNCHER[commands] if "ray start" in c)
        assert "--metrics-export-port=8080" in start.split()


# --- cluster/rayservice.yaml ----------------------------------------------------------------------

RAYSERVICE = yaml.safe_load((REPO / "cluster/rayservice.yaml").read_text())
RAY_CLUSTER = RAYSERVICE["spec"]["rayClusterConfig"]
GROUPS = {"head": RAY_CLUSTER["headGroupSpec"]} | {g["groupName"]: g for g in RAY_CLUSTER["workerGroupSpecs"]}


def test_rayservice_runs_the_locks_ray():
    assert RAY_CLUSTER["rayVersion"] == RAY_VERSION


def test_rayservice_keeps_gcs_state_in_an_external_redis():
    options = RAY_CLUSTER["gcsFaultToleranceOptions"]
    host, _, port = options["redisAddress"].rpartition(":")
    assert host and port.isdigit()
    assert set(options["redisPassword"]["valueFrom"]["secretKeyRef"]) == {"name", "key"}
    # KubeRay refuses the older ways of turning it on beside gcsFaultToleranceOptions.
    assert "ray.io/ft-enabled" not in RAYSERVICE["metadata"].get("annotations", {})
    head_env = {e["name"] for e in GROUPS["head"]["template"]["spec"]["containers"][0].get("env", [])}
    assert not head_env & {"RAY_REDIS_ADDRESS", "REDIS_PASSWORD"}
    assert "redis-password" not in GROUPS["head"]["rayStartParams"]


@pytest.mark.parametrize("group", list(GROUPS))
def test_every_container_requests_what_it_is_limited_to(group):
    for container in GROUPS[group]["template"]["spec"]["containers"]:
        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["limits"]), container["name"]
        assert resources["requests"] == resources["limits"], container["name"]


def test_the_gpu_group_asks_for_gpus_and_the_autoscaler_container_is_bounded_too():
    (container,) = GROUPS["gpu"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert RAY_CLUSTER["enableInTreeAutoscaling"] is True
    autoscaler = RAY_CLUSTER["autoscalerOptions"]["resources"]
    assert {"cpu", "memory"} <= set(autoscaler["limits"])
    assert autoscaler["requests"] == autoscaler["limits"]


@pytest.mark.parametrize("group", list(GROUPS))
def test_every_ray_container_exports_metrics_on_a_port_named_metrics(group):
    spec = GROUPS[group]
    assert spec["rayStartParams"]["metrics-export-port"] == "8080"
    ray_container = spec["template"]["spec"]["containers"][0]
    ports = {port["name"]: port["containerPort"] for port in ray_container["ports"]}
    assert ports["metrics"] == 8080
    if group == "head":
        # Listed ports replace KubeRay's defaults on the head Service: workers join through gcs-server.
        assert ports | {"gcs-server": 6379, "dashboard": 8265, "client": 10001, "serve": 8000} == ports


def test_rayservice_serves_piper_on_cpus_and_xtts_on_gpu_shares():
    args = yaml.safe_load(RAYSERVICE["spec"]["serveConfigV2"])["applications"][0]["args"]
    # The keys come from a Secret at run time, the bucket's credentials from the node: left out here.
    settings = Settings(**{name: value for name, value in args.items() if name not in ("auth", "storage")})
    assert settings.engines == ["piper", "xtts"]
    assert settings.synthesizer_for("piper").gpus_per_replica == 0
    assert settings.synthesizer_for("xtts").gpus_per_replica == 0.25
