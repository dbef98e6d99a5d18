"""Salesforce record ids: 15-character case-sensitive ids and their 18-character form.

The three suffix characters encode, five characters at a time, which characters of the
15-character id are upper-case letters, so that the 18-character id survives tools that
ignore case. The API always answers 18-character ids; Outbound Messages and users paste
either form, so ids are normalised to 18 characters before being compared or used as keys.
"""

from __future__ import annotations

import string

__all__ = ["checksum", "is_valid_id", "to_18"]

_SUFFIX = string.ascii_uppercase + "012345"
_ID_CHARS = frozenset(string.ascii_letters + string.digits)


def checksum(id15: str) -> str:
    """The three-character suffix of a 15-character id."""
    if len(id15) != 15 or not set(id15) <= _ID_CHARS:
        raise ValueError(f"not a 15-character Salesforce id: {id15!r}")
    suffix = ""
    for start in (0, 5, 10):
        bits = 0
        for offset, char in enumerate(id15[start : start + 5]):
            if "A" <= char <= "Z":
                bits |= 1 << offset
        suffix += _SUFFIX[bits]
    return suffix


def to_18(record_id: str) -> str:
    """``record_id`` as its 18-character form; raises :class:`ValueError` on anything else."""
    if len(record_id) == 18:
        if not is_valid_id(record_id):
            raise ValueError(f"18-character Salesforce id with a wrong checksum: {record_id!r}")
        return record_id
    return record_id + checksum(record_id)


def is_valid_id(record_id: str) -> bool:
    """Whether ``record_id`` is an 18-character id whose suffix matches its first 15 characters."""
    if len(record_id) != 18:
        return False
    try:
        # the suffix is case-insensitive; the id part is not
        return checksum(record_id[:15]) == record_id[15:].upper()
    except ValueError:
        return False
