"""Secrets at rest: AES-256-GCM sealing under the deployment's keys (webhook signing secrets, and
the idempotency store's sealed fields)."""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Sequence

from Crypto.Cipher import AES


class SecretUnsealError(Exception):
    """A sealed secret could not be opened: wrong key, or a row that was tampered with."""


class SecretBox:
    """AES-256-GCM sealing of signing secrets at rest. The first key seals; every key opens what
    it sealed (found by its id), so the deployment key can be rotated. The row's identity is the
    associated data: a sealed secret copied onto another row does not open."""

    _VERSION = "v1"

    def __init__(self, keys: Sequence[bytes]) -> None:
        assert keys, "at least one key"
        for key in keys:
            assert len(key) == 32, "AES-256 keys are 32 bytes"
        self._keys = {self._key_id(key): key for key in reversed(keys)}
        self._sealing_key_id = self._key_id(keys[0])

    @staticmethod
    def _key_id(key: bytes) -> str:
        return hashlib.sha256(b"settle-webhook-secret-key/" + key).hexdigest()[:8]

    def seal(self, plaintext: bytes, *, context: str) -> str:
        nonce = secrets.token_bytes(12)
        cipher = AES.new(self._keys[self._sealing_key_id], AES.MODE_GCM, nonce=nonce)
        cipher.update(context.encode())
        ciphertext, tag = cipher.encrypt_and_digest(plaintext)
        return f"{self._VERSION}.{self._sealing_key_id}.{base64.b64encode(nonce + ciphertext + tag).decode('ascii')}"

    def open(self, sealed: str, *, context: str) -> bytes:
        try:
            version, key_id, payload = sealed.split(".", 2)
            raw = base64.b64decode(payload, validate=True)
        except ValueError as error:
            raise SecretUnsealError("malformed sealed secret") from error
        key = self._keys.get(key_id)
        if version != self._VERSION or key is None or len(raw) < 12 + 16:
            raise SecretUnsealError(f"no key {key_id!r} to open this secret (version {version!r})")
        cipher = AES.new(key, AES.MODE_GCM, nonce=raw[:12])
        cipher.update(context.encode())
        try:
            return cipher.decrypt_and_verify(raw[12:-16], raw[-16:])
        except ValueError as error:
            raise SecretUnsealError("sealed secret failed authentication") from error
