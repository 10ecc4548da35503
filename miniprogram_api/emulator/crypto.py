"""Encrypt user data the way WeChat does for ``wx.getUserInfo``'s encryptedData."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


def encrypt_user_data(session_key: str, plaintext: dict[str, Any]) -> tuple[str, str]:
    """Return ``(encrypted_data, iv)``, both base64, of ``plaintext`` as JSON.

    AES-128-CBC, key = base64-decode(session_key), random 16-byte iv, PKCS#7.
    Precondition: ``session_key`` is base64 of 16 bytes.
    """
    key = base64.b64decode(session_key)
    iv = os.urandom(16)
    padder = padding.PKCS7(128).padder()
    raw = json.dumps(plaintext, ensure_ascii=False).encode()
    padded = padder.update(raw) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    encrypted = encryptor.update(padded) + encryptor.finalize()
    return base64.b64encode(encrypted).decode(), base64.b64encode(iv).decode()


def raw_data_signature(raw_data: str, session_key: str) -> str:
    """WeChat's ``signature`` of ``rawData``: sha1(rawData + session_key) in hex."""
    return hashlib.sha1((raw_data + session_key).encode()).hexdigest()
