"""Libraries known to need a loop feature, for `loopcompat scan`: one row each, with why and where it is seen.

A row matches a source file that imports one of ``modules`` (or a submodule),
and, when ``uses`` is given, also names one of them (``AsyncConnection``,
``run_app``: the library is only in the way when that part of it is used), and,
when ``strings`` is given, also holds a string matching one of those patterns.
Each ``source`` names the library's own file where the behaviour is, as read
from its repository (the function or class in brackets); a reason states what
the code there does with the event loop.

Looked for and not found: aiohttp starts no child process (its needs are the
signal handlers of ``web.run_app``, AF_UNIX through ``UnixConnector`` and
``UnixSite``, and aiodns through ``AsyncResolver``).
"""

from __future__ import annotations

from typing import Tuple


class Library:
    """One row of the table (see the module docstring)."""

    __slots__ = ("name", "modules", "uses", "strings", "needs", "reason", "source")

    def __init__(self, name: str, modules: Tuple[str, ...], needs: Tuple[str, ...], reason: str, source: str,
                 uses: Tuple[str, ...] = (), strings: Tuple[str, ...] = ()) -> None:
        self.name, self.modules, self.uses, self.strings = name, modules, uses, strings
        self.needs, self.reason, self.source = needs, reason, source

    def __repr__(self) -> str:
        return f"Library({self.name}: {', '.join(self.needs)})"


_TORNADO_IOLOOP = "tornadoweb/tornado tornado/platform/asyncio.py (BaseAsyncIOLoop.add_handler)"
_ANYIO = "agronholm/anyio src/anyio/_backends/_asyncio.py"

LIBRARIES: Tuple[Library, ...] = (
    Library(
        "pyzmq", ("zmq.asyncio",), ("add_reader",),
        "zmq.asyncio sockets wait on each socket's ZMQ_FD with loop.add_reader; on the Windows proactor loop "
        "pyzmq starts tornado's select() thread and warns (or fails without tornado)",
        "zeromq/pyzmq zmq/asyncio.py (Socket._init_io_state, _get_selector_windows)",
    ),
    Library(
        "pyzmq ZMQStream", ("zmq.eventloop",), ("add_reader",),
        "ZMQStream runs on tornado's IOLoop, which watches file descriptors with loop.add_reader/add_writer",
        _TORNADO_IOLOOP,
    ),
    Library(
        "tornado",
        ("tornado.ioloop", "tornado.web", "tornado.httpserver", "tornado.tcpserver", "tornado.tcpclient",
         "tornado.iostream", "tornado.httpclient", "tornado.simple_httpclient", "tornado.websocket",
         "tornado.netutil", "tornado.platform.asyncio"),
        ("add_reader",),
        "tornado's IOLoop watches every socket with loop.add_reader/add_writer; on the Windows proactor loop it "
        "runs select() in a thread of its own (AddThreadSelectorEventLoop)",
        _TORNADO_IOLOOP,
    ),
    Library(
        "psycopg (async)", ("psycopg", "psycopg_pool"), ("add_reader",),
        "psycopg's async connections wait on the libpq socket with loop.add_reader/add_writer, and "
        "AsyncConnection.connect() refuses ProactorEventLoop on Windows: do not force loop = \"proactor\"",
        "psycopg/psycopg psycopg/psycopg/connection_async.py (AsyncConnection.connect) and "
        "psycopg/psycopg/waiting.py (wait_async)",
        uses=("AsyncConnection", "AsyncConnectionPool", "AsyncNullConnectionPool", "AsyncCursor",
              "AsyncClientCursor", "AsyncRawCursor", "AsyncServerCursor"),
    ),
    Library(
        "SQLAlchemy with psycopg (async)", ("sqlalchemy.ext.asyncio",), ("add_reader",),
        "create_async_engine(\"postgresql+psycopg://...\") runs psycopg's AsyncConnection (see psycopg)",
        "sqlalchemy/sqlalchemy lib/sqlalchemy/dialects/postgresql/psycopg.py (module docstring, "
        "PGDialect_psycopg.get_async_dialect_cls)",
        uses=("create_async_engine", "async_engine_from_config"),
        strings=(r"postgresql\+psycopg(_async)?://",),
    ),
    Library(
        "aiodns", ("aiodns",), ("add_reader",),
        "aiodns watches c-ares' sockets with loop.add_reader/add_writer and refuses any Windows loop but "
        "SelectorEventLoop (or winloop), except with aiodns 3.3+ on a thread-safe pycares (official wheels "
        "4.7+), which runs c-ares in a thread of its own",
        "aio-libs/aiodns aiodns/__init__.py (DNSResolver._sock_state_cb, _make_channel) and README.rst "
        "(Note for Windows users)",
    ),
    Library(
        "pycares", ("pycares",), ("add_reader",),
        "a pycares Channel given sock_state_cb hands its sockets to the caller to watch: under asyncio, "
        "loop.add_reader/add_writer",
        "saghul/pycares docs/channel.rst (sock_state_cb)",
        uses=("sock_state_cb",),
    ),
    Library(
        "aiohttp AsyncResolver", ("aiohttp",), ("add_reader",),
        "AsyncResolver resolves names with aiodns (see aiodns)",
        "aio-libs/aiohttp aiohttp/resolver.py (AsyncResolver)",
        uses=("AsyncResolver",),
    ),
    Library(
        "aiohttp run_app", ("aiohttp",), ("signals",),
        "web.run_app() (handle_signals=True by default) installs SIGINT/SIGTERM handlers with "
        "loop.add_signal_handler for a graceful shutdown; on Windows it skips them without a word",
        "aio-libs/aiohttp aiohttp/web_runner.py (BaseRunner.setup) and aiohttp/web.py (run_app)",
        uses=("run_app",),
    ),
    Library(
        "aiohttp over AF_UNIX", ("aiohttp",), ("unix_sockets",),
        "UnixConnector connects with loop.create_unix_connection and UnixSite serves with "
        "loop.create_unix_server",
        "aio-libs/aiohttp aiohttp/connector.py (UnixConnector._create_connection) and aiohttp/web_runner.py "
        "(UnixSite.start)",
        uses=("UnixConnector", "UnixSite"),
    ),
    Library(
        "anyio processes", ("anyio",), ("subprocess",),
        "on the asyncio backend, open_process()/run_process() start the child with "
        "asyncio.create_subprocess_exec/_shell",
        f"{_ANYIO} (open_process)",
        uses=("open_process", "run_process"),
    ),
    Library(
        "anyio signals", ("anyio",), ("signals",),
        "on the asyncio backend, open_signal_receiver() installs its handlers with loop.add_signal_handler",
        f"{_ANYIO} (_SignalReceiver.__enter__)",
        uses=("open_signal_receiver",),
    ),
    Library(
        "anyio UNIX sockets", ("anyio",), ("unix_sockets", "add_reader"),
        "on the asyncio backend, UNIX sockets are raw AF_UNIX sockets waited on with "
        "loop.add_reader/add_writer",
        f"{_ANYIO} (connect_unix, UNIXSocketListener.accept, UNIXSocketStream)",
        uses=("connect_unix", "create_unix_listener"),
    ),
    Library(
        "anyio UDP", ("anyio",), ("udp",),
        "on the asyncio backend, UDP sockets are made with loop.create_datagram_endpoint",
        f"{_ANYIO} (create_udp_socket)",
        uses=("create_udp_socket", "create_connected_udp_socket"),
    ),
    Library(
        "anyio socket waits", ("anyio",), ("add_reader",),
        "on the asyncio backend, waiting for a socket to become readable or writable is "
        "loop.add_reader/add_writer",
        f"{_ANYIO} (wait_socket_readable, wait_socket_writable)",
        uses=("wait_socket_readable", "wait_socket_writable", "wait_readable", "wait_writable"),
    ),
    Library(
        "curl_cffi (async)", ("curl_cffi",), ("add_reader",),
        "AsyncCurl hands libcurl's sockets to loop.add_reader/add_writer (its socket callback)",
        "lexiforest/curl_cffi curl_cffi/aio.py (socket_function, AsyncCurl)",
        uses=("AsyncSession", "AsyncCurl", "AsyncWebSocket", "aio"),
    ),
    Library(
        "pyserial-asyncio", ("serial_asyncio",), ("char_devices",),
        "on POSIX the serial port's device file (a character device) is watched with loop.add_reader/add_writer; "
        "on Windows it is polled with call_later",
        "pyserial/pyserial-asyncio serial_asyncio/__init__.py (SerialTransport._ensure_reader)",
    ),
)


def libraries_markdown() -> str:
    """The table as Markdown (docs/check-and-scan.md holds this output)."""
    lines = ["| library | seen as | needs | why | where in its source |", "|---|---|---|---|---|"]
    for library in LIBRARIES:
        seen = ", ".join(f"`import {m}`" for m in library.modules[:3]) + (" ..." if len(library.modules) > 3 else "")
        if library.uses:
            seen += " using " + ", ".join(f"`{name}`" for name in library.uses)
        if library.strings:
            seen += " with a string matching " + ", ".join(f"`{p}`" for p in library.strings)
        cells = [library.name, seen, ", ".join(f"`{n}`" for n in library.needs), library.reason, library.source]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"
