"""Python's grpcio (gRPC C-core, as Ruby, PHP and C++ use it) against a real otrd on its socket.

Runs `otrd --demo` (the simulated server with the contact `echo` who accepts and answers) in a
private runtime directory, then, with nothing generated from the .proto:
  * the README's Python snippet, verbatim, prints GetStatus;
  * a client that found `otrd.v1.Otrd` by reflection calls GetStatus, StartSession, SendMessage and
    WatchEvents, and sees the session established, the echo come back and the delivery mark;
  * the snapshot `seq` of StartSession's answer orders it against the events;
  * without `grpc.default_authority` the call fails as the README says (C-core sends the socket
    path as `:authority`; the HTTP/2 server under tonic refuses it) — reported, not required.

Needs `pip install grpcio grpcio-reflection` (.ci/run does it) and a built otrd
(`cargo build --workspace --bins`; OTRD_BIN or $CARGO_TARGET_DIR/debug/otrd).
Run: python3 -m unittest discover -s tests/python -v
"""

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path

import grpc
from google.protobuf import descriptor_pool, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

REPO = Path(__file__).resolve().parents[2]
SERVICE = "otrd.v1.Otrd"


def otrd_binary():
    if os.environ.get("OTRD_BIN"):
        return Path(os.environ["OTRD_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    if not target.is_absolute():
        target = REPO / target
    return target / "debug" / "otrd"


def readme_python_snippet():
    """The first ```python block of the README's API section."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    api = readme[readme.index("## The API") :]
    match = re.search(r"```python\n(.*?)```", api, re.S)
    if not match:
        raise AssertionError("README's API section has no ```python snippet")
    return match.group(1)


class Otrd:
    """`otrd --demo` with its own XDG directories; stopped with SIGTERM."""

    def __init__(self):
        self.home = Path(tempfile.mkdtemp(prefix="otrd-py-"))
        self.runtime = self.home / "run"
        self.runtime.mkdir(mode=0o700)
        self.socket = self.runtime / "otrd" / "otrd.sock"
        env = dict(os.environ)
        env.update(
            XDG_RUNTIME_DIR=str(self.runtime),
            XDG_DATA_HOME=str(self.home / "data"),
            XDG_CONFIG_HOME=str(self.home / "config"),
            DBUS_SESSION_BUS_ADDRESS="unix:path=/nonexistent",
            RUST_LOG="warn",
        )
        env.pop("OTRD_SOCKET", None)
        self.log = open(self.home / "otrd.log", "wb")
        self.proc = subprocess.Popen(
            [str(otrd_binary()), "--demo"], env=env, stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 60
        while not self.socket.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"otrd did not come up: {self.log_text()}")
            time.sleep(0.05)

    def log_text(self):
        self.log.flush()
        return (self.home / "otrd.log").read_text(errors="replace")[-4000:]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.home, ignore_errors=True)


class Client:
    """Everything from reflection: the descriptors, the message classes, the method paths."""

    def __init__(self, socket_path):
        # C-core would send the socket path as :authority, which the server refuses (README).
        self.channel = grpc.insecure_channel(
            f"unix:{socket_path}", options=[("grpc.default_authority", "localhost")]
        )
        self.pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(self.channel))
        self.service = self.pool.FindServiceByName(SERVICE)

    def _method(self, name):
        method = self.service.FindMethodByName(name)
        request = message_factory.GetMessageClass(method.input_type)
        reply = message_factory.GetMessageClass(method.output_type)
        return method, request, reply

    def call(self, name, timeout=30, **fields):
        _, request, reply = self._method(name)
        rpc = self.channel.unary_unary(
            f"/{SERVICE}/{name}",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=reply.FromString,
        )
        return rpc(request(**fields), timeout=timeout)

    def stream(self, name, **fields):
        _, request, reply = self._method(name)
        rpc = self.channel.unary_stream(
            f"/{SERVICE}/{name}",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=reply.FromString,
        )
        return rpc(request(**fields))

    def enum(self, type_name, value):
        return self.pool.FindEnumTypeByName(type_name).values_by_number[value].name


class Watcher(threading.Thread):
    """Reads WatchEvents into a queue until the stream is cancelled."""

    def __init__(self, client):
        super().__init__(daemon=True)
        self.events = queue.Queue()
        self.call = client.stream("WatchEvents", include_scrollback=False)

    def run(self):
        try:
            for event in self.call:
                self.events.put(event)
        except grpc.RpcError:
            pass

    def wait_for(self, what, accept, timeout=30):
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {what} event within {timeout} s; saw {seen}")
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                continue
            seen.append(event.WhichOneof("kind"))
            if accept(event):
                return event


class GrpcioAgainstOtrd(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not otrd_binary().exists():
            raise AssertionError(f"{otrd_binary()} missing: cargo build --workspace --bins first")
        cls.otrd = Otrd()

    @classmethod
    def tearDownClass(cls):
        cls.otrd.stop()

    def connected_client(self):
        client = Client(self.otrd.socket)
        deadline = time.monotonic() + 60
        while True:
            status = client.call("GetStatus")
            if client.enum("otrd.v1.ConnectionState", status.connection) == "CONNECTION_STATE_CONNECTED":
                return client, status
            if time.monotonic() > deadline:
                raise AssertionError(f"otrd never connected: {status}")
            time.sleep(0.1)

    def test_readme_snippet_prints_the_status(self):
        env = dict(os.environ, OTRD_SOCKET=str(self.otrd.socket))
        out = subprocess.run(
            [sys.executable, "-c", readme_python_snippet()],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("daemon_version", out.stdout)

    def test_reflection_then_status_start_send_and_watch(self):
        client, status = self.connected_client()
        self.assertEqual(status.account, "me")
        self.assertTrue(status.daemon_version)
        names = [m.name for m in client.service.methods]
        for rpc in ("GetStatus", "StartSession", "SendMessage", "WatchEvents"):
            self.assertIn(rpc, names)

        watcher = Watcher(client)
        watcher.start()
        try:
            started = client.call("StartSession", peer={"username": "echo"}).session
            self.assertEqual(started.peer, "echo")
            # The answer says which events it already reflects.
            self.assertGreater(started.seq, 0)
            established = watcher.wait_for(
                "established",
                lambda e: e.WhichOneof("kind") == "state"
                and e.state.peer == "echo"
                and client.enum("otrd.v1.SessionState", e.state.state) == "SESSION_STATE_ESTABLISHED",
            )
            if client.enum("otrd.v1.SessionState", started.state) != "SESSION_STATE_ESTABLISHED":
                self.assertGreater(established.seq, started.seq, "the newer event has the greater seq")

            sent = client.call("SendMessage", peer={"username": "echo"}, text="hello from grpcio")
            self.assertTrue(sent.id)
            watcher.wait_for(
                "delivered",
                lambda e: e.WhichOneof("kind") == "delivered" and e.delivered.id == sent.id,
            )
            echoed = watcher.wait_for(
                "echo",
                lambda e: e.WhichOneof("kind") == "message"
                and client.enum("otrd.v1.Direction", e.message.direction) == "DIRECTION_IN",
            )
            self.assertEqual(echoed.message.text, "echo: hello from grpcio")

            sessions = client.call("ListSessions").sessions
            echo = [s for s in sessions if s.peer == "echo"][0]
            self.assertGreaterEqual(echo.seq, echoed.seq, "a later snapshot reflects the events")
        finally:
            watcher.call.cancel()
            watcher.join(timeout=10)

    def test_default_authority_is_what_the_server_refuses(self):
        channel = grpc.insecure_channel(f"unix:{self.otrd.socket}")
        rpc = channel.unary_unary(f"/{SERVICE}/GetStatus")
        try:
            rpc(b"", timeout=10)
            # A grpcio or h2 release that agrees on the authority: the README's setting is then
            # merely harmless, but the note there should say so.
            print("\nnote: grpcio without grpc.default_authority works now; update the README", file=sys.stderr)
        except grpc.RpcError as e:
            self.assertEqual(e.code(), grpc.StatusCode.INTERNAL, e.details())
            self.assertIn("RST_STREAM", e.details())
        finally:
            channel.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
