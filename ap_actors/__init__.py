"""ap-actors: an Analytic Programming orchestrator for AI coding agents, built as an
event-sourced actor system (LMDB event log, ZeroMQ bus, one OS process per actor).

The public API: what a program imports to emit events, attach a subscriber, read the
log, follow a session (:class:`SessionView`) or write an actor. Everything else may
change without notice.
"""

from ap_actors.actor import Actor
from ap_actors.bus import Emitter, Subscriber
from ap_actors.errors import (
    AgentError,
    ApError,
    BusError,
    ConfigError,
    DecodeError,
    EventLogError,
    MeshNotRunningError,
    RejectedError,
    ScopeError,
    SequenceError,
)
from ap_actors.eventlog import EventLog, Snapshot
from ap_actors.events import (
    CODEC,
    Event,
    EventType,
    Record,
    derive_id,
    new_id,
    record_to_json_dict,
    topic_of,
)
from ap_actors.mesh import MeshInfo, read_mesh
from ap_actors.projections import Sessions, SessionView, fold_session

__version__ = "0.1.0"

__all__ = [
    "CODEC",
    "Actor",
    "AgentError",
    "ApError",
    "BusError",
    "ConfigError",
    "DecodeError",
    "Emitter",
    "Event",
    "EventLog",
    "EventLogError",
    "EventType",
    "MeshInfo",
    "MeshNotRunningError",
    "Record",
    "RejectedError",
    "ScopeError",
    "SequenceError",
    "SessionView",
    "Sessions",
    "Snapshot",
    "Subscriber",
    "__version__",
    "derive_id",
    "fold_session",
    "new_id",
    "read_mesh",
    "record_to_json_dict",
    "topic_of",
]
