"""Snapshots and configs as JSON.

A snapshot is the guest's state as JSON bytes; `restore` rebuilds it exactly. Floats print in
their shortest round-trip form, so they come back bit for bit. JSON object keys are strings,
and Python state is often keyed by instrument id (an int): a dict with any non-string key is
written as `{"$items": [[key, value], ...]}` and read back as a dict with the same keys.
Anything else (sets, tuples, objects) must be turned into lists, dicts or numbers by the guest.
"""

import json

_ITEMS = "$items"


def _encode(v):
    if isinstance(v, dict):
        if all(type(k) is str for k in v):
            return {k: _encode(x) for k, x in v.items()}
        return {_ITEMS: [[k, _encode(x)] for k, x in v.items()]}
    if isinstance(v, (list, tuple)):
        return [_encode(x) for x in v]
    return v


def _hook(d):
    if len(d) == 1 and _ITEMS in d:
        return {k: v for k, v in d[_ITEMS]}
    return d


def dumps(value):
    """JSON bytes of `value` (dicts, lists, str, int, float, bool, None)."""
    return json.dumps(_encode(value), separators=(",", ":"), allow_nan=False).encode()


def loads(data):
    """The value `dumps` wrote."""
    return json.loads(bytes(data), object_hook=_hook)


def canonical(value):
    """Canonical JSON bytes: keys sorted at every level, no whitespace (a projector's state)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def parse_config(text, defaults):
    """A module config: the JSON object in `text` over `defaults` (an empty text gives the
    defaults). Unknown keys are refused, as the Rust SDK refuses them."""
    cfg = dict(defaults)
    if text.strip() == "":
        return cfg
    try:
        given = json.loads(text)
    except ValueError as e:
        raise ValueError(f"invalid module config: {e}") from None
    if not isinstance(given, dict):
        raise ValueError("invalid module config: expected a JSON object")
    for k, v in given.items():
        if k not in cfg:
            known = ", ".join(f"`{x}`" for x in defaults)
            raise ValueError(f"invalid module config: unknown field `{k}`, expected one of {known}")
        cfg[k] = v
    return cfg
