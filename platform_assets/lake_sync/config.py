"""Lake sync profiles: the YAML file, its pydantic models, and validation errors that name the profile and field.

A profile says where data comes from (a remote directory on a collection node, reached with rsync over SSH)
and where it lands (a domain's landing directory under `$PLATFORM_DATA_DIR`). The file looks like this (the
full reference is docs/lake_sync.md)::

    defaults:                      # optional: every profile inherits these unless it sets them
      user: collector
      ssh_key: ~/.ssh/lake_sync_ed25519
    profiles:
      events-node1:
        host: collector-1.internal
        remote_path: /data/user_events/
        target: landing/user_events
        retention_days: 30

Local paths (`ssh_key`, `known_hosts_file`, `target`, `parquet_target`, `state_dir`) expand `~` and
environment variables; an unset variable is an error, never an empty string. `remote_path` is taken as written
(its `~` is the remote user's home).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from platform_assets.lib.config import PlatformSettings, get_settings

CONFIG_ENV = "PLATFORM_LAKE_SYNC_CONFIG"
CONFIG_FILE_NAME = "lake_sync.yaml"

# The three common layouts; any strftime-style pattern with %Y, %m and %d also works.
DATE_FORMAT_ALIASES = {"YYYY-MM-DD": "%Y-%m-%d", "YYYYMMDD": "%Y%m%d", "YYYY/MM/DD": "%Y/%m/%d"}
DEFAULT_DATE_FORMATS = ("YYYY-MM-DD", "YYYYMMDD", "YYYY/MM/DD")

# Profile names become file names (checkpoints, locks) and Dagster partition keys.
PROFILE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# A host name or an IPv4/IPv6 literal; never starting with '-', which ssh would read as an option.
_HOST_RE = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,252})|\[?[0-9A-Fa-f:.]+(?:%[A-Za-z0-9]+)?\]?)$")
_USER_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
_SSH_OPTION_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")
_BWLIMIT_RE = re.compile(r"^\d+(?:\.\d+)?[KMGkmg]?$")
_UNSET_VAR_RE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


class LakeSyncConfigError(ValueError):
    """The profiles file is missing, unreadable or invalid; `problems` holds one line per problem.

    `str(error)` is a single line (the first problem, plus how many more) so a CLI can print it as its reason.
    """

    def __init__(self, path: Path | str, problems: list[str]) -> None:
        self.path = Path(path)
        self.problems = problems or [f"{path}: invalid lake sync configuration"]
        more = len(self.problems) - 1
        super().__init__(self.problems[0] + (f" (and {more} more problem(s))" if more else ""))


def default_config_path() -> Path:
    """The profiles file: `$PLATFORM_LAKE_SYNC_CONFIG`, else `$PLATFORM_DATA_DIR/lake_sync.yaml`."""
    return get_settings().lake_sync_config.resolve()


def expand_local_path(value: str) -> str:
    """Expand environment variables and `~`; raise ValueError naming any variable that is not set."""
    expanded = os.path.expandvars(value)
    unset = sorted({a or b for a, b in _UNSET_VAR_RE.findall(expanded)})
    if unset:
        raise ValueError(f"environment variable(s) {', '.join(unset)} not set (in {value!r})")
    return os.path.expanduser(expanded)


def compile_date_format(fmt: str) -> re.Pattern[str]:
    """A regex for one date layout (an alias such as YYYYMMDD or a strftime pattern with %Y, %m and %d).

    The groups are named year, month and day. Digits right before or after the match do not count, so an
    8-digit run inside a longer number is not mistaken for a date.
    """
    pattern = DATE_FORMAT_ALIASES.get(fmt, fmt)
    directives = re.findall(r"%(.)", pattern)
    if sorted(directives) != ["Y", "d", "m"]:
        raise ValueError(
            f"date format {fmt!r} must contain %Y, %m and %d exactly once and no other % directive "
            f"(or be one of {', '.join(DATE_FORMAT_ALIASES)})"
        )
    groups = {"Y": r"(?P<year>\d{4})", "m": r"(?P<month>\d{2})", "d": r"(?P<day>\d{2})"}
    regex = "".join(
        groups[piece[1]] if piece.startswith("%") else re.escape(piece)
        for piece in re.split(r"(%[Ymd])", pattern)
        if piece
    )
    return re.compile(rf"(?<!\d){regex}(?!\d)")


def _check_target(value: str, field: str) -> str:
    """A landing target: `landing/<domain>[/…]` under the data dir, or an absolute path that is not `/`."""
    expanded = expand_local_path(value)
    path = Path(expanded)
    if path.is_absolute():
        if len(path.resolve().parts) < 2:
            raise ValueError(f"{field} {value!r} resolves to the filesystem root; name a dedicated directory")
        return expanded
    parts = path.parts
    if ".." in parts:
        raise ValueError(f"{field} {value!r} must not contain '..'")
    if len(parts) < 2 or parts[0] != "landing":
        raise ValueError(
            f"{field} {value!r} must be a domain's landing directory such as 'landing/user_events' "
            "(relative to $PLATFORM_DATA_DIR) or an absolute path"
        )
    return path.as_posix()


class ProfileConfig(BaseModel):
    """One sync profile: a remote directory on a collection node and the landing directory it syncs into."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="The profile's name (its key in `profiles:`).")
    host: str = Field(description="Collection node host name or IP address.")
    port: int = Field(default=22, ge=1, le=65535, description="SSH port.")
    user: str | None = Field(default=None, description="SSH user; unset: ssh's default (the local user).")
    ssh_key: str | None = Field(
        default=None, description="Private key file (~ and $VARS expand); unset: ssh's defaults and agent."
    )
    remote_path: str = Field(description="Directory on the remote host whose content is synced.")
    include: tuple[str, ...] = Field(
        default=(), description="rsync patterns to take (e.g. '*.csv'); unset: every file."
    )
    exclude: tuple[str, ...] = Field(default=(), description="rsync patterns to skip; they win over include.")
    target: str = Field(
        description="Landing directory, e.g. 'landing/user_events' (under $PLATFORM_DATA_DIR)."
    )
    parquet_target: str | None = Field(
        default=None,
        description="When set, each landed CSV is also converted to Parquet here (same relative path).",
    )
    retention_days: int | None = Field(
        default=None, ge=1, description="Delete landed data whose path date is older; unset: keep forever."
    )
    date_formats: tuple[str, ...] = Field(
        default=DEFAULT_DATE_FORMATS, description="Date layouts in paths (YYYY-MM-DD, YYYYMMDD, YYYY/MM/DD…)."
    )
    bwlimit: str | None = Field(
        default=None, description="Bandwidth limit: KiB/s as a number, or with a unit ('500K', '5M')."
    )
    verify: Literal["checksum", "none"] = Field(
        default="checksum", description="After transfer, compare checksums of what landed with the source."
    )
    connect_timeout_s: int = Field(default=10, ge=1, le=600, description="SSH connection timeout.")
    io_timeout_s: int = Field(default=300, ge=1, le=86400, description="rsync I/O timeout (no data moving).")
    strict_host_key_checking: Literal["yes", "accept-new", "no"] = Field(
        default="accept-new", description="ssh StrictHostKeyChecking."
    )
    known_hosts_file: str | None = Field(default=None, description="ssh UserKnownHostsFile.")
    ssh_options: dict[str, str] = Field(default_factory=dict, description="Extra `ssh -o Key=Value` options.")
    rsync_path: str | None = Field(default=None, description="rsync on the remote host, when not on PATH.")
    enabled: bool = Field(default=True, description="Disabled profiles are skipped by --all and schedules.")
    description: str = Field(default="", description="Free text shown in stats and in the Dagster UI.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not PROFILE_NAME_RE.match(value):
            raise ValueError(
                "must be 1-64 characters: letters, digits, '_', '.', '-', starting with a letter or digit"
            )
        return value

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        if not _HOST_RE.match(value) or value.startswith("-"):
            raise ValueError(f"{value!r} is not a host name or IP address")
        return value.strip("[]")

    @field_validator("user")
    @classmethod
    def _user(cls, value: str | None) -> str | None:
        if value is not None and not _USER_RE.match(value):
            raise ValueError(f"{value!r} is not a valid user name")
        return value

    @field_validator("ssh_key", "known_hosts_file")
    @classmethod
    def _local_file(cls, value: str | None) -> str | None:
        return None if value is None else str(Path(expand_local_path(value)).absolute())

    @field_validator("remote_path")
    @classmethod
    def _remote_path(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        if "\n" in value or "\0" in value:
            raise ValueError("must not contain newlines or NUL")
        # A trailing slash makes rsync copy the directory's content, not the directory itself.
        return value if value.endswith("/") else value + "/"

    @field_validator("target")
    @classmethod
    def _target(cls, value: str) -> str:
        return _check_target(value, "target")

    @field_validator("parquet_target")
    @classmethod
    def _parquet_target(cls, value: str | None) -> str | None:
        return None if value is None else _check_target(value, "parquet_target")

    @field_validator("date_formats")
    @classmethod
    def _date_formats(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("name at least one date layout, e.g. YYYY-MM-DD")
        for fmt in value:
            compile_date_format(fmt)
        return value

    @field_validator("bwlimit", mode="before")
    @classmethod
    def _bwlimit(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError("must be a number of KiB/s or a string such as '500K' or '5M'")
        text = str(value).strip()
        if not _BWLIMIT_RE.match(text):
            raise ValueError(f"{value!r} is not a bandwidth: use KiB/s (e.g. 2000) or a unit ('500K', '5M')")
        return text

    @field_validator("ssh_options")
    @classmethod
    def _ssh_options(cls, value: dict[str, str]) -> dict[str, str]:
        for key, option in value.items():
            if not _SSH_OPTION_RE.match(key):
                raise ValueError(f"{key!r} is not an ssh option name")
            if "\n" in str(option):
                raise ValueError(f"option {key} must not contain a newline")
        return {key: str(option) for key, option in value.items()}

    @field_validator("include", "exclude")
    @classmethod
    def _patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            if not pattern or "\n" in pattern:
                raise ValueError(f"{pattern!r} is not a pattern")
        return value

    @model_validator(mode="after")
    def _distinct_targets(self) -> ProfileConfig:
        if self.parquet_target is not None and self.parquet_target == self.target:
            raise ValueError("parquet_target must differ from target (raw would read each row twice)")
        return self

    # -- derived values -------------------------------------------------------------------------------------

    def target_dir(self, settings: PlatformSettings | None = None) -> Path:
        """The absolute landing directory, resolved against `$PLATFORM_DATA_DIR` at call time."""
        return _resolve_target(self.target, settings)

    def parquet_dir(self, settings: PlatformSettings | None = None) -> Path | None:
        """Where converted Parquet files go, or None when conversion is off."""
        return None if self.parquet_target is None else _resolve_target(self.parquet_target, settings)

    @property
    def domain(self) -> str | None:
        """The landing domain the target belongs to (`landing/<domain>/…`), when the target is relative."""
        parts = Path(self.target).parts
        return parts[1] if not Path(self.target).is_absolute() and len(parts) >= 2 else None

    @property
    def destination(self) -> str:
        """`user@host` (or just host) as ssh and rsync take it."""
        return f"{self.user}@{self.host}" if self.user else self.host

    @property
    def display(self) -> str:
        """`user@host:port:path`, for messages."""
        return f"{self.destination}:{self.port}:{self.remote_path}"

    def date_patterns(self) -> list[re.Pattern[str]]:
        """Compiled regexes of this profile's date layouts."""
        return [compile_date_format(fmt) for fmt in self.date_formats]


def _resolve_target(target: str, settings: PlatformSettings | None) -> Path:
    path = Path(target)
    if path.is_absolute():
        return path.resolve()
    return ((settings or get_settings()).data_dir / path).resolve()


@dataclass(frozen=True)
class LakeSyncConfig:
    """Every profile of one profiles file, validated."""

    path: Path
    profiles: dict[str, ProfileConfig]
    state_dir_setting: str | None = None

    def profile(self, name: str) -> ProfileConfig:
        """One profile by name; the error lists the names that exist."""
        try:
            return self.profiles[name]
        except KeyError:
            known = ", ".join(sorted(self.profiles)) or "none"
            raise LakeSyncConfigError(
                self.path, [f"{self.path}: no profile {name!r} (profiles: {known})"]
            ) from None

    def enabled_profiles(self) -> list[ProfileConfig]:
        """Profiles with `enabled: true`, in file order."""
        return [p for p in self.profiles.values() if p.enabled]

    def state_dir(self, settings: PlatformSettings | None = None) -> Path:
        """Where checkpoints and locks live: `state_dir` from the file, else `$PLATFORM_DATA_DIR/lake_sync`."""
        if self.state_dir_setting:
            return _resolve_target_dir(self.state_dir_setting, settings)
        return (settings or get_settings()).data_dir / "lake_sync"


def _resolve_target_dir(value: str, settings: PlatformSettings | None) -> Path:
    path = Path(value)
    return path.resolve() if path.is_absolute() else ((settings or get_settings()).data_dir / path).resolve()


# -- loading ------------------------------------------------------------------------------------------------

_TOP_LEVEL_KEYS = {"version", "defaults", "profiles", "state_dir"}
_Loader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


_Lines = dict[str, tuple[int, dict[str, int]]]


def _key_lines(node: yaml.Node | None) -> tuple[_Lines, dict[str, int]]:
    """Line numbers of each profile and its fields, and of each field under `defaults`, from the YAML tree."""
    profiles: _Lines = {}
    defaults: dict[str, int] = {}
    if not isinstance(node, yaml.MappingNode):
        return profiles, defaults
    for key, value in node.value:
        if not isinstance(value, yaml.MappingNode):
            continue
        if getattr(key, "value", None) == "defaults":
            defaults = {str(k.value): k.start_mark.line + 1 for k, _ in value.value}
        elif getattr(key, "value", None) == "profiles":
            for profile_key, profile_node in value.value:
                fields: dict[str, int] = {}
                if isinstance(profile_node, yaml.MappingNode):
                    fields = {str(k.value): k.start_mark.line + 1 for k, _ in profile_node.value}
                profiles[str(profile_key.value)] = (profile_key.start_mark.line + 1, fields)
    return profiles, defaults


def _parse_yaml(text: str, path: Path) -> tuple[Any, _Lines, dict[str, int]]:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise LakeSyncConfigError(path, [f"{where}: invalid YAML: {problem}"]) from None
    finally:
        loader.dispose()
    return (data, *_key_lines(node))


def _format_error(
    path: Path,
    name: str,
    error: Mapping[str, Any],
    lines: tuple[int, dict[str, int]] | None,
    inherited: set[str],
    default_lines: dict[str, int],
) -> str:
    loc = [str(part) for part in error.get("loc", ())]
    field = loc[0] if loc else None
    line = None
    if field in inherited:
        line = default_lines.get(field)
    elif lines is not None:
        line = lines[1].get(field, lines[0]) if field else lines[0]
    where = f"{path}:{line}" if line else str(path)
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    if error.get("type") == "extra_forbidden":
        message = "unknown field (check the spelling; see docs/lake_sync.md for the fields)"
    elif error.get("type") == "missing":
        message = "required field is missing"
    if field is None:
        return f"{where}: profile {name!r}: {message}"
    field_text = ".".join(loc)
    origin = " (from defaults)" if field in inherited else ""
    value = error.get("input")
    # Our own validators already quote the value; pydantic's built-in messages do not.
    quote = error.get("type") not in ("missing", "extra_forbidden", "value_error") and not isinstance(
        value, dict
    )
    shown = f" (got {value!r})" if quote else ""
    return f"{where}: profile {name!r}: field {field_text!r}{origin}: {message}{shown}"


def parse_config(text: str, path: Path | str = "<string>") -> LakeSyncConfig:
    """Validate the text of a profiles file; raise LakeSyncConfigError listing every problem."""
    path = Path(path)
    data, lines, default_lines = _parse_yaml(text, path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise LakeSyncConfigError(path, [f"{path}: expected a mapping with a 'profiles:' section at the top"])
    problems: list[str] = []
    unknown = sorted(str(k) for k in data if k not in _TOP_LEVEL_KEYS)
    if unknown:
        problems.append(
            f"{path}: unknown top-level key(s) {unknown}; expected {sorted(_TOP_LEVEL_KEYS)} "
            "(profiles go under 'profiles:')"
        )
    version = data.get("version", 1)
    if version != 1:
        problems.append(f"{path}: version {version!r} is not supported (expected 1)")
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        problems.append(f"{path}: 'defaults' must be a mapping of profile fields")
        defaults = {}
    if "name" in defaults:
        problems.append(f"{path}: 'defaults' cannot set 'name'")
    state_dir = data.get("state_dir")
    if state_dir is not None:
        try:
            state_dir = expand_local_path(str(state_dir))
        except ValueError as err:
            problems.append(f"{path}: state_dir: {err}")
    raw_profiles = data.get("profiles")
    if raw_profiles is None:
        raw_profiles = {}
    if not isinstance(raw_profiles, dict):
        problems.append(f"{path}: 'profiles' must be a mapping of profile name to its fields")
        raw_profiles = {}
    profiles: dict[str, ProfileConfig] = {}
    for raw_name, fields in raw_profiles.items():
        name = str(raw_name)
        if fields is None:
            fields = {}
        if not isinstance(fields, dict):
            where = f"{path}:{lines[name][0]}" if name in lines else str(path)
            problems.append(
                f"{where}: profile {name!r}: expected a mapping of fields, got {type(fields).__name__}"
            )
            continue
        if "name" in fields:
            where = f"{path}:{lines[name][1]['name']}" if name in lines else str(path)
            problems.append(
                f"{where}: profile {name!r}: field 'name': the name is the profile's key; remove it"
            )
            continue
        inherited = {k for k in defaults if k not in fields}
        merged = {**defaults, **fields, "name": name}
        try:
            profiles[name] = ProfileConfig.model_validate(merged)
        except ValidationError as err:
            problems.extend(
                _format_error(path, name, e, lines.get(name), inherited, default_lines)
                for e in err.errors(include_url=False)
            )
    if problems:
        raise LakeSyncConfigError(path, problems)
    return LakeSyncConfig(path=path, profiles=profiles, state_dir_setting=state_dir)


def load_config(path: Path | str | None = None) -> LakeSyncConfig:
    """Read and validate the profiles file (default: `default_config_path()`)."""
    config_path = Path(expand_local_path(str(path))) if path is not None else default_config_path()
    try:
        text = config_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LakeSyncConfigError(
            config_path,
            [
                f"{config_path}: lake sync profiles file not found (create it, set {CONFIG_ENV}, or pass "
                "--config; see docs/lake_sync.md)"
            ],
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise LakeSyncConfigError(config_path, [f"{config_path}: cannot read: {err}"]) from None
    return parse_config(text, config_path)
