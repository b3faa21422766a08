"""Rectification uploads: a multipart form with a description and photos, checked at the door.

A photo is refused unless it is declared image/jpeg or image/png, starts with that format's magic
bytes, is at most 5 MiB, 8000 pixels a side and `VIGIL_API_UPLOAD_MAX_PIXELS` pixels (24 MP by
default; read from its header, before decoding: no decompression bombs), and decodes. Every photo's
header is checked before any is decoded, so one refused photo costs no decode of the others, and
decodes run in threads, at most `VIGIL_API_UPLOAD_DECODE_SLOTS` at once per process. What is kept
is never the upload: each photo is re-encoded as a JPEG (quality 90), which drops EXIF (GPS
position, device serials) and anything appended or hidden in the file. The body is counted as it
streams, so an oversized form never reaches the disk.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field

import cv2
import numpy as np
from fastapi import HTTPException, Request, status
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from vigil.frames import image_size

# --- limits -------------------------------------------------------------------------------------

MAX_PHOTOS = 10
MAX_PHOTO_BYTES = 5 * 1024 * 1024
MAX_DIMENSION = 8000  # pixels, each side
MAX_DESCRIPTION = 4000
JPEG_QUALITY = 90
# The whole form: every photo at its limit, plus the description and the multipart framing. The
# body is counted as it streams, so an upload over this never reaches the disk in full.
MAX_FORM_BYTES = MAX_PHOTOS * MAX_PHOTO_BYTES + 256 * 1024
_MAX_FIELD_BYTES = 64 * 1024  # a description of 4000 characters is at most 16000 bytes of UTF-8
_MAGIC = {"image/jpeg": b"\xff\xd8\xff", "image/png": b"\x89PNG\r\n\x1a\n"}
_FORM_FIELDS = frozenset({"description", "photos"})


@dataclass(frozen=True)
class UploadLimits:
    """The per-process limits from settings, on `app.state.upload_limits`."""

    max_pixels: int = 24_000_000
    decode_slots: int = 2
    # Shared by every request of the process: at most `decode_slots` photos decoded at once.
    slots: asyncio.Semaphore = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "slots", asyncio.Semaphore(self.decode_slots))


# Starlette renamed its constants for 413 and 422 (the old names are deprecated); the numbers are stable.
TOO_LARGE = 413
UNPROCESSABLE = 422


async def _bounded(stream: AsyncIterator[bytes], limit: int) -> AsyncGenerator[bytes, None]:
    seen = 0
    async for chunk in stream:
        seen += len(chunk)
        if seen > limit:
            raise HTTPException(TOO_LARGE, f"the form is over {limit // (1024 * 1024)} MiB")
        yield chunk


def _check_header(data: bytes, media_type: str, name: str, max_pixels: int) -> None:
    """Refuse (HTTPException) a photo whose magic bytes or header size are wrong; decodes nothing."""
    if not data.startswith(_MAGIC[media_type]):
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, f"photo {name}: the content is not {media_type}"
        )
    size = image_size(data, media_type)
    if size is None or 0 in size:
        raise HTTPException(UNPROCESSABLE, f"photo {name}: not a readable {media_type} image")
    if max(size) > MAX_DIMENSION:
        raise HTTPException(
            UNPROCESSABLE,
            f"photo {name}: {size[0]}x{size[1]} pixels is over {MAX_DIMENSION}x{MAX_DIMENSION}",
        )
    if size[0] * size[1] > max_pixels:
        raise HTTPException(
            UNPROCESSABLE,
            f"photo {name}: {size[0]}x{size[1]} pixels is over the limit of {max_pixels / 1e6:g} megapixels",
        )


def _reencode(data: bytes, name: str) -> bytes:
    """The photo as a fresh JPEG, or an HTTPException saying why not. CPU-bound: run in a thread,
    after `_check_header` has passed."""
    # IMREAD_COLOR: 8-bit BGR whatever came in (alpha, 16-bit, grey), upright per EXIF orientation.
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        image = None
    if image is None or image.size == 0:
        raise HTTPException(UNPROCESSABLE, f"photo {name}: the image does not decode")
    if max(image.shape[:2]) > MAX_DIMENSION:
        raise HTTPException(UNPROCESSABLE, f"photo {name}: over {MAX_DIMENSION}x{MAX_DIMENSION} pixels")
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    del image  # the decoded pixels are the large part: free them before the copy below
    if not ok:
        raise HTTPException(UNPROCESSABLE, f"photo {name}: the image could not be re-encoded")
    return bytes(encoded.tobytes())


def _name(upload: UploadFile, index: int) -> str:
    return f"{index + 1} ({upload.filename})" if upload.filename else str(index + 1)


async def _read(upload: UploadFile, name: str) -> tuple[bytes, str]:
    """The photo's bytes and media type, refused (HTTPException) when over 5 MiB or not an image."""
    media_type = (upload.content_type or "").split(";")[0].strip().lower()
    if media_type not in _MAGIC:
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            f"photo {name}: {media_type or 'no content type'} is not image/jpeg or image/png",
        )
    await upload.seek(0)
    data = await upload.read(MAX_PHOTO_BYTES + 1)  # never more than the limit into memory
    if len(data) > MAX_PHOTO_BYTES:
        raise HTTPException(TOO_LARGE, f"photo {name}: over 5 MiB")
    if not data:
        raise HTTPException(UNPROCESSABLE, f"photo {name}: empty file")
    return data, media_type


async def _photos(uploads: list[UploadFile], limits: UploadLimits) -> list[bytes]:
    """Every photo re-encoded, or the first refusal. Two passes: every header is checked (one photo
    in memory at a time) before any photo is decoded, then each is decoded in a thread once one of
    the process's decode slots is free, so memory is bounded by the slots, not by the callers."""
    for i, upload in enumerate(uploads):
        name = _name(upload, i)
        data, media_type = await _read(upload, name)
        _check_header(data, media_type, name, limits.max_pixels)
    jpegs = []
    for i, upload in enumerate(uploads):
        data, _ = await _read(upload, _name(upload, i))
        async with limits.slots:
            jpegs.append(await asyncio.to_thread(_reencode, data, _name(upload, i)))
    return jpegs


def _description(values: list[str | UploadFile]) -> str:
    if len(values) != 1 or not isinstance(values[0], str):
        raise HTTPException(UNPROCESSABLE, "exactly one description (text) is required")
    text = values[0].strip()
    if not text:
        raise HTTPException(UNPROCESSABLE, "description is required")
    if len(text) > MAX_DESCRIPTION or "\x00" in text:
        raise HTTPException(
            UNPROCESSABLE, f"description must be at most {MAX_DESCRIPTION} characters of text"
        )
    return text


async def read_rectification_form(request: Request, *, store_available: bool) -> tuple[str, list[bytes]]:
    """The description and the photos re-encoded as JPEG, or an HTTPException saying what is wrong.
    Every photo is checked before the caller stores any: a refused upload leaves nothing behind."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "multipart/form-data":
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, "send multipart/form-data")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise HTTPException(TOO_LARGE, f"the form is over {MAX_FORM_BYTES // (1024 * 1024)} MiB")
    parser = MultiPartParser(
        request.headers,
        _bounded(request.stream(), MAX_FORM_BYTES),
        max_files=MAX_PHOTOS,
        max_fields=4,
        max_part_size=_MAX_FIELD_BYTES,
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        if "Too many files" in exc.message:
            raise HTTPException(UNPROCESSABLE, f"at most {MAX_PHOTOS} photos per rectification") from None
        raise HTTPException(status.HTTP_400_BAD_REQUEST, exc.message) from None
    try:
        unknown = sorted(set(form.keys()) - _FORM_FIELDS)
        if unknown:
            raise HTTPException(UNPROCESSABLE, f"unexpected form fields: {', '.join(unknown)}")
        description = _description(form.getlist("description"))
        uploads = form.getlist("photos")
        if not all(isinstance(u, UploadFile) for u in uploads):
            raise HTTPException(UNPROCESSABLE, "photos must be files")
        if uploads and not store_available:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "no evidence store configured")
        limits: UploadLimits = getattr(request.app.state, "upload_limits", None) or UploadLimits()
        # Every photo is checked before any is stored: a refused upload leaves nothing behind.
        jpegs = await _photos([u for u in uploads if isinstance(u, UploadFile)], limits)
    finally:
        await form.close()
    return description, jpegs
