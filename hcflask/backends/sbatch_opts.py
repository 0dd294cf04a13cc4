"""A queue's ``extra_args``, read the way sbatch's ``getopt_long`` reads them.

hcflask sets some sbatch options itself (the job name it finds jobs by after
a crash, the output files the judge reads, ...); a queue must not override
them in *any* spelling sbatch accepts: ``-Jx``, ``-J x``, ``--job-name=x``,
``--job-name x``, ``--job-n=x`` (getopt_long takes any unique prefix of a
long option), or hidden in a cluster of short flags (``-vJx``).  So the
arguments are parsed with sbatch's own option table (``sbatch --help``,
Slurm 23-24): an option unknown to sbatch, an ambiguous abbreviation, a
missing value or a bare word (sbatch would take it for the script) is an
error too.
"""
from __future__ import annotations

from hcflask.backends.base import OptionError

#: short options (sbatch's getopt string): letter → long name; True: takes a value
SHORT: dict[str, tuple[str, bool]] = {
    "a": ("array", True), "A": ("account", True), "b": ("begin", True), "B": ("extra-node-info", True),
    "c": ("cpus-per-task", True), "C": ("constraint", True), "d": ("dependency", True), "D": ("chdir", True),
    "e": ("error", True), "F": ("nodefile", True), "G": ("gpus", True), "h": ("help", False),
    "H": ("hold", False), "i": ("input", True), "I": ("immediate", False), "J": ("job-name", True),
    "k": ("no-kill", False), "L": ("licenses", True), "m": ("distribution", True), "M": ("clusters", True),
    "n": ("ntasks", True), "N": ("nodes", True), "o": ("output", True), "O": ("overcommit", False),
    "p": ("partition", True), "q": ("qos", True), "Q": ("quiet", False), "s": ("oversubscribe", False),
    "S": ("core-spec", True), "t": ("time", True), "u": ("usage", False), "v": ("verbose", False),
    "V": ("version", False), "w": ("nodelist", True), "W": ("wait", False), "x": ("exclude", True),
}
REQUIRED, OPTIONAL, NONE = "required", "optional", "none"
_REQUIRED_LONG = """account acctg-freq array batch bb bbf begin chdir cluster-constraint clusters comment
constraint container container-id core-spec cores-per-socket cpu-freq cpus-per-gpu cpus-per-task deadline
delay-boot dependency distribution error exclude export export-file extra extra-node-info gid gpu-bind gpu-freq
gpus gpus-per-node gpus-per-socket gpus-per-task gres gres-flags hint input job-name kill-on-invalid-dep
licenses mail-type mail-user mcs-label mem mem-bind mem-per-cpu mem-per-gpu mincpus network nodefile nodelist
nodes ntasks ntasks-per-core ntasks-per-gpu ntasks-per-node ntasks-per-socket open-mode output partition power
prefer priority profile qos reservation segment signal sockets-per-node switches thread-spec threads-per-core
time time-min tmp tres-bind tres-per-task uid wckey wrap"""
_OPTIONAL_LONG = "exclusive get-user-env nice no-kill propagate resv-ports"
_NONE_LONG = """contiguous help hold ignore-pbs immediate no-requeue oversubscribe overcommit parsable quiet
reboot requeue spread-job test-only usage use-min-nodes verbose version wait"""
LONG: dict[str, str] = {
    **dict.fromkeys(_REQUIRED_LONG.split(), REQUIRED), **dict.fromkeys(_OPTIONAL_LONG.split(), OPTIONAL),
    **dict.fromkeys(_NONE_LONG.split(), NONE),
}
#: options hcflask sets itself, by their long name
RESERVED = frozenset({"job-name", "output", "error", "chdir", "wrap", "parsable", "array", "test-only",
                      "partition", "hold", "input", "help", "usage", "version"})


def _long(name: str) -> str:
    """The long option ``name`` means: itself, or the one option it is a prefix of (getopt_long)."""
    if name in LONG:
        return name
    matches = [option for option in LONG if option.startswith(name)]
    if not matches:
        raise OptionError("extra_args", f"--{name} is not an sbatch option")
    if len(matches) > 1:
        raise OptionError("extra_args", f"--{name} is ambiguous for sbatch ({', '.join(sorted(matches)[:5])})")
    return matches[0]


def parse(args: list[str]) -> list[tuple[str, str | None]]:
    """``[(long option, value or None)]`` as sbatch would read ``args``; OptionError otherwise."""
    out: list[tuple[str, str | None]] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg.startswith("--") and len(arg) > 2:
            name, eq, value = arg[2:].partition("=")
            option = _long(name)
            kind = LONG[option]
            if kind == NONE and eq:
                raise OptionError("extra_args", f"--{option} takes no value")
            if kind == REQUIRED and not eq:
                if i >= len(args):
                    raise OptionError("extra_args", f"--{option} needs a value")
                value, i = args[i], i + 1
            out.append((option, value if (eq or kind == REQUIRED) else None))
        elif arg.startswith("-") and len(arg) > 1 and arg != "--":
            i = _short_cluster(arg[1:], args, i, out)
        else:
            raise OptionError("extra_args", f"{arg!r} is not an sbatch option (sbatch would read it as the script)")
    return out


def _short_cluster(cluster: str, args: list[str], i: int, out: list[tuple[str, str | None]]) -> int:
    """``-vJname``: flags, then at most one option that takes the rest (or the next argument) as its value."""
    for pos, letter in enumerate(cluster):
        if letter not in SHORT:
            raise OptionError("extra_args", f"-{letter} is not an sbatch option")
        option, takes_value = SHORT[letter]
        if not takes_value:
            out.append((option, None))
            continue
        value = cluster[pos + 1:]
        if not value:
            if i >= len(args):
                raise OptionError("extra_args", f"-{letter} needs a value")
            value, i = args[i], i + 1
        out.append((option, value))
        break
    return i


def check_extra_args(args: list[str]) -> None:
    """Raise OptionError for malformed arguments or any option hcflask sets itself."""
    for option, _value in parse(args):
        if option in RESERVED:
            raise OptionError("extra_args", f"--{option} is set by hcflask and cannot be overridden")
