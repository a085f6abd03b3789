"""The Files tab's API: every endpoint, its refusals, its audit trail (DESIGN §2, §8).

The in-memory control plane gives each workspace a real home directory worked on by the
agent's own file operations, so paths, links, bounds and versions behave as on a cluster.
"""

import json
import os
from urllib.parse import urlencode

import pytest

from agent.protocol import (
    BLUEPRINT_ID_TAG,
    BLUEPRINT_TAG,
    FILE_ERRORS,
    MAX_FILE_BYTES,
    NAME_TAG,
    OWNER_TAG,
)
from audit.choices import AuditOutcome
from audit.models import AuditEvent
from workspaces.controlplane.files import FILE_ERROR_STATUS
from workspaces.files import MAX_WRITE_REQUEST

pytestmark = pytest.mark.django_db

FILE_OPERATIONS = ("files_list", "file_read", "file_write", "file_rename", "file_delete")


def seed(control_plane, blueprint, owner_email, *, status="running"):
    return control_plane.seed(
        blueprint.cluster,
        metadata={
            BLUEPRINT_ID_TAG: str(blueprint.pk),
            BLUEPRINT_TAG: blueprint.key,
            OWNER_TAG: owner_email,
            NAME_TAG: "Files",
        },
        status=status,
        spec={"ports": blueprint.ports},
    )


@pytest.fixture
def workspace(control_plane, blueprint, member):
    return seed(control_plane, blueprint, member.email)


@pytest.fixture
def home(control_plane, workspace):
    return control_plane.home_of(workspace.cluster, workspace.id)


def url(workspace, suffix=""):
    return f"/api/v1/workspaces/{workspace.id}/files{suffix}"


def save(client, workspace, path, content, **extra):
    body = {"path": path, "content": content, **extra}
    return client.put(url(workspace, "/content"), body, format="json")


def read(client, workspace, path):
    return client.get(url(workspace, "/content"), {"path": path})


def audits(action=None):
    events = AuditEvent.objects.order_by("id")
    return list(events.filter(action=action) if action else events)


def file_calls(control_plane):
    return sum(control_plane.call_count(name) for name in FILE_OPERATIONS)


def test_every_file_error_code_has_an_http_status():
    assert set(FILE_ERROR_STATUS) == FILE_ERRORS


# --- the round trip ------------------------------------------------------------------------


def test_save_creates_folders_then_list_and_read_it_back(member_api, workspace, home):
    saved = save(member_api, workspace, "src/app.py", "print('hi')\n")

    assert saved.status_code == 200, saved.content
    body = saved.json()
    assert body.keys() == {"path", "size", "modified", "version"}
    assert (body["path"], body["size"]) == ("src/app.py", 12)
    assert (home / "src" / "app.py").read_text() == "print('hi')\n"
    assert os.stat(home / "src").st_mode & 0o777 == 0o755
    assert os.stat(home / "src" / "app.py").st_mode & 0o777 == 0o644

    (home / "README.md").write_text("# read me\n")
    listing = member_api.get(url(workspace), {"path": ""})
    assert listing.status_code == 200
    assert listing.json()["path"] == ""
    assert listing.json()["truncated"] is False
    entries = listing.json()["entries"]
    assert [(e["name"], e["type"]) for e in entries] == [("src", "dir"), ("README.md", "file")]
    assert entries[0]["size"] is None and entries[1]["size"] == 10
    assert entries[1].keys() == {"name", "path", "type", "size", "modified", "target"}
    inner = member_api.get(url(workspace), {"path": "src"}).json()["entries"]
    assert [(e["path"], e["size"]) for e in inner] == [("src/app.py", 12)]

    content = read(member_api, workspace, "src/app.py")
    assert content.status_code == 200
    assert content.json() == {
        "path": "src/app.py",
        "size": 12,
        "modified": body["modified"],
        "version": body["version"],
        "binary": False,
        "content": "print('hi')\n",
    }


def test_the_listing_of_the_home_is_the_default(member_api, workspace, home):
    (home / "b.txt").write_text("b")
    (home / "A.txt").write_text("a")
    (home / "z").mkdir()

    names = [e["name"] for e in member_api.get(url(workspace)).json()["entries"]]

    assert names == ["z", "A.txt", "b.txt"]


def test_writes_renames_and_deletes_are_audited_with_paths_never_contents(
    member_api, workspace, member
):
    secret_text = "TOP-SECRET-CONTENT-1234"
    assert save(member_api, workspace, "notes.txt", secret_text).status_code == 200
    moved = member_api.post(url(workspace, "/rename"), {"from": "notes.txt", "to": "n.txt"})
    assert moved.status_code == 200
    assert member_api.delete(f"{url(workspace)}?path=n.txt").status_code == 204
    read(member_api, workspace, "missing.txt")
    member_api.get(url(workspace))

    events = audits()
    assert [(e.action, e.outcome) for e in events] == [
        ("workspace.file_write", AuditOutcome.SUCCESS),
        ("workspace.file_rename", AuditOutcome.SUCCESS),
        ("workspace.file_delete", AuditOutcome.SUCCESS),
    ]
    assert [e.details for e in events] == [
        {"path": "notes.txt"},
        {"from": "notes.txt", "to": "n.txt", "overwrite": False},
        {"path": "n.txt", "recursive": False},
    ]
    assert all(e.actor == member and e.target_id == workspace.id for e in events)
    assert secret_text not in json.dumps([e.details for e in events])


def test_a_stopped_workspace_has_its_files(member_api, control_plane, blueprint, member):
    stopped = seed(control_plane, blueprint, member.email, status="stopped")

    assert save(member_api, stopped, "a.txt", "x").status_code == 200
    assert read(member_api, stopped, "a.txt").json()["content"] == "x"


def test_a_workspace_being_deleted_refuses(member_api, control_plane, blueprint, member):
    going = seed(control_plane, blueprint, member.email, status="deleting")

    response = save(member_api, going, "a.txt", "x")

    assert response.status_code == 409
    assert response.json()["code"] == "workspace_conflict"
    assert audits() == []


# --- versions --------------------------------------------------------------------------------


def test_a_save_from_an_old_version_conflicts_and_changes_nothing(member_api, workspace, home):
    first = save(member_api, workspace, "a.txt", "one").json()["version"]
    second = save(member_api, workspace, "a.txt", "two", base_version=first)
    assert second.status_code == 200
    assert second.json()["version"] != first

    stale = save(member_api, workspace, "a.txt", "three", base_version=first)

    assert stale.status_code == 409
    assert stale.json()["code"] == "file_conflict"
    assert (home / "a.txt").read_text() == "two"
    assert len(audits("workspace.file_write")) == 2
    assert read(member_api, workspace, "a.txt").json()["version"] == second.json()["version"]


def test_an_empty_version_only_creates(member_api, workspace, home):
    created = save(member_api, workspace, "new/page.html", "<h1>hi</h1>", base_version="")
    assert created.status_code == 200 and (home / "new" / "page.html").read_text() == "<h1>hi</h1>"

    again = save(member_api, workspace, "new/page.html", "", base_version="")

    assert again.status_code == 409 and again.json()["code"] == "file_exists"
    assert (home / "new" / "page.html").read_text() == "<h1>hi</h1>"


def test_a_save_without_a_version_overwrites(member_api, workspace, home):
    (home / "a.txt").write_text("changed in the terminal")

    assert save(member_api, workspace, "a.txt", "mine").status_code == 200
    assert (home / "a.txt").read_text() == "mine"


def test_a_save_keeps_the_mode_of_the_file(member_api, workspace, home):
    script = home / "run.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o750)

    assert save(member_api, workspace, "run.sh", "#!/bin/sh\necho hi\n").status_code == 200
    assert os.stat(script).st_mode & 0o777 == 0o750


# --- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["../x", "/etc/passwd", "a/../../x", "a\0b", "x" * 5000])
def test_paths_outside_the_rules_are_refused_before_the_cluster_is_asked(
    member_api, control_plane, workspace, path
):
    responses = [
        read(member_api, workspace, path),
        member_api.get(url(workspace), {"path": path}),
        save(member_api, workspace, path, "x"),
        member_api.post(url(workspace, "/rename"), {"from": "a.txt", "to": path}),
        member_api.delete(f"{url(workspace)}?{urlencode({'path': path})}"),
    ]

    for response in responses:
        assert response.status_code == 400, response.content
        assert response.json()["code"] == "path_invalid"
    assert file_calls(control_plane) == 0
    assert audits() == []


def test_links_out_of_the_home_are_refused_and_writes_through_them_audited(
    member_api, workspace, home, tmp_path
):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("host secret")
    os.symlink(outside, home / "escape")
    os.symlink("/etc/passwd", home / "passwd")

    for path in ("escape/secret.txt", "passwd"):
        response = read(member_api, workspace, path)
        assert response.status_code == 403
        assert response.json()["code"] == "path_outside_home"
        assert "host secret" not in response.content.decode()
    written = save(member_api, workspace, "escape/new.txt", "x")

    assert written.status_code == 403
    assert written.json()["code"] == "path_outside_home"
    assert not (outside / "new.txt").exists()
    [denied] = audits("workspace.file_write")
    assert denied.outcome == AuditOutcome.DENIED
    assert denied.details == {"path": "escape/new.txt", "reason": "path_outside_home"}
    entries = {e["name"]: e for e in member_api.get(url(workspace)).json()["entries"]}
    assert entries["escape"]["type"] == "symlink" and entries["escape"]["target"] is None


def test_links_inside_the_home_are_followed_and_shown(member_api, workspace, home):
    (home / "app").mkdir()
    (home / "app" / "main.py").write_text("main")
    os.symlink("app", home / "current")
    os.symlink("/home/builder/app/main.py", home / "entry.py")

    assert read(member_api, workspace, "current/main.py").json()["content"] == "main"
    assert read(member_api, workspace, "entry.py").json()["content"] == "main"
    entries = {e["name"]: e for e in member_api.get(url(workspace)).json()["entries"]}
    assert (entries["current"]["type"], entries["current"]["target"]) == ("symlink", "app")
    assert entries["entry.py"]["target"] == "app/main.py"


def test_files_over_five_mib_are_refused(member_api, control_plane, workspace, home):
    (home / "big.log").write_bytes(b"x" * (MAX_FILE_BYTES + 1))

    too_big = read(member_api, workspace, "big.log")
    assert too_big.status_code == 413
    assert too_big.json()["code"] == "file_too_large"
    assert "5 MiB" in too_big.json()["detail"]

    over = save(member_api, workspace, "new.txt", "y" * (MAX_FILE_BYTES + 1))
    assert over.status_code == 413
    assert over.json()["code"] == "file_too_large"
    assert "5 MiB" in over.json()["detail"]
    assert control_plane.call_count("file_write") == 0
    assert not (home / "new.txt").exists()


def test_a_body_past_the_bound_is_refused_before_it_is_parsed(member_api, control_plane, workspace):
    body = json.dumps({"path": "a.txt", "content": "z" * MAX_WRITE_REQUEST})

    response = member_api.put(url(workspace, "/content"), body, content_type="application/json")

    assert response.status_code == 413
    assert response.json()["code"] == "file_too_large"
    assert control_plane.call_count("file_write") == 0


def test_a_file_of_exactly_five_mib_round_trips(member_api, workspace, home):
    text = ("é" + "x" * 1021 + "\n") * (MAX_FILE_BYTES // 1024)
    assert len(text.encode()) == MAX_FILE_BYTES

    saved = save(member_api, workspace, "big.txt", text)

    assert saved.status_code == 200, saved.content
    assert saved.json()["size"] == MAX_FILE_BYTES
    assert read(member_api, workspace, "big.txt").json()["content"] == text


@pytest.mark.parametrize("data", [b"\x00\x01\x02binary", b"\xff\xfe not utf-8"])
def test_binary_files_are_read_without_content(member_api, workspace, home, data):
    (home / "blob.bin").write_bytes(data)

    body = read(member_api, workspace, "blob.bin").json()

    assert body["binary"] is True
    assert body["content"] is None
    assert body["size"] == len(data)


def test_folders_and_files_are_told_apart(member_api, workspace, home):
    (home / "src").mkdir()
    (home / "src" / "a.py").write_text("a")

    as_file = read(member_api, workspace, "src")
    assert (as_file.status_code, as_file.json()["code"]) == (400, "is_a_directory")
    as_folder = member_api.get(url(workspace), {"path": "src/a.py"})
    assert (as_folder.status_code, as_folder.json()["code"]) == (400, "not_a_directory")
    over_folder = save(member_api, workspace, "src", "x")
    assert (over_folder.status_code, over_folder.json()["code"]) == (400, "is_a_directory")
    missing = read(member_api, workspace, "src/b.py")
    assert (missing.status_code, missing.json()["code"]) == (404, "file_not_found")


# --- rename and delete -----------------------------------------------------------------------


def test_rename_refuses_an_existing_target_unless_told_to_overwrite(member_api, workspace, home):
    (home / "a.txt").write_text("a")
    (home / "b.txt").write_text("b")
    rename = url(workspace, "/rename")

    refused = member_api.post(rename, {"from": "a.txt", "to": "b.txt"}, format="json")
    assert (refused.status_code, refused.json()["code"]) == (409, "file_exists")
    assert (home / "b.txt").read_text() == "b"

    done = member_api.post(rename, {"from": "a.txt", "to": "b.txt", "overwrite": True})
    assert done.status_code == 200
    assert done.json() == {
        "name": "b.txt",
        "path": "b.txt",
        "type": "file",
        "size": 1,
        "modified": done.json()["modified"],
        "target": None,
    }
    assert (home / "b.txt").read_text() == "a" and not (home / "a.txt").exists()
    moved = member_api.post(rename, {"from": "b.txt", "to": "docs/b.txt"}, format="json")
    assert (moved.status_code, moved.json()["code"]) == (404, "file_not_found")
    gone = member_api.post(rename, {"from": "nope.txt", "to": "x.txt"}, format="json")
    assert (gone.status_code, gone.json()["code"]) == (404, "file_not_found")


def test_delete_needs_recursive_for_a_folder_with_content_and_never_takes_the_home(
    member_api, workspace, home
):
    (home / "src" / "deep").mkdir(parents=True)
    (home / "src" / "deep" / "a.py").write_text("a")
    (home / "empty").mkdir()
    (home / "a.txt").write_text("a")

    def delete(path, **query):
        return member_api.delete(f"{url(workspace)}?{urlencode({'path': path, **query})}")

    assert delete("a.txt").status_code == 204 and not (home / "a.txt").exists()
    assert delete("empty").status_code == 204 and not (home / "empty").exists()
    refused = delete("src")
    assert (refused.status_code, refused.json()["code"]) == (409, "directory_not_empty")
    assert (home / "src" / "deep" / "a.py").exists()
    assert delete("src", recursive="true").status_code == 204 and not (home / "src").exists()
    the_home = delete(".", recursive="true")
    assert (the_home.status_code, the_home.json()["code"]) == (400, "path_invalid")
    assert home.is_dir()
    missing = delete("nope.txt")
    assert (missing.status_code, missing.json()["code"]) == (404, "file_not_found")


def test_delete_of_a_link_removes_the_link_not_its_target(member_api, workspace, home, tmp_path):
    target = tmp_path / "keep"
    target.mkdir()
    (target / "kept.txt").write_text("kept")
    os.symlink(target, home / "link")

    response = member_api.delete(f"{url(workspace)}?path=link&recursive=true")

    assert response.status_code == 204
    assert not os.path.lexists(home / "link")
    assert (target / "kept.txt").read_text() == "kept"


# --- who may ---------------------------------------------------------------------------------

ENDPOINTS = [
    ("get", "", {"path": ""}),
    ("get", "/content", {"path": "theirs.txt"}),
    ("put", "/content", {"path": "theirs.txt", "content": "hijacked"}),
    ("post", "/rename", {"from": "theirs.txt", "to": "mine.txt"}),
    ("delete", "?path=theirs.txt&recursive=true", None),
]


def call(client, workspace, method, suffix, body):
    if method == "get":
        return client.get(url(workspace, suffix), body)
    if method == "delete":
        return client.delete(url(workspace, suffix))
    return getattr(client, method)(url(workspace, suffix), body, format="json")


@pytest.mark.parametrize(("method", "suffix", "body"), ENDPOINTS)
def test_someone_elses_workspace_is_not_found_and_nothing_happens(
    member_api, control_plane, blueprint, stranger, method, suffix, body
):
    theirs = seed(control_plane, blueprint, stranger.email)
    their_home = control_plane.home_of(theirs.cluster, theirs.id)
    (their_home / "theirs.txt").write_text("their work")

    response = call(member_api, theirs, method, suffix, body)

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert "their work" not in response.content.decode()
    assert sorted(p.name for p in their_home.iterdir()) == ["theirs.txt"]
    assert (their_home / "theirs.txt").read_text() == "their work"
    assert file_calls(control_plane) == 0
    assert [e.action for e in audits()] == ["workspace.access_refused"]


@pytest.mark.parametrize(("method", "suffix", "body"), ENDPOINTS)
def test_every_file_endpoint_needs_authentication(
    api_client, control_plane, workspace, method, suffix, body
):
    response = call(api_client, workspace, method, suffix, body)

    assert response.status_code == 401
    assert file_calls(control_plane) == 0
