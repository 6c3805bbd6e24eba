"""`make serve`'s launcher: comes up, speaks, and leaves no process behind."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from deployments.serve_env import SERVE_ENV
from tests.helpers.ports import free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def session_members(session_id: int) -> set[int]:
    members = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getsid(int(entry)) == session_id:
                    members.add(int(entry))
            except (ProcessLookupError, PermissionError):
                pass
    return members


def children(parent: int) -> list[int]:
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as stat:
                if int(stat.read().split(") ")[-1].split()[1]) == parent:
                    found.append(int(entry))
        except FileNotFoundError:
            pass
    return found


def command_line(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return cmdline.read().replace(b"\0", b" ").decode(errors="replace")
    except FileNotFoundError:
        return ""


def environment(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/environ", "rb") as environ:
        pairs = (entry.decode(errors="replace").partition("=") for entry in environ.read().split(b"\0") if entry)
    return {name: value for name, _, value in pairs}


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[-1][0] != "Z"  # a zombie is gone, just unreaped
    except FileNotFoundError:
        return False


def wait_for_line(process: subprocess.Popen, needle: str, timeout_s: float) -> list[str]:
    lines, deadline = [], time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        lines.append(line)
        if needle in line:
            return lines
    raise AssertionError(f"{needle!r} not printed; output:\n{''.join(lines[-40:])}")


def wait_for_series(url: str, name: str, timeout_s: float = 60) -> bool:
    from prometheus_client.parser import text_string_to_metric_families

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        families = text_string_to_metric_families(httpx.get(url, timeout=10).text)
        if any(sample.name == name for family in families for sample in family.samples):
            return True
        time.sleep(1)
    return False


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="process accounting reads /proc")
@pytest.mark.parametrize(
    ("stop_signals", "exit_code"),
    [([signal.SIGINT], 0), ([signal.SIGTERM], 0), ([signal.SIGTERM, signal.SIGTERM], 1)],
    ids=["ctrl-c", "sigterm", "sigterm-twice"],
)
def test_serve_starts_speaks_and_stops_cleanly(tmp_path, stop_signals, exit_code):
    config = yaml.safe_load((REPO / "serve_config.yaml").read_text())
    config["applications"][0]["args"]["storage_root"] = str(tmp_path / "data")
    config_path = tmp_path / "serve_config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    port, metrics_port = free_port(), free_port()
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "serve_app.launcher", str(config_path), "--port", str(port),
         "--no-dashboard", "--num-cpus", "4", "--metrics-port", str(metrics_port)],
        cwd=REPO,
        # Without Serve's flags (a test before may have set them here): the launcher sets them.
        env={name: value for name, value in os.environ.items() if name not in SERVE_ENV},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal gives `make serve`
    )
    try:
        wait_for_line(supervisor, "voicegraph is ready at", timeout_s=240)
        response = httpx.post(f"http://127.0.0.1:{port}/v1/tts", json={"text": "Hello from the graph."}, timeout=60)
        assert response.status_code == 200 and response.content[:4] == b"RIFF"
        if stop_signals == [signal.SIGINT]:
            # Prometheus can scrape what it printed; replicas report every ~10 s.
            assert wait_for_series(f"http://127.0.0.1:{metrics_port}/metrics", "ray_voicegraph_http_requests_total")

        # The driver runs in a session of its own; everything Ray starts stays in it.
        (driver,) = children(supervisor.pid)
        ray_processes = session_members(driver)
        assert len(ray_processes) >= 5, "expected the driver, GCS, raylet and replicas"
        serve_processes = [pid for pid in ray_processes if "ray::ProxyActor" in command_line(pid)
                           or "ray::ServeReplica:voicegraph:Ingress" in command_line(pid)]
        assert len(serve_processes) == 2, "expected Serve's proxy and the Ingress replica"
        for pid in serve_processes:
            assert SERVE_ENV.items() <= environment(pid).items(), command_line(pid)

        # Ctrl-C signals the whole foreground process group; SIGTERM comes from a supervisor.
        # A second signal while stopping (make passes one on) stops at once, still cleanly.
        for index, stop_signal in enumerate(stop_signals):
            if index:
                time.sleep(0.5)
            if stop_signal == signal.SIGINT:
                os.killpg(supervisor.pid, signal.SIGINT)
            else:
                supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(timeout=120) == exit_code
        output = supervisor.stdout.read()
        assert "_Stop: SIG" not in output  # no signal escaped as a crash
        assert ("stopped again" in output) == (len(stop_signals) > 1)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(alive(pid) for pid in ray_processes):
            time.sleep(0.5)
        assert not [pid for pid in ray_processes if alive(pid)]
    finally:
        if supervisor.poll() is None:
            os.killpg(supervisor.pid, signal.SIGKILL)


@pytest.mark.parametrize(
    ("job_settings", "expected"),
    [
        ({"database_url": "wrong-password"}, "password authentication failed"),
        ({"database_url": "unreachable"}, "Connection refused"),
        ({"outbox_hold_s": 1}, "jobs.outbox_hold_s (1.0) must be longer"),
    ],
)
def test_settings_that_cannot_work_stop_the_start_with_one_line(tmp_path, postgres, job_settings, expected):
    """Before Ray starts: exit 2 and one line that names the setting, no traceback, no hang."""
    urls = {"wrong-password": postgres.url(password="nope"), "unreachable": f"postgresql://u:p@127.0.0.1:{free_port()}/x"}
    if "database_url" in job_settings:
        job_settings = {**job_settings, "database_url": urls[job_settings["database_url"]]}
    config = yaml.safe_load((REPO / "serve_config.yaml").read_text())
    config["applications"][0]["args"].update(storage_root=str(tmp_path / "data"), jobs=job_settings)
    config_path = tmp_path / "serve_config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [sys.executable, "-m", "serve_app.launcher", str(config_path), "--port", str(free_port()), "--no-dashboard"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("voicegraph cannot start: jobs.") and expected in line
    assert "nope" not in line
