"""How jobs and results are stored in Redis: msgpack via msgspec, never pickle.

Pickle would let anyone who can write to Redis run code in the worker, and ties stored jobs
to Python class paths. Job arguments are ids and small primitives, so msgpack carries them.
A failed job's result is its exception, which msgpack cannot carry: it is stored as text.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["deserialize", "serialize"]


def _fallback(obj: Any) -> Any:
    if isinstance(obj, BaseException):
        return f"{type(obj).__name__}: {obj}"
    raise NotImplementedError(f"jobs carry ids and primitives only, not {type(obj).__name__}")


_encoder = msgspec.msgpack.Encoder(enc_hook=_fallback)
_decoder = msgspec.msgpack.Decoder()


def serialize(value: Any) -> bytes:
    """Encode a job or a result for Redis."""
    return _encoder.encode(value)


def deserialize(data: bytes) -> Any:
    """Decode what :func:`serialize` wrote."""
    return _decoder.decode(data)
