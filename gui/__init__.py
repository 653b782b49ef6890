"""pyqtgraph GUI: live enhanced preview, acquisition and training panels.

Each panel is a controller (a ``QObject`` that owns the work, runs it in threads and reports
through Qt signals; testable without drawing) and a view (widgets that draw on the GUI thread):
:mod:`gui.live_controller`/:mod:`gui.live_panel`, :mod:`gui.acquisition_controller`/
:mod:`gui.acquisition_panel`, :mod:`gui.training_controller`/:mod:`gui.training_panel`.
:class:`gui.main_window.MainWindow` puts them in tabs; ``deepscope gui`` opens it.
"""
