"""The Files capability against real directories: confinement, bounds, atomicity, versions.

The tests drive `agent.files` directly on a home in a temporary directory, with the
workspace's ``/home/builder`` as its mount; `test_files_rpc` goes through the runtime, the
RPC dispatcher, a multiplexer and a real sandbox.
"""

import ctypes
import errno
import hashlib
import json
import os
import stat
import threading
from pathlib import Path

import pytest

from agent import files
from agent import protocol as p
from agent.files.home import Home
from agent.runtimes.base import RuntimeFailure, WorkspaceHome

MIB5 = p.MAX_FILE_BYTES
AT_FDCWD = -100
RENAME_EXCHANGE = 2


@pytest.fixture
def root(tmp_path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def home(root) -> WorkspaceHome:
    return WorkspaceHome(root, "/home/builder")


@pytest.fixture
def outside(tmp_path) -> Path:
    """A directory next to the home, standing for the rest of the host."""
    path = tmp_path / "outside"
    path.mkdir()
    (path / "secret.txt").write_text("host secret")
    return path


def refused(code: str, operation, *args, **kwargs) -> str:
    """Run ``operation``; it must be refused with ``code``; returns the message."""
    with pytest.raises(RuntimeFailure) as info:
        operation(*args, **kwargs)
    assert info.value.code == code, info.value
    return info.value.message


def untouched(outside: Path) -> None:
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == "host secret"


# --- paths -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["../x", "..", "a/../../x", "a/..", "/etc/passwd", "/", "a\0b", "x" * 4097, "a/" + "n" * 256],
)
def test_paths_outside_the_rules_are_refused_by_every_operation(home, root, path):
    for operation, args in [
        (files.read_file, (home, path)),
        (files.list_dir, (home, path)),
        (files.write_file, (home, path, b"x")),
        (files.rename, (home, "a.txt", path)),
        (files.delete, (home, path)),
    ]:
        refused(p.PATH_INVALID, operation, *args)
    assert list(root.iterdir()) == []


def test_a_path_is_normalised_and_its_surrogates_refused():
    assert p.split_path("./a//b/.") == ["a", "b"]
    assert p.split_path("") == p.split_path(".") == []
    assert p.split_path("é/" + "n" * 255) == ["é", "n" * 255]
    refused(p.PATH_INVALID, p.split_path, "\udcff")
    refused(p.PATH_INVALID, p.split_path, None)


# --- links -----------------------------------------------------------------------------------


def test_a_link_to_etc_is_listed_but_never_followed(home, root):
    os.symlink("/etc", root / "etc")

    assert "leads out" in refused(p.PATH_OUTSIDE_HOME, files.read_file, home, "etc/passwd")
    refused(p.PATH_OUTSIDE_HOME, files.list_dir, home, "etc")
    refused(p.PATH_OUTSIDE_HOME, files.write_file, home, "etc/enclave-test", b"x")
    refused(p.PATH_OUTSIDE_HOME, files.delete, home, "etc/hostname")
    assert not os.path.lexists("/etc/enclave-test")
    [entry] = files.list_dir(home, "")["entries"]
    assert (entry["name"], entry["type"], entry["target"]) == ("etc", "symlink", None)


def test_a_link_out_of_the_home_as_a_middle_component(home, root, outside):
    (outside / "sub").mkdir()
    os.symlink(outside, root / "out")
    os.symlink("../outside", root / "relative")
    os.symlink("/home/builder/../../tmp", root / "climbing")

    for link in ("out", "relative", "climbing"):
        refused(p.PATH_OUTSIDE_HOME, files.read_file, home, f"{link}/secret.txt")
        refused(p.PATH_OUTSIDE_HOME, files.list_dir, home, f"{link}/sub")
        refused(p.PATH_OUTSIDE_HOME, files.write_file, home, f"{link}/sub/new.txt", b"x")
        refused(p.PATH_OUTSIDE_HOME, files.write_file, home, f"{link}/secret.txt", b"x")
        refused(p.PATH_OUTSIDE_HOME, files.rename, home, f"{link}/secret.txt", "stolen.txt")
        refused(p.PATH_OUTSIDE_HOME, files.rename, home, "nothing.txt", f"{link}/x.txt")
        refused(p.PATH_OUTSIDE_HOME, files.delete, home, f"{link}/secret.txt")
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt", "sub"]
    assert list((outside / "sub").iterdir()) == []
    assert (outside / "secret.txt").read_text() == "host secret"


def test_a_final_link_out_of_the_home_is_neither_read_nor_written_through(home, root, outside):
    os.symlink(outside / "secret.txt", root / "secret.txt")

    refused(p.PATH_OUTSIDE_HOME, files.read_file, home, "secret.txt")
    refused(p.PATH_OUTSIDE_HOME, files.write_file, home, "secret.txt", b"overwritten")

    untouched(outside)
    assert os.path.islink(root / "secret.txt")


def test_links_that_stay_inside_are_followed(home, root):
    (root / "app" / "src").mkdir(parents=True)
    (root / "app" / "src" / "main.py").write_text("main")
    os.symlink("app/src", root / "src")
    os.symlink("/home/builder/app", root / "absolute")
    os.symlink("src", root / "chain")
    os.symlink("../src/main.py", root / "app" / "entry.py")
    os.symlink("missing.txt", root / "dangling")

    assert files.read_file(home, "src/main.py")["content"] == "main"
    assert files.read_file(home, "absolute/src/main.py")["content"] == "main"
    assert files.read_file(home, "chain/main.py")["content"] == "main"
    assert files.read_file(home, "app/entry.py")["content"] == "main"
    assert [e["name"] for e in files.list_dir(home, "chain")["entries"]] == ["main.py"]
    files.write_file(home, "src/main.py", b"edited")
    assert (root / "app" / "src" / "main.py").read_text() == "edited"
    assert os.path.islink(root / "src")
    files.write_file(home, "dangling", b"made")  # through the link: its target is created
    assert (root / "missing.txt").read_text() == "made" and os.path.islink(root / "dangling")
    shown = {e["name"]: e["target"] for e in files.list_dir(home, "")["entries"]}
    assert shown == {
        "absolute": "app",
        "app": None,
        "chain": "src",
        "dangling": "missing.txt",
        "missing.txt": None,
        "src": "app/src",
    }


def test_a_loop_of_links_is_refused(home, root):
    os.symlink("b", root / "a")
    os.symlink("a", root / "b")

    assert "too many links" in refused(p.PATH_INVALID, files.read_file, home, "a/x")
    refused(p.PATH_INVALID, files.read_file, home, "a")


def test_a_link_swapped_in_after_the_walk_entered_a_folder_is_not_followed(
    home, root, outside, monkeypatch
):
    (root / "d").mkdir()
    enter = Home._enter
    swapped = []

    def enter_then_swap(self, fd, name, make_dirs):
        below = enter(self, fd, name, make_dirs)
        if name == "d" and not swapped:  # the walk holds "d": now make "d" lead out
            os.rename(root / "d", root / "moved")
            os.symlink(outside, root / "d")
            swapped.append(name)
        return below

    monkeypatch.setattr(Home, "_enter", enter_then_swap)
    files.write_file(home, "d/new.txt", b"stays home")

    assert swapped == ["d"]
    untouched(outside)
    assert (root / "moved" / "new.txt").read_text() == "stays home"


def test_links_swapped_back_and_forth_never_let_a_write_or_read_out(home, root, outside):
    (root / "d").mkdir()
    (root / "d" / "secret.txt").write_text("home copy")
    os.symlink(outside, root / "other")
    libc = ctypes.CDLL(None, use_errno=True)
    here, there = os.fsencode(root / "d"), os.fsencode(root / "other")
    stop = threading.Event()
    swaps = []

    def swapper():  # "d" is the folder, then a link out, then the folder again...
        while not stop.is_set():
            if libc.renameat2(AT_FDCWD, here, AT_FDCWD, there, RENAME_EXCHANGE) == 0:
                swaps.append(1)

    thread = threading.Thread(target=swapper)
    thread.start()
    seen, outcomes = set(), set()
    try:
        for index in range(300):
            try:
                files.write_file(home, f"d/w{index}.txt", b"x")
                seen.add(files.read_file(home, "d/secret.txt")["content"])
                outcomes.add("done")
            except RuntimeFailure as exc:
                outcomes.add(exc.code)
    finally:
        stop.set()
        thread.join()
    assert swaps
    untouched(outside)
    assert seen <= {"home copy"}
    assert outcomes <= {"done", p.PATH_OUTSIDE_HOME}


def test_delete_and_rename_act_on_a_link_itself(home, root, outside):
    os.symlink(outside, root / "out")
    os.symlink(outside / "secret.txt", root / "s.txt")

    entry = files.rename(home, "s.txt", "t.txt")
    assert (entry["type"], entry["target"]) == ("symlink", None)
    files.delete(home, "out", recursive=True)
    files.delete(home, "t.txt")

    assert list(root.iterdir()) == []
    untouched(outside)


def test_a_recursive_delete_never_follows_links_inside_the_folder(home, root, outside):
    (root / "tree" / "deep").mkdir(parents=True)
    os.symlink(outside, root / "tree" / "deep" / "out")
    (root / "tree" / "deep" / "f.txt").write_text("f")

    refused(p.DIRECTORY_NOT_EMPTY, files.delete, home, "tree")
    assert files.delete(home, "tree", recursive=True) == {"path": "tree", "deleted": True}

    assert list(root.iterdir()) == []
    untouched(outside)


# --- bounds, binary files, special files -----------------------------------------------------


def test_files_over_five_mib_are_neither_read_nor_written(home, root):
    (root / "big").write_bytes(b"a" * (MIB5 + 1))
    (root / "limit").write_bytes(b"b" * MIB5)

    assert "5 MiB" in refused(p.FILE_TOO_LARGE, files.read_file, home, "big")
    assert files.read_file(home, "limit")["size"] == MIB5
    assert "5 MiB" in refused(p.FILE_TOO_LARGE, files.write_file, home, "new", b"c" * (MIB5 + 1))
    assert not (root / "new").exists()
    assert files.write_file(home, "new", b"c" * MIB5)["size"] == MIB5


@pytest.mark.parametrize(
    ("data", "binary"),
    [(b"plain\n", False), ("héllo ✓\n".encode(), False), (b"a\0b", True), (b"\xff\xfe", True)],
)
def test_binary_files_answer_no_content(home, root, data, binary):
    (root / "f").write_bytes(data)

    read = files.read_file(home, "f")

    assert read["binary"] is binary
    assert read["content"] == (None if binary else data.decode())
    assert read["version"] == "sha256-" + hashlib.sha256(data).hexdigest()


def test_a_write_takes_utf8_text_only(home, root):
    refused("invalid_params", files.write_file, home, "f", b"\xff\xfe")
    assert not (root / "f").exists()


def test_special_files_are_listed_never_opened(home, root):
    os.mkfifo(root / "pipe")

    refused(p.NOT_A_FILE, files.read_file, home, "pipe")  # and it does not block
    refused(p.NOT_A_FILE, files.write_file, home, "pipe", b"x")
    [entry] = files.list_dir(home, "")["entries"]
    assert (entry["type"], entry["size"]) == ("other", None)


def test_a_listing_is_bounded_and_sorted(home, root):
    for index in range(p.MAX_LIST_ENTRIES + 1):
        (root / f"f{index:05}").touch()

    listing = files.list_dir(home, "")

    assert listing["truncated"] is True
    assert len(listing["entries"]) == p.MAX_LIST_ENTRIES


def test_a_listing_puts_folders_first_then_names_and_skips_names_that_are_not_utf8(home, root):
    for name in ("b.txt", "A.txt", "c"):
        (root / name).touch()
    (root / "Z").mkdir()
    (root / "a").mkdir()
    os.close(os.open(os.fsencode(root) + b"/bad-\xff", os.O_CREAT | os.O_WRONLY, 0o644))

    listing = files.list_dir(home, ".")

    assert [(e["name"], e["type"]) for e in listing["entries"]] == [
        ("a", "dir"),
        ("Z", "dir"),
        ("A.txt", "file"),
        ("b.txt", "file"),
        ("c", "file"),
    ]
    assert listing == json.loads(json.dumps(listing))
    assert listing["truncated"] is False


def test_files_and_folders_are_told_apart(home, root):
    (root / "dir").mkdir()
    (root / "file").write_text("f")

    refused(p.IS_A_DIRECTORY, files.read_file, home, "dir")
    refused(p.IS_A_DIRECTORY, files.read_file, home, "")
    refused(p.IS_A_DIRECTORY, files.write_file, home, "dir", b"x")
    refused(p.NOT_A_DIRECTORY, files.list_dir, home, "file")
    refused(p.NOT_A_DIRECTORY, files.read_file, home, "file/x")
    refused(p.NOT_A_DIRECTORY, files.write_file, home, "file/x", b"x")
    refused(p.FILE_NOT_FOUND, files.read_file, home, "missing")
    refused(p.FILE_NOT_FOUND, files.list_dir, home, "missing")


# --- writes: atomic, versioned, owned ----------------------------------------------------------


def test_writes_make_folders_and_keep_modes(home, root):
    previous = os.umask(0o077)
    try:
        saved = files.write_file(home, "a/b/new.txt", b"new")
    finally:
        os.umask(previous)
    (root / "run.sh").write_text("old")
    (root / "run.sh").chmod(0o750)
    files.write_file(home, "run.sh", b"new")

    assert saved["path"] == "a/b/new.txt" and saved["size"] == 3
    assert stat.S_IMODE(os.stat(root / "a").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(root / "a" / "b").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(root / "a" / "b" / "new.txt").st_mode) == 0o644
    assert stat.S_IMODE(os.stat(root / "run.sh").st_mode) == 0o750
    assert sorted(p.name for p in root.iterdir()) == ["a", "run.sh"]  # no temporary file left


def test_a_failed_write_leaves_the_old_file_and_no_temporary(home, root, monkeypatch):
    (root / "f").write_text("old")

    def full(fd):
        raise OSError(errno.ENOSPC, "full")

    monkeypatch.setattr(os, "fsync", full)
    assert "disk is full" in refused(p.DISK_FULL, files.write_file, home, "f", b"new")

    assert sorted(p.name for p in root.iterdir()) == ["f"]
    assert (root / "f").read_text() == "old"


def test_versions_detect_a_change_since_the_read(home, root):
    first = files.write_file(home, "f", b"one")["version"]
    assert files.read_file(home, "f")["version"] == first

    second = files.write_file(home, "f", b"two", base_version=first)["version"]
    message = refused(p.FILE_CONFLICT, files.write_file, home, "f", b"three", first)

    assert "changed since" in message
    assert (root / "f").read_text() == "two"
    assert files.read_file(home, "f")["version"] == second
    refused(p.FILE_CONFLICT, files.write_file, home, "gone", b"x", base_version=first)
    assert files.write_file(home, "f", b"four")["size"] == 4  # no base_version: overwrite


def test_concurrent_saves_leave_one_whole_version_and_readers_never_see_a_mix(home, root):
    contents = [bytes([65 + n]) * (512 * 1024 + n) for n in range(6)]
    files.write_file(home, "f", contents[0])
    seen: set[str] = set()
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            seen.add(files.read_file(home, "f")["content"])

    def writer(content):
        for _ in range(5):
            files.write_file(home, "f", content)

    watching = threading.Thread(target=reader)
    watching.start()
    writers = [threading.Thread(target=writer, args=(c,)) for c in contents]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    stop.set()
    watching.join()

    allowed = {c.decode() for c in contents}
    assert seen <= allowed and seen
    assert (root / "f").read_bytes() in contents
    assert [p.name for p in root.iterdir()] == ["f"]


def test_of_concurrent_saves_from_one_version_exactly_one_wins(home, root):
    base = files.write_file(home, "f", b"base")["version"]
    outcomes: list[str] = []
    start = threading.Barrier(8)

    def save(n):
        start.wait()
        try:
            files.write_file(home, "f", f"save {n}".encode(), base_version=base)
            outcomes.append(f"won {n}")
        except RuntimeFailure as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=save, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    [winner] = [o for o in outcomes if o.startswith("won")]
    assert outcomes.count(p.FILE_CONFLICT) == 7
    assert (root / "f").read_text() == f"save {winner.split()[1]}"


@pytest.mark.skipif(os.geteuid() != 0, reason="only root gives files to another uid")
def test_as_root_new_files_belong_to_the_workspace_and_old_ones_keep_their_owner(root):
    home = WorkspaceHome(root, "/home/builder", 4321, 4321)
    (root / "theirs").write_text("x")
    os.chown(root / "theirs", 777, 778)

    files.write_file(home, "new/dir/f.txt", b"x")
    files.write_file(home, "theirs", b"y")

    for path in (root / "new", root / "new" / "dir", root / "new" / "dir" / "f.txt"):
        assert (path.stat().st_uid, path.stat().st_gid) == (4321, 4321), path
    assert ((root / "theirs").stat().st_uid, (root / "theirs").stat().st_gid) == (777, 778)


# --- rename and delete -------------------------------------------------------------------------


def test_rename_refuses_to_overwrite_unless_asked(home, root):
    (root / "a").write_text("a")
    (root / "b").write_text("b")
    (root / "dir" / "sub").mkdir(parents=True)
    (root / "full").mkdir()
    (root / "full" / "x").touch()

    refused(p.FILE_EXISTS, files.rename, home, "a", "b")
    assert (root / "b").read_text() == "b"
    assert files.rename(home, "a", "b", overwrite=True)["path"] == "b"
    assert (root / "b").read_text() == "a" and not (root / "a").exists()
    assert files.rename(home, "b", "dir/sub/b")["path"] == "dir/sub/b"
    refused(p.PATH_INVALID, files.rename, home, "dir", "dir/sub/dir")  # into itself
    refused(p.DIRECTORY_NOT_EMPTY, files.rename, home, "dir", "full", overwrite=True)
    refused(p.FILE_NOT_FOUND, files.rename, home, "missing", "x")
    refused(p.FILE_NOT_FOUND, files.rename, home, "dir", "no/such/place")
    refused(p.PATH_INVALID, files.rename, home, "", "x")
    refused(p.PATH_INVALID, files.rename, home, "dir", ".")


def test_delete_rules(home, root):
    (root / "f").write_text("f")
    (root / "empty").mkdir()
    (root / "full").mkdir()
    (root / "full" / "x").touch()

    files.delete(home, "f")
    files.delete(home, "empty")
    refused(p.DIRECTORY_NOT_EMPTY, files.delete, home, "full")
    refused(p.FILE_NOT_FOUND, files.delete, home, "f")
    refused(p.PATH_INVALID, files.delete, home, "", recursive=True)
    refused(p.PATH_INVALID, files.delete, home, ".", recursive=True)
    files.delete(home, "full", recursive=True)

    assert root.is_dir() and list(root.iterdir()) == []
