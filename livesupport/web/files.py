"""Files over HTTP (docs/PROTOCOL.md §7.10): the streamed upload, the signed link, and the
download that serves nothing a browser could run."""

from __future__ import annotations

import urllib.parse
from typing import Any

import tornado.ioloop
import tornado.web

from ..files import PIECE, RASTER, Upload
from ..protocol import ApiError
from .base import BaseHandler, path_id


@tornado.web.stream_request_body
class UploadHandler(BaseHandler):
    """POST /api/{visitor,console}/chats/ID/files?name=NAME&client_id=CID: the body is the
    file, stored piece by piece as it arrives; a connection silent for ``[files]
    stall_timeout`` is closed and keeps nothing."""

    upload: Upload | None = None
    #: The answer when the upload was repeated while its body still arrives.
    answer: dict | None = None
    #: A refusal before the body was read: answered once it has arrived (and been dropped),
    #: so that closing the connection on unread data cannot turn the answer into a reset.
    refusal: ApiError | None = None
    _stall: Any = None

    def check_xsrf_cookie(self) -> None:
        try:
            super().check_xsrf_cookie()
        except ApiError as e:
            self.refusal = e

    async def prepare(self) -> None:
        method = self.request.method
        if method == "OPTIONS":  # a CORS preflight, answered as anywhere else
            await super().prepare()
            return
        # Any other request may carry a body (even a GET): every answer waits until it has
        # arrived, so that closing the connection on unread data cannot turn it into a reset.
        config = self.services.config
        conn = self.request.connection
        # The count below answers a body over the limit with our 413; the stall timer, not a
        # time for the whole body, ends an upload that stops (10 MB takes a while).
        conn.set_max_body_size(config.files_max_size + PIECE)
        conn.set_body_timeout(None)
        self._arm()
        try:
            if self.refusal is not None:
                raise self.refusal
            if method != "POST":
                raise ApiError("method_not_allowed", "uploads are POST", 405)
            await super().prepare()
            length = self.request.headers.get("Content-Length")
            declared = int(length) if length and length.isascii() and length.isdigit() else None
            started = await self.services.files.start(
                self.party,
                path_id(self.path_args[0]),
                self.get_query_argument("name", None),
                self.get_query_argument("client_id", None),
                declared,
            )
        except ApiError as e:
            self.refusal = e  # answered when the body has arrived
            return
        if isinstance(started, dict):
            self.answer = started  # uploaded before: the body is dropped
        else:
            self.upload = started

    def _arm(self) -> None:
        loop = tornado.ioloop.IOLoop.current()
        if self._stall is not None:
            loop.remove_timeout(self._stall)
        self._stall = loop.call_later(self.services.config.files_stall_timeout, self._stalled)

    def _stalled(self) -> None:
        self._stall = None
        self.services.clock.spawn(self._drop())
        self.request.connection.close()

    async def data_received(self, chunk: bytes) -> None:
        if self._finished:
            return
        self._arm()
        if self.upload is None:
            return  # a repeat: what it sends is not kept
        try:
            await self.upload.write(chunk)
        except ApiError as e:
            await self._drop()
            self._refuse(e)  # answered now; the connection closes after the answer

    async def post(self, _chat_id: str) -> None:
        self._disarm()
        if self._finished:
            return
        if self.refusal is not None:
            raise self.refusal
        if self.answer is not None:
            self.reply(self.answer)
            return
        try:
            event = await self.upload.finish()
        except ApiError:
            await self._drop()
            raise
        self.upload = None
        self.reply(event, 201)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        if self.refusal is not None:  # PUT, PATCH, DELETE reach Tornado's 405 after the body
            kwargs = {"exc_info": (ApiError, self.refusal, None)}
        super().write_error(status_code, **kwargs)

    def _refuse(self, err: ApiError) -> None:
        self._disarm()
        self.set_header("Connection", "close")
        self.answer_error(err)

    async def _drop(self) -> None:
        upload, self.upload = self.upload, None
        if upload is not None:
            await upload.abort()

    def _disarm(self) -> None:
        if self._stall is not None:
            tornado.ioloop.IOLoop.current().remove_timeout(self._stall)
            self._stall = None

    def on_connection_close(self) -> None:
        """The uploader went away (or stalled): nothing of it is kept."""
        self._disarm()
        if self.upload is not None:
            self.services.clock.spawn(self._drop())

    def on_finish(self) -> None:
        self._disarm()


class FileLinkHandler(BaseHandler):
    """GET /api/{visitor,console}/files/FID: a signed, expiring URL for a file of a chat the
    party may read."""

    async def get(self, file_id: str) -> None:
        self.reply(await self.services.files.link(self.party, path_id(file_id)))


class DownloadHandler(BaseHandler):
    """GET /api/files/FID?exp=EXP&sig=SIG: the file, if the URL is the server's and still
    valid; otherwise exactly what a missing file gets."""

    async def get(self, file_id: str) -> None:
        found = await self.services.files.fetch(
            path_id(file_id), self.get_query_argument("exp", ""), self.get_query_argument("sig", "")
        )
        if found is None:
            raise ApiError("not_found", "no such file", 404)
        f, left = found
        inline = f.type in RASTER
        quoted = urllib.parse.quote(f.name, safe="")
        ascii_name = "".join(
            c if c.isascii() and c.isalnum() or c in "._-" else "_" for c in f.name
        )
        self.set_header("Content-Type", f.type if inline else "application/octet-stream")
        self.set_header(
            "Content-Disposition",
            f'{"inline" if inline else "attachment"}; filename="{ascii_name}"; '
            f"filename*=UTF-8''{quoted}",
        )
        self.set_header("Content-Security-Policy", "default-src 'none'; sandbox")
        self.set_header("Cache-Control", f"private, max-age={left}")
        self.set_header("Content-Length", str(f.size))
        n = 0
        while (piece := await self.services.files.piece(f.id, n)) is not None:
            self.write(piece)
            await self.flush()
            n += 1
        self.finish()
