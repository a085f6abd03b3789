"""The Files capability: list, read, write, rename and delete inside a workspace's home.

Guarantees (of every operation here, and the ``files.*`` RPCs of `FileService`):

* **Confinement.** A path is relative to the home and checked by
  `agent.protocol.files.split_path`. It is walked one component at a time from a
  descriptor of the home (``os.open`` with ``dir_fd`` and ``O_NOFOLLOW``): the kernel
  never follows a symbolic link for us, so a link swapped in mid-walk is seen, never
  followed. Links are followed here, by hand,, only while they stay inside the home
  (an absolute target is read as the workspace sees it, under `WorkspaceHome.mount`);
  one that leads out answers ``path_outside_home``. Rename and delete act on a link
  itself, never on its target.
* **Bounds.** Files of at most `MAX_FILE_BYTES` are read and written (else
  ``file_too_large``); a listing holds at most `MAX_LIST_ENTRIES` entries (then
  ``truncated``); a path passes at most `MAX_LINKS` links.
* **Atomic writes.** The content goes to a temporary file in the same directory, is
  synced, then renamed over the old one: readers, and the workspace's own processes,
  see the old file or the new one, never a mix. A file keeps its mode and owner; new
  files are 0644 and directories 0755, owned by `WorkspaceHome.uid` when it is set.
* **Optimistic concurrency.** A read answers the content's ``version`` (its SHA-256); a
  write given a ``base_version`` is refused with ``file_conflict`` unless the file still
  has it. The agent's changes to one home are serialised (`WorkspaceHome.lock`), so of
  two saves from the same version exactly one wins.
* **Errors** are a `RuntimeFailure` with a code of `agent.protocol.files` (or
  ``invalid_params``); messages name the path as the caller gave it, never a host path.
"""

from agent.files.operations import delete, list_dir, read_file, rename, write_file
from agent.files.service import FileService

__all__ = ["FileService", "delete", "list_dir", "read_file", "rename", "write_file"]
