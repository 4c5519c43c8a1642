"""Files attached to a chat (docs/PROTOCOL.md §7.10): an upload streamed into storage in
pieces, its type found from its content, its name kept only as text, and expiring URLs signed
for each file.

An upload is a ``Upload``: ``Files.start`` checks the chat, the party and the name before any
byte is read; ``write`` stores what arrives; ``finish`` decides the type and commits the
``file`` chat event with the file; anything else ends in ``abort``, which keeps nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import unicodedata
from typing import Any

from .chats import Chats, own_active
from .context import Context
from .protocol import OPEN_STATUSES, ApiError, Party, chat_closed, human_size, invalid_field
from .storage import StorageUnavailable
from .storage.accounts import Duplicate
from .storage.records import Chat, StoredFile

#: Bytes per stored piece (what a connection delivers at a time): small enough that storing one
#: is a short insert on the loop, and an upload never sits whole in memory.
PIECE = 64 * 1024
#: The four raster types a browser shows with ``<img>``; everything else is downloaded.
RASTER = ("image/png", "image/jpeg", "image/gif", "image/webp")
#: Longest display name kept.
MAX_NAME_CHARS = 255


def sniff(head: bytes) -> str:
    """The type of a file from its first bytes (at least 512 of them when it has that many)."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "application/zip"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in text):
        return "image/svg+xml"
    markup = (b"<!doctype html", b"<html", b"<head", b"<body", b"<script", b"<iframe", b"<div")
    if text.startswith(markup) or b"<script" in text or b"<html" in text:
        return "text/html"
    if b"\x00" not in head and _utf8_prefix(head):
        return "text/plain"
    return "application/octet-stream"


def _utf8_prefix(head: bytes) -> bool:
    """UTF-8, allowing a character cut off at the end of the sample."""
    for cut in range(4):
        try:
            head[: len(head) - cut].decode("utf-8")
            return True
        except UnicodeDecodeError:
            continue
    return False


def clean_name(name: str) -> str:
    """A file name as display text: no path, no control or bidi characters, not too long."""
    parts = [p for p in name.replace("\\", "/").split("/") if p.strip() not in ("", ".", "..")]
    name = "_".join(parts)  # a path's folders go; a slash in a name becomes "_"
    kept = "".join(c for c in name if unicodedata.category(c)[0] != "C")  # Cc, Cf (bidi), ...
    kept = " ".join(kept.split()).strip(" .")
    return kept[:MAX_NAME_CHARS] or "file"


def file_view(f: StoredFile) -> dict:
    return {
        "id": f.id,
        "name": f.name,
        "size": f.size,
        "type": f.type,
        "image": f.type in RASTER,
    }


class Upload:
    """One upload in progress: what arrived so far is stored in pieces of ``PIECE`` bytes."""

    def __init__(self, files: Files, party: Party, chat: Chat, name: str, client_id: str):
        self.files, self.party, self.chat = files, party, chat
        self.name, self.client_id = name, client_id
        self.file_id: int | None = None
        self.size = 0
        self.pieces = 0
        self.head = b""
        self._buffer = bytearray()
        self.limit = files.config.files_max_size

    async def write(self, data: bytes) -> None:
        """Bytes as they arrive; over ``[files] max_size`` raises ``file_too_large``."""
        self.size += len(data)
        if self.size > self.limit:
            raise file_too_large(None, self.limit)
        if len(self.head) < 4096:
            self.head += data[: 4096 - len(self.head)]
        self._buffer += data
        while len(self._buffer) >= PIECE:
            await self._store(bytes(self._buffer[:PIECE]))
            del self._buffer[:PIECE]

    async def _store(self, piece: bytes) -> None:
        store = self.files.store
        if self.file_id is None:
            self.file_id = await store.begin(self.chat.id, self.name, self.files.clock.now_ms())
        await store.write(self.file_id, self.pieces, piece)
        self.pieces += 1

    async def finish(self) -> dict:
        """The upload is whole: the file event, committed and published; returns it as the
        uploader sees it."""
        if self.size == 0:
            raise ApiError("invalid_field", "the file is empty", field="body")
        type_ = sniff(self.head)
        allowed = self.files.config.files_types
        if allowed and type_ not in allowed:
            raise ApiError(
                "file_type_not_allowed",
                f"files of type {type_} are not allowed; [files] types allows "
                + ", ".join(allowed),
                415,
                found=type_,
                allowed=list(allowed),
            )
        if self._buffer or self.file_id is None:
            await self._store(bytes(self._buffer))
            self._buffer.clear()
        return await self.files.commit(self, type_)

    async def abort(self) -> None:
        """Nothing of it is kept."""
        self._buffer.clear()
        if self.file_id is not None:
            file_id, self.file_id = self.file_id, None
            await self.files.discard(file_id)


def file_too_large(size: int | None, limit: int) -> ApiError:
    """``size``: the declared length, or None for a body that went past the limit."""
    said = f"is {size} bytes" if size is not None else "is larger"
    return ApiError(
        "file_too_large",
        f"the file {said}; the limit, [files] max_size, is {limit} bytes ({human_size(limit)})",
        413,
        limit="max_size",
        max_size=limit,
    )


class Files:
    def __init__(self, ctx: Context, chats: Chats):
        self.config = ctx.config
        self.clock = ctx.clock
        self.store = ctx.storage.files
        self.chats = chats
        self.validate = ctx.validate
        self._key = b""
        self._secrets = ctx.storage.site
        #: Whether other processes may be receiving uploads into the same database.
        self._shared = ctx.storage.networked

    async def start_up(self) -> None:
        """The links' signing key; uploads a stopped process left unfinished are removed (on
        a shared database, those older than the longest an upload can stall)."""
        self._key = (await self._secrets.secret("file_links")).encode()
        before = self.clock.now_ms() + 1
        if self._shared:
            before -= int(self.config.files_stall_timeout * 1000) + 1000
        await self.store.purge_incomplete(before=before)

    async def discard(self, file_id: int) -> None:
        """The pieces of an upload that failed. On a full disk even their deletion may not fit:
        they stay, seen by nobody (the file is incomplete), and it is tried again every second
        until it does (or at the next start)."""
        try:
            await self.store.discard(file_id)
        except StorageUnavailable:
            self.clock.call_later(1.0, lambda: self.clock.spawn(self.discard(file_id)))

    async def start(
        self, party: Party, chat_id: int, name: Any, client_id: Any, length: int | None
    ) -> Upload | dict:
        """Before the body is read: an ``Upload`` to feed, or the stored event when this
        ``client_id`` was uploaded before (the body is then dropped)."""
        chat = await self.chats.chat_for(party, chat_id)
        client_id = self.validate.kind("client_id", "client_id", client_id)
        if not isinstance(name, str) or not name.strip():
            raise invalid_field("name", "'name' (the file's name) is required")
        existing = await self.chats.store.event_by_client_id(chat.id, client_id, party.role)
        if existing is not None:
            return {"file": existing}
        if chat.status not in OPEN_STATUSES:
            raise chat_closed(chat.id, chat.status)
        if party.role == "operator":
            own_active(party, chat)
        else:
            self.chats.rl_messages.check(party.visitor_id, "messages")
        if length is not None and length > self.config.files_max_size:
            raise file_too_large(length, self.config.files_max_size)
        return Upload(self, party, chat, clean_name(name), client_id)

    async def commit(self, upload: Upload, type_: str) -> dict:
        party = upload.party
        # The chat may have ended (or changed hands) while the body arrived.
        chat = await self.chats.chat_for(party, upload.chat.id)
        if chat.status not in OPEN_STATUSES:
            raise chat_closed(chat.id, chat.status)
        if party.role == "operator":
            own_active(party, chat)
        op = await self.chats.who(party.operator_id) if party.role == "operator" else None
        stored = StoredFile(upload.file_id, chat.id, upload.name, type_, upload.size, 0)
        event = {
            "type": "file",
            "ts": self.clock.now_ms(),
            "from": party.role,
            "operator": op,
            "client_id": upload.client_id,
            "file": file_view(stored),
        }
        also = self.store.complete_statement(upload.file_id, type_, upload.size)
        try:
            pairs = await self.chats.store.append_events(chat, [event], also=also)
        except Duplicate:  # uploaded again meanwhile: that one stands, this copy is purged
            events = self.chats.store
            return {"file": await events.event_by_client_id(chat.id, upload.client_id, party.role)}
        await self.chats.publish(chat, pairs)
        self.chats.typing.stop(chat, party.role)
        if party.role == "operator":
            await self.chats.replied.emit(chat, pairs[0][0])
        return {"file": (pairs[0].visitor if party.role == "visitor" else pairs[0])[0]}

    # -- fetching -----------------------------------------------------------------------------

    async def link(self, party: Party, file_id: int) -> dict:
        """A URL for the file, signed for it and expiring; only for the chat's parties."""
        f = await self.store.file(file_id)
        if f is None:
            raise ApiError("not_found", f"no file {file_id}", 404)
        try:
            await self.chats.chat_for(party, f.chat_id)
        except ApiError:
            raise ApiError("not_found", f"no file {file_id}", 404) from None
        expires = (self.clock.now_ms() // 1000) + int(self.config.files_link_ttl)
        url = f"/api/files/{f.id}?exp={expires}&sig={self._sign(f.id, expires)}"
        return {
            "file": dict(file_view(f), chat_id=f.chat_id),
            "url": url,
            "expires_at": expires * 1000,
        }

    async def fetch(self, file_id: int, exp: str, sig: str) -> tuple[StoredFile, int] | None:
        """The file a signed URL names, with the seconds it is still valid; None for a wrong,
        altered or expired URL, exactly as for a missing file."""
        if not (exp.isascii() and exp.isdigit() and len(exp) < 12):
            return None
        expires = int(exp)
        left = expires - self.clock.now_ms() // 1000
        if left <= 0 or not hmac.compare_digest(self._sign(file_id, expires), sig):
            return None
        f = await self.store.file(file_id)
        return (f, left) if f is not None else None

    async def piece(self, file_id: int, n: int) -> bytes | None:
        return await self.store.chunk(file_id, n)

    def _sign(self, file_id: int, expires: int) -> str:
        mac = hmac.new(self._key, f"file:{file_id}:{expires}".encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(mac.digest()[:24]).decode()
