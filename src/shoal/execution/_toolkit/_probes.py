"""Readiness probes of services (Kubernetes Probe shape): ``exec``, ``httpGet``, ``tcpSocket``.

Locally every service instance has its own loopback address (``SERVICE_IP``, in 127.0.0.0/8) and a
free port (``SERVICE_PORT``); probes go to that address, and a probe port that is a name rather than a
number means that port.
"""

from __future__ import annotations

import hashlib
import socket
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx


@dataclass(frozen=True, slots=True)
class ProbeTiming:
    initial_delay_s: float = 0.0
    period_s: float = 10.0
    timeout_s: float = 1.0
    failure_threshold: int = 3

    @classmethod
    def of(cls, probe: Mapping[str, Any]) -> ProbeTiming:
        return cls(
            initial_delay_s=float(probe.get("initialDelaySeconds") or 0),
            period_s=float(probe.get("periodSeconds") or 10),
            timeout_s=float(probe.get("timeoutSeconds") or 1),
            failure_threshold=max(1, int(probe.get("failureThreshold") or 3)),
        )


def probe_port(value: Any, service_port: int) -> int:
    if isinstance(value, int):
        return value
    text = str(value or "").strip()
    return int(text) if text.isdigit() else service_port


def run_probe(
    probe: Mapping[str, Any],
    service_port: int,
    env: Mapping[str, str],
    cwd: Path,
    service_ip: str = "127.0.0.1",
) -> tuple[bool, str]:
    """One attempt: ``(ready, why-not)``."""
    timing = ProbeTiming.of(probe)
    if "exec" in probe:
        command = [str(c) for c in (probe["exec"] or {}).get("command") or []]
        if not command:
            return False, "exec probe without a command"
        try:
            proc = subprocess.run(
                command,
                env=dict(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timing.timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return False, f"exec probe timed out after {timing.timeout_s:g}s"
        except OSError as exc:
            return False, f"exec probe: {exc}"
        return proc.returncode == 0, f"exec probe exited with {proc.returncode}"
    if "httpGet" in probe:
        spec = probe["httpGet"] or {}
        port = probe_port(spec.get("port"), service_port)
        scheme = str(spec.get("scheme") or "HTTP").lower()
        host = str(spec.get("host") or service_ip)
        path = str(spec.get("path") or "/")
        headers = {str(h["name"]): str(h["value"]) for h in spec.get("httpHeaders") or []}
        url = f"{scheme}://{host}:{port}{path if path.startswith('/') else '/' + path}"
        try:
            resp = httpx.get(url, headers=headers, timeout=timing.timeout_s, verify=False)
        except httpx.HTTPError as exc:
            return False, f"GET {url}: {exc.__class__.__name__}"
        return 200 <= resp.status_code < 400, f"GET {url}: HTTP {resp.status_code}"
    if "tcpSocket" in probe:
        spec = probe["tcpSocket"] or {}
        port = probe_port(spec.get("port"), service_port)
        host = str(spec.get("host") or service_ip)
        try:
            with socket.create_connection((host, port), timeout=timing.timeout_s):
                return True, ""
        except OSError as exc:
            return False, f"tcp {host}:{port}: {exc.strerror or exc}"
    return False, "probe has none of exec, httpGet, tcpSocket"


def loopback_ip(seed: str, index: int) -> str:
    """A loopback address of its own for instance ``index`` of a service (``seed``: execution, stage,
    name), so that instances can all use a service's usual port without colliding."""
    digest = hashlib.sha256(seed.encode()).digest()
    second = digest[0] % 254 + 1  # never 127.0.x.x, the usual one
    third = (digest[1] + index // 254) % 256
    return f"127.{second}.{third}.{index % 254 + 1}"


def free_port(ip: str = "127.0.0.1") -> int:
    """A port nothing listens on right now at ``ip`` (the service binds it shortly after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((ip, 0))
        return int(s.getsockname()[1])
