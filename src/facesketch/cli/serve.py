"""`facesketch serve`: start the local web demo (uvicorn) for a trained model."""

from __future__ import annotations

import argparse
import ipaddress
import socket
import sys

from facesketch.cli import add_device, add_precision
from facesketch.inference import MAX_SIZE, MIN_SIZE, check_size
from facesketch.errors import UserError


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, so a taken port is a one-line error instead of a uvicorn traceback."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise UserError(f"--host {host}: cannot resolve it ({e.strerror})") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
    except OSError as e:
        sock.close()
        raise UserError(f"--port {port}: cannot listen on {host}:{port} ({e.strerror}); pick another port with --port") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run_serve(args: argparse.Namespace) -> int:
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError as e:
        raise UserError(f"the web demo needs the serve extra: pip install 'facesketch[serve]' ({e.name} is missing)") from None
    from facesketch.device import pick_device
    from facesketch.serve.app import create_app

    if args.size is not None:
        check_size(args.size)
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port {args.port}: use a port number between 1 and 65535 (0: any free port)")
    import math

    for flag, value in (("--max-upload-mb", args.max_upload_mb), ("--max-megapixels", args.max_megapixels),
                        ("--header-timeout", args.header_timeout), ("--body-timeout", args.body_timeout)):  # fmt: skip
        if not (0 < value < math.inf):
            raise UserError(f"{flag} {value}: must be a finite number > 0")
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers {args.workers}: must be >= 1")
    if args.queue < 0:
        raise UserError(f"--queue {args.queue}: must be >= 0")
    from facesketch.default_model import resolve_model

    args.model = resolve_model(args.model)
    sock = _bind(args.host, args.port)  # before loading the model: a taken port fails at once
    try:
        app = create_app(args.model, max_upload_mb=args.max_upload_mb, max_megapixels=args.max_megapixels,
                         device=pick_device(args.device), size=args.size, workers=args.workers, queue=args.queue,
                         precision=args.precision,
                         body_timeout=args.body_timeout)  # fmt: skip
    except BaseException:
        sock.close()
        raise
    host, port = sock.getsockname()[:2]
    if not _is_loopback(args.host):
        print(f"note: listening on {args.host}: other machines on your network can use this demo", file=sys.stderr)
    shown = f"[{host}]" if ":" in host else host
    print(f"facesketch demo for {args.model}: open http://{shown}:{port}/  (Ctrl+C stops it)", flush=True)
    from facesketch.serve.protocol import timed_protocol

    server = uvicorn.Server(uvicorn.Config(app, log_level=args.log_level, http=timed_protocol(args.header_timeout)))
    server.run(sockets=[sock])
    return 0


def register(sub, help_text: str) -> None:
    p = sub.add_parser("serve", help=help_text, formatter_class=argparse.RawDescriptionHelpFormatter,
                       description=help_text + ": one page to upload a photo and see (and download) the sketch and\n"
                       "the attention masks, plus a JSON API (POST /api/translate). Faces are detected and aligned\n"
                       "as in `facesketch translate` (a checkbox turns it off). Listens on 127.0.0.1 only unless\n"
                       "--host says otherwise; the page loads nothing from the internet.",
                       epilog="examples:\n"
                       "  facesketch serve --model runs/fs2k\n"
                       "  curl -F file=@photo.jpg 'http://127.0.0.1:7860/api/translate?align=true'")  # fmt: skip
    p.add_argument("--model", default=None, help="a run directory or an exported model.safetensors (default: the model shipped with facesketch)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860; 0 picks a free one)")
    p.add_argument("--max-upload-mb", type=float, default=10, help="largest accepted upload in MB (default 10; larger: HTTP 413)")
    p.add_argument("--max-megapixels", type=float, default=50, help="largest accepted image in megapixels (default 50)")
    p.add_argument("--size", type=int, default=None, metavar="N",
                   help=f"translate at N x N px (a multiple of 4 from {MIN_SIZE} to {MAX_SIZE}; default: the model's own size)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="images decoded and translated at once (default: one per two CPUs, at least 1); bounds memory")
    p.add_argument("--queue", type=int, default=8, metavar="N",
                   help="requests that may wait beyond those (default 8); more are answered 503 with Retry-After")
    p.add_argument("--header-timeout", type=float, default=10.0, metavar="S",
                   help="seconds a connection has to send a whole request head (default 10); slower ones are closed")
    p.add_argument("--body-timeout", type=float, default=30.0, metavar="S",
                   help="seconds an upload may stall (default 30); then 408")
    add_device(p)
    add_precision(p)
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"],
                   help="uvicorn's log level (default info)")  # fmt: skip
    p.set_defaults(func=run_serve)
