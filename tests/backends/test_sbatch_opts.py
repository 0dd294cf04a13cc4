"""A queue's extra sbatch arguments are read as sbatch's getopt_long reads them,
so an option hcflask sets itself cannot slip through in any spelling."""
from __future__ import annotations

import pytest
from slurm_cluster import SlurmCluster

from hcflask.backends import OptionError
from hcflask.backends.sbatch_opts import check_extra_args, parse
from hcflask.backends.slurm import SlurmBackend


@pytest.mark.parametrize("args", [
    ["-Jother"], ["-J", "other"], ["--job-name=other"], ["--job-name", "other"], ["--job-n=other"],
    ["--job", "other"], ["-pother"], ["-p", "debug"], ["--part=debug"], ["-o/path"], ["-o", "/path"],
    ["--out=/x"], ["-e/x"], ["--err", "/x"], ["-D/tmp"], ["--chd=/tmp"], ["--wrap=true"], ["--wr", "true"],
    ["--parsable"], ["--pars"], ["-a1-3"], ["--arr=1-3"], ["--test-only"], ["--test"], ["-H"], ["--hold"],
    ["-vJother"], ["-QvJ", "other"], ["--exclusive", "-Jx"], ["-i/dev/null"],
])
def test_reserved_options_are_refused_in_every_spelling(args: list[str]) -> None:
    with pytest.raises(OptionError, match="set by hcflask") as info:
        check_extra_args(args)
    assert info.value.field == "extra_args"


def test_allowed_options_parse_like_getopt() -> None:
    parsed = parse(["--exclusive", "--nice=10", "-c4", "-t", "10", "--mem", "2G", "--acco=proj", "-vQ",
                    "--gres=gpu:1"])
    assert parsed == [("exclusive", None), ("nice", "10"), ("cpus-per-task", "4"), ("time", "10"),
                      ("mem", "2G"), ("account", "proj"), ("verbose", None), ("quiet", None), ("gres", "gpu:1")]
    # a value that looks like a reserved option is only a value
    assert parse(["--comment", "-Jx"]) == [("comment", "-Jx")]


@pytest.mark.parametrize(("args", "words"), [
    (["--bogus"], "not an sbatch option"),
    (["-Z"], "not an sbatch option"),
    (["--no"], "ambiguous"),
    (["--time"], "needs a value"),
    (["-t"], "needs a value"),
    (["--parsable=yes"], "takes no value"),
    (["script.sh"], "sbatch would read it as the script"),
    (["--", "x"], "not an sbatch option"),
])
def test_malformed_arguments_are_refused(args: list[str], words: str) -> None:
    with pytest.raises(OptionError, match=words):
        parse(args)


@pytest.mark.slurm
def test_real_sbatch_reads_the_refused_spellings_as_the_reserved_option(slurm: SlurmCluster) -> None:
    """Proof the table matches sbatch: ``--test-only`` shows each spelling renames the job or moves
    its output, and hcflask refuses every one of them before sbatch is asked."""
    for args in (["-Jother"], ["--job-n=other"], ["-vJother"]):
        shown = slurm.run("sbatch", "--test-only", "-p", "debug", *args, "--wrap=true")
        assert shown.returncode == 0, shown.stderr
        with pytest.raises(OptionError, match="set by hcflask"):
            SlurmBackend.validate_options({"partition": "debug", "extra_args": args}, slurm.backend_config)
    accepted = SlurmBackend.validate_options({"partition": "debug", "extra_args": ["--exclusive", "-c1"]},
                                             slurm.backend_config)
    assert accepted["extra_args"] == ["--exclusive", "-c1"]
