"""irctest controller for chat-server's IRC listener.

irctest (https://github.com/progval/irctest) loads this module through
`--controller controller` (see run.sh, which puts this directory on PYTHONPATH).
Nothing of irctest is copied here: its base classes are imported from the
checkout given to run.sh.

Per test irctest calls `run()`: we start a fresh `chat-server` in a temporary
directory (its own SQLite file, so accounts never leak between tests), with the
IRC listener on the port irctest picked and the native listener on another free
port. Accounts (`registerUser`) are created through the native protocol.

Environment:
  CHAT_SERVER_BIN        the binary (default: <repo>/target/release/chat-server)
  CHAT_IRCTEST_CAPS      space-separated IRCv3 caps we claim to support (default:
                         DEFAULT_CAPS below); a claimed cap that the server NAKs
                         makes a test fail instead of skip
  CHAT_IRCTEST_SERVICES  "0" makes tests marked `services` (SASL, chathistory, ...)
                         skip instead of using our built-in accounts
  CHAT_IRCTEST_EXTRA_ARGS extra arguments for chat-server (split on whitespace)
  IRCTEST_DEBUG_LOGS=1   show the server's stdout/stderr (irctest's own switch)
"""

from __future__ import annotations

import os
from pathlib import Path
import shlex
import shutil
import socket
import ssl as ssl_module
import subprocess
import sys
import threading
import time
from typing import Any, FrozenSet, List, Optional, Set, Type

from irctest.basecontrollers import BaseServerController, DirectoryBasedController
from irctest.runner import NotImplementedByController
from irctest.specifications import Capabilities, OptionalBehaviors

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BIN = REPO_ROOT / "target" / "release" / "chat-server"

SERVER_NAME = "My.Little.Server"  # irctest hard-codes this name in its asserts

# An operator account, so the tests that send `OPER operuser operpassword`
# (who, whois, oper, kill, wallops, ...) can work: registered at every start.
OPER_NAME = "operuser"
OPER_PASSWORD = "operpassword"

# IRCv3 capabilities (irctest's enum) that the IRC listener is meant to support.
DEFAULT_CAPS = (
    "batch",
    "echo-message",
    "labeled-response",
    "message-tags",
    "server-time",
    "draft/read-marker",
)

STARTUP_TIMEOUT = 30.0
NATIVE_TIMEOUT = 10.0


class NativeRegistrationError(Exception):
    """The server refused to register an account (its `error:` line)."""


def _claimed_capabilities() -> FrozenSet[Capabilities]:
    names = os.environ.get("CHAT_IRCTEST_CAPS")
    names_list = DEFAULT_CAPS if names is None else tuple(names.split())
    return frozenset(Capabilities.from_name(name) for name in names_list)


class ChatServerController(BaseServerController, DirectoryBasedController):
    software_name = "chat-server"
    supported_sasl_mechanisms: Set[str] = {"PLAIN"}
    supports_sts = False
    _port_wait_interval = 0.02
    sync_sleep_time = 0.0  # commands are answered in order: PING/PONG is enough

    capabilities = _claimed_capabilities()

    # Behaviours listed here turn the corresponding skips into failures; we
    # claim none until the IRC listener is known to implement them.
    optional_behaviors: FrozenSet[OptionalBehaviors] = frozenset()

    # Expected 005 tokens, checked by isupport.py's testValues (empty: skipped).
    isupport: dict = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.native_port: Optional[int] = None
        self.use_tls = False
        self._stdout_lines: List[str] = []

    # ---------------------------------------------------------------- start

    def run(
        self,
        hostname: str,
        port: int,
        *,
        password: Optional[str],
        ssl: bool,
        run_services: bool,
        faketime: Optional[str],
        websocket_hostname: Optional[str] = None,
        websocket_port: Optional[int] = None,
    ) -> None:
        if websocket_hostname is not None or websocket_port is not None:
            raise NotImplementedByController("Websocket")
        if password is not None:
            raise NotImplementedByController("server password (PASS)")
        if run_services and os.environ.get("CHAT_IRCTEST_SERVICES", "1") == "0":
            raise NotImplementedByController("services (disabled by CHAT_IRCTEST_SERVICES=0)")
        assert self.proc is None

        binary = Path(os.environ.get("CHAT_SERVER_BIN") or DEFAULT_BIN)
        if not binary.is_absolute():
            binary = REPO_ROOT / binary
        if not binary.exists():
            raise FileNotFoundError(
                f"chat-server binary not found: {binary} (set CHAT_SERVER_BIN)"
            )

        self.create_config()
        assert self.directory
        self.hostname = hostname
        self.port = port
        (_, self.native_port) = self.get_hostname_and_port()
        self.use_tls = ssl

        command: List[str] = [
            str(binary),
            "--addr", f"127.0.0.1:{self.native_port}",
            "--server-name", SERVER_NAME,
            "--db", str(self.directory / "chat.db"),
            "--oper", OPER_NAME,
        ]
        if ssl:
            # --tls-cert makes --addr (native) TLS too; the plain IRC listener
            # goes on a spare port, the TLS one on the port irctest uses.
            self.gen_ssl()
            (_, plain_irc_port) = self.get_hostname_and_port()
            command += [
                "--irc-addr", f"127.0.0.1:{plain_irc_port}",
                "--irc-tls-addr", f"127.0.0.1:{port}",
                "--tls-cert", str(self.pem_path),
                "--tls-key", str(self.key_path),
            ]
        else:
            command += ["--irc-addr", f"127.0.0.1:{port}"]
        command += shlex.split(os.environ.get("CHAT_IRCTEST_EXTRA_ARGS", ""))

        if faketime and shutil.which("faketime"):
            command = ["faketime", "-f", faketime, *command]
            self.faketime_enabled = True

        self.proc = self.execute(command, stdout=subprocess.PIPE)
        threading.Thread(
            target=self._drain_stdout, args=(self.proc,), daemon=True
        ).start()

        self._wait_for_tcp(self.native_port)
        self._wait_for_tcp(port)
        self.registerAccount(OPER_NAME, OPER_PASSWORD)

    def _drain_stdout(self, proc: subprocess.Popen) -> None:
        """Keep the server's stdout pipe empty; echo it in debug mode."""
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self._stdout_lines.append(line)
            if self.debug_mode:
                try:
                    sys.stdout.write(f"{time.time():.3f} chat-server {line}\n")
                except ValueError:
                    pass

    def _wait_for_tcp(self, port: int) -> None:
        """Wait until something accepts TCP connections on 127.0.0.1:port."""
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            self.check_is_alive()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"chat-server did not listen on 127.0.0.1:{port} within "
                        f"{STARTUP_TIMEOUT}s; stdout so far: {self._stdout_lines}"
                    )
                time.sleep(self._port_wait_interval)

    def wait_for_services(self) -> None:
        # Accounts are part of chat-server itself: nothing separate to wait for.
        pass

    # ------------------------------------------------------------- accounts

    def registerUser(
        self,
        case: Any,
        username: str,
        password: Optional[str] = None,
    ) -> None:
        if password is None:
            raise ValueError("chat-server accounts need a password")
        self.registerAccount(username, password)

    def registerAccount(self, name: str, password: str) -> None:
        """Register `name` over the native line protocol:
        `<name>\\n` → `welcome <name>`, `/register <pw>\\n` → `registered <name>`."""
        assert self.native_port is not None, "server not started"
        sock = socket.create_connection(
            ("127.0.0.1", self.native_port), timeout=NATIVE_TIMEOUT
        )
        if self.use_tls:
            context = ssl_module.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl_module.CERT_NONE
            sock = context.wrap_socket(sock)
        reader = sock.makefile("rb")
        try:
            sock.sendall(name.encode() + b"\n")
            self._expect(reader, "welcome", name)
            sock.sendall(b"/register " + password.encode() + b"\n")
            self._expect(reader, "registered", name)
        finally:
            # Half-close and wait for the server to close its side, so the name
            # is free again before the test logs in with it over IRC.
            try:
                if self.use_tls:
                    sock.unwrap()  # type: ignore[attr-defined]
                else:
                    sock.shutdown(socket.SHUT_WR)
                while reader.read(4096):
                    pass
            except OSError:
                pass
            reader.close()
            sock.close()

    @staticmethod
    def _expect(reader: Any, word: str, name: str) -> None:
        """Read lines until `<word> <name>`; other lines (presence, offline
        mail) are skipped, an `error:` line raises."""
        while True:
            raw = reader.readline()
            if not raw:
                raise NativeRegistrationError(
                    f"connection closed while waiting for {word!r} (account {name!r})"
                )
            line = raw.decode(errors="replace").rstrip("\r\n")
            if line.startswith("error:"):
                raise NativeRegistrationError(f"registering {name!r}: {line}")
            parts = line.split(" ", 1)
            if parts[0] == word and len(parts) == 2:
                if parts[1].casefold() != name.casefold():
                    raise NativeRegistrationError(
                        f"expected {word!r} {name!r}, got {line!r}"
                    )
                return


def get_irctest_controller_class() -> Type[ChatServerController]:
    return ChatServerController
