"""The real gcp-storage-emulator CLI as a subprocess, for tests of FirebaseStorage."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

from voicegraph.core.settings import Settings


class GcsEmulator:
    """A GCS-protocol server on 127.0.0.1:`port` keeping its objects under
    `data_dir`, so a stop and start (a bucket outage) loses nothing."""

    def __init__(self, data_dir: Path, port: int, bucket: str):
        self.data_dir = Path(data_dir)
        self.port = port
        self.bucket = bucket
        # A file, not a pipe: nobody reads while it runs, and a full pipe would block it.
        self._log = self.data_dir / "emulator.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def running(self) -> bool:
        return self._process is not None

    def start(self, timeout_s: float = 20.0) -> None:
        executable = Path(sys.executable).parent / "gcp-storage-emulator"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self._log.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    str(executable), "-d", str(self.data_dir),
                    "start", "--host", "127.0.0.1", "--port", str(self.port),
                    "--default-bucket", self.bucket, "-q",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                code = self._process.returncode
                raise RuntimeError(f"gcp-storage-emulator exited {code}:\n{self._output()}")
            try:
                if httpx.get(f"{self.url}/", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"gcp-storage-emulator did not answer within {timeout_s} s:\n{self._output()}")

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def _output(self) -> str:
        return self._log.read_text(errors="replace")


def firebase_settings(root, emulator: GcsEmulator, **overrides) -> Settings:
    """Settings for the Firebase backend on `emulator`, with short timeouts and retries."""
    return Settings(
        storage_root=root,
        storage_backend="firebase",
        firebase={
            "bucket": emulator.bucket,
            "emulator_host": emulator.host,
            "url_mode": "public",
            "timeout_s": 1,
            "retry_deadline_s": 1,
            "upload_retry_initial_s": 0.05,
            "upload_retry_max_s": 0.1,
        },
        **overrides,
    )
