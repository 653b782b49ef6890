"""pyqtgraph GUI: live enhanced preview, acquisition and training panels."""
