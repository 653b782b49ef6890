import pytest
from gui_fixtures import *  # noqa: F403 (fixtures: make_window, messages, sim_core, ...)

from app.cli import build_parser, main


def test_gui_command_is_registered_with_its_options():
    args = build_parser().parse_args(["gui", "--simulate", "--model", "m", "--seed", "3"])
    assert args.command == "gui"
    assert args.simulate
    assert str(args.model) == "m"
    assert args.seed == 3


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["gui", "--roi", "1", "2"], "--roi 1 2: expected X Y W H or one side N"),
        (["gui", "--mm-config", "missing.cfg"], "missing.cfg does not exist"),
        (["gui", "--simulate", "--model", "no-such-model"], "no-such-model does not exist"),
        (["gui", "--roi", "2000", "0", "512", "512"], "--roi 2000 0 512 512"),
    ],
)
def test_gui_command_reports_bad_input_in_one_line(argv, expected, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert expected in err
    assert err.startswith("deepscope: error:")
    assert len(err.strip().splitlines()) == 1


def test_gui_command_opens_the_window_and_returns_when_it_closes(
    qtbot, qt_leak_check, tiny_model, monkeypatch
):
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from gui.main_window import MainWindow

    monkeypatch.setenv("PYMM_SIGNALS_BACKEND", "psygnal")
    seen = []

    def close_windows():
        windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow)]
        seen.extend((w.windowTitle(), w.live.scale, w.isVisible()) for w in windows)
        for w in windows:
            w.close()

    QTimer.singleShot(1000, close_windows)
    assert main(["gui", "--simulate", "--model", str(tiny_model)]) == 0
    assert seen == [("deepscope", 2.5, True)]
