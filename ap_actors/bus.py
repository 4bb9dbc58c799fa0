"""The bus client: :class:`Emitter` appends events, :class:`Subscriber` reads them.

Source: ``DESIGN.md``, "The event log and the bus"; frames in `protocol.py`. The two
live in `emitter.py` and `subscriber.py`; this module is where a program imports them.

Attach to a running mesh in a few lines::

    from ap_actors.bus import Subscriber

    async for record in Subscriber.connect(topics=["worker_"]):
        print(record.seq, record.event)

Emit into it::

    async with Emitter.connect(source="my-tool") as emitter:
        seq = await emitter.emit(WorkerError(worker_id="w1", error="boom"))
"""

from ap_actors.emitter import Emitter
from ap_actors.subscriber import Subscriber

__all__ = ["Emitter", "Subscriber"]
