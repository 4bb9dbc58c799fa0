"""The mesh configuration (``ap.toml``) and the state directory.

Every key has an embedded default, so ``ap up`` with no file runs the whole mesh.
Shape of ``ap.toml`` (all tables optional)::

    [mesh]                      # the journal's endpoints; "*" as port = a free port
    ingest = "tcp://127.0.0.1:5555"
    bus = "tcp://127.0.0.1:5556"
    replay = "tcp://127.0.0.1:5557"
    dashboard = "http://127.0.0.1:8765/"
    bus_hwm = 100000            # per-subscriber queue; a slower one loses messages and
                                # refills them from the log

    [eventlog]
    durability = "fsync"        # or "none"
    map_size_mb = 64            # initial LMDB map size; it grows when full
    max_batch_events = 10000    # ingest limit per append request
    max_batch_bytes = 16777216

    [supervisor]
    max_restarts = 5            # restarts of one actor within restart_window_s ...
    restart_window_s = 60.0     # ... after which the supervisor gives up on it
    backoff_initial_s = 0.1     # first restart delay, doubled per quick crash
    backoff_max_s = 5.0
    stop_timeout_s = 10.0       # SIGTERM -> SIGKILL grace per actor at shutdown
    priority = true             # run the serial actors (journal, broadcaster, scheduler)
                                # 10 nice levels above the workers, log monitors and
                                # agents: lowered when permitted (CAP_SYS_NICE or
                                # RLIMIT_NICE), else the per-agent actors are raised

    [security]
    keys = "keys"               # CurveZMQ keys directory (`ap keys generate`), relative
                                # to this file; needed when an endpoint of [mesh] is not
                                # loopback (ap_actors/security.py); none = plain ZeroMQ

    [pipeline]
    enabled = true              # run the AP pipeline actors: planner, scope_validator,
                                # scheduler, reporter, and a worker and a log_monitor per
                                # worker of the team; false = the runtime only
    team = "team.toml"          # the team file (ap_actors/team.py), relative to this
                                # file; `ap up --team` overrides; none = no workers

    [actors.NAME]               # one table per actor process
    class = "package.module:ClassName"
    enabled = true
    options = { ... }           # passed to the actor as its `options`

A pipeline actor's table (``[actors.planner]``, ``[actors.scheduler]`` ...) may leave out
``class`` to keep the built-in one and set only ``enabled`` or ``options``.
``<state dir>/mesh-config.json`` holds the effective config of a running mesh (defaults,
the file, the team's actors); the actor processes read that one.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

import msgspec

from ap_actors.errors import ConfigError

STATE_DIR_ENV = "AP_STATE_DIR"
MAX_MAP_SIZE_MB = 2**30  # 1 PiB: the initial LMDB map must fit the address space
DEFAULT_STATE_DIR = ".ap"


class MeshConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    ingest: str = "tcp://127.0.0.1:5555"
    bus: str = "tcp://127.0.0.1:5556"
    replay: str = "tcp://127.0.0.1:5557"
    dashboard: str = "http://127.0.0.1:8765/"
    bus_hwm: int = 100_000  # messages queued per bus subscriber before ZeroMQ drops for it


class EventLogConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    durability: Literal["fsync", "none"] = "fsync"
    map_size_mb: int = 64
    max_batch_events: int = 10_000
    max_batch_bytes: int = 16 * 1024 * 1024


class SupervisorConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    max_restarts: int = 5
    restart_window_s: float = 60.0
    backoff_initial_s: float = 0.1
    backoff_max_s: float = 5.0
    stop_timeout_s: float = 10.0
    priority: bool = True  # Serial actors 10 nice levels above per-agent ones (docstring).


class SecurityConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    keys: str | None = None  # CurveZMQ keys directory; None = no CURVE (loopback only).


class PipelineConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    enabled: bool = True  # Run the AP pipeline actors (see the module docstring).
    team: str | None = None  # Team file; relative paths are relative to the config file.


class ActorConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, rename={"cls": "class"}):
    cls: str = ""  # "package.module:ClassName"; "" = the built-in class of that name
    enabled: bool = True
    options: dict[str, Any] = {}


class Config(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The whole ``ap.toml``; see the module docstring for each key."""

    mesh: MeshConfig = MeshConfig()
    eventlog: EventLogConfig = EventLogConfig()
    supervisor: SupervisorConfig = SupervisorConfig()
    security: SecurityConfig = SecurityConfig()
    pipeline: PipelineConfig = PipelineConfig()
    actors: dict[str, ActorConfig] = {}

    def enabled_actors(self) -> dict[str, ActorConfig]:
        """Return the enabled actors, in file order (the journal is not among them)."""
        return {name: a for name, a in self.actors.items() if a.enabled}


PIPELINE_ACTORS: dict[str, ActorConfig] = {
    "planner": ActorConfig(cls="ap_actors.actors.planner:Planner"),
    "scope_validator": ActorConfig(cls="ap_actors.actors.scope_validator:ScopeValidator"),
    "scheduler": ActorConfig(cls="ap_actors.actors.scheduler:Scheduler"),
    "reporter": ActorConfig(cls="ap_actors.actors.reporter:Reporter"),
    "broadcaster": ActorConfig(cls="ap_actors.actors.broadcaster:Broadcaster"),
}
"""The pipeline's actors, run unless ``[pipeline] enabled = false``. The journal always
runs and is not listed; workers and log monitors come from the team."""

ACTOR_KINDS: tuple[str, ...] = ("journal", *PIPELINE_ACTORS, "worker", "log_monitor")
"""Every kind of actor process of a mesh with the pipeline on and a team, in start order
(a worker's and a log monitor's names are ``worker.ID`` and ``log_monitor.ID``)."""


def read_text(path: Path, what: str, option: str) -> str:
    """Return a configuration file's text (UTF-8).

    Raises:
        ConfigError: it does not exist (the message names ``option`` to fix it) or
            cannot be read.
    """
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist; pass an existing {option}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read {what} {path}: {e}") from e


def load_config(path: str | os.PathLike[str] | None) -> Config:
    """Read and validate ``ap.toml``; None (or a missing default file) = embedded defaults.

    Raises:
        ConfigError: the file is missing (when named), not TOML (with line and column),
            or a key is unknown or of the wrong type (with its path, e.g.
            ``$.supervisor.max_restarts``).
    """
    if path is None:
        return _with_pipeline(Config())
    p = Path(path)
    text = read_text(p, "config file", "--config")
    if p.suffix == ".json":  # an effective config written by the supervisor
        try:
            return msgspec.json.decode(text, type=Config)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            raise ConfigError(f"{p}: {e}") from e
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML: {e}") from e
    except ValueError as e:  # tomllib: an integer past Python's digit limit
        raise ConfigError(f"{p}: a number in it is too long to be a setting") from e
    except RecursionError as e:
        raise ConfigError(f"{p}: tables or arrays nested too deeply to be settings") from e
    try:
        config = msgspec.convert(data, Config)
    except (msgspec.ValidationError, RecursionError) as e:
        raise ConfigError(f"{p}: {e}") from e
    if config.pipeline.team and not Path(config.pipeline.team).expanduser().is_absolute():
        team = str((p.parent / config.pipeline.team).absolute())
        config = msgspec.structs.replace(
            config, pipeline=msgspec.structs.replace(config.pipeline, team=team)
        )
    if config.security.keys:
        keys = str((p.parent / Path(config.security.keys).expanduser()).absolute())
        config = msgspec.structs.replace(
            config, security=msgspec.structs.replace(config.security, keys=keys)
        )
    config = _with_pipeline(config)
    _check(config, p)
    return config


def _with_pipeline(config: Config) -> Config:
    """Add the pipeline actors (unless disabled); a file's table overrides a default."""
    if not config.pipeline.enabled:
        return config
    actors = dict(PIPELINE_ACTORS)
    for name, actor in config.actors.items():
        default = actors.get(name)
        if default is not None and not actor.cls:
            actor = msgspec.structs.replace(actor, cls=default.cls)
        actors[name] = actor
    return msgspec.structs.replace(config, actors=actors)


def _check(config: Config, path: Path) -> None:
    for name, actor in config.actors.items():
        if name == "journal":
            raise ConfigError(f"{path}: [actors.journal]: the journal is built in; rename it")
        if ":" not in actor.cls:
            raise ConfigError(
                f"{path}: [actors.{name}] class = {actor.cls!r}: write it as 'package.module:Class'"
            )
    s = config.supervisor
    if s.max_restarts < 0 or s.restart_window_s <= 0 or s.backoff_initial_s < 0:
        raise ConfigError(f"{path}: [supervisor] values must be positive")
    e = config.eventlog
    if e.max_batch_events < 1 or e.map_size_mb < 1 or e.max_batch_bytes < 1:
        raise ConfigError(f"{path}: [eventlog] limits must be at least 1")
    if e.map_size_mb > MAX_MAP_SIZE_MB or e.max_batch_bytes > 2**31 or e.max_batch_events > 2**31:
        raise ConfigError(
            f"{path}: [eventlog] map_size_mb must be at most {MAX_MAP_SIZE_MB} (1 PiB) and"
            " the batch limits at most 2**31"
        )


def resolve_state_dir(state_dir: str | os.PathLike[str] | None) -> Path:
    """Return the state directory: the argument, else ``$AP_STATE_DIR``, else ``.ap/``.

    The path is made absolute (not created).
    """
    chosen = state_dir or os.environ.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR
    return Path(chosen).expanduser().absolute()


def eventlog_dir(state_dir: Path) -> Path:
    """Return the LMDB environment's directory inside ``state_dir``."""
    return state_dir / "eventlog"
