"""The team: which workers the mesh runs, which agent each drives, and the session policy.

A team file is ``team.toml`` or the seeds' ``team.json`` (``{"workers": [...]}``, where a
worker's ``type`` means its ``agent`` and ``log_path`` one extra log file). Shape of
``team.toml``::

    auto_approve = false        # skip the owner's approval gate for every session
    max_attempts = 2            # runs of one objective before it fails for good
    objective_timeout_s = 1800  # default per-objective timeout, seconds

    [[workers]]
    id = "ruff-1"               # [A-Za-z0-9_-], unique; actors worker.<id>, log_monitor.<id>
    agent = "command"           # adapter in ap_actors/agents/ (command, codex, claude, ...)
    model = "gpt-5.5"           # model the agent CLI is told to use (default: its own)
    capabilities = ["python"]   # what the planner and the scheduler match objectives on
    command = "ruff check --fix {scope}"            # one argv template (string or list) ...
    commands = ["ruff check --fix {scope}", "ruff format {scope}"]  # ... or several
    log_paths = ["~/.codex/log/codex-tui.log"]      # agent log files its log monitor tails too
    env = { RUFF_CACHE_DIR = "/tmp/ruff" }          # added to the agent's environment
    timeout_s = 600             # this worker's objective timeout (default objective_timeout_s)
    remote = false              # true: runs on another machine (`ap worker --id ruff-1`);
                                # the mesh does not start its actors, but assigns it work

Errors name the file, the worker and the key, with the fix, in one line.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from pathlib import Path
from typing import Any

import msgspec

from ap_actors.config import PIPELINE_ACTORS, ActorConfig, Config, read_text
from ap_actors.errors import ConfigError

_WORKER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


class WorkerSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One configured worker (one worker actor and one log monitor actor)."""

    id: str  # Unique worker id, [A-Za-z0-9_-]; also its actors' suffix.
    agent: str = "command"  # Adapter name (ap_actors/agents/<agent>.py).
    model: str = ""  # Model passed to the agent CLI; "" = the CLI's default.
    capabilities: list[str] = []  # Tags matched against an objective's needs.
    command: str | list[str] | None = None  # One argv template (string: shlex-split).
    commands: list[str | list[str]] = []  # Several argv templates, run in order.
    log_paths: list[str] = []  # Extra agent log files the log monitor tails (~ expanded).
    env: dict[str, str] = {}  # Added to the agent's environment.
    timeout_s: float | None = None  # Objective timeout, seconds; None = the team default.
    remote: bool = False  # Its actors run on another machine (`ap worker`), not in the mesh.

    def templates(self) -> list[str | list[str]]:
        """Return the argv templates in run order (``command`` first, then ``commands``)."""
        return ([self.command] if self.command is not None else []) + list(self.commands)


class Team(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The whole team file."""

    workers: list[WorkerSpec] = []  # In file order.
    auto_approve: bool = False  # Skip the approval gate for every session.
    max_attempts: int = 2  # Runs of one objective (first run + retries) before it fails.
    objective_timeout_s: float = 1800.0  # Default objective timeout, seconds.

    def worker(self, worker_id: str) -> WorkerSpec | None:
        """Return the worker with this id, or None."""
        return next((w for w in self.workers if w.id == worker_id), None)

    def ids(self) -> list[str]:
        """Return the worker ids in file order."""
        return [w.id for w in self.workers]

    def timeout_of(self, worker_id: str) -> float:
        """Return the objective timeout of a worker, seconds."""
        w = self.worker(worker_id)
        return w.timeout_s if w is not None and w.timeout_s else self.objective_timeout_s


def _from_seed_json(data: Any) -> Any:
    """Map the seeds' team.json names onto ours (``type`` -> agent, ``log_path``)."""
    if not isinstance(data, dict) or not isinstance(data.get("workers"), list):
        return data
    workers = []
    for w in data["workers"]:
        if isinstance(w, dict):
            w = dict(w)
            if "type" in w and "agent" not in w:
                w["agent"] = w.pop("type")
            earlier = w.get("log_paths") or []
            if "log_path" in w and isinstance(earlier, list):  # else validation says why
                w["log_paths"] = [*earlier, w.pop("log_path")]
            w.pop("name", None)  # the seeds' display name; the id is ours
        workers.append(w)
    return {**data, "workers": workers}


def load_team(path: str | Path) -> Team:
    """Read and validate a team file (``.toml``, or ``.json`` in our or the seeds' shape).

    Raises:
        ConfigError: missing file, syntax error (with line and column), unknown key or
            wrong type (with its path, e.g. ``$.workers[1].timeout_s``), a bad or
            repeated worker id, a worker of the ``command`` agent without a command, or
            a non-positive timeout or attempt count.
    """
    p = Path(path)
    text = read_text(p, "team file", "--team")
    try:
        data = _from_seed_json(json.loads(text)) if p.suffix == ".json" else tomllib.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{p}:{e.lineno}:{e.colno}: not valid JSON: {e.msg}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML: {e}") from e
    except (ValueError, RecursionError) as e:  # Python's limits on int digits and nesting
        raise ConfigError(f"{p}: {unreadable_reason(e)}; fix the file") from e
    try:
        team = msgspec.convert(data, Team)
    except msgspec.ValidationError as e:
        # One line: the message quotes keys of the file, which may hold line breaks.
        raise ConfigError(f"{p}: {escape_breaks(str(e))}") from e
    check_team(team, str(p))
    return team


def escape_breaks(text: str) -> str:
    """``text`` on one line: line breaks written as ``\\n`` and ``\\r``."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def unreadable_reason(e: ValueError | RecursionError) -> str:
    """Why a syntactically plausible JSON or TOML text could not be read: it nests deeper,
    or holds an integer longer, than Python's parsers accept."""
    if isinstance(e, RecursionError):
        return "arrays or tables are nested too deeply to read"
    return f"a value cannot be read ({str(e).split(';')[0]})"


def check_team(team: Team, where: str = "team") -> None:
    """Raise :class:`ConfigError` if the team is inconsistent (see :func:`load_team`)."""
    seen: set[str] = set()
    for n, w in enumerate(team.workers):
        if not _WORKER_ID.fullmatch(w.id):
            raise ConfigError(
                f"{where}: workers[{n}].id = {w.id!r}: use letters, digits, '-' and '_'"
                " (at most 64, starting with a letter or digit)"
            )
        if w.id in seen:
            raise ConfigError(f"{where}: worker id {w.id!r} appears twice; ids must be unique")
        seen.add(w.id)
        if w.agent == "command" and not w.templates():
            raise ConfigError(
                f"{where}: worker {w.id!r} runs the command agent but has no command;"
                ' add command = "your-tool {scope}"'
            )
        if w.timeout_s is not None and not (0 < w.timeout_s < math.inf):
            raise ConfigError(f"{where}: worker {w.id!r}: timeout_s must be positive")
    if team.max_attempts < 1:
        raise ConfigError(f"{where}: max_attempts must be at least 1")
    if not (0 < team.objective_timeout_s < math.inf):
        raise ConfigError(f"{where}: objective_timeout_s must be positive")


# --- the team in a running mesh -------------------------------------------------------

TEAM_FILE = "team.json"  # in the state dir: the team of the running mesh


def resolve_team(path: str | Path | None) -> Team:
    """Return the team of a team file, or for None the default team (:func:`default_team`)."""
    return load_team(path) if path else default_team()


def default_team(path: str | None = None) -> Team:
    """Return one worker per agent CLI found on ``path`` (default ``$PATH``).

    Worker ids are the agent names (``codex``, ``claude``, ...), with no capabilities and
    the CLI's default model. No CLI found: an empty team (the mesh runs, and ``ap
    submit`` says it has no workers).
    """
    from ap_actors.agents import installed_agents

    found = [a for a in installed_agents(path=path) if a.path is not None]
    return Team(workers=[WorkerSpec(id=a.agent, agent=a.agent) for a in found])


def team_actors(team: Team) -> dict[str, ActorConfig]:
    """Return the actors a team adds to a mesh: ``worker.<id>`` and ``log_monitor.<id>``
    per worker that is not ``remote`` (:func:`worker_actors`)."""
    actors: dict[str, ActorConfig] = {}
    for w in team.workers:
        if not w.remote:
            actors.update(worker_actors(team, w))
    return actors


def worker_actors(team: Team, worker: WorkerSpec) -> dict[str, ActorConfig]:
    """Return the two actors of one worker, ``worker.<id>`` and ``log_monitor.<id>``
    (run by the mesh, or by ``ap worker`` on another machine for a remote one).

    Each gets ``options = {"worker": <its WorkerSpec as a dict>, "team": <the team>}``.
    """
    options = {"worker": msgspec.to_builtins(worker), "team": msgspec.to_builtins(team)}
    return {
        f"worker.{worker.id}": ActorConfig(cls="ap_actors.actors.worker:Worker", options=options),
        f"log_monitor.{worker.id}": ActorConfig(
            cls="ap_actors.actors.log_monitor:LogMonitor", options=options
        ),
    }


def effective_config(config: Config, team: Team) -> Config:
    """Return ``config`` with the team in the pipeline actors' options and its workers'
    actors added (when the pipeline is enabled)."""
    if not config.pipeline.enabled:
        return config
    team_dict = msgspec.to_builtins(team)
    actors: dict[str, ActorConfig] = {}
    for name, actor in config.actors.items():
        if name in PIPELINE_ACTORS:
            options = {"team": team_dict, **actor.options}
            if name == "broadcaster":
                options.setdefault("url", config.mesh.dashboard)
            actor = msgspec.structs.replace(actor, options=options)
        actors[name] = actor
    for name, actor in team_actors(team).items():
        actors.setdefault(name, actor)
    return msgspec.structs.replace(config, actors=actors)


def team_option(options: dict[str, Any]) -> Team:
    """Return the team an actor got in its options (an empty team if none)."""
    return msgspec.convert(options.get("team") or {}, Team)


def write_team(state_dir: Path, team: Team) -> None:
    """Write the mesh's team to ``<state_dir>/team.json`` (atomically)."""
    from ap_actors.mesh import write_atomic

    write_atomic(state_dir / TEAM_FILE, msgspec.json.format(msgspec.json.encode(team)) + b"\n")


def read_team(state_dir: Path) -> Team:
    """Return the team of the mesh in ``state_dir`` (an empty team if it has none)."""
    try:
        return msgspec.json.decode((state_dir / TEAM_FILE).read_bytes(), type=Team)
    except FileNotFoundError:
        return Team()
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as e:
        raise ConfigError(f"{state_dir / TEAM_FILE} is unreadable ({e}); restart the mesh") from e
