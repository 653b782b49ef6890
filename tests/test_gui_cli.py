import pytest

from deepscope.cli import build_parser, main


def test_gui_command_is_registered_with_its_options():
    args = build_parser().parse_args(["gui", "--simulate", "--model", "m", "--seed", "3"])
    assert args.command == "gui"
    assert args.simulate
    assert str(args.model) == "m"
    assert args.seed == 3


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["gui"], "pass --simulate or --mm-config"),
        (["gui", "--mm-config", "missing.cfg"], "missing.cfg does not exist"),
        (["gui", "--simulate", "--model", "no-such-model"], "no-such-model does not exist"),
    ],
)
def test_gui_command_reports_bad_input_in_one_line(argv, expected, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert expected in err
    assert err.startswith("deepscope: error:")
    assert len(err.strip().splitlines()) == 1
