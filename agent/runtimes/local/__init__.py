"""The ``local`` runtime: each environment is a directory and a process group on this host.

Layout: ``<data_dir>/environments/<id>/environment.json`` (written atomically),
``home/`` (the workspace, a git repository) and ``logs/service.log`` (+ ``.1``).

Guarantees:

* Operations on one environment are serialised by a per-environment lock;
  different environments proceed concurrently. ``stop``/``delete``/``restart``/
  ``upgrade`` first cancel any provisioning still in progress.
* ``list``/``get`` answer from an in-memory index loaded once by ``load``
  and updated on every write; they never touch the disk.
* ``secret_env`` is held in memory only: it reaches the workspace process
  environment, never ``environment.json`` nor any log.
* Workspace processes outlive the agent: on ``load`` a running process is
  adopted (supervised by polling), a vanished one turns the environment to
  ``error``. ``shutdown`` leaves workspaces running.
* Every status or phase change is persisted, then reported to ``on_event``.

Modules: `runtime` (`LocalRuntime`: the operations, locks, jobs and state changes),
`store` (the directories on disk), `provision` (a new workspace's files),
`supervise` (the workspace process groups) and `logtail` (following service logs).
"""

from agent.runtimes.local.runtime import LocalRuntime

__all__ = ["LocalRuntime"]
