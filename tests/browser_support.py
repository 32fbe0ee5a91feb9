"""A JupyterLab server for the real-browser test: started on 127.0.0.1 with a random free port
and token, a throw-away settings dir that starts kernels without asking and silences news, and
a clean shutdown (REST shutdown, then terminate, then kill the server's own process group).
`voila_app` does the same for a notebook served as a Voila app.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking"]

# JupyterLab user settings: file name -> contents, under <settings dir>/<extension>/.
LAB_SETTINGS = {
    # Without this JupyterLab 4 may ask which kernel to start when a notebook opens.
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"autoStartDefaultKernel": True},
    # The test opens a committed notebook and runs it: never write its outputs back.
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    # No news or update checks (no internet here) and no toasts over the page.
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
        "doNotDisturbMode": True,
    },
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_settings(folder: Path) -> None:
    for name, values in LAB_SETTINGS.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


@dataclass
class LabServer:
    process: subprocess.Popen
    port: int
    token: str
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}?token={self.token}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.url("api/status"), timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False


@contextlib.contextmanager
def jupyter_lab(root_dir: Path, env: dict[str, str] | None = None, start_timeout: float = 90.0) -> Iterator[LabServer]:
    """Runs `python -m jupyterlab` serving `root_dir`; yields once it answers, stops it on exit."""
    work = Path(tempfile.mkdtemp(prefix="bclab-browser-"))
    settings, workspaces, runtime = work / "settings", work / "workspaces", work / "runtime"
    write_settings(settings)
    workspaces.mkdir()
    runtime.mkdir()
    port, token = free_port(), secrets.token_hex(16)
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        f"--port={port}",
        "--ServerApp.ip=127.0.0.1",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root_dir}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    server_env = dict(os.environ, **(env or {}))
    server_env.update(
        JUPYTERLAB_SETTINGS_DIR=str(settings),
        JUPYTERLAB_WORKSPACES_DIR=str(workspaces),
        JUPYTER_RUNTIME_DIR=str(runtime),
    )
    log_path = work / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, cwd=root_dir, env=server_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = LabServer(process, port, token, log_path)
    try:
        deadline = time.monotonic() + start_timeout
        while not server.answers():
            if process.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {process.returncode}:\n{server.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"jupyter lab did not answer within {start_timeout:.0f} s:\n{server.log()[-3000:]}")
            time.sleep(0.5)
        yield server
    finally:
        _stop(server)
        shutil.rmtree(work, ignore_errors=True)


def _stop(server: LabServer) -> None:
    process = server.process
    if process.poll() is None:
        request = urllib.request.Request(server.url("api/shutdown"), method="POST")
        with contextlib.suppress(urllib.error.URLError, OSError):
            urllib.request.urlopen(request, timeout=5).close()  # also shuts the kernels down
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
    # Kernels the server started live in its process group (start_new_session above).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


@contextlib.contextmanager
def voila_app(notebook: Path, env: dict[str, str] | None = None, start_timeout: float = 60.0) -> Iterator[LabServer]:
    """Runs `voila <notebook>` on 127.0.0.1 (random free port and token, a throw-away runtime dir);
    yields once it answers, stops it on exit. Voila executes the notebook when the page is opened,
    so readiness is checked on a static file, not on the page."""
    work = Path(tempfile.mkdtemp(prefix="bclab-voila-"))
    port, token = free_port(), secrets.token_hex(16)
    command = [
        sys.executable,
        "-m",
        "voila",
        str(notebook),
        "--no-browser",
        f"--port={port}",
        "--Voila.ip=127.0.0.1",
        "--Voila.port_retries=0",
        f"--token={token}",
    ]  # Voila's own server has no root check, so no --allow-root
    server_env = dict(os.environ, **(env or {}))
    server_env.update(JUPYTER_RUNTIME_DIR=str(work / "runtime"))
    log_path = work / "voila.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, cwd=work, env=server_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = LabServer(process, port, token, log_path)
    try:
        deadline = time.monotonic() + start_timeout
        while not _answers(server.url("voila/static/voila.js")):
            if process.poll() is not None:
                raise RuntimeError(f"voila exited with {process.returncode}:\n{server.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"voila did not answer within {start_timeout:.0f} s:\n{server.log()[-3000:]}")
            time.sleep(0.5)
        yield server
    finally:
        _terminate(process)
        shutil.rmtree(work, ignore_errors=True)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _terminate(process: subprocess.Popen) -> None:
    """SIGTERM (Voila then shuts its kernels down), kill if it hangs, then the process group."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


# ----- helpers the browser tests share: launch, polling the busy page, positions -----


def playwright_or_skip():
    """Playwright's `sync_playwright`, or skip the test naming what is missing."""
    import pytest

    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium not installed: apt-get install chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright (python) not installed: pip install playwright")
    return sync_playwright


def poll(read, predicate, timeout: float, what: str, interval: float = 0.5):
    """Reads until `predicate(value)` holds (every `interval` s: each read runs script in the
    busy page); returns that value."""
    deadline = time.monotonic() + timeout
    value = read()
    while not predicate(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout:.0f} s; last state: {value}")
        time.sleep(interval)
        value = read()
    return value


def settled(read, timeout: float, interval: float = 0.5):
    """The first value two reads `interval` s apart agree on: messages still in flight have arrived."""
    deadline = time.monotonic() + timeout
    previous, value = None, read()
    while value != previous:
        if time.monotonic() > deadline:
            raise AssertionError(f"the page did not settle within {timeout:.0f} s; last state: {value}")
        time.sleep(interval)
        previous, value = value, read()
    return value


def on_screen(box, height) -> bool:
    """An element's box (top, bottom, height) lies wholly within the visible `height`."""
    return box is not None and box["height"] > 0 and box["top"] >= 0 and box["bottom"] <= height
