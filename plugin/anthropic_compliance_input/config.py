"""The TOML config, validated with pydantic; every error names the file and the key.

Keys and defaults are a public contract: configs written today must keep working.
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat
import sys
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from . import FORMATS
from .errors import Exit, PluginError
from .keyshape import contains_key
from .logs import check_target
from .timeutil import human_duration, parse_duration

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULT_CONFIG = Path("/etc/anthropic-compliance-input/config.toml")
CONFIG_ENV = "ANTHROPIC_COMPLIANCE_INPUT_CONFIG"

Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
MAX_CONFIG_BYTES = 1 << 20  # a config is a few KB; /dev/zero or a log named by mistake is not one
# An id or a type: one printable token (an empty, NUL or newline entry would reach the query or a log line)
Token = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x20\x7f]+$")]
_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")


class _Section(BaseModel):
    # strict: `page_size = "100"` is refused, not coerced; a quoted number is usually a mistake
    # somewhere else too (a template that quoted every value).
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True)


def _bounded(low: timedelta, high: timedelta) -> Any:
    def check(value: timedelta) -> timedelta:
        if not low <= value <= high:
            raise ValueError(f"must be between {human_duration(low.total_seconds())} and "
                             f"{human_duration(high.total_seconds())}")
        return value
    return AfterValidator(check)


def file_path(value: str) -> str:
    """A path that names a file (not a directory), with ~ expanded: `path = "/"` or `"."`
    would otherwise surface later as a confusing error about a lock or temp file."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a file path")
    expanded = os.path.expanduser(value.strip())
    name = Path(expanded).name
    if expanded.endswith(("/", "/.", "/..")) or name in ("", ".", "..") or os.path.isdir(expanded):
        raise ValueError("must name a file, not a directory (e.g. /var/lib/anthropic-compliance-input/default.db)")
    if "\x00" in expanded:
        raise ValueError("must not contain NUL")
    if any(len(part.encode("utf-8", "surrogateescape")) > 255 for part in Path(expanded).parts) or len(expanded) > 4000:
        raise ValueError("has a name longer than the filesystem allows (255 bytes a name)")
    return expanded


FilePath = Annotated[str, AfterValidator(file_path)]


def existing_file(value: str) -> str:
    if not os.path.isfile(value):
        raise ValueError("no such file (a PEM file of CA certificates)")
    if not os.access(value, os.R_OK):
        raise ValueError("not readable by this user")
    return value


ExistingFile = Annotated[FilePath, AfterValidator(existing_file)]


def check_host(host: str) -> str | None:
    """Why `host` is not a host name or an IP address, or None. Checked at load, so a typo is a
    configuration error (78), not a traceback from deep in requests or a socket call."""
    try:
        ipaddress.ip_address(host.strip("[]"))
        return None
    except ValueError:
        pass
    ascii_host = host
    if not host.isascii():  # bücher.example -> xn--bcher-kva.example, as urllib3 and requests encode it
        import idna

        try:
            idna.encode(host.lower(), strict=True, std3_rules=True)
            ascii_host = idna.encode(host, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError):
            return "is not a valid host name"
    labels = ascii_host.removesuffix(".").split(".")
    if len(ascii_host) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        return "is not a valid host name (letters, digits and hyphens between dots)"
    return None


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ApiConfig(_Section):
    base_url: str = "https://api.anthropic.com"
    organization_ids: list[Token] = []
    activity_types: list[Token] = []
    exclude_activity_types: list[Token] = []
    actor_ids: list[Token] = []
    page_size: int = Field(1000, ge=1, le=5000)
    timeout_seconds: float = Field(30, gt=0, le=600)
    ca_bundle: ExistingFile | None = None  # checked at load: requests would fail with a traceback
    max_retries: int = Field(8, ge=0, le=20)
    retry_backoff_seconds: float = Field(0.5, ge=0, le=60)
    # below this share of the organization's request budget (600/min, shared by all its keys), pace
    min_rate_remaining: float = Field(0.2, ge=0, lt=1)

    @field_validator("base_url")
    @classmethod
    def _https_unless_loopback(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("must be an https:// URL such as https://api.anthropic.com")
        try:
            port = parts.port
        except ValueError:
            port = 0
        if port == 0:
            raise ValueError("has a port that is not a number from 1 to 65535")
        if parts.username is not None or parts.password is not None:
            raise ValueError("must not carry a user or password (the key goes in its own header)")
        problem = check_host(parts.hostname) or (
            "has a path that is not printable text" if re.search(r"[\x00-\x20\x7f]", parts.path) else None)
        if problem:
            raise ValueError(problem)
        if parts.scheme == "http" and not is_loopback(parts.hostname):
            raise ValueError("must use https (plain http is allowed only for loopback addresses)")
        if parts.query or parts.fragment:
            raise ValueError("must not carry a query string or fragment")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _types_xor_exclude(self) -> "ApiConfig":
        if self.activity_types and self.exclude_activity_types:
            raise ValueError(
                "activity_types and exclude_activity_types cannot both be set (the API refuses it)"
            )
        return self


class KeyConfig(_Section):
    profile: str = Field("default", min_length=1)
    file: FilePath | None = None


class StateConfig(_Section):
    path: FilePath = "/var/lib/anthropic-compliance-input/default.db"


class CollectConfig(_Section):
    interval_seconds: float = Field(60, ge=0.1, le=86400)  # a tiny one would spin under --follow
    settle_delay_seconds: float = Field(60, ge=0, le=3600)
    overlap_seconds: float = Field(300, ge=0, le=86400)
    # the API keeps 6 years; a first run cannot usefully start before that
    initial_lookback: Annotated[Duration, _bounded(timedelta(0), timedelta(days=6 * 366))] = timedelta(hours=24)
    # Access Transparency may arrive two business days late: Friday to Tuesday is 96 h, so 7 days
    late_lookback: Annotated[Duration, _bounded(timedelta(0), timedelta(days=90))] = timedelta(days=7)
    late_activity_types: list[Token] = ["anthropic_access", "cmek_preserve"]
    # off by default: every so often re-read ALL types over deep_reconcile_lookback, to prove that
    # nothing indexed later than the overlap was missed (the seen set then keeps that window's ids)
    deep_reconcile_interval: Annotated[Duration, _bounded(timedelta(0), timedelta(days=30))] = timedelta(0)
    deep_reconcile_lookback: Annotated[Duration, _bounded(timedelta(minutes=10), timedelta(days=90))] = timedelta(days=1)

    @model_validator(mode="after")
    def _deep_reaches_past_the_overlap(self) -> "CollectConfig":
        if self.deep_reconcile_interval and (self.deep_reconcile_lookback.total_seconds()
                                             <= self.settle_delay_seconds + self.overlap_seconds):
            raise ValueError("deep_reconcile_lookback must be longer than settle_delay_seconds + overlap_seconds "
                             "(the regular windows already cover that much)")
        return self


class OutputConfig(_Section):
    mode: Literal["stdout", "forward"] = "stdout"
    forward_host: str = "127.0.0.1"  # a host name, an IP address or unix:///path/to/socket
    forward_port: int = Field(24224, ge=1, le=65535)
    forward_tag: str = Field("anthropic.activity", min_length=1)
    forward_timeout_seconds: float = Field(3.0, gt=0, le=600)
    forward_require_ack: bool = True  # commit only what the receiver acknowledged
    forward_ack_timeout_seconds: float = Field(30.0, gt=0, le=600)
    # Fluent Bit's forward input drops a connection whose message exceeds Buffer_Max_Size (6 MB)
    forward_chunk_max_bytes: int = Field(4 << 20, ge=4096, le=64 << 20)
    # what a line (or forward record) holds: the record as received, or it in ECS or OCSF
    format: Literal[FORMATS] = "raw"  # type: ignore[valid-type]
    keep_original: bool = False  # ecs/ocsf: add the record as received (event.original / raw_data)

    @field_validator("forward_host")
    @classmethod
    def _host_or_socket(cls, value: str) -> str:
        if value.startswith("unix://"):
            return "unix://" + file_path(value.removeprefix("unix://"))  # ~ expanded
        problem = check_host(value)
        if problem:
            raise ValueError(f"{problem}; or unix:///path/to/socket")
        return value.removeprefix("[").removesuffix("]")  # [::1] -> ::1, as a socket address takes it


class LogConfig(_Section):
    target: Annotated[str, AfterValidator(check_target)] = "stderr"  # --log-target wins


class MetricsConfig(_Section):
    textfile: FilePath | None = None  # Prometheus text format, for node_exporter's textfile collector

    @field_validator("textfile")
    @classmethod
    def _prom_suffix(cls, value: str | None) -> str | None:
        if value is not None and not value.endswith(".prom"):
            raise ValueError("must end in .prom (node_exporter's textfile collector reads only *.prom)")
        return value


class Config(_Section):
    api: ApiConfig = ApiConfig()
    key: KeyConfig = KeyConfig()
    state: StateConfig = StateConfig()
    collect: CollectConfig = CollectConfig()
    output: OutputConfig = OutputConfig()
    log: LogConfig = LogConfig()
    metrics: MetricsConfig = MetricsConfig()


class LoadedConfig:
    """A validated config and where it came from (None: built-in defaults)."""

    def __init__(self, config: Config, source: Path | None) -> None:
        self.config = config
        self.source = source

    def describe(self) -> str:
        return str(self.source) if self.source else "built-in defaults (no config file)"


def config_path(arg: str | None) -> tuple[Path, bool]:
    """The path to read and whether the operator named it explicitly."""
    if arg:
        return Path(os.path.expanduser(arg)), True
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(os.path.expanduser(env)), True
    return DEFAULT_CONFIG, False


def load_config(arg: str | None) -> LoadedConfig:
    path, explicit = config_path(arg)
    try:
        raw_bytes = read_small_file(path, MAX_CONFIG_BYTES, "config")
    except FileNotFoundError:
        if explicit:
            raise PluginError(
                Exit.CONFIG,
                f"config {path}: file not found",
                f"create it (see {DEFAULT_CONFIG.parent}/config.toml in the package) or fix "
                + ("--config" if arg else f"${CONFIG_ENV}"),
            ) from None
        return LoadedConfig(Config(), None)
    except OSError as exc:
        raise PluginError(Exit.CONFIG, f"config {path}: cannot read: {exc.strerror}",
                          "check the file's permissions") from None
    text = raw_bytes.decode("utf-8", errors="replace")
    if contains_key(text):
        raise PluginError(
            Exit.CONFIG,
            f"config {path}: contains what looks like an API key; keys are refused in config files",
            "remove it and store the key with `anthropic-compliance-input key set`, "
            "a key file ([key] file) or a systemd credential",
        )
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PluginError(Exit.CONFIG, f"config {path}: not valid TOML: {exc}",
                          "fix the syntax at that line") from None
    return LoadedConfig(parse_config(data, path), path)


def read_small_file(path: Path, limit: int, what: str) -> bytes:
    """A regular file's bytes, at most `limit` of them: a FIFO would block the read for ever and
    /dev/zero never end it, so anything else is a configuration error."""
    if not stat.S_ISREG(os.stat(path).st_mode):  # before open(): a FIFO's blocks, a socket's fails
        raise PluginError(Exit.CONFIG, f"{what} {path} is not a regular file",
                          "write it to a file (a pipe can be read once; --follow and SIGHUP read it again)")
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # replaced by a FIFO since: no block
    with open(fd, "rb", buffering=0) as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise PluginError(Exit.CONFIG, f"{what} {path} is not a regular file", "write it to a file")
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise PluginError(Exit.CONFIG, f"{what} {path} is larger than {limit} bytes", f"is it the {what} file?")
    return data


def parse_config(data: dict[str, Any], path: Path | str) -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(part) for part in err["loc"]) or "(top level)"
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            elif "input" in err and not isinstance(err["input"], (dict, list)):
                msg += f" (got {err['input']!r})"
            problems.append(f"{key}: {msg}")
        raise PluginError(Exit.CONFIG, f"config {path}: " + "; ".join(problems),
                          "fix the key(s) named and run again") from None
