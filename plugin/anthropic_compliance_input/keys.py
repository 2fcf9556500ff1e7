"""Where the API key comes from, in one fixed order shared by `run`, `check` and `key status`.

1. ANTHROPIC_COMPLIANCE_API_KEY            containers and tests
2. a key file ([key] file or ANTHROPIC_COMPLIANCE_API_KEY_FILE), refused if others can read it
3. a systemd credential, $CREDENTIALS_DIRECTORY/anthropic-compliance-input.api-key
4. the OS keyring (Secret Service / Keychain / Credential Locker), service
   anthropic-compliance-input, username = profile

A shipper runs as a system service with no login session, where no Secret Service exists; that is
why the credential stores come before the keyring and why each miss is explained.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from . import NAME
from .config import Config, read_small_file
from .errors import Exit, PluginError
from .keyshape import mask, shape_warning  # noqa: F401  (re-exported for the key commands)
from .logs import register_secret

ENV_KEY = "ANTHROPIC_COMPLIANCE_API_KEY"
ENV_KEY_FILE = "ANTHROPIC_COMPLIANCE_API_KEY_FILE"
CREDENTIAL_NAME = f"{NAME}.api-key"
KEYRING_SERVICE = NAME


@dataclass(frozen=True)
class Found:
    key: str
    source: str


@dataclass(frozen=True)
class Miss:
    source: str
    reason: str


def clean(raw: str, where: str) -> str:
    key = raw.strip().splitlines()[0].strip() if raw.strip() else ""
    if not key:
        raise PluginError(Exit.CONFIG, f"{where} is empty", "store the key there, on one line")
    if not key.isascii() or any(ch.isspace() or not ch.isprintable() for ch in key):
        raise PluginError(Exit.CONFIG, f"{where} holds a key with spaces, control or non-ASCII characters",
                          "store the key alone on one line, exactly as the Claude Console shows it")
    register_secret(key)
    return key


def _read_key_file(path: Path) -> str:
    try:
        info = path.stat()
    except FileNotFoundError:
        raise PluginError(Exit.CONFIG, f"key file {path} does not exist",
                          f"create it: install -m 0600 /dev/stdin {path}  (paste the key, then Ctrl-D)") from None
    except PermissionError:
        raise PluginError(Exit.CONFIG, f"key file {path} cannot be read by this user",
                          "run as the shipper's user or make the file readable by its group (0640)") from None
    except OSError as exc:  # a path through a file (ENOTDIR), a name too long, a loop of links
        raise PluginError(Exit.CONFIG, f"key file {path}: {exc.strerror or exc}", "fix [key] file") from None
    if info.st_mode & (stat.S_IROTH | stat.S_IWOTH | stat.S_IWGRP):
        raise PluginError(
            Exit.CONFIG,
            f"key file {path} is readable or writable by others (mode {stat.S_IMODE(info.st_mode):04o})",
            f"chmod 0600 {path} (or 0640 with the shipper's group)",
        )
    try:  # a regular file of at most 64 KB: a FIFO or a device named by mistake must not hang the run
        raw = read_small_file(path, 64 << 10, "key file")
        return clean(raw.decode("utf-8", "surrogateescape"), f"key file {path}")
    except PermissionError:
        raise PluginError(Exit.CONFIG, f"key file {path} cannot be read by this user",
                          "run as the shipper's user or make the file readable by its group (0640)") from None
    except OSError as exc:
        raise PluginError(Exit.CONFIG, f"key file {path}: {exc.strerror or exc}", "fix [key] file") from None


def keyring_backend() -> tuple[object | None, str]:
    """The usable keyring backend and its name, or None and why not."""
    try:
        import keyring
        from keyring.backends import chainer, fail
        from keyring.backends import null as null_backend
    except Exception as exc:  # a broken install must not hide the other sources
        return None, f"keyring library unusable ({type(exc).__name__}: {exc})"
    try:
        backend = keyring.get_keyring()
    except Exception as exc:
        return None, f"backend unusable ({type(exc).__name__}: {exc})"
    name = f"{type(backend).__module__}.{type(backend).__name__}"
    empty_chain = isinstance(backend, chainer.ChainerBackend) and not backend.backends
    if isinstance(backend, (fail.Keyring, null_backend.Keyring)) or empty_chain:
        if not os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
            return None, ("Secret Service: no D-Bus session (DBUS_SESSION_BUS_ADDRESS unset) — "
                          "normal for a system service")
        return None, f"no usable backend ({name})"
    return backend, name


def _from_keyring(profile: str) -> tuple[str | None, str]:
    backend, name = keyring_backend()
    if backend is None:
        return None, name
    try:
        value = backend.get_password(KEYRING_SERVICE, profile)  # type: ignore[attr-defined]
    except Exception as exc:
        return None, f"{name}: {type(exc).__name__}: {exc}"
    if not value:
        return None, f"{name}: no key stored for profile {profile!r}"
    return value, name


def lookup(cfg: Config) -> tuple[Found | None, list[Miss]]:
    misses: list[Miss] = []
    value = os.environ.get(ENV_KEY)
    if value is not None:
        return Found(clean(value, ENV_KEY), ENV_KEY), misses
    misses.append(Miss(ENV_KEY, "unset"))

    file_name = cfg.key.file or os.path.expanduser(os.environ.get(ENV_KEY_FILE) or "")
    cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
    if file_name:
        credential = Path(cred_dir) / CREDENTIAL_NAME if cred_dir else None
        if credential is not None and credential.exists():
            # a unit loaded a credential for this service and a key file is configured too (a
            # tenant's copy of a config that kept [key] file): one of them is another tenant's key
            raise PluginError(Exit.CONFIG, f"two key sources: key file {file_name} and systemd credential "
                              f"{credential}", "keep one: remove [key] file (or ANTHROPIC_COMPLIANCE_API_KEY_FILE) "
                              "from this service's config, or the LoadCredential line from its unit")
        label = f"key file {file_name}"
        return Found(_read_key_file(Path(file_name)), label), misses
    misses.append(Miss("key file", f"not configured ([key] file, {ENV_KEY_FILE})"))

    if cred_dir:
        cred = Path(cred_dir) / CREDENTIAL_NAME
        label = f"systemd credential {cred}"
        if cred.exists():
            return Found(_read_key_file(cred), label), misses
        misses.append(Miss("systemd credential", f"{cred} absent"))
    else:
        misses.append(Miss("systemd credential", "$CREDENTIALS_DIRECTORY unset"))

    value, detail = _from_keyring(cfg.key.profile)
    if value:
        return Found(clean(value, "OS keyring entry"), f"OS keyring ({detail})"), misses
    misses.append(Miss("OS keyring", detail))
    return None, misses


def find_key(cfg: Config) -> Found:
    found, misses = lookup(cfg)
    if found:
        return found
    tried = "; ".join(f"{m.source}: {m.reason}" for m in misses)
    raise PluginError(
        Exit.CONFIG,
        f"no API key found (tried {tried})",
        f"desktop: `{NAME} key set`; service: a key file ([key] file, mode 0600) or "
        f"LoadCredential={CREDENTIAL_NAME}:/etc/{NAME}/api-key in the shipper's unit; "
        f"container: {ENV_KEY}",
    )


def usable_keyring() -> tuple[object, str]:
    """The backend `key set` will store into; checked before the key is asked for."""
    backend, name = keyring_backend()
    if backend is None:
        raise PluginError(Exit.CONFIG, f"OS keyring unusable: {name}",
                          "on a server, use a key file ([key] file) or a systemd credential instead")
    return backend, name


def store(profile: str, key: str) -> str:
    backend, name = usable_keyring()
    try:
        backend.set_password(KEYRING_SERVICE, profile, key)  # type: ignore[attr-defined]
    except Exception as exc:
        raise PluginError(Exit.CONFIG, f"OS keyring refused the key: {type(exc).__name__}: {exc}",
                          "unlock the keyring, or use a key file / systemd credential") from None
    return name


def delete(profile: str) -> bool:
    backend, name = keyring_backend()
    if backend is None:
        raise PluginError(Exit.CONFIG, f"OS keyring unusable: {name}", "nothing to delete there")
    try:
        backend.delete_password(KEYRING_SERVICE, profile)  # type: ignore[attr-defined]
    except Exception as exc:
        if type(exc).__name__ == "PasswordDeleteError":
            return False
        raise PluginError(Exit.CONFIG, f"OS keyring error: {type(exc).__name__}: {exc}", "") from None
    return True
