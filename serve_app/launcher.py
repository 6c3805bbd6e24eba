"""`voicegraph-serve`: run serve_config.yaml on a private local Ray, in the foreground.

What `serve run serve_config.yaml` does, with three differences a laptop user
wants: it always starts its own Ray (never attaches to one that happens to be
running), it waits until the application is RUNNING and prints its URL, and
Ctrl-C or SIGTERM shuts Serve and that Ray down, leaving no process behind.
On a cluster, deploy the same file with `serve deploy` or a KubeRay RayService.

Two processes do this. The supervisor (what you start) runs the Ray driver in
a child process in a session of its own: Ctrl-C in a terminal signals the
whole foreground process group, and a raylet that dies first leaves Serve's
shutdown hanging. The supervisor asks the driver to stop, waits, and finally
kills whatever is left in the driver's session, where every process Ray
starts stays.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from deployments.serve_env import with_serve_env


class _Stop(Exception):
    pass


def _raise_stop(signum, _frame):
    raise _Stop(signal.Signals(signum).name)


def _handle_stop_signals() -> None:
    # Signals become an exception so the `finally` in main always runs. Set
    # again after ray.init: Ray's core worker installs a SIGTERM handler that
    # aborts the process, which would leave Ray's agents running.
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)


def _wait_until_running(app_names: set[str], timeout_s: float) -> None:
    from ray import serve
    from ray.serve.schema import ApplicationStatus

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        applications = serve.status().applications
        statuses = {name: applications[name] for name in app_names if name in applications}
        failed = {n: s for n, s in statuses.items() if s.status == ApplicationStatus.DEPLOY_FAILED}
        if failed:
            details = "; ".join(f"{n}: {s.message}" for n, s in failed.items())
            raise RuntimeError(f"deployment failed: {details}")
        if len(statuses) == len(app_names) and all(
            s.status == ApplicationStatus.RUNNING for s in statuses.values()
        ):
            return
        time.sleep(0.5)
    raise RuntimeError(f"applications not running after {timeout_s:.0f} s: {sorted(app_names)}")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="voicegraph-serve", description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default="serve_config.yaml", type=Path)
    parser.add_argument("--port", type=int, help="override http_options.port")
    parser.add_argument("--no-dashboard", action="store_true", help="do not start the Ray dashboard")
    parser.add_argument("--num-cpus", type=float, help="logical CPUs the local Ray declares")
    parser.add_argument("--metrics-port", type=int, default=8080,
                        help="where Ray serves Prometheus metrics (/metrics), Serve's and voicegraph's")
    parser.add_argument("--ready-timeout", type=float, default=600.0)
    parser.add_argument("--stop-timeout", type=float, default=45.0,
                        help="seconds a clean shutdown may take before the rest is killed")
    parser.add_argument("--driver", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    options = _parse_args(argv)
    if options.driver:
        return _run_driver(options)
    return _supervise(argv, options.stop_timeout)


def _supervise(argv: list[str], stop_timeout: float) -> int:
    driver = subprocess.Popen(
        [sys.executable, "-m", "serve_app.launcher", "--driver", *argv], start_new_session=True
    )
    _handle_stop_signals()
    try:
        return driver.wait()
    except _Stop:
        driver.send_signal(signal.SIGTERM)
        try:
            return driver.wait(timeout=stop_timeout)
        except subprocess.TimeoutExpired:
            print(f"shutdown took over {stop_timeout:.0f} s; killing what is left", flush=True)
            return 1
        except _Stop:
            # A second signal (an impatient Ctrl-C, or make passing on the one
            # it got): stop now instead of waiting out the clean shutdown.
            print("stopped again; killing what is left", flush=True)
            return 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _kill_session(driver.pid)
        driver.wait()


def _kill_session(session_id: int) -> None:
    """SIGKILL every process in a session: Ray gives workers their own process
    groups, but they stay in the session of the driver that started Ray."""
    pids = [int(entry) for entry in os.listdir("/proc") if entry.isdigit()] if os.path.isdir("/proc") else []
    for pid in pids:
        try:
            if pid != os.getpid() and os.getsid(pid) == session_id:
                os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    try:
        os.killpg(session_id, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _settings_problem(config) -> str | None:
    """What is wrong with the settings of voicegraph's applications, in one
    line, before Ray starts: the same check fails the deploy on a cluster,
    but there it is buried in the application's status."""
    from pydantic import ValidationError

    from serve_app.app import settings_for
    from voicegraph.core.errors import ConfigError

    for app in config.applications:
        if app.import_path != "serve_app.app:build_app":
            continue
        try:
            settings_for(app.args)
        except ConfigError as exc:
            return exc.message
        except ValidationError as exc:
            return "; ".join(_one_line(error) for error in exc.errors())
    return None


def _one_line(error: dict) -> str:
    # A check across settings has no location; its message names them.
    message = error["msg"].removeprefix("Value error, ")
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {message}" if where else message


def _run_driver(options: argparse.Namespace) -> int:
    # Before Ray is imported: Serve reads its flags at import, and the Ray
    # this driver starts passes them on to every process it starts.
    os.environ.update(with_serve_env(os.environ))
    from ray.serve.schema import ServeDeploySchema

    config = ServeDeploySchema.model_validate(yaml.safe_load(options.config.read_text()))
    if options.port is not None:
        config.http_options.port = options.port
    if (problem := _settings_problem(config)) is not None:
        print(f"voicegraph cannot start: {problem}", file=sys.stderr, flush=True)
        return 2

    import ray
    from ray import serve
    from ray.serve._private import api as serve_api

    _handle_stop_signals()
    try:
        ray.init(
            address="local",
            namespace="serve",
            include_dashboard=not options.no_dashboard,
            dashboard_host="127.0.0.1",
            num_cpus=int(options.num_cpus) if options.num_cpus else None,
            _metrics_export_port=options.metrics_port,
        )
        _handle_stop_signals()
        # The same calls `serve run` makes for a config file.
        client = serve_api.serve_start(
            http_options=config.http_options.model_dump(),
            grpc_options=config.grpc_options.model_dump(),
            proxy_location=config.proxy_location,
        )
        client.deploy_apps(config)
        _wait_until_running({app.name for app in config.applications}, options.ready_timeout)
        host, port = config.http_options.host, config.http_options.port
        print(
            f"voicegraph is ready at http://{host}:{port} (API docs: /docs; metrics: "
            f"http://127.0.0.1:{options.metrics_port}/metrics); Ctrl-C stops it.",
            flush=True,
        )
        while True:
            time.sleep(3600)
    except _Stop as stop:
        print(f"\nreceived {stop}, shutting down", flush=True)
        return 0
    except RuntimeError as exc:
        print(f"voicegraph failed to start: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        # A second signal must not interrupt the clean-up.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if ray.is_initialized():
            serve.shutdown()
            ray.shutdown()


if __name__ == "__main__":
    sys.exit(main())
