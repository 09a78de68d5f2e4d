"""A real S3-compatible server on loopback (moto in server mode) for tests and `make bench-s3`, with an outage switch.

`S3Server` starts `moto_server` on a free port behind a small TCP relay, so a test can make the
store stop answering (`outage()`: the relay drops every connection and refuses new ones) and come
back (`restore()`) without losing what the store holds.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.portable import free_ports

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


class _Relay(threading.Thread):
    """Forwards localhost:`port` to localhost:`target`; `up` false drops and refuses connections."""

    def __init__(self, port: int, target: int):
        super().__init__(daemon=True)
        self.port, self.target, self.up = port, target, True
        self.server = socket.create_server(("127.0.0.1", port), reuse_port=False)
        self.server.settimeout(0.2)
        self.open: list[socket.socket] = []
        self.lock = threading.Lock()
        self.stopped = False

    def run(self):
        while not self.stopped:
            try:
                client, _ = self.server.accept()
            except OSError:
                continue
            if not self.up:
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target))
            with self.lock:
                self.open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self):
        self.up = False
        with self.lock:
            for s in self.open:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                    s.close()
                except OSError:
                    pass
            self.open.clear()

    def stop(self):
        self.stopped = True
        self.cut()
        self.server.close()


class S3Server:
    def __init__(self, log_dir: Path):
        self.port, moto_port = free_ports(2)
        self.direct = f"http://127.0.0.1:{moto_port}"  # past the relay: answers during an outage
        self.endpoint = f"http://127.0.0.1:{self.port}"
        moto = Path(sys.executable).with_name("moto_server")
        self.log = open(log_dir / "moto.log", "wb")
        self.process = subprocess.Popen(
            [str(moto), "-H", "127.0.0.1", "-p", str(moto_port)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **CREDENTIALS},
        )
        self._wait_for(moto_port)
        self.relay = _Relay(self.port, moto_port)
        self.relay.start()

    def _wait_for(self, port: int, timeout: float = 30.0) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto_server exited with {self.process.returncode}; see {self.log.name}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"moto_server did not listen on {port} within {timeout}s")

    def client(self, direct: bool = False):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.direct if direct else self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def beam_flags(self) -> list[str]:
        return [
            f"--s3_endpoint_url={self.endpoint}",
            "--s3_access_key_id=testing",
            "--s3_secret_access_key=testing",
            "--s3_region_name=us-east-1",
        ]

    def outage(self):
        self.relay.cut()

    def restore(self):
        self.relay.up = True

    def stop(self):
        self.relay.stop()
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.log.close()


def upload_tree(client, bucket: str, local_root: Path, files: list[Path], prefix: str) -> None:
    for path in files:
        key = f"{prefix}/{path.relative_to(local_root).as_posix()}"
        client.upload_file(str(path), bucket, key)


def download_tree(client, bucket: str, prefix: str) -> dict[str, bytes]:
    """Every object under `prefix/`, keyed by its path below it."""
    objects = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/"):
        for obj in page.get("Contents", []):
            body = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            objects[obj["Key"][len(prefix) + 1 :]] = body
    return objects
