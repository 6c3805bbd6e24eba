"""`make loadtest`: the Locust load test (locustfile.py), headless and bounded, then a summary.

    .venv/bin/python loadtests/loadtest.py                          # http://127.0.0.1:8000
    .venv/bin/python loadtests/loadtest.py --host http://10.0.0.5:8000 --peak-users 20 --hold 300

If nothing answers GET /health at --host (a loopback address), it starts the
service with `voicegraph-serve serve_config.yaml` on that port, waits until it
is healthy, runs, and stops it again. Locust's CSVs, HTML report and log, and
the summary, go to a new folder under loadtests/results/. Exits 1 when any
request failed (Locust's exit code). Every option of the locustfile is an
option here too, with the same environment variable.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from loadtests.locust_options import OPTIONS, add_arguments, peak_users, shape_total_s  # noqa: E402

# Entries the locustfile adds itself: they time parts or wholes of HTTP requests
# already counted, so the totals leave them out.
SYNTHETIC_TYPES = ("TTFA", "JOB")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=os.environ.get("LOADTEST_HOST", "http://127.0.0.1:8000"),
                        help="the service's base URL (env LOADTEST_HOST)")
    parser.add_argument("--results-dir", type=Path, default=os.environ.get("LOADTEST_RESULTS"),
                        help="folder for this run's files (env LOADTEST_RESULTS; default a new "
                        "loadtests/results/<time>)")
    parser.add_argument("--stop-timeout", type=int, default=os.environ.get("LOADTEST_STOP_TIMEOUT_S", 30),
                        help="seconds users may take to finish their task once the ramp ends; then they "
                        "are stopped (env LOADTEST_STOP_TIMEOUT_S)")
    parser.add_argument("--start-timeout", type=float, default=600.0,
                        help="seconds a service started here may take to become healthy")
    parser.add_argument("--api-key", default=None,
                        help="Bearer key for every request (default: env VOICEGRAPH_API_KEY)")
    parser.add_argument("user_classes", nargs="*",
                        help="run only these user classes (Locust's positional argument), e.g. ShortTextUser")
    add_arguments(parser)
    return parser.parse_args(argv)


# -- the summary --------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One row of Locust's <prefix>_stats.csv (times in ms)."""

    type: str
    name: str
    requests: int
    failures: int
    p50: float | None
    p95: float | None
    p99: float | None
    rps: float

    @property
    def label(self) -> str:
        return f"{self.type} {self.name}".strip()


def _number(value: str) -> float | None:
    # Locust writes N/A for the percentiles of an entry with no requests.
    try:
        return float(value)
    except ValueError:
        return None


def read_stats(path: Path) -> tuple[list[Entry], Entry | None]:
    """Locust's stats CSV: its entries, and its Aggregated row (None if absent)."""
    entries, aggregated = [], None
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            entry = Entry(
                type=row["Type"],
                name=row["Name"],
                requests=int(row["Request Count"]),
                failures=int(row["Failure Count"]),
                p50=_number(row["50%"]),
                p95=_number(row["95%"]),
                p99=_number(row["99%"]),
                rps=float(row["Requests/s"]),
            )
            if not entry.type and entry.name == "Aggregated":
                aggregated = entry
            else:
                entries.append(entry)
    return entries, aggregated


def _error(text: str) -> str:
    # Locust writes a failure as the repr of its exception; a check's own message reads better bare.
    match = re.fullmatch(r"""CatchResponseError\((['"])(.*)\1\)""", text)
    return match.group(2) if match else text


def read_failures(path: Path) -> list[tuple[str, str, int]]:
    """Locust's failures CSV: (entry, error, occurrences), most frequent first."""
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        rows = [
            (f"{r['Method']} {r['Name']}", _error(r["Error"]), int(r["Occurrences"])) for r in csv.DictReader(handle)
        ]
    return sorted(rows, key=lambda row: -row[2])


def read_exceptions(path: Path) -> list[tuple[str, int]]:
    """Locust's exceptions CSV: errors raised in the users' own code (message, count)."""
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return [(row["Message"], int(row["Count"])) for row in csv.DictReader(handle)]


def read_notes(path: Path) -> dict:
    """What the locustfile wrote beside the CSVs: the engine and the skipped user classes."""
    return json.loads(path.read_text()) if path.exists() else {}


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def summarize(csv_prefix: Path, title: str = "") -> str:
    entries, aggregated = read_stats(Path(f"{csv_prefix}_stats.csv"))
    failures = read_failures(Path(f"{csv_prefix}_failures.csv"))
    exceptions = read_exceptions(Path(f"{csv_prefix}_exceptions.csv"))
    notes = read_notes(Path(f"{csv_prefix}_voicegraph.json"))
    lines = [title] if title else []
    if notes.get("engine"):
        lines.append(f"engine: {notes['engine']} ({notes.get('model')}), can_clone: {notes.get('can_clone')}")
    width = max([len(e.label) for e in entries] + [5])
    lines.append(f"{'entry':<{width}}  {'reqs':>6} {'fails':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'req/s':>7}")
    for e in entries:
        lines.append(
            f"{e.label:<{width}}  {e.requests:>6} {e.failures:>6} {_ms(e.p50):>8} {_ms(e.p95):>8} "
            f"{_ms(e.p99):>8} {e.rps:>7.2f}"
        )
    for entry in entries:
        if entry.type == "TTFA":
            lines.append(
                f"time to first audio byte ({entry.name}): p50 {_ms(entry.p50)} ms, p95 {_ms(entry.p95)} ms, "
                f"p99 {_ms(entry.p99)} ms over {entry.requests} streams"
            )
    http = [e for e in entries if e.type not in SYNTHETIC_TYPES]
    requests_ = sum(e.requests for e in http)
    failed = sum(e.failures for e in http)
    # Locust's Aggregated rate counts the synthetic entries too; all entries
    # share its time span, so the HTTP share of it is the HTTP rate.
    rps = aggregated.rps * requests_ / aggregated.requests if aggregated and aggregated.requests else 0.0
    share = f" ({100 * failed / requests_:.1f}%)" if requests_ else ""
    lines.append(f"HTTP total: {requests_} requests, {failed} failed{share}, {rps:.2f} requests/s")
    for user_class, reason in sorted(notes.get("skipped", {}).items()):
        lines.append(f"skipped: {user_class}: {reason}")
    if failures:
        lines.append("failures:")
        lines.extend(f"  {count} x {entry}: {error}" for entry, error, count in failures[:10])
        if len(failures) > 10:
            lines.append(f"  ... {len(failures) - 10} more kinds in {csv_prefix}_failures.csv")
    if exceptions:
        # A task that raised lost its request from the stats: a bug in the locustfile or a changed API.
        lines.append(f"exceptions in the users' code (tracebacks in {csv_prefix}_exceptions.csv):")
        lines.extend(f"  {count} x {message}" for message, count in exceptions)
    return "\n".join(lines)


# -- the service --------------------------------------------------------------


def probe(host: str, headers: dict[str, str]) -> int | None:
    """The status of GET /health, or None when nothing answers."""
    try:
        return httpx.get(f"{host}/health", headers=headers, timeout=10).status_code
    except httpx.TransportError:
        return None


def start_service(host: str, log_path: Path) -> subprocess.Popen:
    port = urlsplit(host).port or 80
    log = log_path.open("wb")
    # A session of its own: stopping it signals its process group, never ours.
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "voicegraph-serve"), "serve_config.yaml", "--port", str(port)],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_healthy(host: str, headers: dict[str, str], service: subprocess.Popen, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and service.poll() is None:
        if probe(host, headers) == 200:
            return True
        time.sleep(1)
    return False


def stop_service(service: subprocess.Popen) -> None:
    # SIGTERM lets the launcher shut Serve and its Ray down; it gives up after
    # its own --stop-timeout (45 s), so a minute is enough before SIGKILL.
    for sig, wait_s in ((signal.SIGTERM, 60), (signal.SIGKILL, 10)):
        try:
            os.killpg(service.pid, sig)
        except ProcessLookupError:
            break
        try:
            service.wait(timeout=wait_s)
            break
        except subprocess.TimeoutExpired:
            continue


def tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


# -- Locust ---------------------------------------------------------------------


def locust_command(options: argparse.Namespace, csv_prefix: Path) -> list[str]:
    command = [
        sys.executable, "-m", "locust",
        "-f", str(REPO / "loadtests" / "locustfile.py"),
        "--headless",
        "--only-summary",  # the log keeps Locust's final tables, not one every 2 s
        "--host", options.host,
        "--csv", str(csv_prefix),
        "--html", str(csv_prefix.parent / "report.html"),
        "--stop-timeout", str(options.stop_timeout),
    ]
    for option in OPTIONS:
        command += [option.flag, str(getattr(options, option.dest))]
    return command + options.user_classes


def run_locust(command: list[str], log_path: Path, limit_s: float, stop_timeout_s: float) -> int:
    with log_path.open("wb") as log:
        locust = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        try:
            return locust.wait(timeout=limit_s)
        except subprocess.TimeoutExpired:
            print(f"Locust still running after {limit_s:.0f} s: stopping it", flush=True)
        except KeyboardInterrupt:
            print("interrupted: stopping Locust", flush=True)
        # SIGINT, not SIGTERM: during a shape test Locust 2.47 has no SIGTERM handler
        # yet and dies without its CSVs; on SIGINT it stops its users and writes them.
        locust.send_signal(signal.SIGINT)
        try:
            return locust.wait(timeout=stop_timeout_s + 15)
        except subprocess.TimeoutExpired:
            locust.kill()
            return locust.wait()


def _interrupt(signum, _frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    # SIGTERM (a CI job's timeout, kill) stops like Ctrl-C: Locust is stopped, a service
    # started here (in a session of its own, out of reach of signals to ours) too.
    signal.signal(signal.SIGTERM, _interrupt)
    # Also where the shell started us with SIGINT ignored (a background job): Ctrl-C and
    # the SIGINT that stops Locust must work, and Locust inherits the default on exec.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    options.host = options.host.rstrip("/")
    if options.api_key is not None:
        os.environ["VOICEGRAPH_API_KEY"] = options.api_key  # the locustfile's default; never on a command line
    key = os.environ.get("VOICEGRAPH_API_KEY")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    # Absolute: Locust runs in the repository, wherever this was started from.
    results = (options.results_dir or REPO / "loadtests" / "results" / f"{datetime.now():%Y%m%d-%H%M%S}").resolve()
    results.mkdir(parents=True, exist_ok=True)
    csv_prefix = results / "locust"

    service = None
    status = probe(options.host, headers)
    if status is None:
        if urlsplit(options.host).hostname not in LOOPBACK:
            print(f"nothing answers {options.host}/health; start the service there first", file=sys.stderr)
            return 2
        print(f"nothing answers {options.host}/health: starting voicegraph-serve (log: {results / 'service.log'})",
              flush=True)
        service_started = time.monotonic()
        service = start_service(options.host, results / "service.log")
    elif status != 200:
        print(f"warning: {options.host}/health answers {status}; running anyway", file=sys.stderr)
    try:
        if service is not None:
            if not wait_healthy(options.host, headers, service, options.start_timeout):
                print(f"the service did not become healthy:\n{tail(results / 'service.log')}", file=sys.stderr)
                return 2
            print(f"service healthy after {time.monotonic() - service_started:.0f} s", flush=True)
        # Locust's own start and exit, on top of the ramp and the users' last tasks.
        limit_s = shape_total_s(options) + options.stop_timeout + 30
        print(
            f"Locust against {options.host}: peak {peak_users(options)} users, {shape_total_s(options):.0f} s "
            f"ramp (at most {limit_s:.0f} s); files in {results}",
            flush=True,
        )
        code = run_locust(locust_command(options, csv_prefix), results / "locust.log", limit_s, options.stop_timeout)
    finally:
        if service is not None:
            print("stopping the service started for this run", flush=True)
            stop_service(service)
    if not Path(f"{csv_prefix}_stats.csv").exists():
        print(f"Locust wrote no stats (exit {code}):\n{tail(results / 'locust.log')}", file=sys.stderr)
        return code or 1
    title = (
        f"voicegraph load test against {options.host}, {datetime.now():%Y-%m-%d %H:%M}: peak {peak_users(options)} "
        f"users, ramp {options.ramp_up:g} s up, {options.hold:g} s hold, {options.ramp_down:g} s down"
    )
    summary = summarize(csv_prefix, title)
    (results / "summary.txt").write_text(summary + "\n")
    print(summary)
    print(f"files: {results}/ (locust_*.csv, report.html, locust.log)")
    return code


if __name__ == "__main__":
    sys.exit(main())
