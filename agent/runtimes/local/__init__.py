"""The ``local`` runtime: each environment is a directory and a process group on this host.

Layout: ``<data_dir>/environments/<id>/environment.json`` (written atomically),
``secret_env.bin`` (its secret env, sealed), ``home/`` (the workspace, a git repository)
and ``logs/service.log`` (+ ``.1``).

Guarantees:

* Operations on one environment are serialised by a per-environment lock;
  different environments proceed concurrently. ``stop``/``delete``/``restart``/
  ``upgrade`` first cancel any provisioning still in progress.
* ``list``/``get`` answer from an in-memory index loaded once by ``load``
  and updated on every write; they never touch the disk.
* ``secret_env`` reaches the workspace process environment, never ``environment.json``,
  any log or a command line, and is never on disk in plaintext. With a key (the agent's,
  derived from its token) it is also sealed with AES-256-GCM in ``secret_env.bin``
  (0600), so shells opened after an agent restart get it too; one that no longer opens
  (the token changed) is ignored with a warning until the portal's next restart sends
  it again. Without a key it is held in memory only. An environment keeps the secret
  env it was launched with: ``start`` on a running one does not replace it.
* With a tools directory (``tools_dir``) every workspace has the AI tools (OpenCode,
  Claude Code) first on ``PATH``, read-only, and its start command runs under their
  entrypoint, which writes the AI context and serves the assistant on the port named
  ``assistant``.
* Workspace processes outlive the agent: on ``load`` a running process is
  adopted (supervised by polling), a vanished one turns the environment to
  ``error``. ``shutdown`` leaves workspaces running.
* Every status or phase change is persisted, then reported to ``on_event``.

Modules: `runtime` (`LocalRuntime`: the operations, locks, jobs and state changes),
`store` (the directories on disk), `secret_store` (the sealed secret env), `provision`
(a new workspace's files), `launch` (what runs, with which variables, and when it is
ready), `sandbox` (bubblewrap), `supervise` (the workspace process groups) and `logtail`
(following service logs).
"""

from agent.runtimes.local.runtime import LocalRuntime

__all__ = ["LocalRuntime"]
