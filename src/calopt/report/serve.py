"""``calopt report --serve``: a campaign's report on localhost, refreshed while the campaign runs.

The server answers ``/`` and ``/report.html`` with the report, written again first whenever the
campaign database changed since (a running ``calopt optimize`` also rewrites it after every
batch), with a ``<meta http-equiv="refresh">`` added to the page it sends (not to the file), so
a browser left open follows the campaign. It listens on 127.0.0.1 only: a report holds the
campaign's settings and is nobody else's business. Nothing but the report is served.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from calopt.errors import CaloptInputError
from calopt.optimize.campaign import DB_NAME

__all__ = ["ReportServer", "serve_report"]

MAX_PORT = 65535


class ReportServer:
    """The report of the campaign in ``folder`` served on 127.0.0.1:``port`` (0: a free port),
    refreshed every ``refresh_s`` seconds in the browser."""

    def __init__(self, folder: Path, port: int = 8765, refresh_s: int = 10, style: str | None = None) -> None:
        from calopt.report.html import REPORT_NAME, check_campaign_folder, check_report_output

        if not 0 <= port <= MAX_PORT:
            raise CaloptInputError(f"--port {port} must be in [0, {MAX_PORT}]")
        if not 1 <= refresh_s <= 3600:
            raise CaloptInputError(f"--refresh {refresh_s} must be in [1, 3600] seconds")
        self.folder = folder
        self.db = check_campaign_folder(folder)
        self.path = folder / REPORT_NAME
        check_report_output(self.path)
        self.refresh_s = refresh_s
        self.style = style
        self._lock = threading.Lock()
        self._seen: tuple[float, ...] | None = None
        self.update()
        handler = _handler(self)
        try:
            self.httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        except OSError as exc:
            raise CaloptInputError(f"cannot serve on 127.0.0.1:{port}: {exc.strerror}") from None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def _stamp(self) -> tuple[float, ...]:
        """Modification times of the database and its write-ahead log (a running campaign writes there)."""
        return tuple(p.stat().st_mtime_ns for p in (self.db, self.db.with_name(DB_NAME + "-wal")) if p.exists())

    def update(self) -> None:
        """Write the report again if the database changed since it was last written here."""
        from calopt.report.html import write_report

        with self._lock:
            stamp = self._stamp()
            if stamp != self._seen or not self.path.exists():
                write_report(self.folder, style=self.style)
                self._seen = stamp

    def page(self) -> bytes:
        self.update()
        text = self.path.read_text(encoding="utf-8")
        meta = f'<meta http-equiv="refresh" content="{self.refresh_s}">'
        return text.replace("<head>", "<head>" + meta, 1).encode("utf-8")

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _handler(server: ReportServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # the name http.server calls
            if self.path.split("?")[0] not in ("/", "/report.html"):
                self.send_error(404, "only the report is served here")
                return
            try:
                body = server.page()
            except CaloptInputError as exc:
                self.send_error(503, str(exc))
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # quiet: no line per request
            return

    return Handler


def serve_report(folder: Path, port: int, refresh_s: int, style: str | None, say: Any) -> None:
    """Serve until interrupted (Ctrl-C)."""
    server = ReportServer(folder, port, refresh_s, style)
    say(f"serving {server.path} at {server.url} (refresh every {refresh_s} s; Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
