"""Tables as downloads, CSV or XLSX, written from batches of rows as they come from the database.

Neither format holds the table in memory. CSV goes out batch by batch. An XLSX file is a zip that
can only be finished at the end, so xlsxwriter writes it in constant-memory mode (each row is
flushed to a temporary file as the next begins) and the finished file is then streamed from disk;
the temporary folder is removed as soon as the file is open, so nothing is left behind whatever
happens to the request.

Times are handed in as naive datetimes already in the bureau's zone: the CSV prints them as
`YYYY-MM-DD HH:mm` (24-hour), the XLSX stores real dates with that display format, so they sort
and filter as dates in Excel.
"""

from __future__ import annotations

import asyncio
import csv
import io
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import xlsxwriter

Cell = str | int | float | datetime | None
Batch = Sequence[Sequence[Cell]]

TIME_FORMAT = "%Y-%m-%d %H:%M"
XLSX_TIME_FORMAT = "yyyy-mm-dd hh:mm"
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# Excel opens a CSV as UTF-8 only when it starts with a byte-order mark; without it Chinese text
# shows as mojibake in the bureau's default (GBK) locale.
BOM = "\ufeff"
# A worksheet holds 1,048,576 rows; the header takes one and a note that the rest was cut another.
XLSX_MAX_DATA_ROWS = 1_048_574
_CHUNK = 256 * 1024


@dataclass(frozen=True, slots=True)
class Sheet:
    """One table: its worksheet name (XLSX), header, and rows in batches."""

    title: str
    header: Sequence[str]
    batches: AsyncIterable[Batch]
    truncated_note: str = ""  # the last row when XLSX_MAX_DATA_ROWS is reached


def _csv_cell(value: Cell) -> str | int | float:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime(TIME_FORMAT)
    return value


async def csv_stream(sheet: Sheet) -> AsyncIterator[bytes]:
    """The table as UTF-8 CSV with a BOM, one chunk per batch."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write(BOM)
    writer.writerow(sheet.header)
    yield buffer.getvalue().encode("utf-8")
    async for batch in sheet.batches:
        buffer.seek(0)
        buffer.truncate()
        writer.writerows([_csv_cell(c) for c in row] for row in batch)
        yield buffer.getvalue().encode("utf-8")


async def xlsx_stream(sheets: Sequence[Sheet]) -> AsyncIterator[bytes]:
    """The tables as one XLSX workbook, a worksheet each, built on disk and then streamed."""
    with tempfile.TemporaryDirectory(prefix="vigil-export-") as folder:
        path = Path(folder) / "export.xlsx"
        workbook = xlsxwriter.Workbook(str(path), {"constant_memory": True, "tmpdir": folder})
        try:
            header_format = workbook.add_format({"bold": True})
            time_format = workbook.add_format({"num_format": XLSX_TIME_FORMAT})
            for sheet in sheets:
                worksheet = workbook.add_worksheet(sheet.title[:31])
                worksheet.write_row(0, 0, sheet.header, header_format)
                worksheet.freeze_panes(1, 0)
                row_number = 0
                async for batch in sheet.batches:
                    for row in batch:
                        if row_number == XLSX_MAX_DATA_ROWS:
                            worksheet.write_string(row_number + 1, 0, sheet.truncated_note)
                            break
                        row_number += 1
                        for column, value in enumerate(row):
                            if isinstance(value, datetime):
                                worksheet.write_datetime(row_number, column, value, time_format)
                            elif value is not None:
                                worksheet.write(row_number, column, value)
                    if row_number == XLSX_MAX_DATA_ROWS:
                        break
        finally:
            # Compressing the parts is CPU work: off the event loop.
            await asyncio.to_thread(workbook.close)
        done = path.open("rb")
    # The folder is gone; the open file still reads until it is closed.
    try:
        while chunk := await asyncio.to_thread(done.read, _CHUNK):
            yield chunk
    finally:
        done.close()


def attachment(filename: str) -> dict[str, str]:
    """Headers that make a browser save the body as `filename` (ASCII, or UTF-8 by RFC 6266)."""
    return {
        "Content-Disposition": f"attachment; filename=\"{filename}\"; filename*=UTF-8''{quote(filename)}",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",  # an export is tenant data: never kept by a shared cache
    }
