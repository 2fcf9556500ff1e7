"""`key set`, `key status`, `key delete`: the operator's side of keys.py. The key is read from a
prompt or stdin, never from argv, and printed only masked."""

from __future__ import annotations

import sys

from . import keys
from .config import Config, load_config
from .errors import Exit
from .keyshape import mask, shape_warning
from .logs import log


def _config(config: str | None, profile: str | None) -> Config:
    cfg = load_config(config).config
    if profile:
        cfg = cfg.model_copy(update={"key": cfg.key.model_copy(update={"profile": profile})})
    return cfg


def key_set(config: str | None, profile: str | None, verify: bool) -> int:
    cfg = _config(config, profile)
    keys.usable_keyring()  # before the prompt: nobody should type a key that cannot be kept
    if sys.stdin.isatty():
        import getpass

        raw = getpass.getpass("Compliance API key (input hidden): ")
    else:
        raw = sys.stdin.readline()
    key = keys.clean(raw, "the key read from stdin")
    warning = shape_warning(key)
    if warning:
        log.warning("%s", warning)
    if verify:
        from .api import probe

        page = probe(cfg.api, key)
        log.info("key verified: the API answered (request-id %s)", page.request_id)
    backend = keys.store(cfg.key.profile, key)
    print(f"stored {mask(key)} for profile {cfg.key.profile!r} in the OS keyring ({backend})")
    return Exit.OK


def key_status(config: str | None, profile: str | None) -> int:
    cfg = _config(config, profile)
    found, misses = keys.lookup(cfg)
    for miss in misses:
        print(f"  {miss.source}: {miss.reason}")
    if not found:
        print(f"no key: none of the sources above has one (profile {cfg.key.profile!r})")
        return Exit.CONFIG
    print(f"the next run uses: {found.source}")
    print(f"key: {mask(found.key)}")
    warning = shape_warning(found.key)
    if warning:
        print(f"warning: {warning}")
    return Exit.OK


def key_delete(config: str | None, profile: str | None) -> int:
    cfg = _config(config, profile)
    if keys.delete(cfg.key.profile):
        print(f"deleted the key for profile {cfg.key.profile!r} from the OS keyring")
    else:
        print(f"no key stored for profile {cfg.key.profile!r} in the OS keyring")
    return Exit.OK
