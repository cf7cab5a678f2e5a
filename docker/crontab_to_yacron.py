"""Turn a user crontab into a yacron configuration (YAML on stdout).

The repository's `crontab` stays the one schedule people read and `crontab -n`
checks; the container's scheduler is yacron, which runs each line in the
foreground with the container's environment and logs to stdout. Comments and
blank lines are skipped, `NAME=value` lines become the jobs' environment, and
every schedule is in UTC. Overlaps are refused by yacron (concurrencyPolicy
Forbid) as well as by the job lock. Lines run with `bash -c`, which execs a
line's single command, so the job process yacron knows (and the scheduler
signals on shutdown) is `etl-cron` itself, not a shell in front of it.
"""

from __future__ import annotations

import re
import sys

_ENVIRONMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$")
_MACROS = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
           "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *"}


def quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def parse(text: str) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """(environment, [(schedule, command)]) of a user crontab."""
    environment: dict[str, str] = {}
    entries: list[tuple[str, str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        assignment = _ENVIRONMENT.match(line)
        if assignment:
            environment[assignment.group(1)] = assignment.group(2).strip().strip("'\"")
            continue
        if line.startswith("@"):
            macro, _, command = line.partition(" ")
            if macro not in _MACROS:
                raise ValueError(f"line {number}: unsupported schedule {macro}")
            entries.append((_MACROS[macro], command.strip()))
            continue
        fields = line.split(None, 5)
        if len(fields) < 6:
            raise ValueError(f"line {number}: expected five schedule fields and a command: {raw!r}")
        entries.append((" ".join(fields[:5]), fields[5]))
    return environment, entries


def job_name(command: str, taken: set[str]) -> str:
    """A short unique name for the log prefix: `etl-cron outbox flush --x` → `outbox-flush`,
    `etl-cron fetch_market_data --types CRYPTO` → `fetch_market_data-CRYPTO`."""
    words = command.split()
    while words and words[0] in ("etl", "etl-cron"):
        words.pop(0)
    kept = []
    for word in words[:2]:
        if word.startswith("-"):
            break
        kept.append(word)
    if "--types" in words[:-1]:
        kept.append(words[words.index("--types") + 1].replace(",", "-"))
    kept = [re.sub(r"[^A-Za-z0-9_.-]+", "", word) for word in kept]
    base = "-".join(w for w in kept if w) or "job"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    taken.add(name)
    return name


def to_yacron(text: str) -> str:
    environment, entries = parse(text)
    lines = ["defaults:", "  shell: /bin/bash", "  utc: true", "  concurrencyPolicy: Forbid",
             "  captureStdout: true", "  captureStderr: true", "  saveLimit: 20"]
    if environment:
        lines.append("  environment:")
        for key, value in environment.items():
            lines += [f"    - key: {key}", f"      value: {quoted(value)}"]
    lines.append("jobs:")
    taken: set[str] = set()
    for schedule, command in entries:
        lines += [f"  - name: {quoted(job_name(command, taken))}",
                  f"    command: {quoted(command)}",
                  f"    schedule: {quoted(schedule)}"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: crontab_to_yacron.py CRONTAB")
    with open(sys.argv[1], encoding="utf-8") as handle:
        sys.stdout.write(to_yacron(handle.read()))
