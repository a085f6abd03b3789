"""Wire codec of the portal ⇄ agent tunnel, shared by both sides.

One WebSocket carries many streams. Binary WebSocket messages carry *frames*: a
9-byte big-endian header (``type u8``, ``stream u32``, ``arg u32``) followed by a
payload — one frame per message, or several inside a ``BATCH`` (see
:func:`batch_message`). Text WebSocket messages are agent-level JSON *messages*
(``hello``, ``ping``, ``pong``, ``event``).

Guarantees:

* Every decoder in this module raises :class:`ProtocolError` — and nothing else —
  on malformed input, whatever the bytes or text received.
* Encoders refuse to produce a frame the peer would reject (same exception).
* Nothing here performs I/O; :class:`SendWindow` only waits on an asyncio event.

Streams are opened by the portal only, with odd ids. Each direction of a stream
has a credit window of :data:`INITIAL_WINDOW` bytes: a sender never sends more
DATA bytes than it was granted, and a receiver grants credit back (CREDIT frames)
only once it has delivered the bytes onward. A CLOSE frame, from either side, ends
the whole stream.
"""

from agent.protocol.core import *  # noqa: F403
from agent.protocol.core import __all__ as _core
from agent.protocol.environments import *  # noqa: F403
from agent.protocol.environments import __all__ as _environments
from agent.protocol.files import *  # noqa: F403
from agent.protocol.files import __all__ as _files
from agent.protocol.logs import *  # noqa: F403
from agent.protocol.logs import __all__ as _logs
from agent.protocol.records import *  # noqa: F403
from agent.protocol.records import __all__ as _records
from agent.protocol.shell import *  # noqa: F403
from agent.protocol.shell import __all__ as _shell

__all__ = [*_core, *_environments, *_files, *_logs, *_records, *_shell]
