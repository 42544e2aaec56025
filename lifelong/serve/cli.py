"""``lifelong serve``: flags, safety checks, and the uvicorn server's life."""

from __future__ import annotations

import argparse
import ipaddress
import sys
from pathlib import Path

from lifelong.config import ConfigError

LOOPBACK = ("127.0.0.1", "::1", "localhost")


def add_parser(sub, formatter) -> None:
    from lifelong.run_cli import add_config_flags

    s = sub.add_parser(
        "serve",
        help="learn from a live stream over HTTP; predict and query memory while learning",
        description="Serve an agent that learns from batches posted over HTTP (and task "
        "files dropped in --follow), answers predictions and memory queries while it learns, "
        "and shows a dashboard at /. Acknowledged batches are on disk before the answer; "
        "the same command resumes after a stop or a kill.\n\n"
        "  lifelong serve --out runs/served --n-classes 10\n"
        "  lifelong serve --out runs/served --host 0.0.0.0 --token-file token.txt",
        formatter_class=formatter,
    )
    s.add_argument("--out", required=True, help="run folder, e.g. runs/served")
    s.add_argument("--config", help="TOML file with RunConfig keys; flags override it")
    s.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (other than loopback needs --token-file)",
    )
    s.add_argument("--port", type=int, default=8000, help="port (0: any free port)")
    s.add_argument("--token-file", help="file holding the bearer token every API call needs")
    s.add_argument(
        "--max-queue",
        type=int,
        default=20_000,
        help="examples acknowledged but not learned, at most; past it observe answers 429 "
        "(and a batch larger than this, 413)",
    )
    s.add_argument(
        "--publish-every", type=int, default=50, help="steps between weight publications"
    )
    s.add_argument(
        "--max-body-mb",
        type=float,
        default=64.0,
        help="largest request body, MiB, and the most an .npz body's arrays may take inflated",
    )
    s.add_argument(
        "--reset-log",
        action="store_true",
        help="the folder's ingest log is not its checkpoint's (deleted, or an older copy): "
        "move the log and what was learned from it to RUN/dropped-TIME/ and start afresh",
    )
    s.add_argument(
        "--real-time",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a stream that does not wait, on the real clock: a batch logged while the "
        "learner is still learning an earlier one is answered (online accuracy) and not "
        "learned, and with --fit-compute each update is sized to the measured time between "
        "batches; keeps the queue short under load (default: off, every batch learned)",
    )
    add_config_flags(
        s, leave_out=("stream", "experiences", "real_time", "stream_rate", "label_delay")
    )
    s.set_defaults(func=serve_command)


def read_token(path: str | None, host: str) -> str | None:
    """The bearer token; refuse a non-loopback address without one."""
    if path is None:
        if not _loopback(host):
            raise ConfigError(
                f"--host {host} is reachable from other machines: give --token-file too"
            )
        return None
    try:
        token = Path(path).read_text().strip()
    except OSError as exc:
        raise ConfigError(f"--token-file {path}: {exc.strerror}") from None
    if len(token) < 16:
        raise ConfigError(f"--token-file {path}: the token must be at least 16 characters")
    return token


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve_command(args) -> int:
    import signal
    import threading

    import uvicorn

    from lifelong.run_cli import config_from_args
    from lifelong.serve.app import create_app
    from lifelong.serve.folder_door import FolderDoor
    from lifelong.serve.service import Service

    cfg = config_from_args(args)
    cfg.stream, cfg.progress = "serve", False  # no bar: the dashboard and /v1/run show progress
    cfg.validate()
    if cfg.wall_clock:
        raise ConfigError(
            "--wall-clock is run --follow's: a served stream's real time is already in seconds, "
            "each batch arriving when the ingest log takes it"
        )
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be 0 (any free port) to 65535, got {args.port}")
    if args.max_queue <= 0 or args.publish_every <= 0 or args.max_body_mb <= 0:
        raise ConfigError("--max-queue, --publish-every and --max-body-mb must be positive")
    token = read_token(args.token_file, args.host)
    sock = _bind(args.host, args.port)  # before the folder is made: a busy port leaves none

    def echo(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    try:
        service = Service(
            cfg,
            args.out,
            max_queue=args.max_queue,
            publish_every=args.publish_every,
            reset_log=args.reset_log,
            echo=echo,
        )
    except BaseException:
        sock.close()
        raise
    try:
        service.start()
    except BaseException:
        service.shutdown()
        sock.close()
        raise
    door = None
    if cfg.follow:
        door = FolderDoor(cfg, service.log, service.stop_event, poll=1.0, echo=echo)
        door.start()
    app = create_app(service, token=token, max_bytes=int(args.max_body_mb * (1 << 20)))
    server = uvicorn.Server(
        uvicorn.Config(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    )
    ready = threading.Thread(target=_announce, args=(server, args, echo), daemon=True)
    ready.start()
    # uvicorn re-raises the signal that stopped it once it has shut down; with these
    # handlers in place that re-raise only asks the learner to stop, and the checkpoint below
    # is written instead of the process dying before it
    stopped_by: list[int] = []

    def stop(signum, _frame) -> None:
        stopped_by.append(signum)
        service.stop_event.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)
    try:
        server.run(sockets=[sock])  # until Ctrl-C / SIGTERM
    except SystemExit:  # uvicorn could not start (it said why on the line above)
        if server.started:
            raise
        raise ConfigError(f"cannot serve on {args.host}:{args.port}") from None
    finally:
        echo("stopping: finishing the current step and writing a checkpoint")
        service.shutdown()
    if service.error is not None:
        raise ConfigError(f"the learner stopped: {service.error}")
    return 128 + stopped_by[0] if stopped_by else 0  # 143 after SIGTERM, 130 after Ctrl-C


def _bind(host: str, port: int):
    """The listening address, taken before anything else: a port in use is one line and
    no run folder is left behind to refuse the corrected command."""
    import socket

    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"cannot serve on {host}:{port}: {exc.strerror}") from None
    family, kind, proto, _, address = info[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot serve on {host}:{port}: {exc.strerror} (another server holds it? pick "
            "another --port, or 0 for any free one)"
        ) from None
    return sock


def _announce(server, args, echo) -> None:
    """One line with the address once the server listens (the port, when --port 0)."""
    import time

    while not server.started:
        time.sleep(0.05)
        if server.should_exit:
            return
    port = server.servers[0].sockets[0].getsockname()[1] if server.servers else args.port
    echo(f"serving {args.out} on http://{args.host}:{port}/ (dashboard), API docs at /docs")
