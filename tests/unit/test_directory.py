"""The user directory (components/directory.py): the passwd and group files every pod resolves names with, and
what makes a directory unusable."""

from components.directory import EXTRAUSERS_DIR, User, problems, render_files

ALICE = User("alice", 2001, 2001, ("physics", "chem"))
BOB = User("bob", 2002, 3100, ("physics",))
GROUPS = {"physics": 3000, "chem": 3001}


def test_files_are_passwd_and_group_format_sorted_by_id():
    files = render_files([BOB, ALICE], GROUPS)
    assert files == {
        "passwd": "alice:x:2001:2001::/home/alice:/bin/bash\n"
                  "bob:x:2002:3100::/home/bob:/bin/bash\n",
        # Each user's private group (named like the user, no members listed: it is their primary group), then
        # the further groups with their members.
        "group": "alice:x:2001:\n"
                 "bob:x:3100:\n"
                 "physics:x:3000:alice,bob\n"
                 "chem:x:3001:alice\n",
    }


def test_every_line_has_the_fields_nss_expects():
    files = render_files([ALICE, BOB], GROUPS)
    for line in files["passwd"].splitlines():
        name, password, uid, gid, gecos, home, shell = line.split(":")
        assert password == "x" and home == f"/home/{name}" and shell == "/bin/bash"
        assert uid.isdigit() and gid.isdigit()
    for line in files["group"].splitlines():
        name, password, gid, members = line.split(":")
        assert password == "x" and gid.isdigit()


def test_a_group_without_members_and_an_empty_directory():
    assert render_files([ALICE], {"physics": 3000, "empty": 3002})["group"].splitlines()[-1] == "empty:x:3002:"
    assert render_files([], {}) == {"passwd": "\n", "group": "\n"}


def test_homes_are_under_home():
    assert ALICE.home == "/home/alice"
    assert EXTRAUSERS_DIR == "/var/lib/extrausers"  # libnss-extrausers' fixed path


def test_a_good_directory_has_no_problems():
    assert problems([ALICE, BOB], GROUPS) == []
    assert problems([], {}) == []


def test_each_problem_names_the_user_or_group():
    assert problems([ALICE, User("carol", 2001, 2005)], GROUPS) == ["user carol's uid 2001 is also user alice's"]
    assert problems([ALICE, User("carol", 2005, 2001)], GROUPS) == ["user carol's gid 2001 is also user alice's"]
    assert problems([ALICE, User("alice", 2005, 2005)], GROUPS) == ["user name alice is given twice"]
    assert problems([ALICE], {"physics": 3000}) == ["user alice is in group chem, which is not in `groups`"]
    assert problems([ALICE], {**GROUPS, "alice": 3005}) == [
        "group alice has the name of a user (whose private group it already is)"]
    assert problems([ALICE], {"physics": 3000, "chem": 2001}) == ["group chem's gid 2001 is also user alice's"]
    assert problems([ALICE], {"physics": 3000, "chem": 3000}) == ["group chem's gid 3000 is also group physics's"]


def test_all_problems_are_listed_at_once():
    assert problems([ALICE, User("alice", 2001, 2001, ("nope",))], {}) == [
        "user alice's uid 2001 is also user alice's", "user alice's gid 2001 is also user alice's",
        "user name alice is given twice", "user alice is in group physics, which is not in `groups`",
        "user alice is in group chem, which is not in `groups`", "user alice is in group nope, which is not in `groups`"]
