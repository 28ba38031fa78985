"""Answer-file fuzzing: wrong TOML types, broken encodings, odd paths and sizes.

Every mutation of a valid answer file (one that would upgrade an Engine 4.5 disk with VMs to
5.0) must end with a non-zero exit, exactly one `error:` line on stderr, no traceback anywhere,
and the target disk's bytes unchanged (SHA-256 of the loop device's backing file), with and
without --dry-run.
"""

from __future__ import annotations

import random
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from faulthelpers import VENV_BIN, Disk, disk_copy, error_line, installer

# A mutation turns (disk, payload, work dir) into the answer file to run (a path; it may be a
# directory or missing on purpose). Most are text: VALID with one line replaced or added.
Mutation = Callable[[Disk, Path, Path], Path]
MAX_ERROR_LINE = 1000  # one readable sentence, even for a 10 MB value


def valid_lines(disk: Disk, payload: Path) -> dict[str, str]:
    return {
        "[install]": "[install]",
        "action": 'action = "auto"',
        "target": f'target = "{disk.device}"',
        "eula": 'eula = "accepted"',
        "keyboard": 'keyboard = "us"',
        "lab": "lab_override = true",
        "[source]": "[source]",
        "path": f'path = "{payload}"',
    }


def text(**changes: str | None) -> Mutation:
    """VALID with lines replaced (a key → its new line; None drops it; '+name' adds one to
    [install]). Values may use {disk} and {payload}."""

    def make(disk: Disk, payload: Path, work: Path) -> Path:
        lines = valid_lines(disk, payload)
        for key, line in changes.items():
            if key.startswith("+"):
                lines["action"] += "\n" + line
            elif line is None:
                lines.pop(key)
            else:
                lines[key] = line
        body = "\n".join(lines.values()).format(disk=disk.device, payload=payload) + "\n"
        path = work / "answers.toml"
        path.write_text(body, encoding="utf-8")
        return path

    return make


def raw(make_bytes: Callable[[Disk, Path], bytes]) -> Mutation:
    def make(disk: Disk, payload: Path, work: Path) -> Path:
        path = work / "answers.toml"
        path.write_bytes(make_bytes(disk, payload))
        return path

    return make


def valid_text(disk: Disk, payload: Path) -> str:
    return "\n".join(valid_lines(disk, payload).values()) + "\n"


def _directory(disk: Disk, payload: Path, work: Path) -> Path:
    (work / "answers.d").mkdir()
    return work / "answers.d"


def _missing(disk: Disk, payload: Path, work: Path) -> Path:
    return work / "no-such-answers.toml"


def _garbage(disk: Disk, payload: Path) -> bytes:
    return random.Random(10).randbytes(4096)


def _ten_mb(disk: Disk, payload: Path) -> bytes:
    body = valid_text(disk, payload).replace('keyboard = "us"', 'keyboard = "' + "x" * 10**7 + '"')
    return body.encode()


def _ten_mb_comments(disk: Disk, payload: Path) -> bytes:
    filler = ("# " + "y" * 98 + "\n") * (10**7 // 101)
    return (filler + valid_text(disk, payload).replace('eula = "accepted"', 'eula = "no"')).encode()


MUTATIONS: dict[str, Mutation] = {
    # -- every key given a wrong TOML type ----------------------------------------------------
    "action-integer": text(action="action = 1"),
    "action-boolean": text(action="action = true"),
    "action-array": text(action='action = ["auto"]'),
    "action-table": text(action='action = {{ kind = "auto" }}'),
    "action-unknown": text(action='action = "wipe"'),
    "target-integer": text(target="target = 5"),
    "target-boolean": text(target="target = true"),
    "target-array": text(target='target = ["{disk}"]'),
    "target-table": text(target='target = {{ path = "{disk}" }}'),
    "target-datetime": text(target="target = 1979-05-27T07:32:00Z"),
    "eula-boolean": text(eula="eula = true"),
    "eula-integer": text(eula="eula = 1"),
    "eula-array": text(eula='eula = ["accepted"]'),
    "keyboard-integer": text(keyboard="keyboard = 5"),
    "keyboard-array": text(keyboard='keyboard = ["us"]'),
    "keyboard-float": text(keyboard="keyboard = 1.5"),
    "allow-downgrade-string-false": text(**{"+a": 'allow_downgrade = "false"'}),
    "allow-downgrade-string-true": text(**{"+a": 'allow_downgrade = "true"'}),
    "allow-downgrade-integer": text(**{"+a": "allow_downgrade = 0"}),
    "allow-downgrade-float": text(**{"+a": "allow_downgrade = 1.0"}),
    "allow-downgrade-array": text(**{"+a": "allow_downgrade = [false]"}),
    "kernel-args-integer": text(**{"+k": "kernel_args = 5"}),
    "kernel-args-string": text(**{"+k": 'kernel_args = "quiet"'}),
    "kernel-args-table": text(**{"+k": "kernel_args = {{ quiet = true }}"}),
    "kernel-args-integers": text(**{"+k": "kernel_args = [1, 2]"}),
    "kernel-args-nested": text(**{"+k": 'kernel_args = [["quiet"]]'}),
    "install-is-a-string": raw(lambda d, p: f'install = "{d.device}"\n'.encode()),
    "install-array-of-tables": raw(
        lambda d, p: valid_text(d, p).replace("[install]", "[[install]]").encode()
    ),
    "install-nested-table": text(**{"+n": '[install.extra]\ncolour = "red"'}),
    "source-path-integer": text(path="path = 5"),
    "source-path-boolean": text(path="path = false"),
    "source-path-array": text(path='path = ["{payload}"]'),
    "source-is-a-string": raw(
        lambda d, p: f'source = "{p}"\n'.encode() + valid_text(d, p).split("[source]")[0].encode()
    ),
    "unknown-section": text(**{"+s": "[network]\nproxy = 1"}),
    "duplicate-key": text(**{"+d": 'action = "install"'}),
    # -- encodings and sizes -------------------------------------------------------------------
    "utf16-with-bom": raw(lambda d, p: valid_text(d, p).encode("utf-16")),
    "latin1-bytes": raw(
        lambda d, p: valid_text(d, p).replace('"us"', '"d\u00e9"').encode("latin-1")
    ),
    "binary-garbage": raw(_garbage),
    "empty-file": raw(lambda d, p: b""),
    "nul-byte-raw": raw(lambda d, p: valid_text(d, p).replace('"us"', '"u\0s"').encode()),
    "nul-in-target": text(target='target = "{disk}\\u0000"'),
    "nul-in-source-path": text(path='path = "{payload}\\u0000/engine"'),
    "directory-as-answer-file": _directory,
    "missing-answer-file": _missing,
    "ten-mb-value": raw(_ten_mb),
    "ten-mb-of-comments": raw(_ten_mb_comments),
    "long-target": text(target='target = "/dev/' + "x" * 100_000 + '"'),
    "long-keyboard": text(keyboard='keyboard = "' + "k" * 100_000 + '"'),
    "long-action": text(action='action = "' + "a" * 100_000 + '"'),
    # -- paths -----------------------------------------------------------------------------
    "target-relative": text(target='target = "loop-disk"'),
    "target-missing": text(target='target = "/dev/disk/by-id/no-such-disk"'),
    "target-empty": text(target='target = ""'),
    "target-regular-file": text(target='target = "/etc/hostname"'),
    "target-char-device": text(target='target = "/dev/null"'),
    "target-directory": text(target='target = "/dev"'),
    "target-partition": text(target='target = "{disk}p5"'),
    "source-relative-missing": text(path='path = "no/such/engine"'),
    "source-absolute-missing": text(path='path = "/nonexistent/engine"'),
    "source-not-a-payload": text(path='path = "/etc"'),
    "source-plain-file": text(path='path = "/etc/hostname"'),
    "eula-declined": text(eula='eula = "declined"'),
    "no-install-section": raw(lambda d, p: f'[source]\npath = "{p}"\n'.encode()),
}


def test_enough_mutations():
    assert len(MUTATIONS) >= 40


@pytest.fixture
def disk(engine45_image, tmp_path):
    with disk_copy(engine45_image.path, tmp_path) as disk:
        yield disk


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_mutation(name, disk, payloads, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    answers = MUTATIONS[name](disk, payloads["5.0"], work)
    before = disk.digest()
    for dry in (["--dry-run"], []):
        proc = installer("--answers", str(answers), *dry)
        line = error_line(proc)
        assert proc.returncode != 0, proc.stdout[-500:]
        assert len(line) <= MAX_ERROR_LINE, f"a {len(line)}-character error line"
        assert disk.digest() == before, f"{name}{dry}: the disk changed"


def test_dry_run_into_a_closed_pipe(disk, payloads, tmp_path):
    """`engine-installer --answers F --dry-run | head -1`: the reader goes away early."""
    answers = text()(disk, payloads["5.0"], tmp_path)
    before = disk.digest()
    script = f"'{VENV_BIN}/engine-installer' --answers '{answers}' --dry-run | head -1"
    proc = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    assert proc.stdout.count("\n") == 1
    lines = proc.stderr.splitlines()
    assert lines == [] or (len(lines) == 1 and lines[0].startswith("error: ")), proc.stderr
    assert disk.digest() == before


def test_the_valid_answer_file_is_valid(disk, payloads, tmp_path):
    """The base every mutation starts from passes the dry run (so each refusal is the
    mutation's doing)."""
    answers = text()(disk, payloads["5.0"], tmp_path)
    before = disk.digest()
    proc = installer("--answers", str(answers), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert disk.digest() == before
