"""Hand-built PNGs for the emulated mini-program code (no pillow needed)."""

from __future__ import annotations

import hashlib
import struct
import zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CELL = 10


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def make_code_png(width: int, seed: str) -> bytes:
    """Return a ``width`` x ``width`` 8-bit grayscale PNG whose pattern depends on ``seed``.

    The seed is also stored in a ``tEXt`` chunk (key ``scene``) so tests can
    tell which code they got. Precondition: ``width > 0``.
    """
    digest = hashlib.sha256(seed.encode()).digest()
    bits = [(byte >> shift) & 1 for byte in digest for shift in range(8)]
    cells = -(-width // _CELL)
    rows: list[bytes] = []
    for cell_row in range(cells):
        pixels = bytearray()
        for cell_col in range(cells):
            dark = bits[(cell_row * cells + cell_col) % len(bits)]
            pixels += (b"\x00" if dark else b"\xff") * _CELL
        # Each scanline starts with filter type 0 (none).
        line = b"\x00" + bytes(pixels[:width])
        rows.extend([line] * min(_CELL, width - cell_row * _CELL))
    header = struct.pack(">IIBBBBB", width, width, 8, 0, 0, 0, 0)
    return b"".join(
        (
            PNG_SIGNATURE,
            _chunk(b"IHDR", header),
            _chunk(b"tEXt", b"scene\x00" + seed.encode("latin-1", "replace")),
            _chunk(b"IDAT", zlib.compress(b"".join(rows), 6)),
            _chunk(b"IEND", b""),
        )
    )
